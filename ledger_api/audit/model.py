"""What an audit establishes, as plain frozen values: the verifier produces an :class:`AuditResult`, the
report and the subject access report only read one.

Everything here was derived from the chain and the shared storage (or from an exported bundle of
them), never from the gateway's database (DESIGN.md invariant 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "AdminGrantAction",
    "AuditResult",
    "Discrepancy",
    "DiscrepancyKind",
    "GrantFact",
    "OrganisationFact",
    "SignerChangeStep",
    "TreeHeadFact",
    "VerifiedRead",
    "VerifiedRecord",
    "VerifiedRefusal",
]


class DiscrepancyKind(StrEnum):
    """Stable codes: a discrepancy's kind is what tests and scripts match on."""

    BLOB_MISSING = "blob-missing"
    """An anchored record version's ciphertext blob is not in storage."""
    BLOB_HASH_MISMATCH = "blob-hash-mismatch"
    """A blob's bytes do not hash to its key / to the ciphertext hash the anchor commits to."""
    BLOB_UNANCHORED = "blob-unanchored"
    """A record blob in storage that no anchored manifest lists."""
    MANIFEST_MISSING = "manifest-missing"
    """A batch anchored on chain whose manifest is not in storage."""
    MANIFEST_MISMATCH = "manifest-mismatch"
    """A manifest that does not hash to the anchored manifest hash, or whose tree root/size differs."""
    INCLUSION_PROOF_INVALID = "inclusion-proof-invalid"
    """A record leaf whose RFC 9162 inclusion proof does not verify against its anchored root."""
    VERSION_REPLAYED = "version-replayed"
    """A record version anchored twice, or an older version presented as current."""
    ENTRY_NOT_ANCHORED = "entry-not-anchored"
    """An access entry no anchored tree head covers, or entries that do not rebuild an anchored root."""
    LOG_INCONSISTENT = "log-inconsistent"
    """Two anchored tree heads with no valid RFC 9162 consistency proof (the log did not only grow)."""
    LOG_SEGMENT_INVALID = "log-segment-invalid"
    """An access-log segment that is unreadable or contradicts the rebuilt log."""
    READ_NOT_COVERED = "read-not-covered"
    """A read that no grant valid at its block covered (scope, purpose, expiry, revocation)."""
    EMERGENCY_NOT_PERMITTED = "emergency-not-permitted"
    """An emergency read by an organisation kind not configured for emergency reads."""
    EMERGENCY_OUTSIDE_COMMUNITIES = "emergency-outside-communities"
    """A break-glass read of a record in a community the reader did not serve at its checked block."""
    EMERGENCY_WITHOUT_REASON = "emergency-without-reason"
    """A break-glass read that states no valid reason class, reason or incident reference (or a v1 entry,
    which cannot state them, logged after the gateway wrote v2 entries)."""
    EMERGENCY_RATE_EXCEEDED = "emergency-rate-exceeded"
    """A break-glass read beyond the reader's emergency reads per hour (``VerifyOptions.emergency_per_hour``)."""
    EMERGENCY_IDENTIFIERS_REVEALED = "emergency-identifiers-revealed"
    """A break-glass read that showed identifiers in clear its reason class does not need (or did not say)."""
    ENTRY_BACKDATED = "entry-backdated"
    """An access entry whose ``checked_block`` is older than its anchoring window allows: the entry was
    appended after the head before its own was formed, so it cannot have been decided on a chain that
    had not yet reached the anchor the anchorer waited for (within ``backdate_tolerance_s``)."""
    ENTRY_TIME_OUT_OF_ORDER = "entry-time-out-of-order"
    """An access entry whose ``time`` is earlier than an entry before it in the log (beyond
    ``time_order_tolerance_s``): entries are appended as reads are released, so times only grow."""
    EVIDENCE_MISMATCH = "evidence-mismatch"
    """Bundle only: a section whose contents differ from what the bundle's evidence digests commit to."""
    INDEX_MISMATCH = "index-mismatch"
    """Opt-in cross-check only: a gateway index row that disagrees with chain and storage (the index is
    never evidence; this names an edited row so that the gateway's answers can be corrected)."""
    CHAIN_UNREACHABLE = "chain-unreachable"
    """The verifier could not read what it needs from the chain or storage."""


@dataclass(frozen=True, kw_only=True)
class Discrepancy:
    kind: DiscrepancyKind
    subject: str
    """What is wrong, named: ``record 9f…e1 v2``, ``access entry #17``, ``tree head #3``, ``blob ab…``."""
    detail: str
    """What was found, in one sentence."""
    where: str
    """Where to look: a storage key, ``block 812 tx 0x…``, or a bundle section and index."""

    def line(self) -> str:
        return f"{self.kind.value}: {self.subject}: {self.detail} ({self.where})"


@dataclass(frozen=True, kw_only=True)
class OrganisationFact:
    org_id: str
    kind: str
    """``police``, ``property``, ``committee``, ``auditor`` or ``admin`` (lower case)."""
    suspended_now: bool = False


@dataclass(frozen=True, kw_only=True)
class GrantFact:
    grant_id: int
    owner_org: str
    grantee_org: str
    purpose: str
    record_types: tuple[str, ...]
    communities: tuple[str, ...]
    record_id: str | None
    valid_from: int
    valid_until: int
    created_block: int
    revoked_block: int = 0


@dataclass(frozen=True, kw_only=True)
class AdminGrantAction:
    """A ``GrantCreated`` or ``GrantRevoked`` event with ``byAdmin``: an organisation admin acted for the
    owner (the owner's own signer did not)."""

    grant_id: int
    action: str
    """``created`` or ``revoked``."""
    owner_org: str
    grantee_org: str
    by: str
    """The admin's address (``grantedBy`` / ``revokedBy``)."""
    block_number: int
    transaction: str
    log_index: int
    timestamp: int | None = None
    """The block's timestamp."""


