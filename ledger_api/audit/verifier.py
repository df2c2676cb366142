"""Check the evidence (chain facts + storage facts) and name every discrepancy.

What :func:`verify` checks, each failure one :class:`~ledger_api.audit.model.Discrepancy`:

* **Records.** For every ``BatchAnchored`` receipt: its manifest is in storage (``manifest-missing``),
  hashes to the anchored manifest hash and rebuilds the anchored RFC 9162 root and size
  (``manifest-mismatch``); every leaf's inclusion proof (RFC 9162 §2.1.3) verifies against that root
  (``inclusion-proof-invalid``); every leaf's blob exists (``blob-missing``; a crypto-shredded blob of
  the same version counts as erased, not missing) and hashes to the anchored ciphertext hash
  (``blob-hash-mismatch``); no record version and no ciphertext is anchored twice, and no version is
  anchored after a later one of the same record (``version-replayed``).
* **No blob lacks an anchor.** Every record blob in storage is listed by an anchored manifest
  (``blob-unanchored``: an acknowledged push is anchored within seconds, so on a quiet gateway this is a
  planted or left-over blob).
* **The access log.** The anchored tree heads grow strictly (``log-inconsistent``); the entries rebuild
  every head's root (``entry-not-anchored`` names a head whose entries are missing or altered, and each
  entry no head covers); every pair of verified heads has a valid RFC 9162 consistency proof (§2.1.4),
  literally every pair up to ``all_pairs_limit`` heads, else consecutive pairs and each head against
  the newest (which implies every pair) (``log-inconsistent``); unreadable segments and entries are
  ``log-segment-invalid``.
* **When entries were written.** No entry is back-dated: an entry under tree head *k* was appended after
  head *k-1* was formed, which the anchorer does only once head *k-2* is anchored, so its
  ``checked_block`` is not older than head *k-2*'s block, unless that block appeared while the read was
  under way (``VerifyOptions.backdate_tolerance_s``) (``entry-backdated``). Entry times do not go back in
  log order beyond ``VerifyOptions.time_order_tolerance_s`` (``entry-time-out-of-order``).
* **Reads.** Each entry is a read by its owner, a read covered by a grant valid at its
  ``checked_block`` as the grant events give it (grantee, owner, purpose, revocation, validity window
  at that block's timestamp, record / type / community scope from the anchored manifest, suspensions:
  :func:`ledger_api.access.decision.decide`, the rule the gateway's follower applies too),
  or an emergency read by an organisation kind allowed to make one (listed for review); anything else
  is ``read-not-covered`` (or ``emergency-not-permitted``). A check claimed at a block after the entry's
  own anchor is impossible and not covered either.
* **Break-glass bounds.** An emergency read of a v2 entry states a reason class of the vocabulary, a
  reason and an incident reference (``emergency-without-reason``; so does a v1 entry, which cannot state
  them, once the log holds v2 entries); reads a record of a community its reader served at the checked
  block (``emergency-outside-communities``, :func:`~ledger_api.access.decision.emergency_in_reach`, when
  the evidence carries community histories); shows in clear only the identifiers its reason class needs
  (``emergency-identifiers-revealed``); and stays within ``VerifyOptions.emergency_per_hour``, replayed
  through the gateway's own token bucket at the logged times (``emergency-rate-exceeded``).
* **Refusals** are entries of the log like reads (anchored, consistent, not back-dated) and are listed.

The ``checked_block`` of an entry is the gateway's statement of when it checked; the verifier cannot
see the read itself, only that the claimed block is not after the entry was anchored and not before
the anchoring window the entry was appended in.

Timing: records are anchored within seconds of their push, and a read may release a record before its
batch is anchored. An audit of a gateway under load can therefore see a just-pushed blob that is not
anchored yet (``blob-unanchored``) or a read of such a record (``read-not-covered``: "no anchored manifest
lists this record version"); verifying again a little later, or at a quiet moment, tells such a
transient state from a planted blob or a forged read.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger_api.access.decision import (
    EMERGENCY_READS_PER_HOUR,
    AccessDecision,
    AccessRequest,
    EmergencyReason,
    GrantTerms,
    Moment,
    Purpose,
    ScopeMiss,
    communities_at,
    decide,
    emergency_in_reach,
    record_key,
    scope_miss,
)
from ledger_api.access.ratelimit import RateLimit, RateLimited, RateLimiter
from ledger_api.accesslog.entry import ENTRY_FORMATS, Entry
from ledger_api.accesslog.errors import InvalidEntry
from ledger_api.accesslog.heads import HeadProblem, check_heads
from ledger_api.audit.evidence import (
    AnchorReceipt,
    BlobObservation,
    ChainFacts,
    Evidence,
    HeadReceipt,
    OrganisationHistory,
)
from ledger_api.audit.model import (
    AuditResult,
    Discrepancy,
    DiscrepancyKind,
    GrantFact,
    OrganisationFact,
    TreeHeadFact,
    VerifiedRead,
    VerifiedRecord,
    VerifiedRefusal,
)
from ledger_api.merkle import (
    InclusionProofError,
    MerkleTree,
    leaf_hash,
    root_and_inclusion_proofs,
    verify_inclusion,
)
from ledger_api.records.leaves import BatchManifest, RecordLeaf

__all__ = ["VerifyOptions", "verify"]

K = DiscrepancyKind

#: Slack between a block's timestamp (whole seconds, set by the node) and the gateway's clock: a read
#: released more than this after a revoking block was mined must have been checked at that block or later.
STALE_HEAD_TOLERANCE_S = 2.0


@dataclass(frozen=True, kw_only=True)
class VerifyOptions:
    emergency_kinds: frozenset[str] = frozenset({"police"})
    """Organisation kinds allowed to read in an emergency without a grant (the gateway's default:
    ``RecordReader(emergency_kinds=…)`` in ``ledger_api.records.reading``)."""
    all_pairs_limit: int = 200
    """Up to this many tree heads every pair is checked for consistency; above, consecutive pairs and
    each head against the newest."""
    backdate_tolerance_s: float = 5.0
    """How long a read may take from its chain-head check to its append (plus node lag and the whole
    seconds of block timestamps): an entry checked before its floor block (``entry-backdated``) is
    accepted only when the block after the one it names was mined at most this long before the floor
    block, i.e. the floor block appeared while the read was under way."""
    time_order_tolerance_s: float = 5.0
    """How far an entry's ``time`` may lie before an earlier entry's (``entry-time-out-of-order``): the
    time is taken just before the append, so concurrent reads, or gateway instances on one log whose
    clocks differ a little, append slightly out of order."""
    emergency_per_hour: int = EMERGENCY_READS_PER_HOUR
    """The gateway's ``LEDGER_EMERGENCY_PER_HOUR``: break-glass reads one organisation may make an hour."""
    segment_max: int = 100_000
    """The gateway's ``TreeHeadSettings.segment_max`` (the most entries one head covers): a head that grew
    by this many may have left older entries waiting for the next head, so it is not taken as a floor."""


