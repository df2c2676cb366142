"""The read path: a record leaves the gateway only for a caller a grant covers now, as the chain holds
it, and only once the access entry that covers the release is durable (DESIGN.md invariants 4 and 6).

Order of a read: the follower is brought current with the chain (a revoke or suspension mined before
the read began is seen); the grant is checked in memory at that head with the wall clock (an expired
grant stops at once); the blob is opened with the owner's key and checked against its anchored hash
and commitment; fields are masked for the purpose; the access entry is committed; then, and only
then, the record is returned.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ledger_api.accesslog import AccessLog, Entry
from ledger_api.chain.encoding import AccessDecision, OrganisationKind, Purpose
from ledger_api.chain.follower import ChainFollower
from ledger_api.crypto.envelope import open_record
from ledger_api.crypto.keystore import OrgKeystore
from ledger_api.errors import LedgerError
from ledger_api.index.models import AnchorBatch, RecordVersion
from ledger_api.records.masking import mask_record
from ledger_api.storage.base import BlobStore

#: Decisions that say nothing about the record to a caller holding no grant from its owner: such a
#: refusal answers exactly like a missing record.
HIDING_DECISIONS = frozenset({AccessDecision.UNKNOWN_GRANT, AccessDecision.WRONG_GRANTEE, AccessDecision.WRONG_OWNER})


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
    salt: str | None
    """Hex salt of the content commitment, given only when nothing is masked: with it the reader checks
    SHA-256("ledger/commitment/v1" || salt || canonical JSON) against the anchored commitment."""
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
        emergency_kinds: frozenset[OrganisationKind] = frozenset({OrganisationKind.POLICE}),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._blobs = blobs
        self._keystore = keystore
        self._follower = follower
        self._log = access_log
        self._emergency_kinds = emergency_kinds
        self._clock = clock

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
        row, batch = self._find(record_id, version)
        self._follower.ensure_current()
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
            raise RecordErased(f"record {record_id} version {row.version} was erased at {row.shredded_at.isoformat()}")

        blob = self._blobs.get(row.blob_key)
        opened = open_record(
            blob, org_id=row.owner_org, key_index=row.key_index,
            private_key=self._keystore.private_key(row.owner_org, row.key_index),
            expected_hash=row.blob_key, expected_commitment=row.commitment,
        )  # fmt: skip
        record, masked = mask_record(json.loads(opened.plaintext), masked_for)
        request = request_id or uuid.uuid4().hex
        # The release point: the entry is durable (and so will be anchored) before anything leaves.
        appended = self._log.append(
            Entry.create(
                accessor_org=caller, record_id=row.record_id, version=row.version, owner_org=row.owner_org,
                grant_id=granted, purpose=purpose.label, emergency=emergency, checked_block=checked_block,
                time=datetime.now(UTC), request_id=request,
            )
        )  # fmt: skip
        anchored = batch is not None and batch.state == "anchored"
        return ReadResult(
            record=record, record_id=row.record_id, version=row.version, owner_org=row.owner_org,
            record_type=row.record_type, masked_fields=tuple(masked), purpose=purpose, grant_id=granted,
            emergency=emergency, request_id=request, entry_index=appended.index, checked_block=checked_block,
            ciphertext_hash=row.blob_key, commitment=row.commitment,
            salt=None if masked else opened.salt.hex(),
            batch_root=batch.root if batch else None, leaf_index=row.leaf_index,
            block_number=batch.block_number if anchored and batch else None,
            transaction=batch.tx_hash if anchored and batch else None,
        )  # fmt: skip

    def _find(self, record_id: str, version: int | None) -> tuple[RecordVersion, AnchorBatch | None]:
        with Session(self._engine) as session:
            query = (
                select(RecordVersion, AnchorBatch)
                .join(AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id), isouter=True)
                .where(col(RecordVersion.record_id) == record_id)
            )
            if version is not None:
                query = query.where(col(RecordVersion.version) == version)
            row = session.exec(query.order_by(col(RecordVersion.version).desc()).limit(1)).first()
        if row is None:
            raise RecordNotVisible(f"no record {record_id}")
        return row[0], row[1]

    def _holds_grant_from(self, caller: str, owner: str) -> bool:
        now = int(self._clock())
        return any(g.spec.owner_org == owner and g.is_active(now=now) for g in self._follower.grants_for(caller))
