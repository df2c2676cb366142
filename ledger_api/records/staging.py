"""The staging area's two ends: promoting a push's blobs after its commit, and the recovery sweep.

A push stages its ciphertexts, commits the index rows that name them, then promotes them into the
shared area (:mod:`ledger_api.storage.base`, "Staging"). A crash, or a failed commit, leaves staged
blobs behind. :class:`StagingSweep` decides each one from the index, at start-up and every
``interval_s``:

* **referenced** — a live index row has exactly this blob key (the push committed, then died before
  promoting): promoted. The record was acknowledged or is about to be, and its blob belongs in the
  shared area where auditors find it. A row that is shredded since then gets its staged blob discarded
  (its erasure already removed every other copy).
* **unreferenced, older than ``grace_s``** — discarded. Nothing can refer to it any more: a push
  commits within seconds of staging, so a staged blob no row names after the grace period is a
  leftover (the client's retry sealed the record afresh, under another key).
* **unreferenced, younger** — kept: it may belong to a push still in flight in this process or in
  another gateway instance sharing the storage and index.

The sweep reads only the staging area and deletes only there; the shared area, where every anchored
leaf, manifest and log segment lives, is never touched, so nothing an anchored batch lists can be
reaped. "Referenced" is looked up by the staged blob's own header (record id, version), which the
index keys on; a blob whose header does not parse is not a record and is discarded after the grace
period like any other leftover.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ledger_api.crypto.envelope import RecordHeader, parse_blob
from ledger_api.crypto.errors import MalformedBlobError
from ledger_api.errors import LedgerError
from ledger_api.index.models import RecordVersion
from ledger_api.storage.base import BlobStore, StagedBlob

log = logging.getLogger(__name__)

#: Default grace period: far beyond the seconds between a push's staging and its commit.
DEFAULT_GRACE_S = 3600.0


class Promotes(Protocol):
    def promote_many(self, keys: Sequence[str]) -> None: ...


def promote_committed(blobs: Promotes, keys: Sequence[str]) -> None:
    """Promote a push's staged ``keys`` once its index commit names them. A failure is logged, not
    raised: the rows are committed and the staged blobs durable (and readable: ``get`` looks in staging
    too), so the record is safe and acknowledging it is right; the next sweep promotes it."""
    try:
        blobs.promote_many(keys)
    except LedgerError as exc:
        log.warning("could not promote %d staged blob(s) after their commit (the sweep will): %s", len(keys), exc)


@dataclass(frozen=True, kw_only=True)
class SweepOutcome:
    promoted: int = 0
    discarded: int = 0
    kept: int = 0
    """Unreferenced but younger than the grace period (perhaps a push in flight)."""


def staged_header(blobs: BlobStore, key: str) -> RecordHeader | None:
    """The record header of staged blob ``key``; None when it is gone or is not a record envelope."""
    try:
        return parse_blob(blobs.get_staged(key)).header
    except MalformedBlobError:
        return None
    except LedgerError as exc:  # promoted or discarded since it was listed, or damaged
        log.info("staged blob %s unreadable: %s", key, exc)
        return None


class StagingSweep:
    """Promote the staged blobs the index refers to, discard the leftovers past ``grace_s``."""

    def __init__(
        self,
        *,
        engine: Engine,
        blobs: BlobStore,
        grace_s: float = DEFAULT_GRACE_S,
        interval_s: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if grace_s < 0 or interval_s <= 0:
            raise ValueError("grace_s must be at least 0 and interval_s positive")
        self._engine = engine
        self._blobs = blobs
        self._grace = timedelta(seconds=grace_s)
        self._interval_s = interval_s
        self._clock = clock

    def sweep(self) -> SweepOutcome:
        """One pass over the staging area."""
        staged = list(self._blobs.iter_staged())
        headers = {s.key: staged_header(self._blobs, s.key) for s in staged}
        live, shredded = self._referenced(h for h in headers.values() if h is not None)
        cutoff = self._clock() - self._grace
        promote: list[str] = []
        discard: list[str] = []
        kept = 0
        for blob in staged:
            header = headers[blob.key]
            version = None if header is None else (header.record_id, header.version)
            if version is not None and live.get(version) == blob.key:
                promote.append(blob.key)
            elif (version is not None and shredded.get(version) == blob.key) or blob.staged_at <= cutoff:
                discard.append(blob.key)
            else:
                kept += 1
        if promote:
            self._blobs.promote_many(promote)
        for key in discard:
            self._blobs.discard_staged(key)
        outcome = SweepOutcome(promoted=len(promote), discarded=len(discard), kept=kept)
        if promote or discard:
            log.info("staging sweep: %s", outcome)
        return outcome

    def run(self, stop: threading.Event) -> None:
        """Sweep every ``interval_s`` until ``stop`` is set (the first sweep runs at start-up, by the caller)."""
        while not stop.wait(self._interval_s):
            try:
                self.sweep()
            except LedgerError as exc:  # storage or index unreachable for now: try again next time
                log.warning("staging sweep failed: %s", exc)

    def _referenced(
        self, headers: Iterable[RecordHeader]
    ) -> tuple[dict[tuple[str, int], str], dict[tuple[str, int], str]]:
        """Blob keys of the index rows of these (record id, version)s: live ones, and shredded ones."""
        live: dict[tuple[str, int], str] = {}
        shredded: dict[tuple[str, int], str] = {}
        record_ids = sorted({h.record_id for h in headers})
        with Session(self._engine) as session:
            for start in range(0, len(record_ids), 500):
                rows = session.exec(
                    select(RecordVersion).where(col(RecordVersion.record_id).in_(record_ids[start : start + 500]))
                ).all()
                for row in rows:
                    target = live if row.shredded_at is None else shredded
                    target[(row.record_id, row.version)] = row.blob_key
        return live, shredded


def staged_copies(blobs: BlobStore, *, record_id: str, owner_org: str) -> list[tuple[StagedBlob, RecordHeader]]:
    """Every staged blob whose header names this record of this owner."""
    found: list[tuple[StagedBlob, RecordHeader]] = []
    for blob in blobs.iter_staged():
        header = staged_header(blobs, blob.key)
        if header is not None and header.record_id == record_id and header.owner_org == owner_org:
            found.append((blob, header))
    return found


__all__ = [
    "DEFAULT_GRACE_S",
    "Promotes",
    "StagingSweep",
    "SweepOutcome",
    "promote_committed",
    "staged_copies",
    "staged_header",
]