def _short(hex_id: str) -> str:
    return hex_id[:12] + "…" if len(hex_id) > 12 else hex_id


class _Found:
    def __init__(self, initial: Iterable[Discrepancy]) -> None:
        self.items: list[Discrepancy] = list(initial)

    def add(self, kind: DiscrepancyKind, subject: str, detail: str, where: str) -> None:
        self.items.append(Discrepancy(kind=kind, subject=subject, detail=detail, where=where))


def _name(leaf: RecordLeaf) -> str:
    # Names are built only when something is wrong: the records loop runs once per anchored record.
    return f"record {_short(leaf.record_id)} v{leaf.version}"


def _at(where: str, index: int) -> str:
    return f"{where}, leaf {index}"


def _time(chain: ChainFacts, block: int) -> datetime | None:
    timestamp = chain.block_times.get(block)
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def verify(
    evidence: Evidence,
    *,
    options: VerifyOptions = VerifyOptions(),
    found: Sequence[Discrepancy] = (),
    timings: dict[str, float] | None = None,
) -> AuditResult:
    """Check ``evidence``; ``found`` are discrepancies already named while it was gathered or loaded.

    ``timings``, when given, receives the seconds spent on the records (``records``) and on the access
    log and its reads (``entries``), for the benchmark."""
    out = _Found(found)
    started = time.perf_counter()
    records, unlisted = _verify_records(evidence, out)
    halfway = time.perf_counter()
    valid_heads, entries = _verify_log(evidence, options, out)
    _verify_entry_times(evidence.chain, options, valid_heads, entries, out)
    reads, refusals = _verify_reads(evidence, options, records, unlisted, valid_heads, entries, out)
    if timings is not None:
        timings["records"] = halfway - started
        timings["entries"] = time.perf_counter() - halfway
    chain = evidence.chain
    return AuditResult(
        source=evidence.source,
        chain_id=chain.chain_id,
        checkpoint_block=chain.checkpoint_block,
        records=tuple(records.values()),
        reads=tuple(reads),
        tree_heads=tuple(
            TreeHeadFact(index=h.index, size=h.size, root=h.root, block_number=h.block_number) for h in chain.heads
        ),
        organisations=tuple(
            OrganisationFact(org_id=o.org_id, kind=o.kind, suspended_now=o.suspended_now) for o in chain.organisations
        ),
        grants=chain.grants,
        discrepancies=tuple(out.items),
        admin_grant_actions=chain.admin_grants,
        signer_changes=chain.signer_changes,
        admin_events_known=chain.admin_events_known,
        refusals=tuple(refusals),
    )


# --- records ---------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Anchored:
    """What the records pass has seen so far, in chain order."""

    records: dict[tuple[str, int], VerifiedRecord] = field(default_factory=dict)
    hashes: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Ciphertext hash -> the record version it anchors."""
    highest: dict[str, int] = field(default_factory=dict)
    """Record id -> the highest version anchored."""
    unlisted: set[str] = field(default_factory=set)
    """Owners with an anchored batch whose manifest is unusable."""


@dataclass(frozen=True, kw_only=True)
class _Batch:
    """An anchored batch whose manifest rebuilds the anchored root, with every leaf's inclusion proof."""

    receipt: AnchorReceipt
    manifest: BatchManifest
    hashes: list[bytes]
    proofs: list[list[bytes]]
    where: str
    anchored_at: datetime | None


