// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IAccessLogAnchors} from "./interfaces/IAccessLogAnchors.sol";
import {LedgerRoles} from "./libraries/LedgerRoles.sol";
import {RFC9162} from "./libraries/RFC9162.sol";

/// @title Access-log anchors
/// @notice See {IAccessLogAnchors}. Every head stays in storage, so an auditor can read the whole
/// sequence from any node without archive state.
contract AccessLogAnchors is IAccessLogAnchors {
    IAccessControl private immutable _roles;

    TreeHead[] private _heads;

    /// @param roleAuthority The role authority (the organisation registry) that holds `LOG_WRITER_ROLE`.
    constructor(IAccessControl roleAuthority) {
        _roles = roleAuthority;
    }

    /// @notice The role authority this contract consults.
    function roles() external view returns (IAccessControl) {
        return _roles;
    }

    /// @inheritdoc IAccessLogAnchors
    function anchorTreeHead(uint64 size, bytes32 root) external returns (uint256 index) {
        if (!_roles.hasRole(LedgerRoles.LOG_WRITER_ROLE, msg.sender)) revert AccessLogAnchorsUnauthorised(msg.sender);
        if (root == bytes32(0)) revert AccessLogAnchorsInvalidRoot();
        uint64 lastSize = 0;
        index = _heads.length;
        if (index > 0) lastSize = _heads[index - 1].size;
        if (size <= lastSize) revert AccessLogAnchorsTreeNotGrown(lastSize, size);
        index = _heads.length;
        _heads.push(
            TreeHead({root: root, size: size, blockNumber: uint64(block.number), timestamp: uint64(block.timestamp)})
        );
        emit TreeHeadAnchored(index, size, root);
    }

    /// @inheritdoc IAccessLogAnchors
    function headCount() external view returns (uint256) {
        return _heads.length;
    }

    /// @inheritdoc IAccessLogAnchors
    function headAt(uint256 index) public view returns (TreeHead memory) {
        if (index >= _heads.length) revert AccessLogAnchorsUnknownHead(index);
        return _heads[index];
    }

    /// @inheritdoc IAccessLogAnchors
    function latestHead() external view returns (TreeHead memory head) {
        uint256 count = _heads.length;
        if (count > 0) head = _heads[count - 1];
    }

    /// @inheritdoc IAccessLogAnchors
    function isEntryIncluded(
        uint256 headIndex,
        bytes32 leafHash,
        uint256 leafIndex,
        bytes32[] calldata proof
    ) external view returns (bool) {
        TreeHead memory head = headAt(headIndex);
        return RFC9162.verifyInclusion(leafHash, leafIndex, head.size, proof, head.root);
    }
}
