// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title RFC 9162 Merkle tree hashing and inclusion-proof verification
/// @notice Leaf hash = SHA-256(0x00 || data), node hash = SHA-256(0x01 || left || right)
/// (RFC 9162 §2.1.1), verified with the EVM's SHA-256 precompile.
library RFC9162 {
    /// @notice SHA-256(0x00 || data): the hash of a leaf (RFC 9162 §2.1.1).
    function leafHash(bytes memory data) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), data));
    }

    /// @notice SHA-256(0x01 || left || right): the hash of an interior node (RFC 9162 §2.1.1).
    function nodeHash(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), left, right));
    }

    /// @notice The root computed from a leaf and its inclusion path, or (false, 0) when the path
    /// does not fit the index and size. Follows RFC 9162 §2.1.3.2 step by step.
    function rootFromInclusionProof(
        bytes32 leaf,
        uint256 leafIndex,
        uint256 treeSize,
        bytes32[] memory proof
    ) internal pure returns (bool ok, bytes32 root) {
        // Step 1: leaf_index must be below tree_size.
        if (leafIndex >= treeSize) return (false, bytes32(0));
        // Step 2: fn = leaf_index, sn = tree_size - 1, r = hash.
        uint256 fn = leafIndex;
        uint256 sn = treeSize - 1;
        bytes32 r = leaf;
        // Step 3: for each p in the path.
        for (uint256 i = 0; i < proof.length; ++i) {
            // 3a: a path longer than the tree is deep is invalid.
            if (sn == 0) return (false, bytes32(0));
            if (fn & 1 == 1 || fn == sn) {
                // 3b: p is a left sibling.
                r = nodeHash(proof[i], r);
                // Skip the levels where this node is the last one and has no right sibling: shift
                // "until either LSB(fn) is set or fn is 0".
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                // 3c: p is a right sibling.
                r = nodeHash(r, proof[i]);
            }
            // 3d
            fn >>= 1;
            sn >>= 1;
        }
        // Step 4: the path must have been exactly long enough.
        if (sn != 0) return (false, bytes32(0));
        return (true, r);
    }

    /// @notice True when `proof` proves `leaf` at `leafIndex` in the tree of `treeSize` with `root`.
    function verifyInclusion(
        bytes32 leaf,
        uint256 leafIndex,
        uint256 treeSize,
        bytes32[] memory proof,
        bytes32 root
    ) internal pure returns (bool) {
        (bool ok, bytes32 computed) = rootFromInclusionProof(leaf, leafIndex, treeSize, proof);
        return ok && computed == root;
    }
}
