"""The read path: a record leaves the gateway only for a caller a grant covers now, as the chain holds
it, and only once the access entry that covers the release is durable (DESIGN.md invariants 4 and 6).

Order of a read: the follower is brought current with the chain (a revoke or suspension mined before
the read began is seen; reads arriving together share that check, ``records.headcheck``); the grant is
checked in memory at that head with the wall clock (an expired grant stops at once); the blob is opened
with the owner's key (or the data key cached from an earlier read, ``records.keycache``) and checked
against its anchored hash and commitment; fields are masked for the purpose; the access entry is
committed; then, and only then, the record is returned.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.engine import Engine

from ledger_api.access.decision import EMERGENCY_READS_PER_HOUR, EmergencyReason, emergency_in_reach
from ledger_api.access.ratelimit import RateLimit, RateLimited, RateLimiter
from ledger_api.accesslog import AccessLog, Entry
from ledger_api.chain.encoding import AccessDecision, OrganisationKind, Purpose
from ledger_api.chain.follower import ChainFollower, OrganisationView
from ledger_api.crypto.envelope import CommitmentScheme, OpenedRecord, open_record, open_record_with_data_key
from ledger_api.crypto.errors import CommitmentMismatchError
from ledger_api.crypto.keystore import OrgKeystore
from ledger_api.errors import LedgerError
from ledger_api.index.models import AnchorBatch, RecordVersion
from ledger_api.records.commitment import SEALED_SCHEMES, CommitmentOpening, open_commitment
from ledger_api.records.headcheck import CoalescedHeadCheck
from ledger_api.records.keycache import DataKeyCache
from ledger_api.records.masking import mask_record
from ledger_api.storage.base import BlobStore

_DEFAULT_EMERGENCY_LIMIT = RateLimit.per_hour(EMERGENCY_READS_PER_HOUR)

_VERSIONS: Table = RecordVersion.__table__  # type: ignore[attr-defined]
_BATCHES: Table = AnchorBatch.__table__  # type: ignore[attr-defined]


def _lookup_statement(*, by_version: bool) -> Select[Any]:
    """The newest (or the named) version of a record with its batch. Built once: a Core statement
    reused as is hits SQLAlchemy's compiled cache without building ORM objects on every read."""
    v, b = _VERSIONS.c, _BATCHES.c
    query = (
        select(
            v.record_id, v.version, v.owner_org, v.record_type, v.community_code, v.blob_key, v.commitment,
            v.key_index, v.leaf_index, v.shredded_at, b.root, b.state, b.block_number, b.tx_hash,
        )
        .select_from(_VERSIONS.outerjoin(_BATCHES, v.batch_id == b.id))
        .where(v.record_id == bindparam("record_id"))
    )  # fmt: skip
    if by_version:
        query = query.where(v.version == bindparam("version"))
    return query.order_by(v.version.desc()).limit(1)


