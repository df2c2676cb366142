// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title RFC 9162 inclusion-proof verifier
/// @notice Lets anyone check on chain, with the SHA-256 precompile, that a leaf is in a Merkle tree of
/// a given size and root, exactly as RFC 9162 §2.1.3.2 specifies. Proofs made by standard
/// transparency-log tooling verify here unchanged.
interface IInclusionVerifier {
    /// @notice Verify an inclusion proof given as 32-byte words.
    function verifyInclusion(
        bytes32 leaf,
        uint256 leafIndex,
        uint256 treeSize,
        bytes32[] calldata proof,
        bytes32 root
    ) external pure returns (bool);

    /// @notice Verify an inclusion proof given as raw byte strings, as transparency-log tooling
    /// exchanges them: any hash that is not exactly 32 bytes makes the proof invalid.
    function verifyInclusionRaw(
        bytes calldata leaf,
        uint256 leafIndex,
        uint256 treeSize,
        bytes[] calldata proof,
        bytes calldata root
    ) external pure returns (bool);

    /// @notice The RFC 9162 leaf hash SHA-256(0x00 || data).
    function leafHash(bytes calldata data) external pure returns (bytes32);
}
