"""Hypothesis properties: random trees, indices and sizes round-trip through proofs and verification."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_api.merkle import (
    ConsistencyProofError,
    InclusionProofError,
    MerkleTree,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# A large shared tree for cheap random (index, size) draws; its leaves are a pure function of the index.
BIG = 5_000
BIG_LEAVES = [hashlib.sha256(b"big %d" % i).digest() for i in range(BIG)]
BIG_TREE = MerkleTree.from_leaf_hashes(BIG_LEAVES)

entries = st.lists(st.binary(max_size=40), min_size=1, max_size=200)


@given(entries, st.data())
def test_random_tree_inclusion_round_trip(data_entries: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree()
    for entry in data_entries:
        tree.append(leaf_hash(entry))
    size = data.draw(st.integers(1, tree.size), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = tree.inclusion_proof(index, size)
    verify_inclusion(leaf_hash(data_entries[index]), index, size, proof, tree.root(size))
    other = data.draw(st.binary(max_size=40), label="other entry")
    if other != data_entries[index]:
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf_hash(other), index, size, proof, tree.root(size))


@given(entries, st.data())
def test_random_tree_consistency_round_trip(data_entries: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree.from_leaf_hashes(leaf_hash(e) for e in data_entries)
    new = data.draw(st.integers(1, tree.size), label="new")
    old = data.draw(st.integers(1, new), label="old")
    proof = tree.consistency_proof(old, new)
    verify_consistency(old, new, tree.root(old), tree.root(new), proof)
    if old < new:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, new, tree.root(new), tree.root(old), proof)


@given(entries, st.data())
def test_earlier_root_equals_fresh_tree_root(data_entries: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(e) for e in data_entries]
    grown = MerkleTree()
    grown.extend(hashes)
    k = data.draw(st.integers(0, len(hashes)), label="k")
    fresh = MerkleTree()
    fresh.extend(hashes[:k])
    assert grown.root(k) == fresh.root() == root_from_leaf_hashes(hashes[:k])


@settings(max_examples=200)
@given(st.integers(1, BIG), st.data())
def test_large_tree_random_proofs(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(1, size), label="old")
    root = BIG_TREE.root(size)
    assert root == MerkleTree.from_leaf_hashes(BIG_LEAVES[:size]).root()
    verify_inclusion(BIG_LEAVES[index], index, size, BIG_TREE.inclusion_proof(index, size), root)
    verify_consistency(old, size, BIG_TREE.root(old), root, BIG_TREE.consistency_proof(old, size))
