"""Erasure by crypto-shredding (DESIGN.md "Deletion"): destroy every wrapped data key of a record.

Design:

* **Who.** Only the record's owner erases it; for anyone else the record does not exist (the same
  answer as a missing record).
* **What happens to each version.** The stored blob is replaced by :func:`~ledger_api.crypto.envelope.shred`
  of it (same header, nonce and ciphertext, *no* wrapped keys, shredded flag set). Storage is
  content-addressed, so the shredded blob has a new key; the original blob (the only holder of the
  wrapped keys) is **deleted**. Keeping it would leave the ciphertext openable by anyone holding the
  owner's (or a grantee's) HPKE private key, and those keys cannot be destroyed for one record: they
  open all of that organisation's other records. After shredding no one can open the ciphertext.
* **Index.** ``RecordVersion.blob_key`` keeps the *anchored* hash (status answers and proofs keep using
  it, the chain is untouched and still verifies the original leaf); ``RecordVersion.shredded_at`` is set
  (reads answer 410); the table ``erasures`` (this module) records, per version, the original blob key,
  the shredded blob key, the time and the organisation that erased it.
* **Order, crash safety.** Per version: put the shredded blob, then commit ``shredded_at`` and the
  ``erasures`` row in one transaction (from now on no read opens the blob), then delete the original.
  A crash before the commit leaves the record readable and a repeated DELETE does it all again; a crash
  after it leaves an original that a repeated DELETE (idempotent) removes.
* **Idempotent.** Erasing an erased record succeeds again (200) with the same receipt.
* **Access log.** An erasure is not written to the access log: the log's entries are *releases* (who
  read what under which grant) and an auditor treats each as one; the erasure's own trail is the
  ``erasures`` table and the owner's API call. (An on-chain erasure event would be a contract change.)
* **Leftover copies.** A push that died between writing its blobs and committing its rows left a
  staged blob that no row names (:mod:`ledger_api.records.staging`): another copy of the record, with
  the owner's wrapped key. Erasure discards every staged blob whose header names the record, of a
  version the index holds (an in-flight push of such a version must fail its commit: the version
  exists) or staged longer ago than the grace period (no push is in flight that long). A younger one of
  a *newer* version may be a push of new content right now; if it is a leftover instead, the sweep
  discards it once the grace period is over.
* **Limits.** The shredding is only as good as the deletion of other copies: storage versioning or
  backups of the original blob, and plaintext already released to readers, are out of its reach. A read
  that passed its ``shredded_at`` check just before the commit may still fail to find the original blob
  (an error answer, nothing released).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from ledger_api.crypto.envelope import shred
from ledger_api.errors import LedgerError
from ledger_api.index.models import RecordVersion, UtcDateTime
from ledger_api.records.staging import DEFAULT_GRACE_S, staged_copies
from ledger_api.storage.base import BlobStore


class Erasure(SQLModel, table=True):
    """One crypto-shredded record version: where its anchored blob went, when, and by whom."""

    __tablename__ = "erasures"

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(max_length=64, index=True)
    version: int
    original_blob_key: str = Field(max_length=64)
    """The anchored hash (also still ``RecordVersion.blob_key``); the blob itself is deleted."""
    shredded_blob_key: str = Field(max_length=64)
    """Storage key of the shredded blob: the ciphertext without any wrapped key."""
    erased_at: datetime = Field(sa_type=UtcDateTime)
    erased_by: str = Field(max_length=32)


class ErasureError(LedgerError):
    """Root of erasure refusals."""


class ErasureNotAllowed(ErasureError):
    """No such record, or the caller is not its owner (the same answer either way)."""


@dataclass(frozen=True, kw_only=True)
class ErasedVersion:
    version: int
    original_blob_key: str
    shredded_blob_key: str
    erased_at: datetime


@dataclass(frozen=True, kw_only=True)
class ErasureReceipt:
    record_id: str
    owner_org: str
    versions: tuple[ErasedVersion, ...]
    newly_erased: int
    """How many versions this call shredded (0 when all were shredded before)."""


class ErasureService:
    def __init__(self, *, engine: Engine, blobs: BlobStore, staging_grace_s: float = DEFAULT_GRACE_S) -> None:
        self._engine = engine
        self._blobs = blobs
        self._grace = timedelta(seconds=staging_grace_s)
        Erasure.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]

    def erase(
        self, *, caller: str, record_id: str, owner_may_erase: Callable[[], None] = lambda: None
    ) -> ErasureReceipt:
        """Shred every version of ``record_id`` for its owner ``caller``. ``owner_may_erase`` runs once the
        caller is known to own the record (so that anyone else still gets the same 404) and raises to
        refuse it, e.g. for a suspended owner."""
        with Session(self._engine) as session:
            query = select(RecordVersion).where(col(RecordVersion.record_id) == record_id)
            rows = session.exec(query.order_by(col(RecordVersion.version))).all()
        if not rows or rows[0].owner_org != caller:
            raise ErasureNotAllowed(f"no record {record_id}")
        owner_may_erase()
        newly = 0
        for row in rows:
            if self._erase_version(row, caller):
                newly += 1
        self._discard_staged_copies(record_id, caller, highest=rows[-1].version)
        with Session(self._engine) as session:
            done = session.exec(
                select(Erasure).where(col(Erasure.record_id) == record_id).order_by(col(Erasure.version))
            ).all()
        return ErasureReceipt(
            record_id=record_id,
            owner_org=caller,
            versions=tuple(
                ErasedVersion(
                    version=e.version,
                    original_blob_key=e.original_blob_key,
                    shredded_blob_key=e.shredded_blob_key,
                    erased_at=e.erased_at,
                )
                for e in done
            ),
            newly_erased=newly,
        )

    def _erase_version(self, row: RecordVersion, caller: str) -> bool:
        """Shred one version; true if this call did it, false if it was shredded before."""
        if row.shredded_at is not None:
            # Already committed: only finish a deletion a crash may have interrupted.
            self._blobs.delete(row.blob_key)
            return False
        shredded_key = self._blobs.put(shred(self._blobs.get(row.blob_key)))
        now = datetime.now(UTC)
        with Session(self._engine) as session:
            current = session.get(RecordVersion, row.id)
            if current is None or current.shredded_at is not None:  # a concurrent erasure won
                return False
            current.shredded_at = now
            session.add(current)
            session.add(
                Erasure(
                    record_id=row.record_id,
                    version=row.version,
                    original_blob_key=row.blob_key,
                    shredded_blob_key=shredded_key,
                    erased_at=now,
                    erased_by=caller,
                )
            )
            session.commit()
        self._blobs.delete(row.blob_key)
        return True

    def _discard_staged_copies(self, record_id: str, owner_org: str, *, highest: int) -> None:
        """Discard the staged leftovers of this record (see "Leftover copies" above)."""
        cutoff = datetime.now(UTC) - self._grace
        for blob, header in staged_copies(self._blobs, record_id=record_id, owner_org=owner_org):
            if header.version <= highest or blob.staged_at <= cutoff:
                self._blobs.discard_staged(blob.key)
