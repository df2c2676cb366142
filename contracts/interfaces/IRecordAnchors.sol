// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Record anchors
/// @notice Anchors what each shared record version is: its ciphertext hash and a salted commitment
/// to its canonical plaintext. A record is anchored on its own, or as one leaf of a batch whose
/// RFC 9162 Merkle root and size are anchored. Only the owner organisation's signer anchors, and the
/// owner is the organisation that signer signs for.
/// @dev The leaf of a record version is
/// `abi.encodePacked(uint8(1), recordId, uint32(version), ownerOrg, ciphertextHash, commitment)`
/// (133 bytes), hashed as an RFC 9162 leaf: SHA-256(0x00 || leaf). Single anchors store that leaf
/// hash; batches store their root. Both are kept per owner organisation, so no other organisation can
/// pre-empt ("squat") an owner's record id, version or root. Per-record uniqueness inside batches is
/// not enforced on chain (it would cost a storage slot per record): auditors check it from the batch
/// manifests, whose hash every batch anchor names.
interface IRecordAnchors {
    /// @notice A batch as stored.
    struct Batch {
        bytes32 ownerOrg;
        uint64 size;
        uint64 blockNumber;
        uint64 sequence;
    }

    /// @notice `caller` signs for no registered organisation.
    error RecordAnchorsUnknownSigner(address caller);
    /// @notice The organisation `orgId` is suspended and cannot anchor.
    error RecordAnchorsOrganisationSuspended(bytes32 orgId);
    /// @notice Version `version` of `recordId` is already anchored by this owner.
    error RecordAnchorsAlreadyAnchored(bytes32 recordId, uint32 version);
    /// @notice This owner already anchored a batch with this root.
    error RecordAnchorsBatchAlreadyAnchored(bytes32 root);
    /// @notice A hash, id, root or manifest hash is zero, a version is zero, or a batch is empty.
    error RecordAnchorsInvalidAnchor();

    /// @notice A record version was anchored on its own.
    event RecordAnchored(
        bytes32 indexed recordId, uint32 version, bytes32 indexed ownerOrg, bytes32 ciphertextHash, bytes32 commitment
    );
    /// @notice A batch of record versions was anchored by its RFC 9162 root and size. `manifestHash`
    /// names the storage object that lists the batch's leaves in order.
    event BatchAnchored(
        uint64 indexed sequence, bytes32 indexed ownerOrg, bytes32 root, uint64 size, bytes32 manifestHash
    );

    /// @notice Anchor one record version. Only an active organisation's signer; the owner is that organisation.
    function anchorRecord(bytes32 recordId, uint32 version, bytes32 ciphertextHash, bytes32 commitment) external;

    /// @notice Anchor a batch root. Only an active organisation's signer; all leaves are that organisation's.
    /// @return sequence The batch's sequence number (from 1).
    function anchorBatch(bytes32 root, uint64 size, bytes32 manifestHash) external returns (uint64 sequence);

    /// @notice The RFC 9162 leaf hash of a record version (pure, for off-chain and on-chain use alike).
    function recordLeafHash(
        bytes32 recordId,
        uint32 version,
        bytes32 ownerOrg,
        bytes32 ciphertextHash,
        bytes32 commitment
    ) external pure returns (bytes32);

    /// @notice The leaf hash `ownerOrg` anchored on its own for `recordId` `version`, or zero.
    function anchoredLeaf(bytes32 ownerOrg, bytes32 recordId, uint32 version) external view returns (bytes32);

    /// @notice The batch `ownerOrg` anchored with `root` (size 0 when none).
    function batch(bytes32 ownerOrg, bytes32 root) external view returns (Batch memory);

    /// @notice Number of batches anchored.
    function batchCount() external view returns (uint64);

    /// @notice True when the record version is anchored on its own with exactly these hashes, or is
    /// leaf `index` of the anchored batch `root` (proved by the RFC 9162 `proof`).
    function isRecordAnchored(
        bytes32 recordId,
        uint32 version,
        bytes32 ownerOrg,
        bytes32 ciphertextHash,
        bytes32 commitment,
        bytes32 root,
        uint256 index,
        bytes32[] calldata proof
    ) external view returns (bool);
}
