"""Anchor the access log's tree heads on chain, each after its segment is in shared storage.

Every committed entry (see :mod:`ledger_api.accesslog.log`) ends up in an anchored tree head and in a
sealed segment, whatever crashes in between (DESIGN.md invariant 4). The table ``access_log_heads`` is
the outbox of the transaction outbox engine (:mod:`ledger_api.outbox.engine`, whose docstring says why
each state exists and how crashes and chain-node restarts are survived); this module says only what is
particular to tree heads:

* a head is formed once the log has grown past the last head and either ``batch_max`` entries wait or
  the oldest waiting entry is ``max_wait_s`` old. It covers entries ``[from_index, size)`` (up to
  ``segment_max``), and stays ``assigned`` until ``segment_key`` is set: its segment is stored (``put`` is
  durable when it returns) before anything about it is sent. One head is in flight at a time: the
  contract wants sizes to grow strictly, and a head covers everything waiting, so this costs no
  throughput. The segments, in order, are the whole log.
* whether a head is anchored is read from the contract: ``headAt`` by binary search on size. A dry run
  (``eth_call``) precedes every new signature: ``TreeNotGrown`` means the chain already holds a head at
  least this large, which is this very head (an earlier copy of the transaction was mined: it is marked
  anchored) or proof that the chain and the log diverged. A smaller or equal size is never sent.
* before anchored heads are re-checked, the chain's newest head must be a head of this log (same root at
  that size; otherwise :class:`~ledger_api.accesslog.errors.AccessLogDiverged`, reported on every step
  and never anchored past); afterwards heads the chain holds that the database does not know are taken
  in (their segments are then written). A chain holding fewer heads than it did is re-checked too.

One anchorer per log and per signer: it is the only sender of the log writer's transactions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, true
from sqlmodel import Session, col, select

from ledger_api.accesslog.errors import AccessLogDiverged, AccessLogError
from ledger_api.accesslog.log import AccessLog
from ledger_api.accesslog.segment import Recipients, seal_segment
from ledger_api.chain.tree_heads import ChainTreeHead, Preflight, TreeHeadWriter
from ledger_api.index.models import AccessLogEntryRow, AccessLogHeadRow
from ledger_api.outbox.engine import OutboxEngine, OutboxWorker
from ledger_api.outbox.ports import Formed, OutboxSettings, Verdict
from ledger_api.storage.base import BlobWriter

__all__ = ["AnchorerStatus", "TreeHeadAnchorer", "TreeHeadSettings", "anchored_heads"]

log = logging.getLogger(__name__)

_LANE = "log"  # one lane: the log writer


@dataclass(frozen=True, kw_only=True)
class TreeHeadSettings(OutboxSettings):
    max_wait_s: float = 1.0
    """Longest an entry waits before a head covering it is formed."""
    batch_max: int = 1000
    """A head is formed at once when this many entries wait."""
    segment_max: int = 100_000
    """Most entries in one head's segment (a larger backlog is anchored in several heads)."""
    poll_s: float = 0.2
    """Wait between steps that moved nothing. Heads form about once a second (``max_wait_s``) and each
    step asks the chain for its head count, so polling 20 times a second cost every read ~0.15 ms of
    the gateway's one core's worth of Python; a head's anchoring is at most this much later."""
    idle_poll_s: float = 0.2
    """Wait between steps while the whole log is anchored (no longer than ``poll_s``: appends do not wake
    the anchorer, :meth:`TreeHeadAnchorer.wake` does)."""


