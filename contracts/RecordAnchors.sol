// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IOrganisationRegistry} from "./interfaces/IOrganisationRegistry.sol";
import {IRecordAnchors} from "./interfaces/IRecordAnchors.sol";
import {RFC9162} from "./libraries/RFC9162.sol";

/// @title Record anchors
/// @notice See {IRecordAnchors}.
contract RecordAnchors is IRecordAnchors {
    /// @dev Version byte of the record leaf encoding, so a future encoding cannot be confused with this one.
    uint8 private constant _LEAF_VERSION = 1;

    IOrganisationRegistry private immutable _registry;

    mapping(bytes32 ownerOrg => mapping(bytes32 recordId => mapping(uint32 version => bytes32 leafHash)))
        private _anchoredLeaves;
    mapping(bytes32 ownerOrg => mapping(bytes32 root => Batch)) private _batches;
    uint64 private _batchCount;

    /// @param organisationRegistry The registry that says which organisation a signer signs for.
    constructor(IOrganisationRegistry organisationRegistry) {
        _registry = organisationRegistry;
    }

    /// @notice The organisation registry this contract consults.
    function registry() external view returns (IOrganisationRegistry) {
        return _registry;
    }

    /// @inheritdoc IRecordAnchors
    function anchorRecord(bytes32 recordId, uint32 version, bytes32 ciphertextHash, bytes32 commitment) external {
        bytes32 ownerOrg = _callerOrganisation();
        if (recordId == bytes32(0) || version == 0 || ciphertextHash == bytes32(0) || commitment == bytes32(0)) {
            revert RecordAnchorsInvalidAnchor();
        }
        mapping(uint32 => bytes32) storage versions = _anchoredLeaves[ownerOrg][recordId];
        if (versions[version] != bytes32(0)) revert RecordAnchorsAlreadyAnchored(recordId, version);
        versions[version] = _leafHash(recordId, version, ownerOrg, ciphertextHash, commitment);
        emit RecordAnchored(recordId, version, ownerOrg, ciphertextHash, commitment);
    }

    /// @inheritdoc IRecordAnchors
    function anchorBatch(bytes32 root, uint64 size, bytes32 manifestHash) external returns (uint64 sequence) {
        bytes32 ownerOrg = _callerOrganisation();
        if (root == bytes32(0) || size == 0 || manifestHash == bytes32(0)) revert RecordAnchorsInvalidAnchor();
        if (_batches[ownerOrg][root].size != 0) revert RecordAnchorsBatchAlreadyAnchored(root);
        sequence = ++_batchCount;
        _batches[ownerOrg][root] =
            Batch({ownerOrg: ownerOrg, size: size, blockNumber: uint64(block.number), sequence: sequence});
        emit BatchAnchored(sequence, ownerOrg, root, size, manifestHash);
    }

    /// @inheritdoc IRecordAnchors
    function recordLeafHash(
        bytes32 recordId,
        uint32 version,
        bytes32 ownerOrg,
        bytes32 ciphertextHash,
        bytes32 commitment
    ) external pure returns (bytes32) {
        return _leafHash(recordId, version, ownerOrg, ciphertextHash, commitment);
    }

    /// @inheritdoc IRecordAnchors
    function anchoredLeaf(bytes32 ownerOrg, bytes32 recordId, uint32 version) external view returns (bytes32) {
        return _anchoredLeaves[ownerOrg][recordId][version];
    }

    /// @inheritdoc IRecordAnchors
    function batch(bytes32 ownerOrg, bytes32 root) external view returns (Batch memory) {
        return _batches[ownerOrg][root];
    }

    /// @inheritdoc IRecordAnchors
    function batchCount() external view returns (uint64) {
        return _batchCount;
    }

    /// @inheritdoc IRecordAnchors
    function isRecordAnchored(
        bytes32 recordId,
        uint32 version,
        bytes32 ownerOrg,
        bytes32 ciphertextHash,
        bytes32 commitment,
        bytes32 root,
        uint256 index,
        bytes32[] calldata proof
    ) external view returns (bool) {
        bytes32 leaf = _leafHash(recordId, version, ownerOrg, ciphertextHash, commitment);
        if (root == bytes32(0)) return _anchoredLeaves[ownerOrg][recordId][version] == leaf;
        Batch storage anchored = _batches[ownerOrg][root];
        if (anchored.size == 0) return false;
        return RFC9162.verifyInclusion(leaf, index, anchored.size, proof, root);
    }

    function _callerOrganisation() private view returns (bytes32 orgId) {
        orgId = _registry.organisationOfSigner(msg.sender);
        if (orgId == bytes32(0)) revert RecordAnchorsUnknownSigner(msg.sender);
        if (_registry.isSuspended(orgId)) revert RecordAnchorsOrganisationSuspended(orgId);
    }

    function _leafHash(
        bytes32 recordId,
        uint32 version,
        bytes32 ownerOrg,
        bytes32 ciphertextHash,
        bytes32 commitment
    ) private pure returns (bytes32) {
        return RFC9162.leafHash(
            abi.encodePacked(_LEAF_VERSION, recordId, version, ownerOrg, ciphertextHash, commitment)
        );
    }
}
