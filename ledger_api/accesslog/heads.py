"""The one check of anchored tree heads against a rebuilt access log (RFC 9162 §2.1.4).

Both auditor paths use it: :func:`~ledger_api.accesslog.audit.verify_log` on the log it chains from
storage segments, and the verifier (:mod:`ledger_api.audit.verifier`) on the entries of the evidence,
which may come from a bundle nobody vouches for. Heads must grow strictly; each must cover no more
entries than the log holds and its root must be the rebuilt tree's at its size; every pair of verified
heads must have a valid consistency proof (literally every pair up to ``all_pairs_limit`` heads, else
consecutive pairs and each head against the newest, which implies every pair by transitivity).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from ledger_api.merkle import ConsistencyProofError, MerkleTree, verify_consistency

__all__ = ["AnchoredHead", "HeadCheck", "HeadProblem", "check_heads", "consistency_pairs"]


class AnchoredHead(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def block_number(self) -> int: ...


H = TypeVar("H", bound=AnchoredHead)

HeadProblemKind = Literal["not-growing", "beyond-log", "root-mismatch", "inconsistent"]


@dataclass(frozen=True, kw_only=True)
class HeadProblem(Generic[H]):
    kind: HeadProblemKind
    head: H
    other: H | None = None
    """``not-growing``: the head it does not grow past; ``inconsistent``: the older head of the pair."""
    detail: str = ""
    """``inconsistent``: why the proof fails."""


@dataclass(frozen=True, kw_only=True)
class HeadCheck(Generic[H]):
    verified: tuple[H, ...]
    """The heads the log rebuilds, oldest first."""
    problems: tuple[HeadProblem[H], ...]


def check_heads(
    heads: Iterable[H], tree: MerkleTree, *, root: Callable[[H], bytes], all_pairs_limit: int = 0
) -> HeadCheck[H]:
    """Check ``heads`` (in anchoring order) against ``tree``; ``root`` gives a head's anchored root."""
    problems: list[HeadProblem[H]] = []
    verified: list[H] = []
    previous: H | None = None
    for head in heads:
        if previous is not None and head.size <= previous.size:
            problems.append(HeadProblem(kind="not-growing", head=head, other=previous))
        elif head.size > tree.size:
            problems.append(HeadProblem(kind="beyond-log", head=head))
        elif tree.root(head.size) != root(head):
            problems.append(HeadProblem(kind="root-mismatch", head=head))
        else:
            verified.append(head)
        previous = head if previous is None or head.size > previous.size else previous
    for old, new in consistency_pairs(verified, all_pairs_limit):
        try:
            proof = tree.consistency_proof(old.size, new.size)
            verify_consistency(old.size, new.size, root(old), root(new), proof)
        except (ConsistencyProofError, ValueError) as exc:  # pragma: no cover - implied by the rebuilt roots
            problems.append(HeadProblem(kind="inconsistent", head=new, other=old, detail=str(exc)))
    return HeadCheck(verified=tuple(verified), problems=tuple(problems))


def consistency_pairs(heads: Sequence[H], all_pairs_limit: int) -> Iterable[tuple[H, H]]:
    """The pairs of non-empty heads whose consistency is checked (see the module docstring)."""
    usable = [h for h in heads if h.size > 0]
    if len(usable) <= all_pairs_limit:
        for i, old in enumerate(usable):
            for new in usable[i + 1 :]:
                yield old, new
        return
    # Consecutive pairs plus every head against the newest: consistency is transitive, so every pair.
    yield from itertools.pairwise(usable)
    for old in usable[:-2]:
        yield old, usable[-1]