@dataclass(frozen=True, kw_only=True)
class AnchorerStatus:
    log_size: int
    anchored_size: int
    heads_in_flight: int
    errors: int
    last_error: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class TreeHeadAnchorer(OutboxWorker):
    """The tree-head outbox: the client of the one :class:`OutboxEngine` it runs (one lane, the log
    writer)."""

    table = AccessLogHeadRow
    newest_first: Sequence[Any] = (col(AccessLogHeadRow.size).desc(),)

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
        self._heads_seen = 0  # heads this anchorer saw on chain: a count below it means the chain lost blocks
        self._chain_heads: tuple[int, ChainTreeHead | None] = (0, None)  # (count, latest) at the last check
        self._outbox: OutboxEngine[AccessLogHeadRow, ChainTreeHead] = OutboxEngine(
            db=log.engine, client=self, settings=settings, log=logging.getLogger(__name__), name="access log",
            critical=(AccessLogDiverged,), clock=clock,
        )  # fmt: skip

    def lanes(self) -> Mapping[str, TreeHeadWriter]:
        return {_LANE: self._writer}

    def in_lane(self, lane: str) -> Any:
        return true()

    def refresh(self) -> bool:
        self._log.refresh()
        if self._heads_seen and self._writer.head_count() < self._heads_seen:
            log.warning("access log: the chain holds fewer tree heads than it did; re-checking the anchored ones")
            return True
        return False

    # --- forming heads and storing segments ------------------------------------------------------

    def form(self, lane: str) -> Formed:
        formed = self._form_head()
        if self._store_segments():
            return Formed.FORMED
        return formed

    def _form_head(self) -> Formed:
        settings = self._settings
        with Session(self._engine) as session:
            unfinished = session.scalar(select(func.count()).where(col(AccessLogHeadRow.state) != "anchored"))
            if unfinished:
                return Formed.NOTHING  # one head in flight at a time (the engine sees it in flight)
            last = int(session.scalar(select(func.max(AccessLogHeadRow.size))) or 0)
            available = self._log.size
            waiting = available - last
            if waiting <= 0:
                return Formed.NOTHING
            if waiting < settings.batch_max:
                oldest = session.scalar(select(AccessLogEntryRow.appended_at).where(col(AccessLogEntryRow.seq) == last))
                if oldest is not None and self._clock() - oldest < timedelta(seconds=settings.max_wait_s):
                    return Formed.WAITING
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
        return Formed.FORMED

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

    # --- sending and what the chain holds --------------------------------------------------------

    def ready(self, session: Session, lane: str) -> Sequence[AccessLogHeadRow]:
        return session.exec(
            select(AccessLogHeadRow)
            .where(col(AccessLogHeadRow.state) == "assigned", col(AccessLogHeadRow.segment_key).is_not(None))
            .order_by(col(AccessLogHeadRow.size))
        ).all()

    def preflight(self, row: AccessLogHeadRow) -> bool:
        outcome, reason = self._writer.preflight(row.size, bytes.fromhex(row.root))
        if outcome is Preflight.NOT_GROWN:
            # The chain holds a head at least this large: this very one (an earlier transaction was mined
            # after all), or the log and the chain diverged. Never send a smaller size.
            if self._writer.find_head(row.size) is None:
                raise AccessLogDiverged(
                    f"the chain holds no head of {row.size} entries but refuses it ({reason}): "
                    "another writer anchors this log, or the database lost entries"
                )
            return False
        if outcome is not Preflight.OK:
            raise AccessLogError(f"anchoring the head of {row.size} entries would fail: {reason}")
        return True

    def calldata(self, row: AccessLogHeadRow) -> bytes:
        return TreeHeadWriter.anchor_calldata(row.size, bytes.fromhex(row.root))

    def find(self, row: AccessLogHeadRow) -> ChainTreeHead | None:
        """The chain's head of exactly this size, if any; one with another root is a divergence."""
        found = self._writer.find_head(row.size)
        if found is not None and found.root.hex() != row.root:
            raise AccessLogDiverged(
                f"the chain's head #{found.index} of {found.size} entries has root {found.root.hex()}, "
                f"the log's is {row.root}"
            )
        return found

    def mark(self, row: AccessLogHeadRow, found: ChainTreeHead) -> None:
        row.head_index = found.index
        self._heads_seen = max(self._heads_seen, found.index + 1)

    def verify(self, row: AccessLogHeadRow, head: int) -> Verdict:
        count, _latest = self._chain_heads
        index = row.head_index
        if index is not None and index < count:
            on_chain = self._writer.head_at(index)
            if on_chain.size == row.size and on_chain.root.hex() == row.root:
                return Verdict(kind="held")
        log.warning("access log: the head of %d entries is no longer on chain; sending it again", row.size)
        return Verdict(kind="lost")

    def forget(self, row: AccessLogHeadRow) -> None:
        row.head_index = None

    def check_chain(self, session: Session) -> None:
        """The chain's newest head must be a head of this log."""
        count = self._writer.head_count()
        self._heads_seen = count
        latest = self._writer.head_at(count - 1) if count else None
        self._chain_heads = (count, latest)
        if latest is None:
            return
        if latest.size > self._log.size:
            raise AccessLogDiverged(
                f"the chain's head #{latest.index} covers {latest.size} entries, the log holds only {self._log.size}"
            )
        if self._log.root(latest.size) != latest.root:
            raise AccessLogDiverged(
                f"the chain's head #{latest.index} of {latest.size} entries has root {latest.root.hex()}, "
                f"the log's is {self._log.root(latest.size).hex()}"
            )

    def adopt(self, session: Session) -> None:
        self._adopt_chain_heads(session, *self._chain_heads)

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

    # --- draining and status ---------------------------------------------------------------------------

    def drain(self, *, timeout_s: float = 60.0) -> bool:
        """Step until every entry committed so far is anchored (tests, clean shutdown); True if it was."""
        deadline = time.monotonic() + timeout_s
        target = self._log.refresh()
        while self.anchored_size() < target:
            if time.monotonic() > deadline:
                return False
            if not self.run_once():
                threading.Event().wait(self._outbox.backoff_s or self._settings.poll_s)
        return True

    def anchored_size(self) -> int:
        """Entries covered by anchored heads: entry ``i`` is anchored when ``i < anchored_size()``."""
        with Session(self._engine) as session:
            size = session.scalar(
                select(func.max(AccessLogHeadRow.size)).where(col(AccessLogHeadRow.state) == "anchored")
            )
        return int(size or 0)

    def oldest_unanchored_at(self) -> datetime | None:
        """When the oldest entry no anchored head covers yet was appended (None: every entry is anchored)."""
        with Session(self._engine) as session:
            return session.scalar(
                select(AccessLogEntryRow.appended_at).where(col(AccessLogEntryRow.seq) == self.anchored_size())
            )

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


def anchored_heads(access_log: AccessLog) -> Mapping[int, str]:
    """size → root (hex) of every head this database knows as anchored (for tests and status pages)."""
    with Session(access_log.engine) as session:
        rows = session.exec(
            select(AccessLogHeadRow)
            .where(col(AccessLogHeadRow.state) == "anchored")
            .order_by(col(AccessLogHeadRow.size))
        ).all()
        return {row.size: row.root for row in rows}