_LATEST_VERSION = _lookup_statement(by_version=False)
_NAMED_VERSION = _lookup_statement(by_version=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class _IndexedVersion:
    """What the read needs of a record version's index row and of its anchoring batch."""

    record_id: str
    version: int
    owner_org: str
    record_type: str
    community_code: str
    blob_key: str
    commitment: str
    key_index: int
    leaf_index: int | None
    shredded_at: datetime | None
    batch_root: str | None
    batch_state: str | None
    batch_block: int | None
    batch_tx: str | None


class ReadError(LedgerError):
    """Root of read refusals."""


class RecordNotVisible(ReadError):
    """No such record, or none the caller may know of (the same answer either way)."""


class ReadRefused(ReadError):
    """The caller knows of the record (the grant it presents covers it) but this read is not allowed now,
    or the caller is not active on chain."""

    def __init__(self, message: str, *, decision: AccessDecision | None = None) -> None:
        super().__init__(message)
        self.decision = decision


class EmergencyReasonMissing(ReadError):
    """A break-glass read that does not state its reason class, reason or incident reference."""

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(
            f"an emergency read without a grant states {', '.join(missing)}: "
            f"missing {', '.join(repr(name) for name in missing)} (reason_class one of {EmergencyReason.names()})"
        )
        self.missing = tuple(missing)


class RecordErased(ReadError):
    """The record was crypto-shredded: its keys are gone, its anchors stay."""


@dataclass(frozen=True, kw_only=True)
class BreakGlass:
    """What a break-glass read states: why (a class of :class:`EmergencyReason` and a sentence) and the
    incident it is for. All three are required; the read path names those missing."""

    reason_class: EmergencyReason | None = None
    reason: str | None = None
    incident_ref: str | None = None

    def missing(self) -> list[str]:
        given = {"reason_class": self.reason_class, "reason": self.reason, "incident_ref": self.incident_ref}
        return [
            name for name, value in given.items() if value is None or (isinstance(value, str) and not value.strip())
        ]


@dataclass(frozen=True, kw_only=True)
class _Attempt:
    """One read request as the access log records it, refused or not."""

    caller: str
    record_id: str
    version: int | None
    purpose: Purpose
    grant_id: int | None
    statement: BreakGlass | None
    request_id: str
    checked_block: int
    at: datetime
    break_glass: bool = False
    """Taken the break-glass way (an emergency read naming no grant, by a kind allowed one)."""

    def entry(self, **fields: Any) -> Entry:
        stated = (self.statement or BreakGlass()) if self.break_glass else BreakGlass()
        document: dict[str, Any] = {
            "accessor_org": self.caller, "record_id": self.record_id, "version": self.version or 0,
            "grant_id": self.grant_id or 0, "purpose": self.purpose.label, "emergency": self.break_glass,
            "checked_block": self.checked_block, "time": self.at, "request_id": self.request_id,
            "reason_class": None if stated.reason_class is None else stated.reason_class.value,
            "reason": stated.reason, "incident_ref": stated.incident_ref,
        }  # fmt: skip
        return Entry.create(**{**document, **fields})


@dataclass(frozen=True, kw_only=True)
class ReadResult:
    record: dict[str, Any]
    record_id: str
    version: int
    owner_org: str
    record_type: str
    masked_fields: tuple[str, ...]
    purpose: Purpose
    grant_id: int
    emergency: bool
    request_id: str
    entry_index: int
    checked_block: int
    ciphertext_hash: str
    commitment: str
    opening: CommitmentOpening
    """What the reader needs to check the record it received, masked fields included, against the anchored
    commitment (:func:`~ledger_api.records.commitment.verify_opening`)."""
    batch_root: str | None
    leaf_index: int | None
    block_number: int | None
    transaction: str | None


class ReadService:
    def __init__(
        self,
        *,
        engine: Engine,
        blobs: BlobStore,
        keystore: OrgKeystore,
        follower: ChainFollower,
        access_log: AccessLog,
        release_guard: Callable[[], None],
        emergency_kinds: frozenset[OrganisationKind] = frozenset({OrganisationKind.POLICE}),
        emergency_limit: RateLimit = _DEFAULT_EMERGENCY_LIMIT,
        clock: Callable[[], float] = time.time,
        key_cache: DataKeyCache | None = None,
        head_check_window_s: float = 0.005,
    ) -> None:
        self._engine = engine
        self._blobs = blobs
        self._keystore = keystore
        self._follower = follower
        self._log = access_log
        self._release_guard = release_guard
        """Raises when nothing anchors the access log (see :mod:`ledger_api.accesslog.guard`)."""
        self._emergency_kinds = emergency_kinds
        self._clock = clock
        # Timed by the wall clock: each take is logged with its time, and the auditor replays those times.
        self._emergency_limiter = RateLimiter(name="emergency reads", limit=emergency_limit, clock=clock)
        self._keys = key_cache if key_cache is not None else DataKeyCache()
        # Reads arriving within a few milliseconds share one head check (see records.headcheck).
        self._head_check = CoalescedHeadCheck(ensure_current=follower.ensure_current, window_s=head_check_window_s)

    @property
    def key_cache(self) -> DataKeyCache:
        """The data keys this service unwrapped, by record version and blob."""
        return self._keys

    def forget_keys(self, record_id: str) -> None:
        """Drop the cached data keys of an erased record (and keep them out): crypto-shredding leaves no
        key in this process that opens the remaining ciphertext."""
        self._keys.forget(record_id)

    def read(
        self,
        *,
        caller: str,
        record_id: str,
        purpose: Purpose,
        grant_id: int | None,
        version: int | None = None,
        request_id: str | None = None,
        statement: BreakGlass | None = None,
    ) -> ReadResult:
        """Release the record to ``caller`` or refuse, logging either before answering (DESIGN.md
        invariants 4 and 8). ``statement`` is what a break-glass read (emergency, no grant) states."""
        self._release_guard()  # before anything is looked at: no release the audit cannot see
        self._head_check()
        checked_block, _ = self._follower.head()
        attempt = _Attempt(
            caller=caller, record_id=record_id, version=version, purpose=purpose, grant_id=grant_id,
            statement=statement, request_id=request_id or uuid.uuid4().hex, checked_block=checked_block,
            at=datetime.fromtimestamp(self._clock(), UTC),
        )  # fmt: skip
        caller_view = self._follower.organisation(caller)
        if caller_view is None or caller_view.suspended:
            # Said before the record is looked up: the answer is the same whether it exists or not.
            self._refuse(attempt, "accessor_inactive", ReadRefused(f"organisation {caller} is not active on chain"))
        row = self._find(record_id, version)
        reveal: frozenset[str] | None = None
        if row is not None and caller == row.owner_org:
            granted, masked_for = 0, None
        elif grant_id is not None:
            row = self._check_grant(attempt, row, grant_id)
            granted, masked_for = grant_id, purpose
        elif purpose is Purpose.EMERGENCY_RESPONSE and caller_view.kind in self._emergency_kinds:
            attempt = dataclasses.replace(attempt, break_glass=True)
            row, reveal = self._break_glass(attempt, row, caller_view)
            granted, masked_for = 0, purpose
        else:
            self._refuse(attempt, "not_found" if row is None else "no_grant", _not_visible(record_id), row)
        if row.shredded_at is not None:
            self._keys.forget(row.record_id)
            erased = RecordErased(
                f"record {record_id} version {row.version} was erased at {row.shredded_at.isoformat()}"
            )
            self._refuse(attempt, "erased", erased, row)
        return self._release(attempt, row, granted=granted, masked_for=masked_for, reveal=reveal)

    def _check_grant(self, attempt: _Attempt, row: _IndexedVersion | None, grant_id: int) -> _IndexedVersion:
        """The row, when the grant covers this read now; else the refusal, logged. Why it is refused is told
        (403) only to a caller whose grant speaks of this very record: anyone else gets the answer of a
        missing record, byte for byte (DESIGN.md invariant 8)."""
        if row is None:
            self._refuse(attempt, "not_found", _not_visible(attempt.record_id))
        about = {
            "grantee_org": attempt.caller, "owner_org": row.owner_org, "record_id": row.record_id,
            "record_type": row.record_type, "community_code": row.community_code,
        }  # fmt: skip
        decision = self._follower.access_decision(
            grant_id=grant_id, purpose=attempt.purpose, now=int(self._clock()), **about
        )
        if decision is AccessDecision.ALLOWED:
            return row
        if self._follower.grant_covers(grant_id=grant_id, **about):
            refused = ReadRefused(f"grant {grant_id} does not cover this read: {decision.name}", decision=decision)
            self._refuse(attempt, decision.name, refused, row)
        self._refuse(attempt, decision.name, _not_visible(attempt.record_id), row)

    def _break_glass(
        self, attempt: _Attempt, row: _IndexedVersion | None, reader: OrganisationView
    ) -> tuple[_IndexedVersion, frozenset[str]]:
        """A read with no grant in an emergency, within its bounds (DESIGN.md, Privacy): a stated reason
        class, reason and incident reference; the reader's rate limit; a record of a community the reader
        serves. The stated reason and the limit are checked before the record is looked at, so neither
        answer tells whether it exists. Returns the row and the identifier kinds its reason class shows."""
        statement = attempt.statement or BreakGlass()
        missing = statement.missing()
        if missing:
            self._refuse(attempt, "emergency_without_reason", EmergencyReasonMissing(missing))
        try:
            self._emergency_limiter.take(attempt.caller, when=attempt.at.timestamp())
        except RateLimited as exc:
            self._refuse(attempt, "emergency_rate_limited", exc, row)
        if row is None:
            self._refuse(attempt, "not_found", _not_visible(attempt.record_id))
        if not emergency_in_reach(reader.communities, row.community_code):
            self._refuse(attempt, "emergency_outside_communities", _not_visible(attempt.record_id), row)
        assert statement.reason_class is not None  # not missing
        return row, statement.reason_class.reveals

    def _refuse(
        self, attempt: _Attempt, why: str, error: ReadError | RateLimited, row: _IndexedVersion | None = None
    ) -> NoReturn:
        """Log the refused attempt durably (it will be anchored like a release), then raise ``error``."""
        self._log.append(attempt.entry(kind="refusal", refusal=why, owner_org=row.owner_org if row else ""))
        raise error

    def _release(
        self,
        attempt: _Attempt,
        row: _IndexedVersion,
        *,
        granted: int,
        masked_for: Purpose | None,
        reveal: frozenset[str] | None,
    ) -> ReadResult:
        opened, scheme = self._open(row)
        original = json.loads(opened.plaintext)
        record, masked = mask_record(original, masked_for, reveal=reveal)
        opening = open_commitment(
            original, salt=opened.salt, data_key=opened.data_key, masked_paths=masked, scheme=scheme
        )
        emergency = attempt.break_glass
        # The release point: the entry is durable (and so will be anchored) before anything leaves.
        appended = self._log.append(
            attempt.entry(
                kind="read", record_id=row.record_id, version=row.version, owner_org=row.owner_org, grant_id=granted,
                # A break-glass read is logged at the time its rate-limit token was taken (an auditor replays
                # those times through the same limit); any other read when it is released.
                time=attempt.at if emergency else datetime.now(UTC),
                revealed=None if reveal is None else tuple(sorted(reveal)),
            )
        )  # fmt: skip
        anchored = row.batch_state == "anchored"
        return ReadResult(
            record=record, record_id=row.record_id, version=row.version, owner_org=row.owner_org,
            record_type=row.record_type, masked_fields=tuple(masked), purpose=attempt.purpose, grant_id=granted,
            emergency=emergency, request_id=attempt.request_id, entry_index=appended.index,
            checked_block=attempt.checked_block, ciphertext_hash=row.blob_key, commitment=row.commitment,
            opening=opening,
            batch_root=row.batch_root, leaf_index=row.leaf_index,
            block_number=row.batch_block if anchored else None,
            transaction=row.batch_tx if anchored else None,
        )  # fmt: skip

    def _open(self, row: _IndexedVersion) -> tuple[OpenedRecord, str]:
        """The opened record and the name of the commitment scheme it was sealed under: the current one,
        else (state written before it) each older one in turn."""
        *older, oldest = SEALED_SCHEMES
        for scheme in older:
            try:
                return self._open_with(row, scheme), scheme.name
            except CommitmentMismatchError:
                continue
        return self._open_with(row, oldest), oldest.name

    def _open_with(self, row: _IndexedVersion, scheme: CommitmentScheme) -> OpenedRecord:
        """Open the anchored blob, with the data key cached from an earlier read when there is one (no
        HPKE unwrap); the blob's hash, AES-GCM tag and commitment are checked either way."""
        blob = self._blobs.get(row.blob_key)
        cached = self._keys.get(record_id=row.record_id, version=row.version, blob_key=row.blob_key)
        if cached is not None:
            return open_record_with_data_key(
                blob, data_key=cached, org_id=row.owner_org, key_index=row.key_index,
                expected_hash=row.blob_key, expected_commitment=row.commitment, commitment_scheme=scheme,
            )  # fmt: skip
        opened = open_record(
            blob, org_id=row.owner_org, key_index=row.key_index,
            private_key=self._keystore.private_key(row.owner_org, row.key_index),
            expected_hash=row.blob_key, expected_commitment=row.commitment, commitment_scheme=scheme,
        )  # fmt: skip
        self._keys.put(record_id=row.record_id, version=row.version, blob_key=row.blob_key, data_key=opened.data_key)
        return opened

    def _find(self, record_id: str, version: int | None) -> _IndexedVersion | None:
        with self._engine.connect() as connection:
            if version is None:
                found = connection.execute(_LATEST_VERSION, {"record_id": record_id}).first()
            else:
                found = connection.execute(_NAMED_VERSION, {"record_id": record_id, "version": version}).first()
        if found is None:
            return None
        (record, number, owner, record_type, community, blob_key, commitment, key_index, leaf_index, shredded_at,
         root, state, block, tx) = found  # fmt: skip
        return _IndexedVersion(
            record_id=record, version=number, owner_org=owner, record_type=record_type, community_code=community,
            blob_key=blob_key, commitment=commitment, key_index=key_index, leaf_index=leaf_index,
            shredded_at=shredded_at, batch_root=root, batch_state=state, batch_block=block, batch_tx=tx,
        )  # fmt: skip


def _not_visible(record_id: str) -> RecordNotVisible:
    """The one answer for a record that does not exist or that the caller may not know of."""
    return RecordNotVisible(f"no record {record_id}")