def _verify_records(evidence: Evidence, out: _Found) -> tuple[dict[tuple[str, int], VerifiedRecord], set[str]]:
    """The anchored record versions, and the owners with an anchored batch whose manifest is unusable."""
    chain, storage = evidence.chain, evidence.storage
    blobs = {o.key: o for o in storage.blobs}
    shredded = {(o.record_id, o.version, o.owner_org) for o in storage.blobs if o.kind == "shredded"}
    seen = _Anchored()
    for receipt in sorted(chain.receipts, key=lambda r: (r.block_number, r.log_index)):
        batch = _anchored_batch(receipt, evidence, out)
        if batch is None:
            seen.unlisted.add(receipt.owner_org)
            continue
        for index, leaf in enumerate(batch.manifest.leaves):
            where = _at(batch.where, index)
            _check_inclusion(batch, index, out)
            if _replayed(seen, leaf, where, out):
                continue
            blob = blobs.get(leaf.ciphertext_hash)
            erased = blob is None and (leaf.record_id, leaf.version, leaf.owner_org) in shredded
            _check_blob(leaf, blob, erased=erased, where=where, out=out)
            seen.records[(leaf.record_id, leaf.version)] = _verified_record(batch, index, erased=erased)
    _check_unanchored_blobs(storage.blobs, seen, out)
    return seen.records, seen.unlisted


def _anchored_batch(receipt: AnchorReceipt, evidence: Evidence, out: _Found) -> _Batch | None:
    """The batch ``receipt`` anchors, when its manifest is in storage, hashes to the anchored hash and
    rebuilds the anchored owner, size and RFC 9162 root; else None, the reason named in ``out``."""
    where = f"block {receipt.block_number} tx {receipt.transaction}"
    batch = f"batch {_short(receipt.root)} (sequence {receipt.sequence}, {receipt.owner_org})"
    data = evidence.storage.manifests.get(receipt.manifest_hash)
    if data is None:
        out.add(K.MANIFEST_MISSING, batch, f"manifest {receipt.manifest_hash} is not in storage", where)
        return None
    digest = hashlib.sha256(data).hexdigest()
    if digest != receipt.manifest_hash:
        out.add(K.MANIFEST_MISMATCH, batch, f"manifest bytes hash to {digest}, anchored {receipt.manifest_hash}", where)
        return None
    try:
        manifest = BatchManifest.from_bytes(data)
    except ValueError as exc:
        out.add(K.MANIFEST_MISMATCH, batch, f"manifest unreadable: {exc}", where)
        return None
    hashes = [leaf.leaf_hash() for leaf in manifest.leaves]
    rebuilt, proofs = root_and_inclusion_proofs(hashes)
    if manifest.owner_org != receipt.owner_org or len(hashes) != receipt.size or rebuilt.hex() != receipt.root:
        out.add(
            K.MANIFEST_MISMATCH,
            batch,
            f"manifest ({manifest.owner_org}, {len(hashes)} leaves, root {rebuilt.hex()}) does not rebuild "
            f"the anchored batch ({receipt.owner_org}, {receipt.size} leaves, root {receipt.root})",
            where,
        )
        return None
    anchored_at = _time(evidence.chain, receipt.block_number)
    return _Batch(
        receipt=receipt, manifest=manifest, hashes=hashes, proofs=proofs, where=where, anchored_at=anchored_at
    )


def _check_inclusion(batch: _Batch, index: int, out: _Found) -> None:
    try:
        verify_inclusion(
            batch.hashes[index], index, len(batch.hashes), batch.proofs[index], bytes.fromhex(batch.receipt.root)
        )
    except InclusionProofError as exc:  # pragma: no cover - implied by the rebuilt root
        leaf = batch.manifest.leaves[index]
        out.add(K.INCLUSION_PROOF_INVALID, _name(leaf), f"inclusion proof fails: {exc}", _at(batch.where, index))


def _replayed(seen: _Anchored, leaf: RecordLeaf, where: str, out: _Found) -> bool:
    """Name a version or a ciphertext anchored twice, or a version anchored after a later one; true when
    the version itself was anchored before (the first anchor stands)."""
    version_key = (leaf.record_id, leaf.version)
    earlier = seen.records.get(version_key)
    if earlier is not None:
        out.add(
            K.VERSION_REPLAYED,
            _name(leaf),
            f"anchored again (first in block {earlier.block_number} tx {earlier.transaction})",
            where,
        )
        return True
    if leaf.ciphertext_hash in seen.hashes:
        first_id, first_version = seen.hashes[leaf.ciphertext_hash]
        out.add(
            K.VERSION_REPLAYED,
            _name(leaf),
            f"its ciphertext {_short(leaf.ciphertext_hash)} was already anchored as "
            f"record {_short(first_id)} v{first_version}",
            where,
        )
    highest = seen.highest.get(leaf.record_id, 0)
    if highest > leaf.version:
        out.add(K.VERSION_REPLAYED, _name(leaf), f"anchored after version {highest} of the same record", where)
    seen.highest[leaf.record_id] = max(highest, leaf.version)
    seen.hashes[leaf.ciphertext_hash] = version_key
    return False


