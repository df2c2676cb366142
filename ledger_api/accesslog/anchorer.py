"""Anchor the access log's tree heads on chain, each after its segment is in shared storage.

Every committed entry (see :mod:`ledger_api.accesslog.log`) ends up in an anchored tree head and in a
sealed segment, whatever crashes in between (DESIGN.md invariant 4). The table ``access_log_heads`` is
the outbox; a head moves through states that are all committed before the next step runs:

``assigned``  size and root fixed (the head covers entries ``[from_index, size)``); ``segment_key`` is
              set once the segment of those entries is stored (``put`` is durable when it returns);
``signed``    the transaction (nonce, hash, raw bytes) is recorded, then broadcast;
``anchored``  the chain holds exactly this (size, root), with the configured confirmations.

A head is formed once the log has grown past the last head and either ``batch_max`` entries wait or the
oldest waiting entry is ``max_wait_s`` old. One head is in flight at a time: the contract wants sizes to
grow strictly, and a head covers everything waiting (up to ``segment_max`` entries), so this costs no
throughput. Each segment holds the entries since the previous head, so the segments, in order, are the
whole log.

The chain decides. After a crash the very same signed transaction is sent again ("already known" is
success). Whether a head is anchored is read from the contract: ``headAt`` by binary search on size
(sizes strictly grow). A dry run (``eth_call``) precedes every new signature: ``TreeNotGrown`` means the
chain already holds a head at least this large, which is this very head (an earlier copy of the
transaction was mined: it is marked anchored) or proof that the chain and the log diverged. A smaller or
equal size is never sent.

At start, after every failure, and whenever the chain holds fewer heads than it did, the anchorer
checks that the chain's newest head is a head of this log (same root at that size; otherwise
:class:`~ledger_api.accesslog.errors.AccessLogDiverged`, reported on every step and never anchored
past), puts heads the chain lost (a node restarted from an older state loses its newest blocks) back
to ``signed`` so that their very transactions are sent again, and takes in heads the chain holds that
the database does not know (their segments are then written). The loop never dies: every failure is
logged and retried with backoff; ``errors``/``last_error`` tell what happened.

Not handled here: a nonce gap of the log writer's account (a transaction of another sender using the
same key, lost with a block) — the log writer's key must serve this anchorer only.

One anchorer per log and per signer: it is the only sender of the log writer's transactions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import func
from sqlmodel import Session, col, select

from ledger_api.accesslog.errors import AccessLogDiverged, AccessLogError
from ledger_api.accesslog.log import AccessLog
from ledger_api.accesslog.segment import Recipients, seal_segment
from ledger_api.chain.anchor_writer import BroadcastOutcome, SignedTx
from ledger_api.chain.errors import ChainError
from ledger_api.chain.tree_heads import ChainTreeHead, Preflight, TreeHeadWriter
from ledger_api.index.models import AccessLogEntryRow, AccessLogHeadRow

__all__ = ["AnchorerStatus", "TreeHeadAnchorer", "TreeHeadSettings", "anchored_heads"]

log = logging.getLogger(__name__)


class BlobWriter(Protocol):
    def put(self, data: bytes) -> str: ...


@dataclass(frozen=True, kw_only=True)
class TreeHeadSettings:
    max_wait_s: float = 1.0
    """Longest an entry waits before a head covering it is formed."""
    batch_max: int = 1000
    """A head is formed at once when this many entries wait."""
    segment_max: int = 100_000
    """Most entries in one head's segment (a larger backlog is anchored in several heads)."""
    confirmations: int = 0
    stuck_after_s: float = 20.0
    """A sent transaction not mined after this long is replaced with a higher fee."""
    poll_s: float = 0.2
    """Wait between steps that moved nothing. Heads form about once a second (``max_wait_s``) and each
    step asks the chain for its head count, so polling 20 times a second cost every read ~0.15 ms of
    the gateway's one core's worth of Python; a head's anchoring is at most this much later."""
    backoff_max_s: float = 5.0


