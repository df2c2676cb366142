"""Batch pending record versions into RFC 9162 trees and anchor the roots, exactly once.

The index is the outbox of the transaction outbox engine (:mod:`ledger_api.outbox.engine`, whose
docstring says why each state exists and how crashes and chain-node restarts are survived). A record
version whose ``batch_id`` is empty waits to be anchored; this module says only what is particular to
record batches:

* a batch is formed per owner organisation once ``batch_max`` versions wait or the oldest waited
  ``max_wait_s``, with at most ``max_in_flight`` batches per signer not yet anchored; its leaves, their
  order and its manifest (stored first, so the root is fixed) are committed as ``assigned``;
* its call is ``RecordAnchors.anchorBatch(root, size, manifest)``, sent by the owner's signer;
* the chain holds it when ``RecordAnchors`` knows the root for that owner (it refuses a root twice), and
  the transaction that anchored it is the one that emitted ``BatchAnchored`` (the status names it).

Each record version belongs to exactly one batch and each root is anchored at most once, so every
acknowledged record is anchored exactly once (DESIGN.md invariant 5).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row, bindparam, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ledger_api.chain.anchor_writer import AnchoredBatch, AnchorWriter
from ledger_api.index.models import AnchorBatch, RecordVersion, SubjectLink
from ledger_api.outbox.engine import OutboxEngine, OutboxWorker
from ledger_api.outbox.ports import Formed, OutboxSettings, Sender, Verdict
from ledger_api.records.leaves import BatchManifest, LeafMetadata, RecordLeaf
from ledger_api.storage.base import BlobWriter

__all__ = ["AnchoringSettings", "AnchoringWorker", "BatchSender"]

log = logging.getLogger(__name__)


class BatchSender(Sender, Protocol):
    """What the worker needs of an owner's signer (:class:`~ledger_api.chain.anchor_writer.AnchorWriter`)."""

    def anchored_batch(self, root: bytes) -> AnchoredBatch | None: ...

    def anchoring_transaction(self, root: bytes, block_number: int) -> str | None: ...


@dataclass(frozen=True, kw_only=True)
class AnchoringSettings(OutboxSettings):
    batch_max: int = 2000
    """Most record versions in one batch (one transaction)."""
    max_wait_s: float = 1.0
    """Longest a pending record waits for its batch to fill before the batch is sent anyway."""
    max_in_flight: int = 4
    """Signed batches per signer not yet anchored before the worker stops forming new ones."""


def _now() -> datetime:
    return datetime.now(UTC)


# The columns of a pending version that a batch needs.
_PENDING = (
    col(RecordVersion.id),
    col(RecordVersion.record_id),
    col(RecordVersion.version),
    col(RecordVersion.blob_key),
    col(RecordVersion.commitment),
    col(RecordVersion.received_at),
    col(RecordVersion.record_type),
    col(RecordVersion.community_code),
)


