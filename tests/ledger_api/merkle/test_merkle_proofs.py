"""Exhaustive proof round trips and corruptions: inclusion for every size 1-64 and index, consistency for
every pair 1 <= m <= n <= 130. One tree of 131 leaves serves every size (roots of earlier sizes included).

Wrong-size corruptions pair the wrong size with the true root *of that size*: a claimed size is not bound
by a root alone (e.g. the proof for leaf 0 of a 3-leaf tree also "verifies" as size 4 against the 3-leaf
root, as in transparency-dev/merkle), so the meaningful check is that a proof for one size never passes
for another tree state.
"""

from __future__ import annotations

import pytest

from ledger_api.merkle import (
    ConsistencyProofError,
    InclusionProofError,
    MerkleTree,
    leaf_hash,
    root_and_inclusion_proofs,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

MAX_INCLUSION_SIZE = 64
MAX_CONSISTENCY_SIZE = 130
TREE = MerkleTree.from_leaf_hashes(leaf_hash(b"leaf %d" % i) for i in range(MAX_CONSISTENCY_SIZE + 1))
ROOTS = [TREE.root(size) for size in range(TREE.size + 1)]
JUNK = leaf_hash(b"junk")


def _flip(h: bytes, bit: int) -> bytes:
    return h[: bit // 8] + bytes([h[bit // 8] ^ (1 << (bit % 8))]) + h[bit // 8 + 1 :]


def _bit_flips(proof: list[bytes]) -> list[list[bytes]]:
    # One flipped bit in each element, at a position that moves along the hash.
    return [[*proof[:j], _flip(p, (37 * j + 5) % 256), *proof[j + 1 :]] for j, p in enumerate(proof)]


def _rejects_inclusion(what: str, leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
    try:
        verify_inclusion(leaf, index, size, proof, root)
    except InclusionProofError:
        return
    pytest.fail(f"accepted inclusion proof with {what}")


def _rejects_consistency(what: str, old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> None:
    try:
        verify_consistency(old, new, old_root, new_root, proof)
    except ConsistencyProofError:
        return
    pytest.fail(f"accepted consistency proof with {what}")


@pytest.mark.parametrize("size", range(1, MAX_INCLUSION_SIZE + 1))
def test_inclusion_every_index(size: int) -> None:
    root = ROOTS[size]
    for index in range(size):
        leaf = TREE.leaf_hash_at(index)
        proof = TREE.inclusion_proof(index, size)
        verify_inclusion(leaf, index, size, proof, root)
        assert root_from_inclusion_proof(leaf, index, size, proof) == root

        case = f"leaf {index} of {size}"
        _rejects_inclusion(f"index - 1, {case}", leaf, index - 1, size, proof, root)
        _rejects_inclusion(f"index + 1, {case}", leaf, index + 1, size, proof, root)
        _rejects_inclusion(f"size - 1, {case}", leaf, index, size - 1, proof, ROOTS[size - 1])
        _rejects_inclusion(f"size + 1, {case}", leaf, index, size + 1, proof, ROOTS[size + 1])
        _rejects_inclusion(f"wrong leaf, {case}", JUNK, index, size, proof, root)
        _rejects_inclusion(f"wrong root, {case}", leaf, index, size, proof, ROOTS[size + 1])
        for j, flipped in enumerate(_bit_flips(proof)):
            _rejects_inclusion(f"bit flipped in element {j}, {case}", leaf, index, size, flipped, root)
        for j in range(len(proof)):
            missing = proof[:j] + proof[j + 1 :]
            _rejects_inclusion(f"element {j} missing, {case}", leaf, index, size, missing, root)
        _rejects_inclusion(f"extra element appended, {case}", leaf, index, size, [*proof, JUNK], root)
        _rejects_inclusion(f"root appended, {case}", leaf, index, size, [*proof, root], root)
        _rejects_inclusion(f"extra element prepended, {case}", leaf, index, size, [JUNK, *proof], root)


@pytest.mark.parametrize("new_size", range(1, MAX_CONSISTENCY_SIZE + 1))
def test_consistency_every_pair(new_size: int) -> None:
    n = new_size
    for m in range(1, n + 1):
        proof = TREE.consistency_proof(m, n)
        verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)

        case = f"{m} -> {n}"
        _rejects_consistency(f"old size - 1, {case}", m - 1, n, ROOTS[m - 1], ROOTS[n], proof)
        _rejects_consistency(f"old size + 1, {case}", m + 1, n, ROOTS[m + 1], ROOTS[n], proof)
        _rejects_consistency(f"new size - 1, {case}", m, n - 1, ROOTS[m], ROOTS[n - 1], proof)
        _rejects_consistency(f"new size + 1, {case}", m, n + 1, ROOTS[m], ROOTS[n + 1], proof)
        if m != n:  # equal sizes have equal roots, so swapping them changes nothing
            _rejects_consistency(f"swapped roots, {case}", m, n, ROOTS[n], ROOTS[m], proof)
        _rejects_consistency(f"wrong new root, {case}", m, n, ROOTS[m], ROOTS[n + 1], proof)
        _rejects_consistency(f"wrong old root, {case}", m, n, ROOTS[m - 1], ROOTS[n], proof)
        if proof:
            _rejects_consistency(f"truncated, {case}", m, n, ROOTS[m], ROOTS[n], proof[:-1])
            _rejects_consistency(f"first element dropped, {case}", m, n, ROOTS[m], ROOTS[n], proof[1:])
        for j, flipped in enumerate(_bit_flips(proof)):
            _rejects_consistency(f"bit flipped in element {j}, {case}", m, n, ROOTS[m], ROOTS[n], flipped)
        for extra, label in ((JUNK, "extra element"), (ROOTS[m], "old root"), (ROOTS[n], "new root")):
            _rejects_consistency(f"{label} appended, {case}", m, n, ROOTS[m], ROOTS[n], [*proof, extra])
            _rejects_consistency(f"{label} prepended, {case}", m, n, ROOTS[m], ROOTS[n], [extra, *proof])


@pytest.mark.parametrize("size", range(MAX_INCLUSION_SIZE + 1))
def test_every_proof_at_once_equals_the_tree_s_proofs(size: int) -> None:
    """The batch form the auditor uses gives the root and, per leaf, exactly the tree's inclusion proof."""
    hashes = [TREE.leaf_hash_at(i) for i in range(size)]
    root, proofs = root_and_inclusion_proofs(hashes)
    assert root == ROOTS[size]
    assert proofs == [TREE.inclusion_proof(i, size) for i in range(size)]