def _check_blob(leaf: RecordLeaf, blob: BlobObservation | None, *, erased: bool, where: str, out: _Found) -> None:
    """The leaf's blob is in storage (or crypto-shredded) and hashes to the anchored ciphertext hash."""
    if blob is None:
        if not erased:
            out.add(K.BLOB_MISSING, _name(leaf), f"blob {leaf.ciphertext_hash} is not in storage", where)
    elif blob.sha256 != leaf.ciphertext_hash:
        out.add(
            K.BLOB_HASH_MISMATCH,
            _name(leaf),
            f"blob {leaf.ciphertext_hash} holds bytes hashing to {blob.sha256}",
            f"storage key {blob.key}; anchor {where}",
        )


def _verified_record(batch: _Batch, index: int, *, erased: bool) -> VerifiedRecord:
    leaf = batch.manifest.leaves[index]
    meta = batch.manifest.metadata_at(index)
    return VerifiedRecord(
        record_id=leaf.record_id,
        version=leaf.version,
        owner_org=leaf.owner_org,
        record_type=meta.record_type,
        community_code=meta.community_code,
        ciphertext_hash=leaf.ciphertext_hash,
        batch_root=batch.receipt.root,
        leaf_index=index,
        block_number=batch.receipt.block_number,
        transaction=batch.receipt.transaction,
        anchored_at=batch.anchored_at,
        subjects=meta.subjects,
        erased=erased,
    )


def _check_unanchored_blobs(blobs: Iterable[BlobObservation], seen: _Anchored, out: _Found) -> None:
    """Every record blob in storage is listed by an anchored manifest and hashes to its key."""
    for blob in blobs:
        if blob.kind == "unknown":  # bytes of no known kind under a key they do not hash to
            out.add(
                K.BLOB_HASH_MISMATCH,
                f"blob {_short(blob.key)}",
                f"bytes of no known kind hash to {blob.sha256}, not to their key (a damaged blob)",
                f"storage key {blob.key}",
            )
            continue
        if blob.kind not in ("record", "shredded") or blob.key in seen.hashes:
            continue
        if blob.kind == "shredded" and blob.sha256 == blob.key:
            continue  # the shredded form of an erased version (checked against its anchor above)
        if blob.owner_org in seen.unlisted and blob.sha256 == blob.key:
            continue  # it may be a leaf of the batch whose manifest is unusable (named above)
        if blob.sha256 != blob.key:
            out.add(
                K.BLOB_HASH_MISMATCH,
                f"blob {_short(blob.key)}",
                f"bytes hash to {blob.sha256}, not to their key",
                f"storage key {blob.key}",
            )
        else:
            out.add(
                K.BLOB_UNANCHORED,
                f"record {_short(blob.record_id)} v{blob.version}",
                f"record blob of {blob.owner_org} that no anchored manifest lists",
                f"storage key {blob.key}",
            )


# --- the access log -------------------------------------------------------------------------------------


def _verify_log(
    evidence: Evidence, options: VerifyOptions, out: _Found
) -> tuple[list[HeadReceipt], list[Entry | None]]:
    chain, storage = evidence.chain, evidence.storage
    for problem in storage.log_problems:
        out.add(K.LOG_SEGMENT_INVALID, "access-log segment", problem, "storage")
    tree = MerkleTree.from_leaf_hashes(leaf_hash(data) for data in storage.entries)
    check = check_heads(
        sorted(chain.heads, key=lambda h: h.index), tree, root=_head_root, all_pairs_limit=options.all_pairs_limit
    )
    for finding in check.problems:
        _name_head_problem(finding, tree, out)
    valid = list(check.verified)
    covered = valid[-1].size if valid else 0
    for index in range(covered, len(storage.entries)):
        out.add(K.ENTRY_NOT_ANCHORED, f"access entry #{index}", "no verified anchored tree head covers it", "log")
    entries: list[Entry | None] = []
    for index, data in enumerate(storage.entries):
        try:
            entries.append(_parse_entry(data))
        except InvalidEntry as exc:
            entries.append(None)
            out.add(K.LOG_SEGMENT_INVALID, f"access entry #{index}", str(exc), f"access log entry {index}")
    return valid, entries


_HEX_ROOT = re.compile(r"[0-9a-f]{64}")


def _head_root(head: HeadReceipt) -> bytes:
    """The anchored root; a root not spelled as the chain facts spell it (64 lower-case hex digits)
    matches no tree."""
    return bytes.fromhex(head.root) if _HEX_ROOT.fullmatch(head.root) else b""