@dataclass(frozen=True, kw_only=True)
class AnchorerStatus:
    log_size: int
    anchored_size: int
    heads_in_flight: int
    errors: int
    last_error: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class TreeHeadAnchorer:
    def __init__(
        self,
        *,
        log: AccessLog,
        blobs: BlobWriter,
        writer: TreeHeadWriter,
        gateway_key: tuple[str, int, bytes],
        auditors: Recipients | Callable[[], Recipients] = (lambda: {}),
        settings: TreeHeadSettings = TreeHeadSettings(),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        """``gateway_key`` = (id, key index, HPKE public key) of the gateway's own key, so it can rebuild
        from storage; ``auditors`` = org id → (key index, public key) of every auditor organisation, or a
        function that returns it (read when a segment is sealed; see ``chain.auditor_recipients``).
        """
        self._log = log
        self._engine = log.engine
        self._blobs = blobs
        self._writer = writer
        self._gateway_key = gateway_key
        self._auditors = auditors
        self._settings = settings
        self._clock = clock
        self._reconcile_due = True  # at start and after any failure: check the chain before anything else
        self._resend: set[int] = set()
        self._rebroadcast_at: dict[int, datetime] = {}
        self._backoff_s = 0.0
        self._heads_seen = 0  # heads this anchorer saw on chain: a count below it means the chain lost blocks
        self.errors = 0
        self.last_error: str | None = None

    # --- the loop ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; every failure is logged and retried with backoff, never fatal."""
        while not stop.is_set():
            try:
                busy = self.run_once()
            except BaseException:
                log.critical("access log: the anchorer stops on an error it cannot survive", exc_info=True)
                raise
            if self._backoff_s:
                stop.wait(self._backoff_s)
            elif not busy:
                stop.wait(self._settings.poll_s)

    def run_once(self) -> bool:
        """One step; a failure is logged, counted and backed off from. True when something moved."""
        try:
            busy = self.step()
        except Exception as exc:  # the anchorer must outlive any one failure
            self._failed(exc)
            return False
        self._backoff_s = 0.0
        return busy

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._backoff_s = min(max(self._backoff_s * 2, 0.2), self._settings.backoff_max_s)
        self._reconcile_due = True
        if isinstance(exc, ChainError):
            log.warning("access log: chain unavailable (%s); retrying in %.1fs", exc, self._backoff_s)
        elif isinstance(exc, AccessLogDiverged):
            log.critical("access log: %s; nothing more is anchored until this is resolved", exc)
        else:
            log.error("access log: anchoring step failed; retrying in %.1fs", self._backoff_s, exc_info=exc)

    def step(self) -> bool:
        """One pass; True when something moved. Raises on any failure."""
        self._log.refresh()
        if not self._reconcile_due and self._heads_seen and self._writer.head_count() < self._heads_seen:
            log.warning("access log: the chain holds fewer tree heads than it did; re-checking the anchored ones")
            self._reconcile_due = True
        if self._reconcile_due:
            self._reconcile()
            self._reconcile_due = False
        busy = self._confirm()
        busy |= self._form_head()
        busy |= self._store_segments()
        busy |= self._send_assigned()
        return busy

    def drain(self, *, timeout_s: float = 60.0) -> bool:
        """Step until every entry committed so far is anchored (tests, clean shutdown); True if it was."""
        deadline = time.monotonic() + timeout_s
        target = self._log.refresh()
        while self.anchored_size() < target:
            if time.monotonic() > deadline:
                return False
            if not self.run_once():
                threading.Event().wait(self._backoff_s or self._settings.poll_s)
        return True

    # --- status ----------------------------------------------------------------------------------------

    def anchored_size(self) -> int:
        """Entries covered by anchored heads: entry ``i`` is anchored when ``i < anchored_size()``."""
        with Session(self._engine) as session:
            size = session.scalar(
                select(func.max(AccessLogHeadRow.size)).where(col(AccessLogHeadRow.state) == "anchored")
            )
        return int(size or 0)

    def status(self) -> AnchorerStatus:
        with Session(self._engine) as session:
            in_flight = session.scalar(select(func.count()).where(col(AccessLogHeadRow.state) != "anchored"))
        return AnchorerStatus(
            log_size=self._log.size,
            anchored_size=self.anchored_size(),
            heads_in_flight=int(in_flight or 0),
            errors=self.errors,
            last_error=self.last_error,
        )

    # --- forming heads and storing segments ------------------------------------------------------

    def _form_head(self) -> bool:
        settings = self._settings
        with Session(self._engine) as session:
            unfinished = session.scalar(select(func.count()).where(col(AccessLogHeadRow.state) != "anchored"))
            if unfinished:
                return False  # one head in flight at a time
            last = int(session.scalar(select(func.max(AccessLogHeadRow.size))) or 0)
            available = self._log.size
            waiting = available - last
            if waiting <= 0:
                return False
            if waiting < settings.batch_max:
                oldest = session.scalar(select(AccessLogEntryRow.appended_at).where(col(AccessLogEntryRow.seq) == last))
                if oldest is not None and self._clock() - oldest < timedelta(seconds=settings.max_wait_s):
                    return False
            size = min(available, last + settings.segment_max)
            head = AccessLogHeadRow(
                size=size,
                from_index=last,
                root=self._log.root(size).hex(),
                state="assigned",
                signer=self._writer.signer_address,
                created_at=self._clock(),
            )
            session.add(head)
            session.commit()
        return True

    def _recipients(self) -> dict[str, tuple[int, bytes]]:
        auditors = self._auditors() if callable(self._auditors) else self._auditors
        gateway_id, key_index, public_key = self._gateway_key
        return {**dict(auditors), gateway_id: (key_index, public_key)}

    def _store_segments(self) -> bool:
        """Write the segment of every head that has none yet (before anything about it is sent)."""
        with Session(self._engine) as session:
            heads = session.exec(
                select(AccessLogHeadRow)
                .where(col(AccessLogHeadRow.segment_key).is_(None))
                .order_by(col(AccessLogHeadRow.size))
            ).all()
            if not heads:
                return False
            recipients = self._recipients()
            for head in heads:
                root = self._log.root(head.size)
                if root.hex() != head.root:
                    raise AccessLogDiverged(
                        f"head of {head.size} entries: the log's root is {root.hex()}, not {head.root}"
                    )
                blob = seal_segment(
                    from_index=head.from_index,
                    to_index=head.size,
                    root=root,
                    leaf_data=self._log.leaf_data(head.from_index, head.size),
                    recipients=recipients,
                )
                head.segment_key = self._blobs.put(blob)
                session.add(head)
                session.commit()
        return True

    # --- sending ---------------------------------------------------------------------------------------

    def _send_assigned(self) -> bool:
        with Session(self._engine) as session:
            heads = session.exec(
                select(AccessLogHeadRow)
                .where(col(AccessLogHeadRow.state) == "assigned", col(AccessLogHeadRow.segment_key).is_not(None))
                .order_by(col(AccessLogHeadRow.size))
            ).all()
            for head in heads:
                outcome, reason = self._writer.preflight(head.size, bytes.fromhex(head.root))
                if outcome is Preflight.NOT_GROWN:
                    # The chain holds a head at least this large: this very one (an earlier transaction was
                    # mined after all), or the log and the chain diverged. Never send a smaller size.
                    if not self._settle(session, head):
                        raise AccessLogDiverged(
                            f"the chain holds no head of {head.size} entries but refuses it ({reason}): "
                            "another writer anchors this log, or the database lost entries"
                        )
                    continue
                if outcome is not Preflight.OK:
                    raise AccessLogError(f"anchoring the head of {head.size} entries would fail: {reason}")
                self._sign_and_send(session, head, nonce=self._next_nonce(session))
            return bool(heads)

    def _next_nonce(self, session: Session) -> int:
        _mined, pending = self._writer.nonces()
        highest = session.scalar(
            select(func.max(AccessLogHeadRow.nonce)).where(
                col(AccessLogHeadRow.state) == "signed", col(AccessLogHeadRow.signer) == self._writer.signer_address
            )
        )
        return max(pending, (highest + 1) if highest is not None else 0)

    def _calldata(self, head: AccessLogHeadRow) -> bytes:
        return TreeHeadWriter.anchor_calldata(head.size, bytes.fromhex(head.root))

    def _sign_and_send(self, session: Session, head: AccessLogHeadRow, *, nonce: int) -> None:
        tx = self._writer.sign(self._calldata(head), nonce=nonce)
        self._record_tx(session, head, tx)
        self._broadcast(session, head, tx)

    def _record_tx(self, session: Session, head: AccessLogHeadRow, tx: SignedTx) -> None:
        # Committed before the broadcast: after a crash the very same transaction is sent again.
        head.state = "signed"
        head.nonce = tx.nonce
        head.tx_hash = tx.tx_hash
        head.raw_tx = tx.raw
        head.fee_level = tx.fee_level
        head.signer = self._writer.signer_address
        head.attempts += 1
        session.add(head)
        session.commit()

    def _broadcast(self, session: Session, head: AccessLogHeadRow, tx: SignedTx) -> None:
        outcome = self._writer.broadcast(tx)
        if outcome in (BroadcastOutcome.ACCEPTED, BroadcastOutcome.ALREADY_KNOWN):
            head.sent_at = self._clock()
        elif outcome is BroadcastOutcome.NONCE_TOO_LOW:
            # The nonce is used: by this very transaction (mined), or by another one. The chain decides.
            if self._settle(session, head):
                return
            head.state = "assigned"  # sign again at a fresh nonce on the next step
        elif outcome is BroadcastOutcome.UNDERPRICED:
            replacement = self._writer.replacement(self._calldata(head), tx)
            self._record_tx(session, head, replacement)
            self._writer.broadcast(replacement)
            head.sent_at = self._clock()
        else:
            log.error("access log: the node rejected the head of %d entries; will retry", head.size)
            head.sent_at = self._clock()
        session.add(head)
        session.commit()

    # --- confirming ------------------------------------------------------------------------------------

    def _confirm(self) -> bool:
        moved = False
        with Session(self._engine) as session:
            heads = session.exec(
                select(AccessLogHeadRow)
                .where(col(AccessLogHeadRow.state) == "signed")
                .order_by(col(AccessLogHeadRow.nonce))
            ).all()
            for head in heads:
                assert head.tx_hash is not None
                receipt = self._writer.receipt(head.tx_hash)
                if receipt is not None:
                    if self._settle(session, head):
                        moved = True
                    elif int(str(receipt["status"]), 16) != 1:
                        # Reverted and not on chain: sign again (the dry run will say why it failed).
                        log.warning("access log: the transaction of the head of %d entries reverted", head.size)
                        head.state = "assigned"
                        session.add(head)
                        session.commit()
                        moved = True
                    continue
                if self._settle(session, head):
                    moved = True
                    continue
                self._unstick(session, head)
        return moved

    def _settle(self, session: Session, head: AccessLogHeadRow) -> bool:
        """True when the chain holds exactly this head; marks it anchored once deep enough."""
        found = self._writer.find_head(head.size)
        if found is None:
            return False
        if found.root.hex() != head.root:
            raise AccessLogDiverged(
                f"the chain's head #{found.index} of {found.size} entries has root {found.root.hex()}, "
                f"the log's is {head.root}"
            )
        if self._writer.rpc.block_number() - found.block_number < self._settings.confirmations:
            return True  # on chain, not yet deep enough
        self._mark_anchored(session, head, found)
        return True

    def _mark_anchored(self, session: Session, head: AccessLogHeadRow, found: ChainTreeHead) -> None:
        head.state = "anchored"
        head.head_index = found.index
        head.block_number = found.block_number
        head.anchored_at = self._clock()
        session.add(head)
        session.commit()
        self._heads_seen = max(self._heads_seen, found.index + 1)
        if head.id is not None:
            self._rebroadcast_at.pop(head.id, None)
            self._resend.discard(head.id)

    def _unstick(self, session: Session, head: AccessLogHeadRow) -> None:
        assert head.id is not None
        assert head.nonce is not None
        assert head.raw_tx is not None
        assert head.tx_hash is not None
        now = self._clock()
        stored = SignedTx(nonce=head.nonce, tx_hash=head.tx_hash, raw=head.raw_tx, fee_level=head.fee_level or 0)
        mined, _pending = self._writer.nonces()
        if mined > head.nonce:
            # The nonce is used: maybe by this very transaction in a block mined a moment ago; look again.
            if self._writer.receipt(head.tx_hash) is not None or self._settle(session, head):
                return
            head.state = "assigned"  # used by another transaction: sign again at a fresh nonce
        elif head.sent_at is None or head.id in self._resend:
            # Never sent, sent before a crash, or anchored in blocks the node lost: the same bytes again.
            self._resend.discard(head.id)
            self._writer.broadcast(stored)
            head.sent_at = head.sent_at or now
            self._rebroadcast_at[head.id] = now
        else:
            age = (now - head.sent_at).total_seconds()
            if age > self._settings.stuck_after_s:
                replacement = self._writer.replacement(self._calldata(head), stored)
                if replacement.tx_hash != stored.tx_hash:
                    self._record_tx(session, head, replacement)
                self._writer.broadcast(replacement)
                head.sent_at = now
            elif age > self._settings.stuck_after_s / 4:
                last = self._rebroadcast_at.get(head.id, head.sent_at)
                if (now - last).total_seconds() > self._settings.stuck_after_s / 4:
                    self._writer.broadcast(stored)  # dropped from the pool? the same bytes are harmless
                    self._rebroadcast_at[head.id] = now
        session.add(head)
        session.commit()

    # --- start and failures: what does the chain hold? -------------------------------------------------

    def _reconcile(self) -> None:
        writer = self._writer
        count = writer.head_count()
        self._heads_seen = count
        latest = writer.head_at(count - 1) if count else None
        size = self._log.size
        if latest is not None:
            if latest.size > size:
                raise AccessLogDiverged(
                    f"the chain's head #{latest.index} covers {latest.size} entries, the log holds only {size}"
                )
            if self._log.root(latest.size) != latest.root:
                raise AccessLogDiverged(
                    f"the chain's head #{latest.index} of {latest.size} entries has root {latest.root.hex()}, "
                    f"the log's is {self._log.root(latest.size).hex()}"
                )
        with Session(self._engine) as session:
            self._put_back_lost_heads(session, count)
            self._adopt_chain_heads(session, count, latest)
            signed = session.exec(select(AccessLogHeadRow.id).where(col(AccessLogHeadRow.state) == "signed")).all()
            # The node may have lost its pool meanwhile: every signed head is sent again promptly.
            self._resend = {head_id for head_id in signed if head_id is not None}

    def _put_back_lost_heads(self, session: Session, count: int) -> None:
        """Anchored heads the chain no longer holds (newest first, down to the first still there)."""
        anchored = session.exec(
            select(AccessLogHeadRow)
            .where(col(AccessLogHeadRow.state) == "anchored")
            .order_by(col(AccessLogHeadRow.size).desc())
        ).all()
        for head in anchored:
            index = head.head_index
            if index is not None and index < count:
                on_chain = self._writer.head_at(index)
                if on_chain.size == head.size and on_chain.root.hex() == head.root:
                    break
            log.warning("access log: the head of %d entries is no longer on chain; sending it again", head.size)
            head.state = "signed" if head.raw_tx is not None else "assigned"
            head.head_index = None
            head.block_number = None
            head.anchored_at = None
            head.sent_at = None
            session.add(head)
        session.commit()

    def _adopt_chain_heads(self, session: Session, count: int, latest: ChainTreeHead | None) -> None:
        """Heads on chain that this database does not know (checked above to be heads of this log)."""
        known = int(session.scalar(select(func.max(AccessLogHeadRow.size))) or 0)
        if latest is None or latest.size <= known:
            return
        newer: list[ChainTreeHead] = []
        for index in range(count - 1, -1, -1):
            head = latest if index == latest.index else self._writer.head_at(index)
            if head.size <= known:
                break
            newer.append(head)
        previous = known
        for head in reversed(newer):
            if self._log.root(head.size) != head.root:
                raise AccessLogDiverged(
                    f"the chain's head #{head.index} of {head.size} entries is not a head of this log"
                )
            log.warning("access log: taking in head #%d of %d entries found on chain", head.index, head.size)
            session.add(
                AccessLogHeadRow(
                    size=head.size,
                    from_index=previous,
                    root=head.root.hex(),
                    state="anchored",
                    signer=self._writer.signer_address,
                    head_index=head.index,
                    block_number=head.block_number,
                    created_at=self._clock(),
                    anchored_at=self._clock(),
                )
            )
            previous = head.size
        session.commit()


def anchored_heads(access_log: AccessLog) -> Mapping[int, str]:
    """size → root (hex) of every head this database knows as anchored (for tests and status pages)."""
    with Session(access_log.engine) as session:
        rows = session.exec(
            select(AccessLogHeadRow)
            .where(col(AccessLogHeadRow.state) == "anchored")
            .order_by(col(AccessLogHeadRow.size))
        ).all()
        return {row.size: row.root for row in rows}