@dataclass(frozen=True, kw_only=True)
class SignerChangeStep:
    """One step of an organisation's two-step signer change (``IOrganisationRegistry`` events)."""

    org_id: str
    step: str
    """``proposed``, ``accepted``, ``cancelled`` or ``changed`` (the new signer took effect)."""
    by: str
    """Who took the step: ``proposedBy``, ``acceptedBy``, ``cancelledBy``; for ``changed`` the sender of
    the transaction that made it take effect (the accepting signer, or whoever completed it after the
    delay)."""
    new_signer: str
    """The proposed / cancelled / installed signer (empty for ``accepted``, whose event does not name it)."""
    previous_signer: str = ""
    """The signer being replaced (``proposed``: ``currentSigner``; ``changed``: ``previousSigner``)."""
    effective_at: int | None = None
    """``proposed`` only: when the change takes effect without acceptance (Unix seconds)."""
    block_number: int
    transaction: str
    log_index: int
    timestamp: int | None = None


@dataclass(frozen=True, kw_only=True)
class TreeHeadFact:
    index: int
    size: int
    root: str
    """Hex root."""
    block_number: int | None = None


@dataclass(frozen=True, kw_only=True)
class VerifiedRecord:
    record_id: str
    version: int
    owner_org: str
    record_type: str | None
    community_code: str | None
    ciphertext_hash: str
    batch_root: str
    leaf_index: int
    block_number: int
    transaction: str
    anchored_at: datetime | None
    """Timestamp of the anchoring block."""
    subjects: tuple[str, ...] = ()
    """Keyed blind indexes of the subjects' ID numbers (HMAC under the consortium key; no plaintext)."""
    erased: bool = False
    """Crypto-shredded by its owner: the original blob is gone by design and storage holds its shredded
    form (same header and ciphertext, no wrapped keys), so the anchor is not checked against a blob."""


@dataclass(frozen=True, kw_only=True)
class VerifiedRead:
    entry_index: int
    accessor_org: str
    accessor_kind: str | None
    owner_org: str
    record_id: str
    version: int
    record_type: str | None
    community_code: str | None
    grant_id: int
    purpose: str
    emergency: bool
    time: datetime
    checked_block: int
    request_id: str
    anchored_by_head: int | None
    """Index of the first anchored tree head that covers the entry (None: not anchored yet)."""
    covered: bool
    """Covered by a grant valid at ``checked_block`` for this purpose, an owner read, or a permitted
    emergency read."""
    basis: str
    """Why it was (or was not) covered, e.g. ``grant 3 valid at block 812`` or ``REVOKED at block 790``."""
    subjects: tuple[str, ...] = ()
    reason_class: str | None = None
    """What a break-glass read stated (None for other reads and for v1 entries)."""
    reason: str | None = None
    incident_ref: str | None = None
    revealed: tuple[str, ...] | None = None
    """Identifier kinds a break-glass read showed in clear, as its entry says."""


@dataclass(frozen=True, kw_only=True)
class VerifiedRefusal:
    """A refused attempt, as the anchored access log holds it: who asked for what, and why it was refused."""

    entry_index: int
    accessor_org: str
    accessor_kind: str | None
    record_id: str
    """As requested: it may name no record."""
    version: int
    """As requested; 0 for the newest."""
    owner_org: str
    """Empty when the gateway knew no such record."""
    grant_id: int
    """The grant presented; 0 for none."""
    purpose: str
    emergency: bool
    """A break-glass attempt (an emergency read naming no grant)."""
    refusal: str
    """Why: ``not_found``, ``no_grant``, a grant decision such as ``EXPIRED``, ``emergency_rate_limited``, …"""
    time: datetime
    checked_block: int
    request_id: str
    anchored_by_head: int | None
    reason_class: str | None = None
    reason: str | None = None
    incident_ref: str | None = None


@dataclass(frozen=True, kw_only=True)
class AuditResult:
    source: str
    """``chain http://… + storage …`` or ``bundle FILE``."""
    chain_id: int
    checkpoint_block: int
    records: tuple[VerifiedRecord, ...] = field(repr=False)
    reads: tuple[VerifiedRead, ...] = field(repr=False)
    tree_heads: tuple[TreeHeadFact, ...] = field(repr=False)
    organisations: tuple[OrganisationFact, ...] = field(repr=False)
    grants: tuple[GrantFact, ...] = field(repr=False)
    discrepancies: tuple[Discrepancy, ...]
    admin_grant_actions: tuple[AdminGrantAction, ...] = field(default=(), repr=False)
    """Every grant an admin created or revoked for an owner, in chain order."""
    signer_changes: tuple[SignerChangeStep, ...] = field(default=(), repr=False)
    """Every signer-change step, in chain order."""
    admin_events_known: bool = True
    """False for evidence that does not carry admin actions (a ``v1`` bundle): the two lists above are then
    empty because nobody looked, not because nothing happened."""
    refusals: tuple[VerifiedRefusal, ...] = field(default=(), repr=False)
    """Every refused attempt the anchored log holds, in log order (DESIGN.md invariant 8)."""

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    @property
    def emergency_reads(self) -> tuple[VerifiedRead, ...]:
        return tuple(read for read in self.reads if read.emergency)

    @property
    def admin_granted_reads(self) -> tuple[VerifiedRead, ...]:
        """Reads under a grant an admin created for the owner: listed for review, like emergency reads."""
        by_admin = {a.grant_id for a in self.admin_grant_actions if a.action == "created"}
        return tuple(read for read in self.reads if read.grant_id in by_admin)