def _name_head_problem(problem: HeadProblem[HeadReceipt], tree: MerkleTree, out: _Found) -> None:
    head, other = problem.head, problem.other
    subject, where = f"tree head #{head.index}", f"block {head.block_number}"
    if problem.kind == "not-growing" and other is not None:
        detail = f"size {head.size} does not grow past head #{other.index} of size {other.size}"
        out.add(K.LOG_INCONSISTENT, subject, detail, where)
    elif problem.kind == "beyond-log":
        detail = f"anchors {head.size} entries but the log holds only {tree.size}"
        out.add(K.ENTRY_NOT_ANCHORED, subject, detail, where)
    elif problem.kind == "root-mismatch":
        detail = f"entries [0, {head.size}) rebuild root {tree.root(head.size).hex()}, anchored {head.root}"
        out.add(K.ENTRY_NOT_ANCHORED, subject, detail, where)
    elif other is not None:  # pragma: no cover - implied by the rebuilt roots
        out.add(
            K.LOG_INCONSISTENT,
            f"tree heads #{other.index} and #{head.index}",
            f"no valid consistency proof: {problem.detail}",
            f"blocks {other.block_number} and {head.block_number}",
        )


# One encoder and decoder for every entry: ``json.dumps`` with options builds a new encoder per call.
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER = json.JSONDecoder()
_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def _parse_entry(data: bytes) -> Entry:
    """:meth:`Entry.from_leaf_data`, faster for canonical entries (the verifier reads every one).

    An entry is canonical when re-encoding its parsed JSON gives back the same bytes and its time is
    spelled the canonical way; the model's validation (strict types, patterns) then makes its
    ``leaf_data()`` those very bytes, so formatting it again is skipped. Anything else goes through
    ``from_leaf_data`` itself, which names what is wrong.
    """
    try:
        text = data.decode("utf-8")
        document = _DECODER.decode(text)
        canonical = (
            isinstance(document, dict)
            and document.get("format") in ENTRY_FORMATS
            and isinstance(document.get("time"), str)
            and _CANONICAL_TIME.fullmatch(document["time"]) is not None
            and _CANONICAL_ENCODER.encode(document) == text
        )
    except (UnicodeDecodeError, ValueError):
        canonical = False
    if not canonical:
        return Entry.from_leaf_data(data)
    return Entry.from_document(document)


# --- when entries were written ----------------------------------------------------------------------


def _verify_entry_times(
    chain: ChainFacts,
    options: VerifyOptions,
    heads: Sequence[HeadReceipt],
    entries: Sequence[Entry | None],
    out: _Found,
) -> None:
    """``entry-backdated`` (a checked block older than the anchoring allows, :func:`_head_floors`) and
    ``entry-time-out-of-order`` (a time before an earlier entry's, beyond the tolerance)."""
    floors = _head_floors(heads, options.segment_max)
    sizes = [h.size for h in heads]
    known = sorted(chain.block_times)
    latest: datetime | None = None
    for index, entry in enumerate(entries):
        if entry is None:
            continue
        position = bisect.bisect_right(sizes, index)
        where = f"access log entry {index}" + (f", tree head #{heads[position].index}" if position < len(heads) else "")
        floor = floors[position] if position < len(heads) else None
        problem = _backdated(entry.checked_block, floor, known, chain, options.backdate_tolerance_s)
        if problem is not None:
            out.add(K.ENTRY_BACKDATED, f"access entry #{index}", problem, where)
        if latest is not None and (latest - entry.time).total_seconds() > options.time_order_tolerance_s:
            detail = (
                f"released at {entry.time.isoformat()}, {(latest - entry.time).total_seconds():.3f} s before an "
                f"earlier entry's {latest.isoformat()} (tolerance {options.time_order_tolerance_s:g} s)"
            )
            out.add(K.ENTRY_TIME_OUT_OF_ORDER, f"access entry #{index}", detail, where)
        latest = entry.time if latest is None or entry.time > latest else latest


def _head_floors(heads: Sequence[HeadReceipt], segment_max: int) -> list[HeadReceipt | None]:
    """For each head, the anchored head its entries were all appended after (None: no such head).

    How the gateway writes (``ledger_api.accesslog.anchorer``): one head is in flight at a time, and head
    *j* is formed only once head *j-1* is anchored, covering every entry appended until then. An entry
    under head *k* was appended after head *k-1* was formed, so after head *k-2* was anchored: its read
    was decided at that head's block or later. A head that grew by ``segment_max`` may have left a
    backlog, so the floor walks back past such heads to the last one formed with the whole log."""
    floors: list[HeadReceipt | None] = []
    uncapped: int | None = None  # the last head before this one that covered the whole log when formed
    for position, head in enumerate(heads):
        floors.append(heads[uncapped - 1] if uncapped is not None and uncapped >= 1 else None)
        grown = head.size - (heads[position - 1].size if position else 0)
        if grown < segment_max:
            uncapped = position
    return floors


def _backdated(
    block: int, floor: HeadReceipt | None, known: Sequence[int], chain: ChainFacts, tolerance_s: float
) -> str | None:
    """Why a check claimed at ``block`` is older than ``floor`` allows, or None.

    A read checked before the floor block is honest only if that block appeared while it was under way:
    the block after the one checked was not yet there when the check was made, so it was mined at most
    the read's duration before the floor block. Its time is taken from the first block after ``block``
    the evidence knows (the block right after it, when collected; a later block only ever excuses more)."""
    if floor is None or block >= floor.block_number:
        return None
    after = bisect.bisect_right(known, block)
    following = known[after] if after < len(known) else floor.block_number
    mined = chain.block_times.get(following, floor.timestamp)
    if floor.timestamp - mined <= tolerance_s:
        return None
    return (
        f"checked at block {block}, but appended after tree head #{floor.index} was anchored in block "
        f"{floor.block_number} (time {floor.timestamp}); block {following} after the one checked was mined "
        f"{floor.timestamp - mined} s before that (tolerance {tolerance_s:g} s)"
    )


