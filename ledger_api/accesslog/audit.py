"""What an auditor does to find every release, without the gateway or its database.

1. Read the anchored tree heads from ``AccessLogAnchors`` (:meth:`TreeHeadReader.heads`): head ``i``
   is ``(size_i, root_i)``, sizes strictly growing; they live in contract storage (no archive state).
2. Enumerate shared storage (:func:`find_segments`): ``iter_keys()``, ``get(key)`` (which checks the
   bytes against the key, their SHA-256), keep blobs whose first four bytes are ``b"LDAS"``
   (:func:`~ledger_api.accesslog.segment.is_segment`; record blobs start with ``b"LDGR"``, batch
   manifests with ``{``), and open each with the auditor's own HPKE key.
3. Rebuild the log (:func:`verify_log`): for each head in order, take the segment whose cleartext
   header says ``[size_{i-1}, size_i)`` with root ``root_i`` (``size_{-1} = 0``), append the RFC 9162
   leaf hashes of its entries' leaf data, and check that the rebuilt tree's root at ``size_i`` equals
   ``root_i``, and that head ``i-1`` and head ``i`` are consistent (RFC 9162 §2.1.4 proof verified).
   The concatenation of the segments is then exactly the anchored log: every release the gateway
   logged up to the newest head, each entry naming accessor, record version, grant, purpose and the
   block its grant was checked at (which the auditor then checks against the grant events).

Other segments may exist: a copy written twice for one head (a crash between storing a segment and
recording it) — harmless if its entries equal the log's — and the segment of a head not anchored yet.
A segment that contradicts the rebuilt log is a problem. Entries after the newest anchored head are
not yet anchored (at most a few seconds' worth while the gateway runs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ledger_api.accesslog.entry import Entry
from ledger_api.accesslog.errors import SegmentError
from ledger_api.accesslog.heads import HeadProblem, check_heads
from ledger_api.accesslog.segment import OpenedSegment, is_segment, open_segment
from ledger_api.chain.tree_heads import ChainTreeHead, TreeHeadReader
from ledger_api.merkle import MerkleTree, leaf_hash
from ledger_api.storage.base import BlobReader
from ledger_api.storage.errors import StorageError

__all__ = ["LogAudit", "SegmentScan", "audit_access_log", "find_segments", "verify_log"]


@dataclass(frozen=True, kw_only=True)
class SegmentScan:
    segments: tuple[OpenedSegment, ...]
    problems: tuple[str, ...]
    """Segments found that could not be read or opened with the auditor's key."""


@dataclass(frozen=True, kw_only=True)
class LogAudit:
    size: int
    """Entries covered by the newest anchored head that was verified."""
    heads_verified: int
    entries: tuple[Entry, ...] = field(repr=False)
    leaf_data: tuple[bytes, ...] = field(repr=False)
    problems: tuple[str, ...]
    extra_segments: tuple[str, ...]
    """Keys of segments not used for a head: duplicates consistent with the log, or not yet anchored."""

    @property
    def ok(self) -> bool:
        return not self.problems


def find_segments(store: BlobReader, *, org_id: str, key_index: int, private_key: bytes) -> SegmentScan:
    """Every access-log segment in ``store``, opened with the auditor's key."""
    opened: list[OpenedSegment] = []
    problems: list[str] = []
    for key in store.iter_keys():
        try:
            blob = store.get(key)
        except StorageError as exc:
            problems.append(f"blob {key}: {exc}")
            continue
        if not is_segment(blob):
            continue
        try:
            opened.append(
                open_segment(blob, org_id=org_id, key_index=key_index, private_key=private_key, expected_key=key)
            )
        except SegmentError as exc:
            problems.append(f"segment {key}: {exc}")
    return SegmentScan(segments=tuple(opened), problems=tuple(problems))


def verify_log(heads: Sequence[ChainTreeHead], segments: Iterable[OpenedSegment]) -> LogAudit:
    """Rebuild the log from ``segments`` and check it against the anchored ``heads`` (oldest first).

    The segments are followed as a chain of ranges from entry 0, each starting where the previous one
    ended (:func:`_chain_segments`); the log they make is then checked against the heads by
    :func:`~ledger_api.accesslog.heads.check_heads`, the check the verifier makes too.
    """
    all_segments = list(segments)
    problems: list[str] = []
    growing: list[ChainTreeHead] = []
    for head in heads:
        if growing and head.size <= growing[-1].size:
            problems.append(f"head #{head.index}: size {head.size} does not grow past {growing[-1].size}")
            break
        growing.append(head)
    chained = _chain_segments(growing, all_segments, problems)
    check = check_heads(growing, chained.tree, root=lambda h: h.root)
    problems.extend(_describe(problem, chained.tree) for problem in check.problems)
    size = check.verified[-1].size if check.verified else 0
    extra = _extra_segments(all_segments, chained, problems)
    return LogAudit(
        size=size,
        heads_verified=len(check.verified),
        entries=tuple(chained.entries[:size]),
        leaf_data=tuple(chained.leaf_data[:size]),
        problems=tuple(dict.fromkeys(problems)),
        extra_segments=tuple(extra),
    )


