"""The one check of anchored tree heads against a rebuilt log, shared by ``verify_log`` and the verifier."""

from __future__ import annotations

from dataclasses import dataclass

from ledger_api.accesslog.heads import check_heads, consistency_pairs
from ledger_api.merkle import MerkleTree, leaf_hash

TREE = MerkleTree.from_leaf_hashes(leaf_hash(b"entry %d" % i) for i in range(10))


@dataclass(frozen=True)
class Head:
    index: int
    size: int
    root: bytes
    block_number: int = 0


def head(index: int, size: int, root: bytes | None = None) -> Head:
    return Head(index=index, size=size, root=TREE.root(size) if root is None else root, block_number=100 + index)


def test_heads_the_log_rebuilds_are_verified_and_the_others_named() -> None:
    heads = [head(0, 3), head(1, 3), head(2, 5, root=TREE.root(4)), head(3, 7), head(4, 12, root=TREE.root())]
    check = check_heads(heads, TREE, root=lambda h: h.root)
    assert check.verified == (heads[0], heads[3])
    assert [(p.kind, p.head.index, p.other.index if p.other else None) for p in check.problems] == [
        ("not-growing", 1, 0),
        ("root-mismatch", 2, None),
        ("beyond-log", 4, None),
    ]


def test_every_pair_up_to_the_limit_else_consecutive_and_each_against_the_newest() -> None:
    heads = [head(i, i) for i in range(6)]  # head 0 is empty: no proof starts from it
    assert len(list(consistency_pairs(heads, 10))) == 10  # 5 non-empty heads, every pair
    assert [(a.index, b.index) for a, b in consistency_pairs(heads, 2)] == [
        (1, 2),
        (2, 3),
        (3, 4),
        (4, 5),
        (1, 5),
        (2, 5),
        (3, 5),
    ]
    assert check_heads(heads, TREE, root=lambda h: h.root, all_pairs_limit=10).problems == ()
