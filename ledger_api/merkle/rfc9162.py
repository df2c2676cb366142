"""RFC 9162 Merkle tree: hashes, an append-only tree with proofs, and proof verification.

RFC 9162 (Certificate Transparency v2) keeps the tree of RFC 6962 unchanged, so the roots and proofs built
here interoperate with CT logs and with transparency-dev/merkle, whose test vectors the tests replay.

Layout of :class:`MerkleTree`: ``level[k][i]`` is the hash of the *perfect* subtree that covers leaves
``[i·2^k, (i+1)·2^k)``; ``level[0]`` holds the leaf hashes. Every subtree that RFC 9162 §2.1.1's MTH
recursion visits starts at a multiple of its largest power of two, so it is a right fold of at most
log2(n) stored perfect subtrees (one per set bit of its size). Hence roots at any size and proofs cost
O(log n) hash operations, and appending costs amortised O(1) of them. A perfect subtree never changes
once complete, so the stored levels serve every earlier tree size too.

The tree is not thread-safe: serialise appends against concurrent readers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

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

#: Output size of SHA-256, the hash algorithm of RFC 9162 §2.1 (and the only one RFC 6962 defines).
HASH_SIZE = 32

# RFC 9162 §2.1.1: domain-separation prefixes, so that a leaf hash can never equal an interior node hash
# (the second-preimage defence of RFC 9162 §2.1.1 / RFC 6962 §2.1).
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

#: RFC 9162 §2.1.1: "The hash of an empty list is the hash of an empty string": MTH({}) = HASH().
EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleProofError(ValueError):
    """A Merkle proof failed verification; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InclusionProofError(MerkleProofError):
    """An inclusion proof (RFC 9162 §2.1.3) was rejected."""


class ConsistencyProofError(MerkleProofError):
    """A consistency proof (RFC 9162 §2.1.4) was rejected."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: MTH({d(0)}) = HASH(0x00 || d(0))."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _require_hash(value: bytes, what: str) -> None:
    # Hashes are concatenated before hashing, so a 31-byte "hash" next to a 33-byte one would hash like a
    # genuine 32 + 32 pair. Fixed-size inputs keep every concatenation unambiguous.
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _largest_power_of_two_below(n: int) -> int:
    # RFC 9162 §2.1.1: "k is the largest power of two smaller than n (i.e., k < n <= 2k)". Requires n > 1.
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH (RFC 9162 §2.1.1) of a list of leaf hashes, in O(n) hash operations.

    Pairing neighbours level by level and carrying an odd last node up unchanged builds exactly the tree
    of the RFC's split at the largest power of two below n: the left part is always a perfect subtree,
    so only the right border can hold a carried node.
    """
    level = list(hashes)
    for h in level:
        _require_hash(h, "leaf hash")
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return bytes(level[0])