class AnchoringWorker(OutboxWorker):
    """The record-batch outbox: the client of the one :class:`OutboxEngine` it runs (one lane per owner
    organisation, sent by its signer)."""

    table = AnchorBatch
    newest_first: Sequence[Any] = (col(AnchorBatch.block_number).desc(), col(AnchorBatch.id).desc())

    def __init__(
        self,
        *,
        engine: Engine,
        blobs: BlobWriter,
        writers: Mapping[str, BatchSender],
        settings: AnchoringSettings = AnchoringSettings(),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._engine = engine
        self._blobs = blobs
        self._writers = dict(writers)  # owner organisation id -> its signer's writer
        self._settings = settings
        self._clock = clock
        self._outbox: OutboxEngine[AnchorBatch, AnchoredBatch] = OutboxEngine(
            db=engine, client=self, settings=settings, log=log, name="anchoring", clock=clock
        )

    def lanes(self) -> Mapping[str, BatchSender]:
        return self._writers

    def in_lane(self, lane: str) -> Any:
        return col(AnchorBatch.owner_org) == lane

    def refresh(self) -> bool:
        return False  # the engine's head check is all it takes

    # --- forming batches -------------------------------------------------------------------------

    def form(self, lane: str) -> Formed:
        with Session(self._engine) as session:
            in_flight = int(
                session.scalar(
                    select(func.count()).where(col(AnchorBatch.owner_org) == lane, col(AnchorBatch.state) != "anchored")
                )
                or 0
            )
            if in_flight and in_flight >= self._settings.max_in_flight:
                return Formed.WAITING
            pending = self._due(session, lane)
            if pending is None:
                return Formed.WAITING if in_flight else Formed.NOTHING
            if not pending:
                return Formed.WAITING
            manifest = self._manifest(session, lane, pending)
            self._assign(session, lane, pending, manifest)
        return Formed.FORMED

    def _due(self, session: Session, owner: str) -> Sequence[Row[Any]] | None:
        """The versions of the next batch; empty while it may still fill, None when none is pending."""
        settings = self._settings
        pending = session.execute(
            sa_select(*_PENDING)
            .where(col(RecordVersion.owner_org) == owner, col(RecordVersion.batch_id).is_(None))
            .order_by(col(RecordVersion.id))
            .limit(settings.batch_max)
        ).all()
        if not pending:
            return None
        waited = self._clock() - pending[0].received_at
        if len(pending) < settings.batch_max and waited < timedelta(seconds=settings.max_wait_s):
            return ()
        return pending

    def _manifest(self, session: Session, owner: str, pending: Sequence[Row[Any]]) -> BatchManifest:
        # The manifest carries what an auditor needs to check a read's scope (type, community) and the
        # subjects' and address's blind indexes, since the blobs open for their owner only (records/leaves.py).
        links: dict[tuple[str, str], list[str]] = {}
        for record_id, kind, blind_index in session.execute(
            sa_select(col(SubjectLink.record_id), col(SubjectLink.kind), col(SubjectLink.blind_index)).where(
                col(SubjectLink.record_id).in_({row.record_id for row in pending}),
            )
        ).all():
            links.setdefault((kind, record_id), []).append(blind_index)
        return BatchManifest(
            owner_org=owner,
            leaves=tuple(
                RecordLeaf(
                    record_id=row.record_id,
                    version=row.version,
                    owner_org=owner,
                    ciphertext_hash=row.blob_key,
                    commitment=row.commitment,
                )
                for row in pending
            ),
            metadata=tuple(
                LeafMetadata(
                    record_type=row.record_type,
                    community_code=row.community_code,
                    subjects=tuple(sorted(links.get(("id_number", row.record_id), ()))),
                    addresses=tuple(sorted(links.get(("address", row.record_id), ()))),
                )
                for row in pending
            ),
        )

    def _assign(self, session: Session, owner: str, pending: Sequence[Row[Any]], manifest: BatchManifest) -> None:
        """Store the manifest, then commit the batch and its leaves' order at once (state ``assigned``)."""
        batch = AnchorBatch(
            owner_org=owner,
            signer=self._writers[owner].signer_address,
            root=manifest.root().hex(),
            size=len(pending),
            manifest_key=self._blobs.put(manifest.to_bytes()),
            state="assigned",
            created_at=self._clock(),
        )
        session.add(batch)
        session.flush()
        session.connection().execute(
            update(RecordVersion)
            .where(col(RecordVersion.id) == bindparam("row_id"))
            .values(batch_id=batch.id, leaf_index=bindparam("leaf_index")),
            [{"row_id": row.id, "leaf_index": i} for i, row in enumerate(pending)],
        )
        session.commit()

    # --- sending and what the chain holds --------------------------------------------------------

    def ready(self, session: Session, lane: str) -> Sequence[AnchorBatch]:
        return session.exec(
            select(AnchorBatch)
            .where(col(AnchorBatch.owner_org) == lane, col(AnchorBatch.state) == "assigned")
            .order_by(col(AnchorBatch.id))
        ).all()

    def preflight(self, row: AnchorBatch) -> bool:
        return True  # the contract refuses a root twice: a second copy reverts, harmlessly

    def calldata(self, row: AnchorBatch) -> bytes:
        return AnchorWriter.anchor_batch_calldata(bytes.fromhex(row.root), row.size, bytes.fromhex(row.manifest_key))

    def find(self, row: AnchorBatch) -> AnchoredBatch | None:
        return self._writers[row.owner_org].anchored_batch(bytes.fromhex(row.root))

    def mark(self, row: AnchorBatch, found: AnchoredBatch) -> None:
        # Anchored, but maybe not by the transaction recorded last (an earlier copy mined after all, or
        # the one a replacement was meant to replace): record the one that did, which the status names.
        tx_hash = self._writers[row.owner_org].anchoring_transaction(bytes.fromhex(row.root), found.block_number)
        if tx_hash is not None:
            row.tx_hash = tx_hash

    def verify(self, row: AnchorBatch, head: int) -> Verdict | None:
        writer = self._writers.get(row.owner_org)
        if writer is None:
            return None
        on_chain = writer.anchored_batch(bytes.fromhex(row.root))
        if on_chain is None:
            log.warning(
                "anchoring: batch %s of %s (block %s) is no longer on chain; sending it again",
                row.root, row.owner_org, row.block_number,
            )  # fmt: skip
            return Verdict(kind="lost")
        if on_chain.block_number != row.block_number or (row.block_number or 0) > head:
            return Verdict(kind="moved", block_number=on_chain.block_number)  # anchored again, elsewhere
        return Verdict(kind="held")

    def forget(self, row: AnchorBatch) -> None:
        pass  # the engine clears all a batch keeps of its anchor

    def check_chain(self, session: Session) -> None:
        pass  # nothing on chain can contradict a batch: a root is this owner's or absent

    def adopt(self, session: Session) -> None:
        pass  # a batch anchored by nobody here is not this outbox's