# --- reads ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _ReadContext:
    """What every read is checked against: organisations and grants from the chain facts."""

    chain: ChainFacts
    options: VerifyOptions
    organisations: dict[str, OrganisationHistory]
    grants: dict[int, GrantFact]
    terms: dict[int, GrantTerms]
    purposes: _PurposeCodes


def _verify_reads(
    evidence: Evidence,
    options: VerifyOptions,
    records: dict[tuple[str, int], VerifiedRecord],
    unlisted: set[str],
    heads: Sequence[HeadReceipt],
    entries: Sequence[Entry | None],
    out: _Found,
) -> tuple[list[VerifiedRead], list[VerifiedRefusal]]:
    chain = evidence.chain
    purposes = _PurposeCodes()
    context = _ReadContext(
        chain=chain,
        options=options,
        organisations={o.org_id: o for o in chain.organisations},
        grants={g.grant_id: g for g in chain.grants},
        terms={
            g.grant_id: GrantTerms.of(
                g, purpose=purposes(g.purpose), created_block=g.created_block, revoked_block=g.revoked_block
            )
            for g in chain.grants
        },
        purposes=purposes,
    )
    sizes = [h.size for h in heads]
    over_limit = _over_emergency_limit(entries, options.emergency_per_hour)
    first_v2 = next((i for i, e in enumerate(entries) if e is not None and e.format_version >= 2), None)
    reads: list[VerifiedRead] = []
    refusals: list[VerifiedRefusal] = []
    for index, entry in enumerate(entries):
        if entry is None:
            continue
        position = bisect.bisect_right(sizes, index)
        head = heads[position] if position < len(heads) else None
        accessor = context.organisations.get(entry.accessor_org)
        if entry.is_refusal:
            refusals.append(_verified_refusal(index, entry, accessor, head))
            continue
        record = records.get((entry.record_id, entry.version))
        covered, basis, kind = _decide(entry, record, head, context)
        breaches: list[tuple[DiscrepancyKind, str]] = []
        if covered and entry.emergency and record is not None:
            legacy = entry.format_version < 2 and (first_v2 is None or first_v2 > index)
            breaches = [] if legacy else _break_glass_breaches(entry, record, context, over=index in over_limit)
        # A read of a record in a batch whose manifest is unusable cannot be checked; that batch is named
        # already (manifest-missing / -mismatch), so the read is not named a second time.
        unverifiable = record is None and entry.owner_org in unlisted
        if unverifiable:
            basis = f"cannot be checked: an anchored batch of {entry.owner_org} has no usable manifest"
        elif not covered:
            breaches = [(kind, basis)]
        if breaches:
            covered, basis = False, breaches[0][1]
        reads.append(_verified_read(index, entry, record, accessor, head, covered=covered, basis=basis))
        for breach, why in breaches:
            out.add(
                breach,
                f"access entry #{index}",
                f"{entry.accessor_org} read record {_short(entry.record_id)} v{entry.version} of {entry.owner_org} "
                f"for {entry.purpose}: {why}",
                f"access log entry {index}" + (f", tree head #{head.index}" if head else ""),
            )
    return reads, refusals


#: Refusals of break-glass attempts made before a rate-limit token was taken (the gateway checks the
#: stated reason, then takes the token): they do not count against the limit.
_REFUSED_BEFORE_THE_TOKEN = frozenset({"emergency_without_reason", "emergency_rate_limited"})


def _over_emergency_limit(entries: Sequence[Entry | None], per_hour: int) -> set[int]:
    """Indices of the break-glass reads beyond the limit: every v2 break-glass attempt that took a token
    (reads, and refusals decided after the token) replayed, per reader in the order of the logged times,
    through the gateway's own bucket (:meth:`~ledger_api.access.ratelimit.RateLimiter.take`)."""
    attempts = sorted(
        (entry.time.timestamp(), index, entry)
        for index, entry in enumerate(entries)
        if entry is not None
        and entry.emergency
        and entry.format_version >= 2
        and (not entry.is_refusal or entry.refusal not in _REFUSED_BEFORE_THE_TOKEN)
    )
    limiter = RateLimiter(name="emergency reads", limit=RateLimit.per_hour(per_hour), clock=time.time)
    over: set[int] = set()
    for when, index, entry in attempts:
        try:
            limiter.take(entry.accessor_org, when=when)
        except RateLimited:
            if not entry.is_refusal:
                over.add(index)
    return over