@dataclass(kw_only=True)
class _Chained:
    """The log as far as segments chain from entry 0 in agreement with the heads they cover."""

    tree: MerkleTree = field(default_factory=MerkleTree)
    entries: list[Entry] = field(default_factory=list)
    leaf_data: list[bytes] = field(default_factory=list)
    used: set[str] = field(default_factory=set)


def _chain_segments(
    growing: Sequence[ChainTreeHead], segments: Sequence[OpenedSegment], problems: list[str]
) -> _Chained:
    """Follow segment ranges from entry 0 towards the newest head.

    Normally there is one segment per head (``[size_{i-1}, size_i)``); a head may also span several
    segments (a head formed on top of one the chain lost with its newest blocks), which is fine as long
    as every segment's root and every head's root equal the rebuilt tree's at their sizes. Anyone who can
    write to storage can seal a segment for the auditors' public keys: a header is only a claim, and only
    the anchored roots make entries authentic. So every segment that starts at the current position is
    tried (those that lead on towards the newest head first) until one agrees with its own root and with
    the heads it covers.
    """
    target = growing[-1].size if growing else 0
    by_start = _candidates_by_start(segments, target)
    chained = _Chained()
    hashes: list[bytes] = []
    while chained.tree.size < target:
        start = chained.tree.size
        chosen: OpenedSegment | None = None
        for candidate in by_start.get(start, []):
            chained.tree.extend(leaf_hash(data) for data in candidate.leaf_data)
            covered = [h for h in growing if start < h.size <= candidate.to_index]
            tree = chained.tree
            if tree.root(candidate.to_index) == candidate.root and all(tree.root(h.size) == h.root for h in covered):
                chosen = candidate
                break
            problems.append(
                f"segment {candidate.key} [{start}, {candidate.to_index}) does not rebuild the anchored log"
            )
            chained.tree = MerkleTree.from_leaf_hashes(hashes)  # undo it
        if chosen is None:
            head = next(h for h in growing if h.size > start)
            problems.append(
                f"no segment holds entries from {start} on, needed for head #{head.index} of {head.size} entries"
            )
            break
        hashes.extend(chained.tree.leaf_hash_at(i) for i in range(len(hashes), chained.tree.size))
        chained.entries.extend(chosen.entries)
        chained.leaf_data.extend(chosen.leaf_data)
        chained.used.add(chosen.key)
    return chained


def _candidates_by_start(segments: Sequence[OpenedSegment], target: int) -> dict[int, list[OpenedSegment]]:
    """Segments by the entry they start at: those from which a chain of ranges reaches ``target`` (validity
    aside) first, then the longest first (a dead end still verifies the heads it covers)."""
    leads_on: set[int] = set()
    for opened in sorted(segments, key=lambda seg: -seg.from_index):
        if opened.to_index >= target or opened.to_index in leads_on:
            leads_on.add(opened.from_index)
    by_start: dict[int, list[OpenedSegment]] = {}
    for opened in sorted(
        segments, key=lambda seg: (not (seg.to_index >= target or seg.to_index in leads_on), -seg.to_index)
    ):
        by_start.setdefault(opened.from_index, []).append(opened)
    return by_start


def _describe(problem: HeadProblem[ChainTreeHead], tree: MerkleTree) -> str:
    head, other = problem.head, problem.other
    if problem.kind == "inconsistent" and other is not None:  # pragma: no cover - implied by the rebuilt roots
        return f"heads #{other.index} and #{head.index} are not consistent: {problem.detail}"
    if problem.kind == "beyond-log":
        return f"head #{head.index}: anchors {head.size} entries but the log holds only {tree.size}"
    if problem.kind == "root-mismatch":  # pragma: no cover - the chained segments agree with every head they cover
        return f"head #{head.index}: entries [0, {head.size}) do not rebuild its root"
    return f"head #{head.index}: {problem.kind}"


def _extra_segments(segments: Sequence[OpenedSegment], chained: _Chained, problems: list[str]) -> list[str]:
    """Keys of the segments not used for the log; a problem for each that contradicts it."""
    tree = chained.tree
    extra: list[str] = []
    for segment in segments:
        if segment.key in chained.used:
            continue
        extra.append(segment.key)
        if segment.from_index < tree.size:
            overlap = min(segment.to_index, tree.size)
            mine = [tree.leaf_hash_at(i) for i in range(segment.from_index, overlap)]
            theirs = [leaf_hash(d) for d in segment.leaf_data[: overlap - segment.from_index]]
            if mine != theirs:
                problems.append(
                    f"segment {segment.key} contradicts the anchored log in [{segment.from_index}, {overlap})"
                )
    return extra


def audit_access_log(
    reader: TreeHeadReader, store: BlobReader, *, org_id: str, key_index: int, private_key: bytes
) -> LogAudit:
    """Steps 1-3 of the module docstring: chain heads, segments from storage, the rebuilt log."""
    heads = reader.heads()
    scan = find_segments(store, org_id=org_id, key_index=key_index, private_key=private_key)
    audit = verify_log(heads, scan.segments)
    if not scan.problems:
        return audit
    return LogAudit(
        size=audit.size,
        heads_verified=audit.heads_verified,
        entries=audit.entries,
        leaf_data=audit.leaf_data,
        problems=scan.problems + audit.problems,
        extra_segments=audit.extra_segments,
    )
