"""One transaction outbox engine: rows of a table become transactions mined exactly once.

Record batches (:mod:`ledger_api.anchoring.worker`) and access-log tree heads
(:mod:`ledger_api.accesslog.anchorer`) are two clients of this engine. The database table is the
outbox; a row moves through states that are all committed before the next step runs:

``assigned``  what the transaction will say is fixed (a batch's leaves and manifest, a head's size and
              root), nothing is signed: after a crash it is signed, at whatever nonce is free then;
``signed``    the transaction (nonce, hash, raw bytes) is recorded *before* it is broadcast, so after a
              crash the very same transaction is sent again ("already known" is success);
``anchored``  the chain holds the row's call, with the configured confirmations.

The chain decides, not what the engine saw happen to one transaction. Each client's contract refuses
its call twice (a batch root, a tree size that does not grow), so whatever was sent, re-sent or
replaced, the client's :meth:`~ledger_api.outbox.ports.OutboxClient.find` tells whether the row is
anchored, and by which transaction. That is how an acknowledged record is anchored exactly once
(DESIGN.md invariant 5) and every access entry ends up in an anchored head (invariant 4), across
gateway crashes and chain-node restarts.

Broadcast outcomes. *Accepted* and *already known*: sent. *Nonce too low*: the nonce is used, by this
very transaction (mined) or by another one: the row is looked up on chain, and if it is not there it
goes back to ``assigned`` to be signed at a fresh nonce. *Underpriced*: a transaction at that nonce pays
more; a replacement with a higher fee is recorded and sent. *Rejected*: logged, retried later.

One writer per signer: the engine is the only sender of its signers and keeps their nonces itself
(the next is the highest recorded one plus one, or the node's pending count if higher). A nonce counts
as used only once a row records it, so a node that goes away during signing leaves no gap.

Stuck transactions. A signed row not mined is sent again (the same bytes are harmless) once in a while,
and replaced at the same nonce with a higher fee after ``stuck_after_s``. When the signer's mined nonce
passed the row's, its transaction is looked for once more (it may have been mined a moment ago) before
the row is signed anew.

Chain-node restarts. A node restarted from older state (anvil killed between two state dumps, a node
restored from a backup) has lost its newest blocks and its pool: anchors seen mined are gone and the
signer's nonce went back. At start, after every failure, when the head is below a block seen before,
and when the client sees its chain state shrink, the engine re-checks the newest anchored rows against
the chain (newest first, down to the first one still there: the chain keeps a prefix of its history),
puts the lost ones back to ``signed`` so that their very transactions are sent again, and re-sends every
signed row promptly. A nonce that no recorded transaction will ever use again (its transaction was in a
lost block) would hold every later transaction of that signer in the node's queue forever: a gap that
lasts ``gap_grace_s`` is filled with transactions that do nothing.

The loop never dies: a chain outage is retried with backoff, and so is any other error (logged with its
traceback); ``errors``/``last_error`` tell what happened. It waits ``idle_poll_s`` while there is nothing
to do, and :meth:`OutboxEngine.wake` ends that wait at once.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ledger_api.chain.errors import ChainError
from ledger_api.chain.transactions import BroadcastOutcome, SignedTx
from ledger_api.outbox.ports import Formed, FoundT, OutboxClient, OutboxSettings, RowT, Sender, Verdict

__all__ = ["OutboxEngine", "OutboxWorker"]

_PAGE = 64  # anchored rows re-checked per query


class _Settled(enum.Enum):
    ABSENT = "absent"  # not on chain
    SHALLOW = "shallow"  # on chain, not yet deep enough: left signed
    ANCHORED = "anchored"  # marked anchored


def _now() -> datetime:
    return datetime.now(UTC)


class OutboxEngine(Generic[RowT, FoundT]):
    def __init__(
        self,
        *,
        db: Engine,
        client: OutboxClient[RowT, FoundT],
        settings: OutboxSettings,
        log: logging.Logger,
        name: str,
        critical: tuple[type[Exception], ...] = (),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        """``name`` prefixes every log message; an error of a ``critical`` type is logged as critical."""
        self._db = db
        self._client = client
        self._settings = settings
        self._log = log
        self._name = name
        self._critical = critical
        self._clock = clock
        self._next_nonce: dict[str, int] = {}  # signer address -> nonce of its next new transaction
        self._highest_block = 0
        self._backoff_s = 0.0
        self._recheck_due = True  # at start and after any failure: the chain may have lost blocks
        self._gap_since: dict[str, datetime] = {}
        self._rebroadcast_at: dict[int, datetime] = {}
        self._resend: set[int] = set()  # signed rows to send again at once (the node may have lost them)
        self._wake = threading.Event()
        self._idle = False  # the last step found nothing pending and nothing in flight
        self.errors = 0
        """Failed steps since the engine was made (chain outages included)."""
        self.last_error: str | None = None

    @property
    def backoff_s(self) -> float:
        """How long the loop waits before the next step, after a failure (0 when the last step worked)."""
        return self._backoff_s

    # --- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; every failure is logged and retried with backoff, never fatal."""
        while not stop.is_set():
            try:
                busy = self.run_once()
            except BaseException:
                # Not even a KeyboardInterrupt or SystemExit in this thread may end it unnoticed.
                self._log.critical("%s: the loop stops on an error it cannot survive", self._name, exc_info=True)
                raise
            if self._backoff_s:
                stop.wait(self._backoff_s)
            elif not busy and self._idle:
                self._wake.wait(self._settings.idle_poll_s)  # new work or a stop sets it
                self._wake.clear()
            elif not busy:
                stop.wait(self._settings.poll_s)

    def wake(self) -> None:
        """New work is pending (or the loop should stop): take the next step now."""
        self._wake.set()

    def run_once(self) -> bool:
        """One step with the loop's error handling: True when something moved.

        A failure, whatever it is (a database or storage error, an undecodable answer from a node that
        lost the contract), is logged and counted and sets the backoff ``run`` waits: catching only chain
        errors once let any other one end the thread silently while pushes were still acknowledged.
        """
        try:
            busy = self.step()
        except Exception as exc:  # the loop must outlive any one failure; see the docstring
            self._failed(exc)
            return False
        self._backoff_s = 0.0
        return busy

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._backoff_s = min(max(self._backoff_s * 2, 0.2), self._settings.backoff_max_s)
        # What the engine believes about the chain may be stale now (the node may be restarting from
        # older state): nonces are read again, anchors checked again.
        self._next_nonce.clear()
        self._recheck_due = True
        if isinstance(exc, ChainError):
            self._log.warning("%s: chain unavailable (%s); retrying in %.1fs", self._name, exc, self._backoff_s)
        elif isinstance(exc, self._critical):
            self._log.critical("%s: %s; nothing more is anchored until this is resolved", self._name, exc)
        else:
            self._log.error("%s: step failed; retrying in %.1fs", self._name, self._backoff_s, exc_info=exc)

    def step(self) -> bool:
        """One pass over every lane; True when something moved. Raises on any failure."""
        self._idle = True  # until a lane shows pending work or rows in flight
        lost = self._client.refresh()
        lanes = self._client.lanes()
        if not lanes:
            return False
        head = self._check_chain(next(iter(lanes.values())), lost=lost)
        busy = False
        for lane, sender in lanes.items():
            busy |= self._confirm(lane, sender, head)
            busy |= self._form(lane)
            busy |= self._send_ready(lane, sender, head)
        return busy

    def _form(self, lane: str) -> bool:
        formed = self._client.form(lane)
        if formed is not Formed.NOTHING:
            self._idle = False
        return formed is Formed.FORMED

    # --- sending -----------------------------------------------------------------------------------

    def _send_ready(self, lane: str, sender: Sender, head: int) -> bool:
        with Session(self._db) as session:
            rows = self._client.ready(session, lane)
            for row in rows:
                self._idle = False
                if self._client.preflight(row):
                    self._sign_and_send(session, row, sender, head)
                else:
                    self._settle(session, row, head)  # the chain may hold it: never sign it twice
            return bool(rows)

    def _sign_and_send(self, session: Session, row: RowT, sender: Sender, head: int) -> None:
        tx = sender.sign(self._client.calldata(row), nonce=self._nonce_for(sender))
        self._record(session, row, sender, tx)
        # The nonce counts as used only once a row holds it. It used to be taken before signing: a node
        # that went away during ``sign`` left a nonce no transaction would ever use, and every later
        # transaction of that signer waited behind the gap in the node's queue, forever.
        address = sender.signer_address
        self._next_nonce[address] = max(self._next_nonce.get(address, 0), tx.nonce + 1)
        self._broadcast(session, row, sender, tx, head)

    def _record(self, session: Session, row: RowT, sender: Sender, tx: SignedTx) -> None:
        # Committed before the broadcast: after a crash the very same transaction is sent again.
        row.state = "signed"
        row.signer = sender.signer_address
        row.nonce = tx.nonce
        row.tx_hash = tx.tx_hash
        row.raw_tx = tx.raw
        row.fee_level = tx.fee_level
        row.attempts += 1
        session.add(row)
        session.commit()

    def _broadcast(self, session: Session, row: RowT, sender: Sender, tx: SignedTx, head: int) -> None:
        outcome = sender.broadcast(tx)
        if outcome is BroadcastOutcome.NONCE_TOO_LOW:
            # The nonce is used: by this very transaction (mined), or by another one. The chain decides.
            if self._settle(session, row, head) is not _Settled.ABSENT:
                return
            self._next_nonce.pop(sender.signer_address, None)  # read again from the node
            row.state = "assigned"  # signed again, at a fresh nonce, on the next step
        elif outcome is BroadcastOutcome.UNDERPRICED:
            replacement = sender.replacement(self._client.calldata(row), tx)
            self._record(session, row, sender, replacement)
            sender.broadcast(replacement)
            row.sent_at = self._clock()
        else:
            if outcome is BroadcastOutcome.REJECTED:
                self._log.error("%s: the node rejected %s; will retry", self._name, self._describe(row))
            row.sent_at = self._clock()
        session.add(row)
        session.commit()

    def _describe(self, row: RowT) -> str:
        return f"{self._client.table.__name__} #{row.id} (nonce {row.nonce}, {row.tx_hash})"

    def _nonce_for(self, sender: Sender) -> int:
        """The nonce the next new transaction of ``sender`` gets (used up once a row records it)."""
        address = sender.signer_address
        if address not in self._next_nonce:
            _mined, pending = sender.nonces()
            highest = self._scalar(func.max(self._column("nonce")), signer=address)
            self._next_nonce[address] = max(pending, (highest + 1) if highest is not None else 0)
        return self._next_nonce[address]

    # --- confirming --------------------------------------------------------------------------------

    def _confirm(self, lane: str, sender: Sender, head: int) -> bool:
        with Session(self._db) as session:
            signed = session.exec(
                select(self._client.table)
                .where(self._column("state") == "signed", self._client.in_lane(lane))
                .order_by(self._column("nonce"))
            ).all()
            if not signed:
                self._gap_since.pop(sender.signer_address, None)
                return False
            self._idle = False
            moved = False
            for row in signed:
                moved |= self._confirm_row(session, row, sender, head)
            moved |= self._fill_nonce_gap(sender, lane)
        return moved

    def _confirm_row(self, session: Session, row: RowT, sender: Sender, head: int) -> bool:
        assert row.tx_hash is not None
        mined = sender.mined(row.tx_hash)
        if mined is not None:
            settled = self._settle(session, row, max(head, mined.block_number))
            if settled is _Settled.ABSENT and not mined.succeeded:
                # Reverted and not on chain: sign again (a client's dry run says why it would fail).
                self._log.warning("%s: the transaction of %s reverted", self._name, self._describe(row))
                row.state = "assigned"
                session.add(row)
                session.commit()
                return True
            return settled is _Settled.ANCHORED
        settled = self._settle(session, row, head)
        if settled is _Settled.ABSENT:
            self._unstick(session, row, sender, head)
        return settled is _Settled.ANCHORED

    def _settle(self, session: Session, row: RowT, head: int) -> _Settled:
        """Marks ``row`` anchored when the chain holds it deep enough."""
        found = self._client.find(row)
        if found is None:
            return _Settled.ABSENT
        if max(head, found.block_number) - found.block_number < self._settings.confirmations:
            return _Settled.SHALLOW
        self._client.mark(row, found)
        row.state = "anchored"
        row.block_number = found.block_number
        row.anchored_at = self._clock()
        session.add(row)
        session.commit()
        self._highest_block = max(self._highest_block, found.block_number)
        if row.id is not None:
            self._rebroadcast_at.pop(row.id, None)
            self._resend.discard(row.id)
        return _Settled.ANCHORED

    def _unstick(self, session: Session, row: RowT, sender: Sender, head: int) -> None:
        assert row.id is not None
        assert row.nonce is not None
        assert row.raw_tx is not None
        assert row.tx_hash is not None
        now = self._clock()
        stored = SignedTx(nonce=row.nonce, tx_hash=row.tx_hash, raw=row.raw_tx, fee_level=row.fee_level or 0)
        mined_nonce, _pending = sender.nonces()
        if mined_nonce > row.nonce:
            # The nonce is used. Possibly by this very transaction, in a block mined since it was looked
            # up a moment ago (with a block time that happens): look again before signing anew, or the row
            # gets a second, reverting transaction.
            if sender.mined(row.tx_hash) is not None or self._settle(session, row, head) is not _Settled.ABSENT:
                return
            row.state = "assigned"  # used by another transaction and not on chain: sign anew
        elif row.sent_at is None or row.id in self._resend:
            # Never sent, anchored in a block the node lost, or sent to a node that may have lost its pool
            # since (an outage): the same bytes again are harmless. Its age counts from now: a lost anchor
            # re-sent must not be replaced at once by a transaction that, the old one mined first, never is.
            self._resend.discard(row.id)
            sender.broadcast(stored)
            row.sent_at = row.sent_at or now
            self._rebroadcast_at[row.id] = now
        else:
            self._resend_or_replace(session, row, sender, stored, now)
        session.add(row)
        session.commit()

    def _resend_or_replace(self, session: Session, row: RowT, sender: Sender, stored: SignedTx, now: datetime) -> None:
        assert row.id is not None
        assert row.sent_at is not None
        stuck_after = self._settings.stuck_after_s
        age = (now - row.sent_at).total_seconds()
        if age > stuck_after:
            replacement = sender.replacement(self._client.calldata(row), stored)
            if replacement.tx_hash != stored.tx_hash:
                self._record(session, row, sender, replacement)
            sender.broadcast(replacement)
            row.sent_at = now
        elif age > stuck_after / 4:
            # Dropped from the pool? Sending the same bytes again is harmless; once in a while is enough.
            last = self._rebroadcast_at.get(row.id, row.sent_at)
            if (now - last).total_seconds() > stuck_after / 4:
                sender.broadcast(stored)
                self._rebroadcast_at[row.id] = now

    def _fill_nonce_gap(self, sender: Sender, lane: str) -> bool:
        """Fill nonces below the signer's lowest waiting transaction that nothing will ever use.

        Transactions wait in the node's queue until every lower nonce of their sender is used. After a
        node lost blocks, a nonce can belong to no recorded transaction any more (it was used by one that
        reverted, or was replaced by a transaction of another row, in a lost block): then nothing would
        ever be mined for this signer again.
        """
        address = sender.signer_address
        lowest = self._scalar(func.min(self._column("nonce")), signer=address)
        if lowest is None:
            self._gap_since.pop(address, None)
            return False
        _mined, pending = sender.nonces()
        if lowest <= pending:
            self._gap_since.pop(address, None)
            return False
        now = self._clock()
        since = self._gap_since.setdefault(address, now)
        if (now - since).total_seconds() < self._settings.gap_grace_s:
            return False
        self._log.warning(
            "%s: %s (%s) has no transaction at nonces %d..%d below its waiting ones; filling the gap",
            self._name, address, lane, pending, lowest - 1,
        )  # fmt: skip
        for nonce in range(pending, lowest):
            sender.broadcast(sender.filler(nonce=nonce))
        self._gap_since.pop(address, None)
        return True

    # --- chain restarts ----------------------------------------------------------------------------

    def _check_chain(self, sender: Sender, *, lost: bool) -> int:
        """The chain's head; first, anchors are re-checked if the chain may have lost blocks.

        A head below any block seen (anchors included), the engine's start, any failure and the client's
        own sign (``lost``) lead to a re-check: comparing heads alone misses a chain grown past its old
        head again before the engine looked, and an engine started after the node lost blocks.
        """
        head = sender.block_number()
        went_back = head < self._highest_block
        if went_back:
            self._log.warning(
                "%s: chain head %d is below block %d seen before; re-checking anchors",
                self._name, head, self._highest_block,
            )  # fmt: skip
        if went_back or lost or self._recheck_due:
            self._recheck(head)
            self._next_nonce.clear()
            self._recheck_due = False
        self._highest_block = head
        return head

    def _recheck(self, head: int) -> None:
        """Put anchored rows the chain no longer holds back to ``signed``; send every signed row again."""
        with Session(self._db) as session:
            self._client.check_chain(session)
            lost, moved = self._lost_anchors(session, head)
            for row in lost:
                # Its very transaction is sent again; a row taken in from the chain has none: signed anew.
                row.state = "signed" if row.raw_tx is not None else "assigned"
                row.sent_at = None
                row.block_number = None
                row.anchored_at = None
                self._client.forget(row)
                session.add(row)
            for row, block_number in moved:
                row.block_number = block_number
                session.add(row)
            session.commit()
            self._client.adopt(session)
            signed = session.exec(select(self._column("id")).where(self._column("state") == "signed")).all()
            self._resend = {int(row_id) for row_id in signed if row_id is not None}
        if lost:
            self._log.warning("%s: %d anchor(s) were lost with the chain's newest blocks", self._name, len(lost))

    def _lost_anchors(self, session: Session, head: int) -> tuple[list[RowT], list[tuple[RowT, int]]]:
        """Anchored rows, newest first, down to the first still held: the chain is a prefix of the one it was."""
        lost: list[RowT] = []
        moved: list[tuple[RowT, int]] = []
        query = select(self._client.table).where(self._column("state") == "anchored")
        query = query.order_by(*self._client.newest_first)
        offset = 0
        while page := session.exec(query.offset(offset).limit(_PAGE)).all():
            for row in page:
                verdict: Verdict | None = self._client.verify(row, head)
                if verdict is None:
                    continue  # not this client's to check (nor to send again)
                if verdict.kind == "held":
                    return lost, moved
                if verdict.kind == "lost":
                    lost.append(row)
                elif verdict.block_number is not None:
                    moved.append((row, verdict.block_number))
            offset += len(page)
        return lost, moved

    # --- queries -----------------------------------------------------------------------------------

    def _column(self, name: str) -> Any:
        return col(getattr(self._client.table, name))

    def _scalar(self, aggregate: Any, *, signer: str) -> Any:
        """``aggregate`` over the signed rows of ``signer``."""
        with Session(self._db) as session:
            return session.scalar(
                select(aggregate).where(self._column("signer") == signer, self._column("state") == "signed")
            )


class OutboxWorker:
    """The public face of a client that runs its own engine (``self._outbox``): the loop and its errors."""

    _outbox: OutboxEngine[Any, Any]

    @property
    def errors(self) -> int:
        """Failed steps since the engine was made (chain outages included)."""
        return self._outbox.errors

    @property
    def last_error(self) -> str | None:
        return self._outbox.last_error

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; every failure is logged and retried with backoff, never fatal."""
        self._outbox.run(stop)

    def wake(self) -> None:
        """New work is pending (or the loop should stop): take the next step now."""
        self._outbox.wake()

    def run_once(self) -> bool:
        """One step with the loop's error handling: True when something moved."""
        return self._outbox.run_once()

    def step(self) -> bool:
        """One pass; True when something moved. Raises on any failure."""
        return self._outbox.step()
