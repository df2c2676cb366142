// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IInclusionVerifier} from "./interfaces/IInclusionVerifier.sol";
import {RFC9162} from "./libraries/RFC9162.sol";

/// @title RFC 9162 inclusion-proof verifier
/// @notice Stateless: see {IInclusionVerifier}.
contract InclusionVerifier is IInclusionVerifier {
    /// @inheritdoc IInclusionVerifier
    function verifyInclusion(
        bytes32 leaf,
        uint256 leafIndex,
        uint256 treeSize,
        bytes32[] calldata proof,
        bytes32 root
    ) external pure returns (bool) {
        return RFC9162.verifyInclusion(leaf, leafIndex, treeSize, proof, root);
    }

    /// @inheritdoc IInclusionVerifier
    function verifyInclusionRaw(
        bytes calldata leaf,
        uint256 leafIndex,
        uint256 treeSize,
        bytes[] calldata proof,
        bytes calldata root
    ) external pure returns (bool) {
        if (leaf.length != 32 || root.length != 32) return false;
        bytes32[] memory path = new bytes32[](proof.length);
        for (uint256 i = 0; i < proof.length; ++i) {
            if (proof[i].length != 32) return false;
            path[i] = bytes32(proof[i]);
        }
        return RFC9162.verifyInclusion(bytes32(leaf), leafIndex, treeSize, path, bytes32(root));
    }

    /// @inheritdoc IInclusionVerifier
    function leafHash(bytes calldata data) external pure returns (bytes32) {
        return RFC9162.leafHash(data);
    }
}
