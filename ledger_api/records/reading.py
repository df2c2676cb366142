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

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.engine import Engine

from ledger_api.accesslog import AccessLog, Entry
from ledger_api.chain.encoding import AccessDecision, OrganisationKind, Purpose
from ledger_api.chain.follower import ChainFollower
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

#: Decisions that say nothing about the record to a caller holding no grant from its owner: such a
#: refusal answers exactly like a missing record.
HIDING_DECISIONS = frozenset({AccessDecision.UNKNOWN_GRANT, AccessDecision.WRONG_GRANTEE, AccessDecision.WRONG_OWNER})


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
    """The caller knows of the record (it holds a grant from its owner) but this read is not covered."""

    def __init__(self, message: str, *, decision: AccessDecision | None = None) -> None:
        super().__init__(message)
        self.decision = decision


class RecordErased(ReadError):
    """The record was crypto-shredded: its keys are gone, its anchors stay."""


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
    ) -> ReadResult:
        self._release_guard()  # before anything is looked at: no release the audit cannot see
        row = self._find(record_id, version)
        self._head_check()
        checked_block, _ = self._follower.head()
        caller_view = self._follower.organisation(caller)
        if caller_view is None or caller_view.suspended:
            raise ReadRefused(f"organisation {caller} is not active on chain")
        emergency = False
        if caller == row.owner_org:
            granted, masked_for = 0, None
        elif grant_id is not None:
            decision = self._follower.access_decision(
                grant_id=grant_id, grantee_org=caller, owner_org=row.owner_org, record_id=row.record_id,
                record_type=row.record_type, community_code=row.community_code, purpose=purpose,
                now=int(self._clock()),
            )  # fmt: skip
            if decision is not AccessDecision.ALLOWED:
                if decision in HIDING_DECISIONS and not self._holds_grant_from(caller, row.owner_org):
                    raise RecordNotVisible(f"no record {record_id}")
                raise ReadRefused(f"grant {grant_id} does not cover this read: {decision.name}", decision=decision)
            granted, masked_for = grant_id, purpose
        elif purpose is Purpose.EMERGENCY_RESPONSE and caller_view.kind in self._emergency_kinds:
            granted, masked_for, emergency = 0, purpose, True
        elif self._holds_grant_from(caller, row.owner_org):
            raise ReadRefused("every read names the grant it relies on: add ?grant=ID")
        else:
            raise RecordNotVisible(f"no record {record_id}")
        if row.shredded_at is not None:
            self._keys.forget(row.record_id)
            raise RecordErased(f"record {record_id} version {row.version} was erased at {row.shredded_at.isoformat()}")

        opened, scheme = self._open(row)
        original = json.loads(opened.plaintext)
        record, masked = mask_record(original, masked_for)
        opening = open_commitment(
            original, salt=opened.salt, data_key=opened.data_key, masked_paths=masked, scheme=scheme
        )
        request = request_id or uuid.uuid4().hex
        # The release point: the entry is durable (and so will be anchored) before anything leaves.
        appended = self._log.append(
            Entry.create(
                accessor_org=caller, record_id=row.record_id, version=row.version, owner_org=row.owner_org,
                grant_id=granted, purpose=purpose.label, emergency=emergency, checked_block=checked_block,
                time=datetime.now(UTC), request_id=request,
            )
        )  # fmt: skip
        anchored = row.batch_state == "anchored"
        return ReadResult(
            record=record, record_id=row.record_id, version=row.version, owner_org=row.owner_org,
            record_type=row.record_type, masked_fields=tuple(masked), purpose=purpose, grant_id=granted,
            emergency=emergency, request_id=request, entry_index=appended.index, checked_block=checked_block,
            ciphertext_hash=row.blob_key, commitment=row.commitment,
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

    def _find(self, record_id: str, version: int | None) -> _IndexedVersion:
        with self._engine.connect() as connection:
            if version is None:
                found = connection.execute(_LATEST_VERSION, {"record_id": record_id}).first()
            else:
                found = connection.execute(_NAMED_VERSION, {"record_id": record_id, "version": version}).first()
        if found is None:
            raise RecordNotVisible(f"no record {record_id}")
        (record, number, owner, record_type, community, blob_key, commitment, key_index, leaf_index, shredded_at,
         root, state, block, tx) = found  # fmt: skip
        return _IndexedVersion(
            record_id=record, version=number, owner_org=owner, record_type=record_type, community_code=community,
            blob_key=blob_key, commitment=commitment, key_index=key_index, leaf_index=leaf_index,
            shredded_at=shredded_at, batch_root=root, batch_state=state, batch_block=block, batch_tx=tx,
        )  # fmt: skip

    def _holds_grant_from(self, caller: str, owner: str) -> bool:
        now = int(self._clock())
        return any(g.spec.owner_org == owner and g.is_active(now=now) for g in self._follower.grants_for(caller))
