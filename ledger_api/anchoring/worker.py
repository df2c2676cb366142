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

Chain-node restarts. A node restarted from older state (anvil killed between two state dumps, a node
restored from a backup) has lost the newest blocks: anchors the worker saw mined are gone, and the
signer's nonce went back. The worker does not trust what it saw before: at start and after every
failure it re-verifies the newest anchored batches against the chain (newest first, down to the first
one still there, since the chain keeps a prefix of its history) and puts the lost ones back to
``signed``, so that their very same transactions are sent again. A nonce that no recorded transaction
will ever use again (its transaction was in a lost block) would hold every later transaction of that
signer in the node's queue forever: such a gap is filled with a transaction that does nothing.

The loop never dies: a chain outage is retried with backoff, and so is any other error (logged with
its traceback); ``errors``/``last_error`` tell what happened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, bindparam, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ledger_api.chain.anchor_writer import AnchorWriter, BroadcastOutcome, SignedTx
from ledger_api.chain.errors import ChainError
from ledger_api.index.models import AnchorBatch, RecordVersion, SubjectLink
from ledger_api.records.leaves import BatchManifest, LeafMetadata, RecordLeaf

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
    idle_poll_s: float = 1.0
    """Wait between steps while nothing is pending or in flight; a push wakes the worker at once
    (:meth:`AnchoringWorker.wake`). Polling 20 times a second with nothing to do cost every read ~10 %
    of a core's time on a 2-core gateway."""
    backoff_max_s: float = 5.0
    gap_grace_s: float = 1.0
    """How long a nonce gap below a signer's queued transactions must last before it is filled."""


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
        # True at start and after any failure: the chain may have lost blocks meanwhile (see the module
        # docstring), so the newest anchors are checked against it before anything else is done.
        self._verify_anchors = True
        self._gap_since: dict[str, datetime] = {}
        self._rebroadcast_at: dict[int, datetime] = {}
        self._resend: set[int] = set()  # signed batches to send again at once (the node may have lost them)
        self._wake = threading.Event()
        self._idle = False  # the last step found nothing pending and nothing in flight
        self.errors = 0
        """Failed steps since the worker was made (chain outages included)."""
        self.last_error: str | None = None

    # --- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; every failure is logged and retried with backoff, never fatal."""
        while not stop.is_set():
            try:
                busy = self.run_once()
            except BaseException:
                # Not even a KeyboardInterrupt or SystemExit in this thread may end it unnoticed.
                log.critical("anchoring: the worker stops on an error it cannot survive", exc_info=True)
                raise
            if self._backoff_s:
                stop.wait(self._backoff_s)
            elif not busy and self._idle:
                self._wake.wait(self._settings.idle_poll_s)  # a push or a stop sets it
                self._wake.clear()
            elif not busy:
                stop.wait(self._settings.poll_s)

    def wake(self) -> None:
        """New versions are pending (or the worker should stop): take the next step now."""
        self._wake.set()

    def run_once(self) -> bool:
        """One step with the loop's error handling: True when something moved.

        A failure, whatever it is, is logged and counted, and sets the backoff ``run`` waits before the
        next step. It used to be that only :class:`ChainError` was caught, so any other exception (a
        database error, a storage error, an undecodable answer from a node that lost the contract) ended
        the worker thread silently while the gateway kept acknowledging pushes that were never anchored.
        """
        try:
            busy = self.step()
        except Exception as exc:  # the worker must outlive any one failure; see the docstring
            self._failed(exc)
            return False
        self._backoff_s = 0.0
        return busy

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._backoff_s = min(max(self._backoff_s * 2, 0.2), self._settings.backoff_max_s)
        # Whatever failed, what this worker believes about the chain may be stale now (the node may be
        # restarting from older state): nonces are read again, anchors verified again.
        self._next_nonce.clear()
        self._verify_anchors = True
        if isinstance(exc, ChainError):
            log.warning("anchoring: chain unavailable (%s); retrying in %.1fs", exc, self._backoff_s)
        else:
            log.error("anchoring: step failed; retrying in %.1fs", self._backoff_s, exc_info=exc)

    def step(self) -> bool:
        """One pass over every signer; True when something moved. Raises on any failure."""
        busy = False
        self._idle = True  # until an owner shows pending versions or batches in flight
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
            if in_flight:
                self._idle = False
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
                    col(RecordVersion.record_type),
                    col(RecordVersion.community_code),
                )
                .where(col(RecordVersion.owner_org) == owner, col(RecordVersion.batch_id).is_(None))
                .order_by(col(RecordVersion.id))
                .limit(settings.batch_max)
            ).all()
            if not pending:
                return False
            self._idle = False
            oldest = pending[0].received_at
            if len(pending) < settings.batch_max and self._clock() - oldest < timedelta(seconds=settings.max_wait_s):
                return False
            # The manifest carries what an auditor needs to check a read's scope (type, community) and
            # the subjects' blind indexes, since the blobs open for their owner only (records/leaves.py).
            subjects: dict[str, list[str]] = {}
            for record_id, blind_index in session.execute(
                sa_select(col(SubjectLink.record_id), col(SubjectLink.blind_index)).where(
                    col(SubjectLink.kind) == "id_number",
                    col(SubjectLink.record_id).in_({row.record_id for row in pending}),
                )
            ).all():
                subjects.setdefault(record_id, []).append(blind_index)
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
                metadata=tuple(
                    LeafMetadata(
                        record_type=row.record_type,
                        community_code=row.community_code,
                        subjects=tuple(sorted(subjects.get(row.record_id, ()))),
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
                self._sign_and_send(session, batch, writer, nonce=self._nonce_for(writer))
            return bool(assigned)

    def _calldata(self, batch: AnchorBatch) -> bytes:
        return AnchorWriter.anchor_batch_calldata(
            bytes.fromhex(batch.root), batch.size, bytes.fromhex(batch.manifest_key)
        )

    def _sign_and_send(self, session: Session, batch: AnchorBatch, writer: AnchorWriter, *, nonce: int) -> None:
        tx = writer.sign(self._calldata(batch), nonce=nonce)
        self._record_tx(session, batch, tx)
        # The nonce counts as used only once a batch holds it. It used to be taken before signing: a
        # node that went away during ``sign`` left a nonce no transaction would ever use, and every
        # later transaction of that signer waited behind the gap in the node's queue, forever.
        self._next_nonce[writer.address] = max(self._next_nonce.get(writer.address, 0), tx.nonce + 1)
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
                self._sign_and_send(session, batch, writer, nonce=self._nonce_for(writer))
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
                self._gap_since.pop(writer.address, None)
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
            moved |= self._fill_nonce_gap(session, owner, writer)
        return moved

    def _unstick(self, session: Session, batch: AnchorBatch, writer: AnchorWriter) -> None:
        now = self._clock()
        mined_nonce, _pending = writer.nonces()
        assert batch.id is not None
        assert batch.nonce is not None
        assert batch.raw_tx is not None
        assert batch.tx_hash is not None
        stored = SignedTx(nonce=batch.nonce, tx_hash=batch.tx_hash, raw=batch.raw_tx, fee_level=batch.fee_level or 0)
        if mined_nonce > batch.nonce:
            # The nonce is used. Possibly by this very transaction, in a block mined since its receipt
            # and root were looked up a moment ago (with a block time that happens): look again before
            # signing anew, or the batch gets a second, reverting transaction and its status names that.
            if writer.receipt(batch.tx_hash) is not None or self._settle_if_anchored(session, batch, writer):
                return
            # Used by another transaction and the root is not on chain: sign anew.
            batch.state = "assigned"
            session.add(batch)
            session.commit()
            return
        if batch.sent_at is None or batch.id in self._resend:
            # Never sent, anchored in a block the node lost, or sent to a node that may have lost its
            # pool since (an outage): the same bytes again are harmless. The age of a batch never sent
            # used to be counted from ``created_at``, so a lost anchor was re-sent and at once replaced
            # by a new transaction that, the old one being mined first, never was.
            self._resend.discard(batch.id)
            writer.broadcast(stored)
            batch.sent_at = batch.sent_at or now
            self._rebroadcast_at[batch.id] = now
        else:
            age = (now - batch.sent_at).total_seconds()
            if age > self._settings.stuck_after_s:
                replacement = writer.replacement(self._calldata(batch), stored)
                if replacement.tx_hash != stored.tx_hash:
                    self._record_tx(session, batch, replacement)
                writer.broadcast(replacement)
                batch.sent_at = now
            elif age > self._settings.stuck_after_s / 4:
                # Dropped from the pool? Sending the same bytes again is harmless; once in a while is enough.
                last = self._rebroadcast_at.get(batch.id, batch.sent_at)
                if (now - last).total_seconds() > self._settings.stuck_after_s / 4:
                    writer.broadcast(stored)
                    self._rebroadcast_at[batch.id] = now
        session.add(batch)
        session.commit()

    def _fill_nonce_gap(self, session: Session, owner: str, writer: AnchorWriter) -> bool:
        """Fill nonces below this signer's lowest waiting transaction that nothing will ever use.

        Transactions wait in the node's queue until every lower nonce of their sender is used. After a
        node lost blocks, a nonce can belong to no recorded transaction any more (it was used by one that
        reverted, or was replaced by a transaction of another batch, in a lost block): then nothing would
        ever be mined for this signer again. Such a gap is filled with transactions that do nothing.
        """
        lowest = session.scalar(
            select(func.min(AnchorBatch.nonce)).where(
                col(AnchorBatch.signer) == writer.address, col(AnchorBatch.state) == "signed"
            )
        )
        if lowest is None:
            self._gap_since.pop(writer.address, None)
            return False
        _mined, pending = writer.nonces()
        if lowest <= pending:
            self._gap_since.pop(writer.address, None)
            return False
        now = self._clock()
        since = self._gap_since.setdefault(writer.address, now)
        if (now - since).total_seconds() < self._settings.gap_grace_s:
            return False
        log.warning(
            "anchoring: %s (%s) has no transaction at nonces %d..%d below its waiting ones; filling the gap",
            writer.address,
            owner,
            pending,
            lowest - 1,
        )
        for nonce in range(pending, lowest):
            writer.broadcast(writer.filler(nonce=nonce))
        self._gap_since.pop(writer.address, None)
        return True

    def _settle_if_anchored(self, session: Session, batch: AnchorBatch, writer: AnchorWriter) -> bool:
        anchored = writer.anchored_batch(bytes.fromhex(batch.root))
        if anchored is None:
            return False
        if writer.rpc.block_number() - anchored.block_number < self._settings.confirmations:
            return True  # on chain, not yet deep enough: leave it signed
        # Anchored, but maybe not by the transaction recorded last (an earlier copy mined after all, or
        # the one a replacement was meant to replace): record the one that did, which the status names.
        tx_hash = writer.anchoring_transaction(bytes.fromhex(batch.root), anchored.block_number)
        self._mark_anchored(session, batch, anchored.block_number, tx_hash=tx_hash)
        return True

    def _mark_anchored(
        self, session: Session, batch: AnchorBatch, block_number: int, *, tx_hash: str | None = None
    ) -> None:
        batch.state = "anchored"
        batch.block_number = block_number
        batch.anchored_at = self._clock()
        self._highest_head = max(self._highest_head, block_number)
        if tx_hash is not None:
            batch.tx_hash = tx_hash
        session.add(batch)
        session.commit()
        if batch.id is not None:
            self._rebroadcast_at.pop(batch.id, None)

    # --- nonces and chain restarts ---------------------------------------------------------------

    def _nonce_for(self, writer: AnchorWriter) -> int:
        """The nonce the next new transaction of ``writer`` gets (used up once a batch records it)."""
        if writer.address not in self._next_nonce:
            self._resync_nonce(writer)
        return self._next_nonce[writer.address]

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
        """A chain whose head went back (a node restarted from older state) may have lost anchors.

        It used to compare the head only with the highest head this worker had seen at the start of a
        step, and nothing else: a worker started after the node lost blocks (the gateway restarted too),
        an anchor seen mined only through its receipt (in a block above that head), or a chain grown past
        its old head again before the worker looked, all left batches marked anchored that the chain no
        longer held, and their records were never anchored. Now a head below any block seen (anchors
        included), the worker's start and any failure lead to :meth:`_reverify_anchors`.
        """
        if not self._writers:
            return
        head = next(iter(self._writers.values())).rpc.block_number()
        went_back = head < self._highest_head
        if went_back:
            log.warning(
                "anchoring: chain head %d is below block %d seen before; re-checking anchors", head, self._highest_head
            )
        if went_back or self._verify_anchors:
            self._reverify_anchors(head)
            self._next_nonce.clear()
            self._verify_anchors = False
        self._highest_head = head

    def _reverify_anchors(self, head: int) -> None:
        """Put anchored batches the chain no longer holds back to ``signed``, to be sent again.

        Newest first, down to the first batch still anchored at the block recorded for it: the chain a
        node restarted with is a prefix of the one it had, so everything older is still there. Every
        signed batch is sent again promptly too: the node's pool may be gone.
        """
        lost: list[int] = []
        moved: list[tuple[int, int]] = []
        with Session(self._engine) as session:
            after: tuple[int, int] | None = None  # (block_number, id) of the last batch looked at
            checked = False
            while not checked:
                query = sa_select(
                    col(AnchorBatch.id),
                    col(AnchorBatch.block_number),
                    col(AnchorBatch.owner_org),
                    col(AnchorBatch.root),
                ).where(col(AnchorBatch.state) == "anchored")
                if after is not None:
                    query = query.where(
                        or_(
                            col(AnchorBatch.block_number) < after[0],
                            and_(col(AnchorBatch.block_number) == after[0], col(AnchorBatch.id) < after[1]),
                        )
                    )
                page = session.execute(
                    query.order_by(col(AnchorBatch.block_number).desc(), col(AnchorBatch.id).desc()).limit(64)
                ).all()
                if not page:
                    break
                for batch_id, block_number, owner, root in page:
                    after = (block_number or 0, batch_id)
                    writer = self._writers.get(owner)
                    if writer is None:
                        continue  # not ours to check (nor to send again)
                    on_chain = writer.anchored_batch(bytes.fromhex(root))
                    if on_chain is None:
                        log.warning(
                            "anchoring: batch %s of %s (block %s) is no longer on chain; sending it again",
                            root,
                            owner,
                            block_number,
                        )
                        lost.append(batch_id)
                    elif on_chain.block_number != block_number or block_number > head:
                        moved.append((batch_id, on_chain.block_number))  # anchored again, elsewhere
                    else:
                        checked = True
                        break
            if lost:
                session.execute(
                    update(AnchorBatch)
                    .where(col(AnchorBatch.id).in_(lost))
                    .values(state="signed", sent_at=None, block_number=None, anchored_at=None)
                )
            for batch_id, block_number in moved:
                session.execute(
                    update(AnchorBatch).where(col(AnchorBatch.id) == batch_id).values(block_number=block_number)
                )
            session.commit()
            signed = session.exec(select(AnchorBatch.id).where(col(AnchorBatch.state) == "signed")).all()
            self._resend = {batch_id for batch_id in signed if batch_id is not None}
        if lost:
            log.warning("anchoring: %d anchored batch(es) were lost with the chain's newest blocks", len(lost))
