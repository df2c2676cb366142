"""MerkleTree roots and proofs against the RFC text: example tree, naive MTH/PATH/PROOF, API contracts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial

import pytest

import ledger_api.merkle.rfc9162 as rfc9162
from ledger_api.merkle import (
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
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# --- Naive reference, written straight from the RFC 9162 §2.1 definitions with hashlib only ----------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    # "k is the largest power of two smaller than n (i.e., k < n <= 2k)"
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(entries: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH over the input *data* entries D[n]."""
    n = len(entries)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + entries[0])
    k = _split(n)
    return _sha(b"\x01" + naive_mth(entries[:k]) + naive_mth(entries[k:]))


def naive_path(m: int, entries: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(entries)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*naive_path(m, entries[:k]), naive_mth(entries[k:])]
    return [*naive_path(m - k, entries[k:]), naive_mth(entries[:k])]


def naive_subproof(m: int, entries: list[bytes], whole: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(entries)
    if m == n:
        return [] if whole else [naive_mth(entries)]
    k = _split(n)
    if m <= k:
        return [*naive_subproof(m, entries[:k], whole), naive_mth(entries[k:])]
    return [*naive_subproof(m - k, entries[k:], False), naive_mth(entries[:k])]


def _entries(n: int) -> list[bytes]:
    return [b"entry-%d" % i for i in range(n)]


# --- Hash primitives ------------------------------------------------------------------------------------


def test_leaf_and_node_hash_follow_rfc_prefixes() -> None:
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    left, right = _sha(b"l"), _sha(b"r")
    assert node_hash(left, right) == _sha(b"\x01" + left + right)
    # The well-known CT values: MTH of the empty list, and the leaf hash of the empty entry.
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert HASH_SIZE == 32


def test_known_ct_roots() -> None:
    # Roots of the classic certificate-transparency test tree at sizes 1-8 (also in the vectors).
    data = [
        bytes.fromhex(h)
        for h in [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
    ]
    expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    tree = MerkleTree()
    for size, (entry, root) in enumerate(zip(data, expected, strict=True), start=1):
        tree.append(leaf_hash(entry))
        assert tree.root().hex() == root
        assert tree.root(size).hex() == root


# --- The RFC's example tree (RFC 9162 §2.1.5, same as RFC 6962 §2.1.3) -----------------------------------


class _ExampleTree:
    """Seven leaves d0..d6; interior nodes named as in the RFC figure."""

    def __init__(self) -> None:
        self.d = [b"d%d" % i for i in range(7)]
        a, b, c, d, e, f, j = (leaf_hash(x) for x in self.d)
        g, h, i = node_hash(a, b), node_hash(c, d), node_hash(e, f)
        k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 - the RFC's name
        self.n = dict(zip("abcdefghijkl", (a, b, c, d, e, f, g, h, i, j, k, l), strict=True))
        self.root = node_hash(k, l)
        self.tree = MerkleTree.from_leaf_hashes(leaf_hash(x) for x in self.d)

    def names(self, *names: str) -> list[bytes]:
        return [self.n[x] for x in names]


def test_rfc_example_root_and_earlier_roots() -> None:
    ex = _ExampleTree()
    assert ex.tree.root() == ex.root
    # hash0 (3 leaves) = HASH(0x01 || g || c), hash1 (4 leaves) = k, hash2 (6 leaves) = HASH(0x01 || k || i)
    assert ex.tree.root(3) == node_hash(ex.n["g"], ex.n["c"])
    assert ex.tree.root(4) == ex.n["k"]
    assert ex.tree.root(6) == node_hash(ex.n["k"], ex.n["i"])


@pytest.mark.parametrize(
    ("index", "names"),
    [(0, "b h l"), (3, "c g l"), (4, "f j k"), (6, "i k")],
)
def test_rfc_example_inclusion_proofs(index: int, names: str) -> None:
    ex = _ExampleTree()
    expected = ex.names(*names.split())
    assert ex.tree.inclusion_proof(index) == expected
    verify_inclusion(leaf_hash(ex.d[index]), index, 7, expected, ex.root)


@pytest.mark.parametrize(("old_size", "names"), [(3, "c d g l"), (4, "l"), (6, "i j k")])
def test_rfc_example_consistency_proofs(old_size: int, names: str) -> None:
    ex = _ExampleTree()
    expected = ex.names(*names.split())
    assert ex.tree.consistency_proof(old_size) == expected
    verify_consistency(old_size, 7, ex.tree.root(old_size), ex.root, expected)


# --- Naive reference comparisons ---------------------------------------------------------------------


def test_root_matches_naive_mth_for_sizes_0_to_300() -> None:
    entries = _entries(300)
    hashes = [leaf_hash(e) for e in entries]
    grown = MerkleTree()
    roots = [EMPTY_ROOT]
    for h in hashes:
        grown.append(h)
        roots.append(grown.root())
    for size in range(301):
        want = naive_mth(entries[:size])
        assert roots[size] == want, size
        assert grown.root(size) == want, size
        assert MerkleTree.from_leaf_hashes(hashes[:size]).root() == want, size
        assert root_from_leaf_hashes(hashes[:size]) == want, size


def test_proofs_match_naive_path_and_subproof() -> None:
    entries = _entries(70)
    tree = MerkleTree.from_leaf_hashes(leaf_hash(e) for e in entries)
    for n in range(1, 71):
        for m in range(n):
            assert tree.inclusion_proof(m, n) == naive_path(m, entries[:n]), (m, n)
        for m in range(1, n + 1):
            assert tree.consistency_proof(m, n) == naive_subproof(m, entries[:n], True), (m, n)


def test_append_and_bulk_build_agree() -> None:
    hashes = [leaf_hash(e) for e in _entries(257)]
    appended = MerkleTree()
    for i, h in enumerate(hashes):
        assert appended.append(h) == i
    bulk = MerkleTree.from_leaf_hashes(hashes)
    extended = MerkleTree()
    extended.extend(hashes)
    for tree in (appended, bulk, extended):
        assert tree.size == len(tree) == 257
        assert [tree.leaf_hash_at(i) for i in range(257)] == hashes
        assert [tree.root(s) for s in range(258)] == [appended.root(s) for s in range(258)]
        assert tree.inclusion_proof(100, 200) == appended.inclusion_proof(100, 200)
        assert tree.consistency_proof(77, 257) == appended.consistency_proof(77, 257)


def test_cost_is_logarithmic(monkeypatch: pytest.MonkeyPatch) -> None:
    # Efficiency contract without timing: count node hashes on a 100k-leaf tree (log2 ≈ 17).
    n = 100_003
    tree = MerkleTree.from_leaf_hashes(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n))
    calls = 0
    real = rfc9162.node_hash

    def counting(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return real(left, right)

    monkeypatch.setattr(rfc9162, "node_hash", counting)
    for size in (n, 65_537, 99_999, 3):
        operations: list[Callable[[], object]] = [
            partial(tree.root, size),
            partial(tree.inclusion_proof, size // 3, size),
            partial(tree.inclusion_proof, size - 1, size),
            partial(tree.consistency_proof, size // 2 + 1, size),
            partial(tree.consistency_proof, 1, size),
        ]
        for operation in operations:
            calls = 0
            operation()
            assert calls <= 2 * size.bit_length(), (operation, calls)


# --- API contracts ----------------------------------------------------------------------------------


def test_empty_tree() -> None:
    tree = MerkleTree()
    assert tree.size == 0
    assert tree.root() == EMPTY_ROOT == root_from_leaf_hashes([])
    assert MerkleTree.from_leaf_hashes([]).root() == EMPTY_ROOT
    with pytest.raises(ValueError, match="out of range"):
        tree.inclusion_proof(0)
    with pytest.raises(ValueError, match="old_size"):
        tree.consistency_proof(0)


def test_argument_errors() -> None:
    tree = MerkleTree.from_leaf_hashes(leaf_hash(e) for e in _entries(10))
    for bad in (b"", b"x" * 31, b"x" * 33):
        with pytest.raises(ValueError, match="32 bytes"):
            tree.append(bad)
        with pytest.raises(ValueError, match="32 bytes"):
            MerkleTree.from_leaf_hashes([bad])
        with pytest.raises(ValueError, match="32 bytes"):
            root_from_leaf_hashes([bad])
    assert tree.size == 10
    for size in (-1, 11):
        with pytest.raises(ValueError, match="tree size"):
            tree.root(size)
        with pytest.raises(ValueError, match="tree size"):
            tree.inclusion_proof(0, size)
        with pytest.raises(ValueError, match="tree size"):
            tree.consistency_proof(1, size)
    for index in (-1, 10):
        with pytest.raises(IndexError):
            tree.leaf_hash_at(index)
        with pytest.raises(ValueError, match="out of range"):
            tree.inclusion_proof(index)
    with pytest.raises(ValueError, match="out of range"):
        tree.inclusion_proof(5, 5)
    for old, new in ((0, 5), (6, 5), (-1, 5)):
        with pytest.raises(ValueError, match="old_size"):
            tree.consistency_proof(old, new)
    assert tree.consistency_proof(4, 4) == []
    assert tree.consistency_proof(10) == []


def test_error_hierarchy_and_reason() -> None:
    assert issubclass(InclusionProofError, MerkleProofError)
    assert issubclass(ConsistencyProofError, MerkleProofError)
    assert issubclass(MerkleProofError, ValueError)
    error = InclusionProofError("because")
    assert error.reason == "because"
    assert str(error) == "because"


def test_verifiers_reject_negative_and_malformed_input() -> None:
    tree = MerkleTree.from_leaf_hashes(leaf_hash(e) for e in _entries(5))
    leaf, proof, root = tree.leaf_hash_at(1), tree.inclusion_proof(1), tree.root()
    verify_inclusion(leaf, 1, 5, proof, root)
    assert root_from_inclusion_proof(leaf, 1, 5, proof) == root
    with pytest.raises(InclusionProofError, match="negative"):
        verify_inclusion(leaf, -1, 5, proof, root)
    with pytest.raises(InclusionProofError, match="leaf hash"):
        verify_inclusion(leaf[:31], 1, 5, proof, root)
    # Leaf 1 is a right child, hashed as 0x01 || proof[0] || leaf. Moving the leaf's first byte onto the
    # end of proof[0] keeps that input byte-for-byte identical, so only the fixed-size checks reject it.
    forged_leaf, forged_sibling = leaf[1:], proof[0] + leaf[:1]
    assert node_hash(forged_sibling, forged_leaf) == node_hash(proof[0], leaf)
    with pytest.raises(InclusionProofError, match="32 bytes"):
        verify_inclusion(forged_leaf, 1, 5, [forged_sibling, *proof[1:]], root)
    with pytest.raises(InclusionProofError, match="too long"):
        root_from_inclusion_proof(leaf, 1, 5, [*proof, root])
    with pytest.raises(InclusionProofError, match="too short"):
        root_from_inclusion_proof(leaf, 1, 5, proof[:-1])

    cproof = tree.consistency_proof(3)
    verify_consistency(3, 5, tree.root(3), root, cproof)
    with pytest.raises(ConsistencyProofError, match="negative"):
        verify_consistency(-1, 5, tree.root(3), root, cproof)
    with pytest.raises(ConsistencyProofError, match="more elements"):
        verify_consistency(3, 5, tree.root(3), root, [*cproof, root])
    with pytest.raises(ConsistencyProofError, match="fewer elements"):
        verify_consistency(3, 5, tree.root(3), root, cproof[:-1])
    with pytest.raises(ConsistencyProofError, match="proof element 1"):
        verify_consistency(3, 5, tree.root(3), root, [cproof[0], cproof[1][:-1], *cproof[2:]])


def test_encode_decode_proof() -> None:
    tree = MerkleTree.from_leaf_hashes(leaf_hash(e) for e in _entries(9))
    proof = tree.inclusion_proof(4)
    encoded = encode_proof(proof)
    assert all(isinstance(s, str) and len(s) == 64 for s in encoded)
    assert decode_proof(encoded) == proof
    with pytest.raises(ValueError, match="32 bytes"):
        decode_proof(["00" * 31])
    with pytest.raises(ValueError):
        decode_proof(["zz"])
