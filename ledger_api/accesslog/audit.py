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
from ledger_api.accesslog.segment import OpenedSegment, is_segment, open_segment
from ledger_api.chain.tree_heads import ChainTreeHead, TreeHeadReader
from ledger_api.merkle import ConsistencyProofError, MerkleTree, leaf_hash, verify_consistency
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
    ended. Normally there is one segment per head (``[size_{i-1}, size_i)``); a head may also span
    several segments (a head formed on top of one the chain lost with its newest blocks), which is fine
    as long as every segment's root and every head's root equal the rebuilt tree's at their sizes.
    Anyone who can write to storage can seal a segment for the auditors' public keys: a header is only
    a claim, and only the anchored roots make entries authentic. So every segment that starts at the
    current position is tried (those that lead on towards the newest head first) until one agrees with
    its own root and with the heads it covers.
    """
    all_segments = list(segments)
    problems: list[str] = []
    growing: list[ChainTreeHead] = []
    for head in heads:
        if growing and head.size <= growing[-1].size:
            problems.append(f"head #{head.index}: size {head.size} does not grow past {growing[-1].size}")
            break
        growing.append(head)
    target = growing[-1].size if growing else 0
    # Positions from which a chain of segment ranges reaches the newest head (validity aside).
    leads_on: set[int] = set()
    for opened in sorted(all_segments, key=lambda seg: -seg.from_index):
        if opened.to_index >= target or opened.to_index in leads_on:
            leads_on.add(opened.from_index)
    by_start: dict[int, list[OpenedSegment]] = {}
    # Those that lead on first, then the longest first (a dead end still verifies the heads it covers).
    for opened in sorted(
        all_segments, key=lambda seg: (not (seg.to_index >= target or seg.to_index in leads_on), -seg.to_index)
    ):
        by_start.setdefault(opened.from_index, []).append(opened)

    tree = MerkleTree()
    hashes: list[bytes] = []
    entries: list[Entry] = []
    leaf_data: list[bytes] = []
    used: set[str] = set()
    verified = 0  # growing[:verified] are verified
    while tree.size < target:
        chosen: OpenedSegment | None = None
        for candidate in by_start.get(tree.size, []):
            start = tree.size
            tree.extend(leaf_hash(data) for data in candidate.leaf_data)
            covered = [h for h in growing[verified:] if h.size <= candidate.to_index]
            if tree.root(candidate.to_index) == candidate.root and all(tree.root(h.size) == h.root for h in covered):
                chosen = candidate
                break
            problems.append(
                f"segment {candidate.key} [{start}, {candidate.to_index}) does not rebuild the anchored log"
            )
            tree = MerkleTree.from_leaf_hashes(hashes)  # undo it
        if chosen is None:
            head = growing[verified]
            problems.append(
                f"no segment holds entries from {tree.size} on, needed for head #{head.index} of {head.size} entries"
            )
            break
        hashes.extend(tree.leaf_hash_at(i) for i in range(len(hashes), tree.size))
        entries.extend(chosen.entries)
        leaf_data.extend(chosen.leaf_data)
        used.add(chosen.key)
        while verified < len(growing) and growing[verified].size <= tree.size:
            if verified:
                old, new = growing[verified - 1], growing[verified]
                try:
                    proof = tree.consistency_proof(old.size, new.size)
                    verify_consistency(old.size, new.size, old.root, new.root, proof)
                except ConsistencyProofError as exc:  # pragma: no cover - implied by the rebuilt roots
                    problems.append(f"heads #{old.index} and #{new.index} are not consistent: {exc}")
            verified += 1
    size = growing[verified - 1].size if verified else 0
    extra: list[str] = []
    for segment in all_segments:
        if segment.key in used:
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
    return LogAudit(
        size=size,
        heads_verified=verified,
        entries=tuple(entries[:size]),
        leaf_data=tuple(leaf_data[:size]),
        problems=tuple(dict.fromkeys(problems)),
        extra_segments=tuple(extra),
    )


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
