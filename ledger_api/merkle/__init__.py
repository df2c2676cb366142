"""RFC 9162 (Certificate Transparency v2, same tree as RFC 6962) Merkle tree, proofs and verification."""

from ledger_api.merkle.rfc9162 import (
    EMPTY_ROOT,
    HASH_SIZE,
    ConsistencyProofError,
    InclusionProofError,
    MerkleProofError,
    MerkleTree,
    decode_proof,
    encode_proof,
    leaf_hash,
    node_hash,
    root_and_inclusion_proofs,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ConsistencyProofError",
    "InclusionProofError",
    "MerkleProofError",
    "MerkleTree",
    "decode_proof",
    "encode_proof",
    "leaf_hash",
    "node_hash",
    "root_and_inclusion_proofs",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]
