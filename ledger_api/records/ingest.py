"""The write path: validate, version, encrypt, store, index, and queue for anchoring.

A push is acknowledged only after the ciphertext blobs are durable in storage and the index rows
(which are also the anchoring outbox) are committed, so an acknowledged record can never be lost
(DESIGN.md invariant 5). Re-pushing identical content creates nothing; changed content under the
same native id becomes the next version.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from adapters.canonical import (
    CanonicalRecord,
    blind_index,
    canonical_json,
    normalise_address,
    normalise_id_number,
)
from ledger_api.crypto.envelope import RecipientKey, seal_record
from ledger_api.crypto.keystore import OrgKeystore
from ledger_api.errors import LedgerError
from ledger_api.index.models import RecordVersion, SubjectLink
from ledger_api.records.commitment import RECORD_COMMITMENT
from ledger_api.records.record_ids import assign_record_ids
from ledger_api.records.staging import promote_committed

PushStatus = Literal["created", "new_version", "unchanged"]
_COMMUNITY_CODE_MAX: int = RecordVersion.__table__.c.community_code.type.length  # type: ignore[attr-defined]


class IngestError(LedgerError):
    """A push was refused; ``errors`` names each offending record by its position and field."""

    def __init__(self, detail: str, *, errors: Sequence[dict[str, object]] = ()) -> None:
        super().__init__(detail)
        self.errors = list(errors)


class OrganisationNotEnrolled(IngestError):
    """The gateway holds no keys for this organisation, so it cannot encrypt for it."""


class VersionConflict(IngestError):
    """Another push created the same version at the same moment; the push may simply be retried."""


class BlobStore(Protocol):
    def stage_many(self, blobs: Sequence[bytes]) -> list[str]: ...

    def promote_many(self, keys: Sequence[str]) -> None: ...


@dataclass(frozen=True, kw_only=True)
class PushOutcome:
    record_id: str
    version: int
    status: PushStatus


@dataclass(frozen=True, kw_only=True)
class _Planned:
    record: CanonicalRecord
    version: int
    fingerprint: str


def subject_links(consortium_key: bytes, records: Sequence[CanonicalRecord]) -> list[dict[str, str]]:
    """Keyed blind indexes of each record's subjects' ID numbers and of its address (no plaintext)."""
    links: dict[tuple[str, str], dict[str, str]] = {}
    for record in records:
        record_id = record.assigned_record_id
        for subject in record.subjects:
            if subject.id_number:
                index = blind_index(consortium_key, "id_number", normalise_id_number(subject.id_number))
                links[(index, record_id)] = {"blind_index": index, "kind": "id_number", "record_id": record_id}
        address = normalise_address(record.location)
        if address:
            index = blind_index(consortium_key, "address", address)
            links[(index, record_id)] = {"blind_index": index, "kind": "address", "record_id": record_id}
    return list(links.values())


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IngestService:
    def __init__(
        self,
        *,
        engine: Engine,
        blobs: BlobStore,
        keystore: OrgKeystore,
        clock: Callable[[], datetime] = _utcnow,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_stored = on_stored
        """Called once new versions are committed (the gateway wakes its anchoring worker with it)."""
        self._engine = engine
        self._blobs = blobs
        self._keystore = keystore
        self._clock = clock
        self._consortium_key = keystore.consortium_key()
        for org_id in keystore.org_ids():
            # As the master secret is at start-up: a demo record-id key outside demo mode stops the gateway here.
            keystore.record_id_key(org_id)
        self._owner_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def push(self, *, org_id: str, records: Sequence[CanonicalRecord]) -> list[PushOutcome]:
        """Store ``records`` for ``org_id``; returns one outcome per record, in order."""
        self._validate(org_id, records)
        try:
            key_index, public_key = self._keystore.current(org_id)
        except LedgerError as exc:
            raise OrganisationNotEnrolled(f"organisation {org_id} has no keys at this gateway: {exc}") from exc
        owner_key = RecipientKey(org_id=org_id, key_index=key_index, public_key=public_key)
        with self._owner_locks[org_id]:
            try:
                return self._push_locked(org_id, records, owner_key)
            except IntegrityError as exc:
                raise VersionConflict("a concurrent push created the same record version; retry") from exc

    def _validate(self, org_id: str, records: Sequence[CanonicalRecord]) -> None:
        errors: list[dict[str, object]] = []
        for position, record in enumerate(records):
            if record.owner_org != org_id:
                errors.append(
                    {
                        "index": position,
                        "field": "owner_org",
                        "message": f"owner_org is {record.owner_org!r}; this key belongs to {org_id!r}",
                    }
                )
                continue
            # The index column is VARCHAR(32), and PostgreSQL text cannot hold NUL: both answered 500 on
            # PostgreSQL only, after the blob was written (tests/ledger_api/gateway/test_backends_devnet.py).
            if len(record.community_code) > _COMMUNITY_CODE_MAX or "\x00" in record.community_code:
                errors.append(
                    {
                        "index": position,
                        "field": "community_code",
                        "message": f"community_code must have at most {_COMMUNITY_CODE_MAX} characters and no NUL",
                    }
                )
            # The schema's pattern admits any 18 digits; the blind index needs a valid GB 11643 number, and a
            # pushed record that failed here used to escape as a 500 after its blob was written (schemathesis).
            for number, subject in enumerate(record.subjects):
                if subject.id_number:
                    try:
                        normalise_id_number(subject.id_number)
                    except ValueError as exc:
                        errors.append({"index": position, "field": f"subjects.{number}.id_number", "message": str(exc)})
        if errors:
            raise IngestError(f"{len(errors)} of {len(records)} record(s) rejected; nothing was stored", errors=errors)

    def _latest(self, session: Session, record_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        latest: dict[str, tuple[int, str]] = {}
        unique = sorted(set(record_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            newest = (
                select(col(RecordVersion.record_id), func.max(RecordVersion.version).label("version"))
                .where(col(RecordVersion.record_id).in_(chunk))
                .group_by(col(RecordVersion.record_id))
                .subquery()
            )
            rows = session.exec(
                select(RecordVersion.record_id, RecordVersion.version, RecordVersion.fingerprint).join(
                    newest,
                    (col(RecordVersion.record_id) == newest.c.record_id)
                    & (col(RecordVersion.version) == newest.c.version),
                )
            ).all()
            latest.update({record_id: (version, fingerprint) for record_id, version, fingerprint in rows})
        return latest

    def _assign_ids(
        self, session: Session, org_id: str, records: Sequence[CanonicalRecord]
    ) -> tuple[list[CanonicalRecord], dict[str, tuple[int, str]]]:
        """Each record with the id it is stored under (see :mod:`ledger_api.records.record_ids`), and the
        newest stored version of every candidate id."""
        latest: dict[str, tuple[int, str]] = {}

        def stored(record_ids: list[str]) -> dict[str, tuple[int, str]]:
            latest.update(self._latest(session, record_ids))
            return latest

        assigned, errors = assign_record_ids(key=self._keystore.record_id_key(org_id), records=records, stored=stored)
        if errors:
            raise IngestError(f"{len(errors)} of {len(records)} record(s) rejected; nothing was stored", errors=errors)
        return assigned, latest

    def _push_locked(
        self, org_id: str, records: Sequence[CanonicalRecord], owner_key: RecipientKey
    ) -> list[PushOutcome]:
        outcomes: list[PushOutcome] = []
        planned: list[_Planned] = []
        with Session(self._engine) as session:
            records, latest = self._assign_ids(session, org_id, records)
            for record in records:
                record_id = record.assigned_record_id
                fingerprint = record.content_fingerprint()
                current = latest.get(record_id)
                if current is not None and current[1] == fingerprint:
                    outcomes.append(PushOutcome(record_id=record_id, version=current[0], status="unchanged"))
                    continue
                version = current[0] + 1 if current else 1
                latest[record_id] = (version, fingerprint)
                planned.append(_Planned(record=record, version=version, fingerprint=fingerprint))
                outcomes.append(
                    PushOutcome(record_id=record_id, version=version, status="new_version" if current else "created")
                )
            if not planned:
                return outcomes

            sealed = [
                seal_record(
                    plaintext=canonical_json(p.record),
                    record_id=p.record.assigned_record_id,
                    owner_org=org_id,
                    record_type=str(p.record.record_type),
                    version=p.version,
                    recipients={org_id: owner_key},
                    commitment_scheme=RECORD_COMMITMENT,
                )
                for p in planned
            ]
            # Durable ciphertext first, then the index rows: a row never points at a missing blob. Staged, out
            # of the auditors' sight, until the commit names them: what a crash in between leaves is swept.
            staged = self._blobs.stage_many([s.blob for s in sealed])
            received_at = self._clock()
            rows = [
                {
                    "record_id": p.record.assigned_record_id,
                    "version": p.version,
                    "owner_org": org_id,
                    "record_type": str(p.record.record_type),
                    "community_code": p.record.community_code,
                    "occurred_at": p.record.occurred_at.astimezone(UTC),
                    "received_at": received_at,
                    "fingerprint": p.fingerprint,
                    "blob_key": s.ciphertext_hash,
                    "commitment": s.commitment,
                    "key_index": owner_key.key_index,
                }
                for p, s in zip(planned, sealed, strict=True)
            ]
            connection = session.connection()
            connection.execute(insert(RecordVersion), rows)
            links = subject_links(self._consortium_key, [p.record for p in planned])
            if links:
                existing = self._existing_links(session, links)
                fresh = [link for link in links if (link["blind_index"], link["record_id"]) not in existing]
                if fresh:
                    connection.execute(insert(SubjectLink), fresh)
            session.commit()
        promote_committed(self._blobs, staged)
        self._on_stored()
        return outcomes

    @staticmethod
    def _existing_links(session: Session, links: Sequence[dict[str, str]]) -> set[tuple[str, str]]:
        record_ids = sorted({link["record_id"] for link in links})
        found: set[tuple[str, str]] = set()
        for start in range(0, len(record_ids), 500):
            rows = session.exec(
                select(SubjectLink.blind_index, SubjectLink.record_id).where(
                    col(SubjectLink.record_id).in_(record_ids[start : start + 500])
                )
            ).all()
            found.update((b, r) for b, r in rows)
        return found