def _break_glass_breaches(
    entry: Entry, record: VerifiedRecord, context: _ReadContext, *, over: bool
) -> list[tuple[DiscrepancyKind, str]]:
    """Each bound of a break-glass read (DESIGN.md, Privacy) the entry breaks, with why."""
    breaches: list[tuple[DiscrepancyKind, str]] = []
    try:
        reason_class: EmergencyReason | None = EmergencyReason.parse(entry.reason_class or "")
    except ValueError:
        reason_class = None
    if entry.format_version < 2:
        breaches.append((K.EMERGENCY_WITHOUT_REASON, "a v1 entry (it cannot state a reason) after v2 entries"))
    else:
        unstated = [
            name
            for name, value in (
                ("reason_class", reason_class),
                ("reason", entry.reason),
                ("incident_ref", entry.incident_ref),
            )
            if value is None or (isinstance(value, str) and not value.strip())
        ]
        if unstated:
            breaches.append((K.EMERGENCY_WITHOUT_REASON, f"break-glass read without a valid {', '.join(unstated)}"))
    chain = context.chain
    if chain.communities_known:
        served = communities_at(chain.communities.get(entry.accessor_org, ()), entry.checked_block)
        if not emergency_in_reach(served, record.community_code or ""):
            breaches.append((
                K.EMERGENCY_OUTSIDE_COMMUNITIES,
                f"record of community {record.community_code}, {entry.accessor_org} served "
                f"{', '.join(sorted(served)) or 'none'} at block {entry.checked_block}",
            ))  # fmt: skip
    allowed = reason_class.reveals if reason_class is not None else frozenset()
    if entry.revealed is None or not set(entry.revealed) <= allowed:
        shown = "everything (unstated)" if entry.revealed is None else ", ".join(entry.revealed)
        breaches.append((
            K.EMERGENCY_IDENTIFIERS_REVEALED,
            f"showed {shown} in clear; reason class {entry.reason_class} allows {', '.join(sorted(allowed)) or 'none'}",
        ))  # fmt: skip
    if over:
        breaches.append((
            K.EMERGENCY_RATE_EXCEEDED,
            f"beyond {context.options.emergency_per_hour} break-glass reads an hour by {entry.accessor_org}",
        ))  # fmt: skip
    return breaches


def _verified_refusal(
    index: int, entry: Entry, accessor: OrganisationHistory | None, head: HeadReceipt | None
) -> VerifiedRefusal:
    return VerifiedRefusal(
        entry_index=index,
        accessor_org=entry.accessor_org,
        accessor_kind=accessor.kind if accessor else None,
        record_id=entry.record_id,
        version=entry.version,
        owner_org=entry.owner_org,
        grant_id=entry.grant_id,
        purpose=entry.purpose,
        emergency=entry.emergency,
        refusal=entry.refusal or "",
        time=entry.time,
        checked_block=entry.checked_block,
        request_id=entry.request_id,
        anchored_by_head=head.index if head else None,
        reason_class=entry.reason_class,
        reason=entry.reason,
        incident_ref=entry.incident_ref,
    )


def _verified_read(
    index: int,
    entry: Entry,
    record: VerifiedRecord | None,
    accessor: OrganisationHistory | None,
    head: HeadReceipt | None,
    *,
    covered: bool,
    basis: str,
) -> VerifiedRead:
    return VerifiedRead(
        entry_index=index,
        accessor_org=entry.accessor_org,
        accessor_kind=accessor.kind if accessor else None,
        owner_org=entry.owner_org,
        record_id=entry.record_id,
        version=entry.version,
        record_type=record.record_type if record else None,
        community_code=record.community_code if record else None,
        grant_id=entry.grant_id,
        purpose=entry.purpose,
        emergency=entry.emergency,
        time=entry.time,
        checked_block=entry.checked_block,
        request_id=entry.request_id,
        anchored_by_head=head.index if head else None,
        covered=covered,
        basis=basis,
        subjects=record.subjects if record else (),
        reason_class=entry.reason_class,
        reason=entry.reason,
        incident_ref=entry.incident_ref,
        revealed=entry.revealed,
    )


def _decide(
    entry: Entry, record: VerifiedRecord | None, head: HeadReceipt | None, context: _ReadContext
) -> tuple[bool, str, DiscrepancyKind]:
    """(covered, basis, the kind to report when not covered): the auditor's rules (the claimed block, the
    anchored record, emergency and owner reads), then the grant (:func:`_grant_refusal`)."""
    block = entry.checked_block
    not_covered = K.READ_NOT_COVERED
    if head is not None and block > head.block_number:
        return (
            False,
            f"checked at block {block}, after its entry was anchored in block {head.block_number}",
            not_covered,
        )
    if record is None:
        return False, "no anchored manifest lists this record version", not_covered
    if record.owner_org != entry.owner_org:
        return False, f"names owner {entry.owner_org}, the anchored owner is {record.owner_org}", not_covered
    accessor = context.organisations.get(entry.accessor_org)
    if accessor is None:
        return False, f"{entry.accessor_org} is not a registered organisation", not_covered
    if not accessor.active_at(block):
        return False, f"{entry.accessor_org} was not active at block {block}", not_covered
    if entry.emergency:
        if accessor.kind in context.options.emergency_kinds:
            return True, f"emergency read by a {accessor.kind} organisation, listed for review", not_covered
        return False, f"emergency read by a {accessor.kind} organisation, not allowed one", K.EMERGENCY_NOT_PERMITTED
    if entry.grant_id == 0:
        if entry.accessor_org == record.owner_org:
            return True, "owner read", not_covered
        return False, "names no grant", not_covered
    reason = _grant_refusal(entry, record, context)
    if reason is not None:
        return False, f"grant {entry.grant_id} {reason}", not_covered
    return True, f"grant {entry.grant_id} valid at block {block}", not_covered