def root_and_inclusion_proofs(hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """MTH (RFC 9162 §2.1.1) of ``hashes`` and every leaf's inclusion proof PATH(m, D[n]) (§2.1.3.1),
    bottom-up, each as :meth:`MerkleTree.inclusion_proof` gives it.

    One recursion over the RFC's split computes each subtree hash once (n - 1 node hashes in all), where
    a proof per leaf from :class:`MerkleTree` would recompute the right-hand subtrees each time: the
    auditor checks every leaf of every anchored batch.
    """
    for h in hashes:
        _require_hash(h, "leaf hash")
    if not hashes:
        return EMPTY_ROOT, []

    def walk(start: int, count: int) -> tuple[bytes, list[list[bytes]]]:
        if count == 1:
            return bytes(hashes[start]), [[]]
        split = _largest_power_of_two_below(count)
        left, left_paths = walk(start, split)
        right, right_paths = walk(start + split, count - split)
        for path in left_paths:
            path.append(right)
        for path in right_paths:
            path.append(left)
        left_paths.extend(right_paths)
        return node_hash(left, right), left_paths

    return walk(0, len(hashes))


class MerkleTree:
    """Append-only RFC 9162 Merkle tree over leaf hashes (see the module docstring for the layout)."""

    __slots__ = ("_levels", "_size")

    def __init__(self) -> None:
        # One contiguous bytearray per level (HASH_SIZE bytes per node) keeps a million-leaf tree at
        # ~64 MB instead of ~150 MB for two million separate bytes objects.
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> MerkleTree:
        """Build a tree from leaf hashes in bulk (same result as appending them one by one, but faster)."""
        tree = cls()
        leaves = tree._levels[0]
        for h in hashes:
            _require_hash(h, "leaf hash")
            leaves += h
        tree._size = len(leaves) // HASH_SIZE
        sha256 = hashlib.sha256
        pair = 2 * HASH_SIZE
        below = leaves
        # level[k+1][i] = node(level[k][2i], level[k][2i+1]); the two children are adjacent, so the
        # node hash input is 0x01 followed by one contiguous 64-byte slice.
        while len(below) >= pair:
            above = bytearray()
            for offset in range(0, len(below) - pair + 1, pair):
                above += sha256(_NODE_PREFIX + below[offset : offset + pair]).digest()
            tree._levels.append(above)
            below = above
        return tree

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> int:
        """Append a leaf hash (see :func:`leaf_hash`); returns its index."""
        _require_hash(leaf_hash, "leaf hash")
        index = self._size
        levels = self._levels
        levels[0] += leaf_hash
        self._size = index + 1
        # After the append, level k holds (size >> k) complete nodes. While that count is even, the new
        # node at level k is a right child that completes a perfect subtree one level up.
        count = self._size
        k = 0
        while count & 1 == 0:
            below = levels[k]
            parent = hashlib.sha256(_NODE_PREFIX + below[-2 * HASH_SIZE :]).digest()
            k += 1
            count >>= 1
            if k == len(levels):
                levels.append(bytearray())
            levels[k] += parent
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes."""
        for h in leaf_hashes:
            self.append(h)

    def leaf_hash_at(self, index: int) -> bytes:
        """The leaf hash at ``index`` (0-based)."""
        if not 0 <= index < self._size:
            raise IndexError(f"leaf index {index} out of range for tree size {self._size}")
        return self._perfect(0, index)

    def root(self, size: int | None = None) -> bytes:
        """MTH (RFC 9162 §2.1.1) of the first ``size`` leaves (default: all of them)."""
        n = self._tree_size(size)
        if n == 0:
            return EMPTY_ROOT
        return self._subtree_hash(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]) of RFC 9162 §2.1.3.1, ordered from the leaf's sibling up to the root."""
        n = self._tree_size(size)
        if not 0 <= index < n:
            raise ValueError(f"leaf index {index} out of range for tree size {n}")
        siblings: list[bytes] = []  # collected top-down; the RFC lists them bottom-up
        start, count, m = 0, n, index
        # RFC 9162 §2.1.3.1: PATH(0, {d(0)}) = {} ends the recursion at a single leaf.
        while count > 1:
            k = _largest_power_of_two_below(count)
            if m < k:
                # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
                siblings.append(self._subtree_hash(start + k, count - k))
                count = k
            else:
                # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
                siblings.append(self._perfect(k.bit_length() - 1, start // k))
                start, count, m = start + k, count - k, m - k
        siblings.reverse()
        return siblings

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1 (empty when the sizes are equal).

        RFC 9162 §2.1.4 defines proofs for 0 < old_size; a proof from the empty tree proves nothing
        (every tree extends it) and :func:`verify_consistency` rejects it, so it is refused here too.
        """
        n = self._tree_size(new_size)
        if not 0 < old_size <= n:
            raise ValueError(f"consistency proof needs 0 < old_size <= new_size, got {old_size} and {n}")
        proof: list[bytes] = []  # collected top-down; the RFC lists them bottom-up
        # RFC 9162 §2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
        start, count, m, complete = 0, n, old_size, True
        while m != count:
            k = _largest_power_of_two_below(count)
            if m <= k:
                # SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
                proof.append(self._subtree_hash(start + k, count - k))
                count = k
            else:
                # SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
                proof.append(self._perfect(k.bit_length() - 1, start // k))
                start, count, m, complete = start + k, count - k, m - k, False
        if not complete:
            # SUBPROOF(m, D[m], false) = {MTH(D[m])}; with b = true (old tree is a whole subtree of the
            # new one) the verifier already knows that hash, so SUBPROOF(m, D[m], true) = {}.
            proof.append(self._subtree_hash(start, count))
        proof.reverse()
        return proof

    def _tree_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise ValueError(f"tree size {size} out of range 0..{self._size}")
        return size

    def _perfect(self, level: int, index: int) -> bytes:
        # Hash of the perfect subtree of 2^level leaves starting at leaf index·2^level.
        offset = index * HASH_SIZE
        return bytes(self._levels[level][offset : offset + HASH_SIZE])

    def _subtree_hash(self, start: int, count: int) -> bytes:
        """MTH(D[start:start+count]) for a subtree that the RFC 9162 §2.1.1 recursion visits (count > 0).

        Such a subtree starts at a multiple of 2^ceil(log2(count)), so splitting ``count`` into its set
        bits from the highest gives aligned perfect subtrees; the RFC's split at the largest power of two
        below the size makes the MTH their right fold: node(P1, node(P2, ... node(Pj-1, Pj))).
        """
        parts: list[bytes] = []
        position = start
        for level in range(count.bit_length() - 1, -1, -1):
            if (count >> level) & 1:
                parts.append(self._perfect(level, position >> level))
                position += 1 << level
        result = parts.pop()
        while parts:
            result = node_hash(parts.pop(), result)
        return result


def root_from_inclusion_proof(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof: RFC 9162 §2.1.3.2 steps 1-4 and the ``sn`` check of step 5.

    Raises :class:`InclusionProofError` when the proof cannot belong to a tree of ``tree_size`` leaves.
    The caller must still compare the result against a trusted root (``verify_inclusion`` does).
    """
    if index < 0 or tree_size < 0:
        raise InclusionProofError(f"negative leaf index or tree size ({index}, {tree_size})")
    try:
        _require_hash(leaf_hash, "leaf hash")
        for position, p in enumerate(proof):
            _require_hash(p, f"proof element {position}")
    except ValueError as exc:
        raise InclusionProofError(str(exc)) from None

    # Step 1: "If leaf_index is greater than or equal to tree_size, then fail the proof verification."
    if index >= tree_size:
        raise InclusionProofError(f"leaf index {index} is not below tree size {tree_size}")
    # Step 2: "Set fn to leaf_index and sn to tree_size - 1."
    fn, sn = index, tree_size - 1
    # Step 3: "Set r to hash."
    r = leaf_hash
    # Step 4: "For each value p in the inclusion_path array:"
    for p in proof:
        # Step 4a: "If sn is 0, then stop the iteration and fail the proof verification."
        # (The path already reached the root: the proof has extra elements.)
        if sn == 0:
            raise InclusionProofError(f"proof of {len(proof)} elements is too long for tree size {tree_size}")
        # Step 4b: "If LSB(fn) is set, or if fn is equal to sn, then:"
        if fn & 1 or fn == sn:
            # Step 4b.i: "Set r to HASH(0x01 || p || r)." (p is a left sibling)
            r = node_hash(p, r)
            # Step 4b.ii: "If LSB(fn) is not set, then right-shift both fn and sn equally until either
            # LSB(fn) is set or fn is 0." (Skips levels where the right border node has no sibling.)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            # Step 4b "Otherwise: Set r to HASH(0x01 || r || p)." (p is a right sibling)
            r = node_hash(r, p)
        # Step 4c: "Finally, right-shift both fn and sn one time."
        fn >>= 1
        sn >>= 1
    # Step 5: "Compare sn to 0." A non-zero sn means the proof stopped below the root (too short).
    if sn != 0:
        raise InclusionProofError(f"proof of {len(proof)} elements is too short for tree size {tree_size}")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Verify an inclusion proof per RFC 9162 §2.1.3.2; raises :class:`InclusionProofError` on failure."""
    r = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    # Step 5: "Compare r against the root_hash. If sn is equal to 0 and r and the root_hash are equal, then
    # the log has proven the inclusion of hash. Otherwise, fail the proof verification."
    if r != root:
        raise InclusionProofError("calculated root does not match the expected root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Verify a consistency proof per RFC 9162 §2.1.4.2; raises :class:`ConsistencyProofError` on failure.

    Edge cases outside the RFC's ``0 < first < second`` follow the transparency-dev/merkle test vectors:
    ``old_size == 0`` is always rejected (a proof from the empty tree is meaningless), ``old_size >
    new_size`` is rejected, and equal non-zero sizes need an empty proof and equal roots.
    """
    if old_size < 0 or new_size < 0:
        raise ConsistencyProofError(f"negative tree size ({old_size}, {new_size})")
    if new_size < old_size:
        raise ConsistencyProofError(f"new size {new_size} is smaller than old size {old_size}")
    if old_size == 0:
        raise ConsistencyProofError("consistency proof from the empty tree is meaningless")
    if old_size == new_size:
        if proof:
            raise ConsistencyProofError("sizes are equal, so the proof must be empty")
        if old_root != new_root:
            raise ConsistencyProofError("sizes are equal but the roots differ")
        return
    try:
        for position, c in enumerate(proof):
            _require_hash(c, f"proof element {position}")
    except ValueError as exc:
        raise ConsistencyProofError(str(exc)) from None

    # From here 0 < first < second, as RFC 9162 §2.1.4.2 requires.
    first, second = old_size, new_size
    # Step 1: "If consistency_path is an empty array, stop and fail the proof verification."
    if not proof:
        raise ConsistencyProofError("empty proof")
    path = list(proof)
    # Step 2: "If first is an exact power of 2, then prepend first_hash to the consistency_path array."
    # (The old tree is then a complete subtree of the new one, so SUBPROOF(m, D[m], true) omitted it.)
    if first & (first - 1) == 0:
        path.insert(0, old_root)
    # Step 3: "Set fn to first - 1 and sn to second - 1."
    fn, sn = first - 1, second - 1
    # Step 4: "If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set."
    # (Climbs to the level of the largest perfect subtree that ends the old tree: path[0]'s level.)
    if fn & 1:
        while fn & 1:
            fn >>= 1
            sn >>= 1
    # Step 5: "Set both fr and sr to the first value in the consistency_path array."
    fr = sr = path[0]
    # Step 6: "For each subsequent value c in the consistency_path array:"
    for c in path[1:]:
        # Step 6a: "If sn is 0, then stop the iteration and fail the proof verification." (Too long.)
        if sn == 0:
            raise ConsistencyProofError("proof has more elements than the tree sizes need")
        # Step 6b: "If LSB(fn) is set, or if fn is equal to sn, then:"
        if fn & 1 or fn == sn:
            # Step 6b.i: "Set fr to HASH(0x01 || c || fr)."
            fr = node_hash(c, fr)
            # Step 6b.ii: "Set sr to HASH(0x01 || c || sr)."
            sr = node_hash(c, sr)
            # Step 6b.iii: "If LSB(fn) is not set, then right-shift both fn and sn equally until either
            # LSB(fn) is set or fn is 0."
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            # Step 6b "Otherwise: Set sr to HASH(0x01 || sr || c)." (c exists only in the new tree.)
            sr = node_hash(sr, c)
        # Step 6c: "Finally, right-shift both fn and sn one time."
        fn >>= 1
        sn >>= 1
    # Step 7: "verify that the fr calculated is equal to the first_hash supplied, that the sr calculated is
    # equal to the second_hash value supplied, and that sn is 0."
    if sn != 0:
        raise ConsistencyProofError("proof has fewer elements than the tree sizes need")
    if fr != old_root:
        raise ConsistencyProofError("calculated old root does not match the expected old root")
    if sr != new_root:
        raise ConsistencyProofError("calculated new root does not match the expected new root")


def encode_proof(proof: Sequence[bytes]) -> list[str]:
    """Proof hashes as lowercase hex strings (for JSON)."""
    return [h.hex() for h in proof]


def decode_proof(encoded: Sequence[str]) -> list[bytes]:
    """Inverse of :func:`encode_proof`; raises ``ValueError`` on bad hex or a wrong hash size."""
    proof = [bytes.fromhex(s) for s in encoded]
    for position, h in enumerate(proof):
        _require_hash(h, f"proof element {position}")
    return proof
