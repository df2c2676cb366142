"""Batch pending record versions into RFC 9162 trees and anchor the roots, exactly once.

The index is the outbox. A record version whose ``batch_id`` is empty waits to be anchored. The
worker moves each batch through states that are all committed before the next step runs:

``assigned``  the leaves and their order are fixed, the manifest is stored (so the root is fixed);
``signed``    the transaction (nonce, hash, raw bytes) is recorded, then broadcast;
``anchored``  mined, with the configured confirmations.

After a crash at any point the worker resumes from the committed state: it re-sends the very same
signed transaction, and decides what happened by asking the chain whether the batch's root is
anchored (``RecordAnchors`` refuses a root twice). Each record version belongs to exactly one batch,
and each root is anchored at most once, so every acknowledged record is anchored exactly once
(DESIGN.md invariant 5), across gateway crashes and chain-node restarts.

One writer per signer: the worker is the only sender for the signers it is given, and keeps their
nonces explicitly (a stuck transaction is replaced at the same nonce with a higher fee).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ledger_api.chain.anchor_writer import AnchorWriter, BroadcastOutcome, SignedTx
from ledger_api.chain.errors import ChainError
from ledger_api.index.models import AnchorBatch, RecordVersion
from ledger_api.records.leaves import BatchManifest, RecordLeaf

log = logging.getLogger(__name__)


class BlobWriter(Protocol):
    def put(self, data: bytes) -> str: ...


@dataclass(frozen=True, kw_only=True)
class AnchoringSettings:
    batch_max: int = 2000
    """Most record versions in one batch (one transaction)."""
    max_wait_s: float = 1.0
    """Longest a pending record waits for its batch to fill before the batch is sent anyway."""
    max_in_flight: int = 4
    """Signed batches per signer not yet anchored before the worker stops forming new ones."""
    confirmations: int = 0
    stuck_after_s: float = 20.0
    """A sent transaction not mined after this long is re-sent, then replaced with a higher fee."""
    poll_s: float = 0.05
    backoff_max_s: float = 5.0


def _now() -> datetime:
    return datetime.now(UTC)


class AnchoringWorker:
    def __init__(
        self,
        *,
        engine: Engine,
        blobs: BlobWriter,
        writers: Mapping[str, AnchorWriter],
        settings: AnchoringSettings = AnchoringSettings(),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._engine = engine
        self._blobs = blobs
        self._writers = dict(writers)  # owner organisation id -> its signer's writer
        self._settings = settings
        self._clock = clock
        self._next_nonce: dict[str, int] = {}
        self._highest_head = 0
        self._backoff_s = 0.0

    # --- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; chain outages are retried with backoff, never fatal."""
        while not stop.is_set():
            try:
                busy = self.step()
                self._backoff_s = 0.0
            except ChainError as exc:
                self._backoff_s = min(max(self._backoff_s * 2, 0.2), self._settings.backoff_max_s)
                log.warning("anchoring: chain unavailable (%s); retrying in %.1fs", exc, self._backoff_s)
                stop.wait(self._backoff_s)
                continue
            if not busy:
                stop.wait(self._settings.poll_s)

    def step(self) -> bool:
        """One pass over every signer; True when something moved."""
        busy = False
        self._check_head()
        for owner, writer in self._writers.items():
            busy |= self._confirm(owner, writer)
            busy |= self._form_batch(owner)
            busy |= self._send_assigned(owner, writer)
        return busy

    # --- forming batches -------------------------------------------------------------------------

    def _form_batch(self, owner: str) -> bool:
        settings = self._settings
        with Session(self._engine) as session:
            in_flight = session.scalar(
                select(func.count()).where(col(AnchorBatch.owner_org) == owner, col(AnchorBatch.state) != "anchored")
            )
            if in_flight and in_flight >= settings.max_in_flight:
                return False
            pending = session.execute(
                sa_select(
                    col(RecordVersion.id),
                    col(RecordVersion.record_id),
                    col(RecordVersion.version),
                    col(RecordVersion.blob_key),
                    col(RecordVersion.commitment),
                    col(RecordVersion.received_at),
                )
                .where(col(RecordVersion.owner_org) == owner, col(RecordVersion.batch_id).is_(None))
                .order_by(col(RecordVersion.id))
                .limit(settings.batch_max)
            ).all()
            if not pending:
                return False
            oldest = pending[0].received_at
            if len(pending) < settings.batch_max and self._clock() - oldest < timedelta(seconds=settings.max_wait_s):
                return False
            manifest = BatchManifest(
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
            )
            root = manifest.root().hex()
            manifest_key = self._blobs.put(manifest.to_bytes())
            batch = AnchorBatch(
                owner_org=owner,
                signer=self._writers[owner].address,
                root=root,
                size=len(pending),
                manifest_key=manifest_key,
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
        return True

    # --- sending -----------------------------------------------------------------------------------

    def _send_assigned(self, owner: str, writer: AnchorWriter) -> bool:
        with Session(self._engine) as session:
            assigned = session.exec(
                select(AnchorBatch)
                .where(col(AnchorBatch.owner_org) == owner, col(AnchorBatch.state) == "assigned")
                .order_by(col(AnchorBatch.id))
            ).all()
            for batch in assigned:
                self._sign_and_send(session, batch, writer, nonce=self._take_nonce(writer))
            return bool(assigned)

    def _calldata(self, batch: AnchorBatch) -> bytes:
        return AnchorWriter.anchor_batch_calldata(
            bytes.fromhex(batch.root), batch.size, bytes.fromhex(batch.manifest_key)
        )

    def _sign_and_send(self, session: Session, batch: AnchorBatch, writer: AnchorWriter, *, nonce: int) -> None:
        tx = writer.sign(self._calldata(batch), nonce=nonce)
        self._record_tx(session, batch, tx)
        self._broadcast(session, batch, writer, tx)

    def _record_tx(self, session: Session, batch: AnchorBatch, tx: SignedTx) -> None:
        # Committed before the broadcast: after a crash the same transaction is sent again.
        batch.state = "signed"
        batch.nonce = tx.nonce
        batch.tx_hash = tx.tx_hash
        batch.raw_tx = tx.raw
        batch.fee_level = tx.fee_level
        batch.attempts += 1
        session.add(batch)
        session.commit()

    def _broadcast(self, session: Session, batch: AnchorBatch, writer: AnchorWriter, tx: SignedTx) -> None:
        outcome = writer.broadcast(tx)
        if outcome in (BroadcastOutcome.ACCEPTED, BroadcastOutcome.ALREADY_KNOWN):
            batch.sent_at = self._clock()
        elif outcome is BroadcastOutcome.NONCE_TOO_LOW:
            # The nonce is used: by this very transaction (mined), or by another one. The root decides.
            if not self._settle_if_anchored(session, batch, writer):
                self._resync_nonce(writer)
                self._sign_and_send(session, batch, writer, nonce=self._take_nonce(writer))
                return
        elif outcome is BroadcastOutcome.UNDERPRICED:
            replacement = writer.replacement(self._calldata(batch), tx)
            self._record_tx(session, batch, replacement)
            writer.broadcast(replacement)
            batch.sent_at = self._clock()
        else:
            log.error("anchoring: batch %s rejected by the node; will retry", batch.root)
            batch.sent_at = self._clock()
        session.add(batch)
        session.commit()

    # --- confirming --------------------------------------------------------------------------------

    def _confirm(self, owner: str, writer: AnchorWriter) -> bool:
        moved = False
        with Session(self._engine) as session:
            signed = session.exec(
                select(AnchorBatch)
                .where(col(AnchorBatch.owner_org) == owner, col(AnchorBatch.state) == "signed")
                .order_by(col(AnchorBatch.nonce))
            ).all()
            if not signed:
                return False
            head = writer.rpc.block_number()
            for batch in signed:
                assert batch.tx_hash is not None
                receipt = writer.receipt(batch.tx_hash)
                if receipt is not None:
                    mined_in = int(str(receipt["blockNumber"]), 16)
                    if int(str(receipt["status"]), 16) == 1:
                        if head - mined_in >= self._settings.confirmations:
                            self._mark_anchored(session, batch, mined_in)
                            moved = True
                        continue
                    # Reverted: most likely the root was anchored by an earlier copy of this batch.
                    if self._settle_if_anchored(session, batch, writer):
                        moved = True
                    else:
                        batch.state = "assigned"
                        session.add(batch)
                        session.commit()
                    continue
                if self._settle_if_anchored(session, batch, writer):
                    moved = True
                    continue
                self._unstick(session, batch, writer)
        return moved

    def _unstick(self, session: Session, batch: AnchorBatch, writer: AnchorWriter) -> None:
        sent_at = batch.sent_at or batch.created_at
        age = (self._clock() - sent_at).total_seconds()
        mined_nonce, _pending = writer.nonces()
        assert batch.nonce is not None
        assert batch.raw_tx is not None
        assert batch.tx_hash is not None
        stored = SignedTx(nonce=batch.nonce, tx_hash=batch.tx_hash, raw=batch.raw_tx, fee_level=batch.fee_level or 0)
        if mined_nonce > batch.nonce:
            # Our nonce was consumed by another transaction and the root is not on chain: sign anew.
            batch.state = "assigned"
            session.add(batch)
            session.commit()
            return
        if batch.sent_at is None or age > self._settings.stuck_after_s / 4:
            # Dropped from the pool (node restart) or never sent: the same bytes again are harmless.
            outcome = writer.broadcast(stored)
            if outcome is BroadcastOutcome.NONCE_TOO_LOW:
                return
        if age > self._settings.stuck_after_s:
            replacement = writer.replacement(self._calldata(batch), stored)
            if replacement.tx_hash != stored.tx_hash:
                self._record_tx(session, batch, replacement)
                writer.broadcast(replacement)
            batch.sent_at = self._clock()
        elif batch.sent_at is None:
            batch.sent_at = self._clock()
        session.add(batch)
        session.commit()

    def _settle_if_anchored(self, session: Session, batch: AnchorBatch, writer: AnchorWriter) -> bool:
        anchored = writer.anchored_batch(bytes.fromhex(batch.root))
        if anchored is None:
            return False
        if writer.rpc.block_number() - anchored.block_number < self._settings.confirmations:
            return True  # on chain, not yet deep enough: leave it signed
        self._mark_anchored(session, batch, anchored.block_number)
        return True

    def _mark_anchored(self, session: Session, batch: AnchorBatch, block_number: int) -> None:
        batch.state = "anchored"
        batch.block_number = block_number
        batch.anchored_at = self._clock()
        session.add(batch)
        session.commit()

    # --- nonces and chain restarts ---------------------------------------------------------------

    def _take_nonce(self, writer: AnchorWriter) -> int:
        if writer.address not in self._next_nonce:
            self._resync_nonce(writer)
        nonce = self._next_nonce[writer.address]
        self._next_nonce[writer.address] = nonce + 1
        return nonce

    def _resync_nonce(self, writer: AnchorWriter) -> None:
        _mined, pending = writer.nonces()
        with Session(self._engine) as session:
            highest = session.scalar(
                select(func.max(AnchorBatch.nonce)).where(
                    col(AnchorBatch.signer) == writer.address, col(AnchorBatch.state) == "signed"
                )
            )
        self._next_nonce[writer.address] = max(pending, (highest + 1) if highest is not None else 0)

    def _check_head(self) -> None:
        """A chain whose head went back (a node restarted from older state) may have lost anchors."""
        if not self._writers:
            return
        head = next(iter(self._writers.values())).rpc.block_number()
        if head < self._highest_head:
            log.warning("anchoring: chain head went back from %d to %d; re-checking anchors", self._highest_head, head)
            with Session(self._engine) as session:
                session.execute(
                    update(AnchorBatch)
                    .where(col(AnchorBatch.state) == "anchored", col(AnchorBatch.block_number) > head)
                    .values(state="signed", sent_at=None)
                )
                session.commit()
            self._next_nonce.clear()
        self._highest_head = head