class _PurposeCodes:
    """Purpose labels as codes for the access rule: a label of the vocabulary is its chain code, any other
    label a code of its own, so that two purposes agree exactly when their labels do."""

    def __init__(self) -> None:
        self._codes = {p.label: int(p) for p in Purpose if p is not Purpose.NONE}

    def __call__(self, label: str) -> int:
        return self._codes.setdefault(label, -len(self._codes) - 1)


def _grant_refusal(entry: Entry, record: VerifiedRecord, context: _ReadContext) -> str | None:
    """``GrantRegistry.accessDecision`` at the entry's ``checked_block``
    (:func:`~ledger_api.access.decision.decide`), held to two rules of the auditor's on top: a
    revocation mined well before the read was released counts as seen (the gateway decides on the chain
    as it stands when the read begins, invariant 6: an older block is a stale head), and the grant must
    not have expired when the read was released. None when allowed, else why not."""
    block = entry.checked_block
    timestamp = context.chain.block_times.get(block)
    if timestamp is None:
        return f"cannot be checked: no timestamp known for block {block}"
    terms = context.terms.get(entry.grant_id)
    released = entry.time.timestamp()
    if terms is not None and _revoked_before(terms, released, context.chain):
        terms = dataclasses.replace(terms, revoked_block=min(terms.revoked_block, block))
    organisations = context.organisations
    request = AccessRequest(
        grantee_org=entry.accessor_org,
        owner_org=record.owner_org,
        record_id=record_key(record.record_id),
        record_type=record.record_type or "",
        community_code=record.community_code or "",
        purpose=context.purposes(entry.purpose),
    )
    decision = decide(
        terms,
        request,
        # Valid from the block's time on, and until the release too (the gateway checks expiry against its
        # clock when the read begins, within the tolerance): validity starts on chain, expiry also by clock.
        moment=Moment(block=block, earliest=timestamp, latest=max(timestamp, released - STALE_HEAD_TOLERANCE_S)),
        suspended={
            org
            for org in (record.owner_org, entry.accessor_org)
            if org not in organisations or not organisations[org].active_at(block)
        },
    )
    grant = context.grants.get(entry.grant_id)
    if decision is AccessDecision.ALLOWED:
        return None
    if decision is AccessDecision.UNKNOWN_GRANT or grant is None or terms is None:
        return f"UNKNOWN_GRANT at block {block}"
    if decision is AccessDecision.OUT_OF_SCOPE:
        return _out_of_scope(scope_miss(terms, request), grant, record)
    return _refusal_reason(decision, grant, entry, timestamp, context.chain)


def _revoked_before(terms: GrantTerms, released: float, chain: ChainFacts) -> bool:
    """Was the grant revoked in a block mined more than the tolerance before the read was released?"""
    revoked_at = chain.block_times.get(terms.revoked_block) if terms.revoked_block else None
    return revoked_at is not None and revoked_at + STALE_HEAD_TOLERANCE_S < released


def _refusal_reason(decision: AccessDecision, grant: GrantFact, entry: Entry, timestamp: int, chain: ChainFacts) -> str:
    """The decision, with the facts that made it."""
    block = entry.checked_block
    if decision is AccessDecision.REVOKED and grant.revoked_block > block:
        return (
            f"REVOKED at block {grant.revoked_block} (block time {chain.block_times.get(grant.revoked_block)}) "
            f"before the read was released at {entry.time.isoformat()}, but checked at the stale block {block}"
        )
    if decision is AccessDecision.EXPIRED and timestamp < grant.valid_until:
        return f"EXPIRED when the read was released at {entry.time.isoformat()} (valid until {grant.valid_until})"
    reasons = {
        AccessDecision.WRONG_GRANTEE: f"WRONG_GRANTEE (granted to {grant.grantee_org})",
        AccessDecision.WRONG_OWNER: f"WRONG_OWNER (granted by {grant.owner_org})",
        AccessDecision.WRONG_PURPOSE: f"WRONG_PURPOSE (granted for {grant.purpose})",
        AccessDecision.REVOKED: f"REVOKED at block {grant.revoked_block}, read checked at block {block}",
        AccessDecision.NOT_YET_VALID: (
            f"NOT_YET_VALID at block {block} (valid from {grant.valid_from}, block time {timestamp})"
        ),
        AccessDecision.EXPIRED: f"EXPIRED at block {block} (valid until {grant.valid_until}, block time {timestamp})",
    }
    return reasons.get(decision, f"{decision.name} at block {block}")


def _out_of_scope(miss: ScopeMiss | None, grant: GrantFact, record: VerifiedRecord) -> str:
    if miss == "record":
        return "OUT_OF_SCOPE (granted for another record)"
    if miss == "record_type":
        return f"OUT_OF_SCOPE (record type {record.record_type} not in {', '.join(grant.record_types)})"
    return f"OUT_OF_SCOPE (community {record.community_code} not in {', '.join(grant.communities)})"
