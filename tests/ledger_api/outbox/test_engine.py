"""The outbox engine's state machine against a fake chain (no node), on a real SQLite index.

The client is the record-batch outbox (``AnchoringWorker``); the fake (``fake_chain``) is only the chain.
Every broadcast outcome, stuck transactions, nonce gaps, a chain head that went back and confirmations
are each driven to the end, and a kill at every I/O call of a run is followed by a fresh engine over the
same database: each record version ends up in exactly one batch, anchored exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ledger_api.anchoring.worker import AnchoringSettings, AnchoringWorker
from ledger_api.chain.transactions import BroadcastOutcome
from ledger_api.index.database import make_engine
from ledger_api.index.models import AnchorBatch, RecordVersion
from tests.ledger_api.outbox.fake_chain import FakeChain, FakeWriter, Scripted, kill_at_every_tick, steps_until_killed

OWNER = "PS-XIHU-01"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)  # entries carry the real time they were appended at

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Blobs:
    """In-memory blob storage that a crash can hit too (it shares the chain's ticks)."""

    def __init__(self, chain: FakeChain) -> None:
        self.chain = chain
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        self.chain.tick("blob put")
        key = hashlib.sha256(data).hexdigest()
        self.blobs[key] = data
        return key


@dataclass
class Outbox:
    engine: Engine
    chain: FakeChain
    clock: Clock = field(default_factory=Clock)
    pushed: int = 0

    def __post_init__(self) -> None:
        self.writer = FakeWriter(self.chain, owner_org=OWNER)
        self.blobs = Blobs(self.chain)

    def worker(self, **overrides: Any) -> AnchoringWorker:
        settings = {"max_wait_s": 0.0, "batch_max": 3, "stuck_after_s": 20.0, "gap_grace_s": 1.0, **overrides}
        return AnchoringWorker(
            engine=self.engine,
            blobs=self.blobs,
            writers={OWNER: self.writer},
            settings=AnchoringSettings(**settings),
            clock=self.clock,
        )

    def push(self, count: int) -> None:
        with Session(self.engine) as session:
            for _ in range(count):
                n = self.pushed
                self.pushed += 1
                digest = hashlib.sha256(str(n).encode()).hexdigest()
                session.add(
                    RecordVersion(
                        record_id=digest, version=1, owner_org=OWNER, record_type="incident",
                        community_code="330106001", occurred_at=self.clock(), received_at=self.clock(),
                        fingerprint=digest, blob_key=digest, commitment=digest, key_index=0,
                    )
                )  # fmt: skip
            session.commit()

    def first_step_answered(self, outcome: BroadcastOutcome, *, accept: bool = False) -> AnchoringWorker:
        """A worker's first step over two pushed versions, the node answering its broadcast ``outcome``."""
        self.push(2)
        self.chain.answers.append(Scripted(outcome, accept=accept))
        worker = self.worker()
        worker.run_once()
        return worker

    def batches(self) -> list[AnchorBatch]:
        with Session(self.engine) as session:
            return list(session.exec(select(AnchorBatch).order_by(AnchorBatch.id)).all())

    def all_anchored(self) -> bool:
        with Session(self.engine) as session:
            waiting = session.exec(select(RecordVersion).where(RecordVersion.batch_id == None)).first()  # noqa: E711
        batches = self.batches()
        return waiting is None and bool(batches) and all(b.state == "anchored" for b in batches)

    def drive(self, worker: AnchoringWorker, until: Callable[[], bool] | None = None, *, steps: int = 200) -> None:
        """Steps (errors handled, as the loop does), a block and a second between them, until ``until()``."""
        until = until or self.all_anchored
        for _ in range(steps):
            if until():
                return
            worker.run_once()
            if not self.chain.automine:
                self.chain.mine()
            self.clock.advance(1.0)
        raise AssertionError(f"not reached in {steps} steps; last error: {worker.last_error}")

    def assert_each_version_anchored_once(self) -> None:
        batches = self.batches()
        assert batches
        with Session(self.engine) as session:
            versions = session.exec(select(RecordVersion)).all()
        assert len(versions) == self.pushed
        by_batch: dict[int, list[int]] = {}
        for version in versions:
            assert version.batch_id is not None
            assert version.leaf_index is not None
            by_batch.setdefault(version.batch_id, []).append(version.leaf_index)
        assert {b.id for b in batches} == set(by_batch)
        for batch in batches:
            assert batch.id is not None
            assert sorted(by_batch[batch.id]) == list(range(batch.size))
            assert batch.state == "anchored"
            anchors = self.chain.successful_anchors(bytes.fromhex(batch.root))
            assert anchors == [batch.tx_hash], "a batch is anchored exactly once, by the transaction it names"
            assert self.chain.state.anchors[bytes.fromhex(batch.root)][1] == batch.block_number


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    try:
        yield Outbox(engine=engine, chain=FakeChain())
    finally:
        engine.dispose()


def _fresh(tmp_path: Path, name: str, **chain: Any) -> Outbox:
    return Outbox(engine=make_engine(f"sqlite:///{tmp_path / name}"), chain=FakeChain(**chain))


# --- broadcast outcomes ------------------------------------------------------------------------------------


def test_an_accepted_transaction_is_anchored_once(outbox: Outbox) -> None:
    outbox.push(5)
    worker = outbox.worker()
    outbox.drive(worker)
    assert [(b.size, b.attempts, b.nonce) for b in outbox.batches()] == [(3, 1, 0), (2, 1, 1)]
    outbox.assert_each_version_anchored_once()
    assert worker.errors == 0


def test_already_known_is_success_the_same_bytes_are_not_signed_again(outbox: Outbox) -> None:
    outbox.chain.automine = False
    outbox.push(2)
    worker = outbox.worker()
    worker.run_once()  # signed and in the pool
    (sent,) = outbox.batches()
    outbox.chain.answers.append(Scripted(BroadcastOutcome.ALREADY_KNOWN))
    fresh = outbox.worker()  # a restart: every signed row is sent again, the node knows it
    fresh.run_once()
    assert outbox.chain.broadcasts == [sent.tx_hash, sent.tx_hash]
    outbox.drive(fresh)
    (batch,) = outbox.batches()
    assert (batch.tx_hash, batch.attempts) == (sent.tx_hash, 1)
    outbox.assert_each_version_anchored_once()


def test_nonce_too_low_because_this_transaction_was_mined_marks_it_anchored(outbox: Outbox) -> None:
    # The node takes and mines it, but answers "nonce too low" (as for a copy sent before, now mined).
    outbox.first_step_answered(BroadcastOutcome.NONCE_TOO_LOW, accept=True)
    (batch,) = outbox.batches()
    assert (batch.state, batch.attempts) == ("anchored", 1)
    outbox.assert_each_version_anchored_once()


def test_nonce_too_low_because_another_transaction_used_it_signs_again_at_a_fresh_nonce(outbox: Outbox) -> None:
    outbox.push(3)
    worker = outbox.worker()
    outbox.drive(worker)  # the worker's nonce is 1 next
    # Another transaction of the same key uses nonce 1 (the key must not be shared; it happens anyway).
    outbox.chain.broadcast(outbox.chain.sign(outbox.writer.signer_address, b"", nonce=1, fee=100))
    outbox.push(3)
    worker.run_once()
    second = outbox.batches()[1]
    assert (second.state, second.nonce, second.attempts) == ("assigned", 1, 1)
    outbox.drive(worker)
    second = outbox.batches()[1]
    assert (second.nonce, second.attempts) == (2, 2)
    outbox.assert_each_version_anchored_once()


def test_underpriced_is_answered_with_a_replacement_paying_more(outbox: Outbox) -> None:
    worker = outbox.first_step_answered(BroadcastOutcome.UNDERPRICED)
    (batch,) = outbox.batches()
    first, replacement = (outbox.chain.txs[h] for h in outbox.chain.broadcasts)
    assert (first.nonce, replacement.nonce) == (0, 0)
    assert replacement.fee > first.fee
    assert (batch.tx_hash, batch.fee_level, batch.attempts) == (replacement.tx_hash, replacement.fee, 2)
    outbox.drive(worker)
    (batch,) = outbox.batches()
    assert batch.tx_hash == replacement.tx_hash
    outbox.assert_each_version_anchored_once()


def test_a_rejected_transaction_is_sent_again_later(outbox: Outbox) -> None:
    worker = outbox.first_step_answered(BroadcastOutcome.REJECTED)
    (batch,) = outbox.batches()
    assert batch.state == "signed"
    assert batch.sent_at is not None
    outbox.drive(worker)
    (batch,) = outbox.batches()
    assert batch.attempts == 1  # the same bytes, sent again once the node may take them
    assert outbox.chain.broadcasts.count(batch.tx_hash) >= 2
    outbox.assert_each_version_anchored_once()


# --- stuck transactions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mined", ["replacement", "original"])
def test_a_stuck_transaction_is_replaced_and_the_batch_names_the_one_mined(outbox: Outbox, mined: str) -> None:
    outbox.chain.automine = False
    outbox.push(2)
    worker = outbox.worker(stuck_after_s=20.0)
    worker.run_once()
    (first,) = outbox.batches()
    outbox.clock.advance(21)
    worker.run_once()  # stuck: replaced at the same nonce with a higher fee
    (replaced,) = outbox.batches()
    assert replaced.tx_hash != first.tx_hash
    assert (replaced.nonce, replaced.attempts) == (first.nonce, 2)
    assert replaced.fee_level is not None
    assert first.fee_level is not None
    assert replaced.fee_level > first.fee_level
    if mined == "original":
        # The replacement goes missing and the original is mined after all (another node had it).
        assert first.tx_hash is not None
        assert replaced.tx_hash is not None
        outbox.chain.drop(replaced.tx_hash)
        outbox.chain.pool[(outbox.writer.signer_address, 0)] = outbox.chain.txs[first.tx_hash]
    outbox.chain.mine()
    outbox.drive(worker)
    (batch,) = outbox.batches()
    assert batch.tx_hash == (replaced.tx_hash if mined == "replacement" else first.tx_hash)
    outbox.assert_each_version_anchored_once()


def test_a_transaction_dropped_from_the_pool_is_sent_again_before_it_counts_as_stuck(outbox: Outbox) -> None:
    outbox.chain.automine = False
    outbox.push(2)
    worker = outbox.worker(stuck_after_s=20.0)
    worker.run_once()
    (sent,) = outbox.batches()
    assert sent.tx_hash is not None
    outbox.chain.drop(sent.tx_hash)
    outbox.clock.advance(6)  # over a quarter of stuck_after_s
    worker.run_once()
    outbox.chain.mine()
    outbox.drive(worker)
    (batch,) = outbox.batches()
    assert (batch.tx_hash, batch.attempts) == (sent.tx_hash, 1)
    outbox.assert_each_version_anchored_once()


# --- nonce gaps and a chain that went back -------------------------------------------------------------------


def test_a_nonce_gap_left_by_lost_blocks_is_filled(outbox: Outbox) -> None:
    chain = outbox.chain
    before = chain.snapshot()
    chain.broadcast(chain.sign(outbox.writer.signer_address, b"\x01", nonce=0, fee=100))  # untracked, mined
    outbox.push(2)
    worker = outbox.worker(gap_grace_s=2.0)
    outbox.drive(worker)
    (anchored,) = outbox.batches()
    assert anchored.nonce == 1
    chain.restart_from(before)  # both blocks lost: the batch's transaction now waits behind nonce 0
    outbox.drive(worker, lambda: bytes.fromhex(anchored.root) in chain.state.anchors and outbox.all_anchored())
    filler = chain.txs[chain.state.blocks[-1][0]]
    assert (filler.nonce, filler.is_filler) == (0, True)
    (batch,) = outbox.batches()
    assert (batch.tx_hash, batch.attempts) == (anchored.tx_hash, 1)
    outbox.assert_each_version_anchored_once()


@pytest.mark.parametrize("how", ["head-below", "grown-past-fresh-engine", "grown-past-after-an-outage"])
def test_anchors_lost_with_a_chain_that_went_back_are_sent_again(outbox: Outbox, how: str) -> None:
    chain = outbox.chain
    before = chain.snapshot()
    chain.mine(empty=2)
    outbox.push(5)
    worker = outbox.worker()
    outbox.drive(worker)
    lost = outbox.batches()
    chain.restart_from(before)
    if how != "head-below":
        chain.mine(empty=10)  # the head alone does not tell
    if how == "grown-past-fresh-engine":
        worker = outbox.worker()
    elif how == "grown-past-after-an-outage":
        chain.crash_at = chain.ticks + 1
        assert worker.run_once() is False
        assert worker.errors == 1
        chain.crash_at = None
    outbox.drive(worker, lambda: all(bytes.fromhex(b.root) in chain.state.anchors for b in lost))
    outbox.drive(worker)
    again = outbox.batches()
    assert [(b.tx_hash, b.attempts) for b in again] == [(b.tx_hash, b.attempts) for b in lost]
    outbox.assert_each_version_anchored_once()


def test_confirmations_are_honoured(outbox: Outbox) -> None:
    outbox.push(2)
    worker = outbox.worker(confirmations=3)
    worker.run_once()
    (batch,) = outbox.batches()
    mined_in = outbox.chain.state.receipts[batch.tx_hash or ""].block_number
    for _ in range(2):
        outbox.chain.mine(empty=1)
        worker.run_once()
        assert outbox.batches()[0].state == "signed"
    outbox.chain.mine(empty=1)
    worker.run_once()
    (batch,) = outbox.batches()
    assert (batch.state, batch.block_number) == ("anchored", mined_in)
    assert outbox.chain.head - mined_in == 3
    outbox.assert_each_version_anchored_once()


# --- a kill at every I/O call ------------------------------------------------------------------------------


def _run_killed_at(tmp_path: Path, tick: int, *, automine: bool) -> bool:
    """One run killed at ``tick``, then a fresh engine on the same database; False once nothing was hit."""
    outbox = _fresh(tmp_path, f"crash-{int(automine)}-{tick}.db", automine=automine)
    outbox.push(5)
    outbox.chain.crash_at = tick
    worker = outbox.worker()

    def step() -> None:
        worker.step()
        outbox.clock.advance(1.0)

    crashed = steps_until_killed(outbox.chain, step, outbox.all_anchored)
    # The killed engine is never used again: a fresh one starts on the same database.
    fresh = outbox.worker()
    outbox.drive(fresh)
    outbox.assert_each_version_anchored_once()
    assert fresh.errors == 0, fresh.last_error
    outbox.engine.dispose()
    return crashed


@pytest.mark.parametrize("automine", [True, False], ids=["automine", "blocks-between-steps"])
def test_a_kill_at_every_io_call_resumes_to_exactly_one_anchor_each(tmp_path: Path, automine: bool) -> None:
    hit = kill_at_every_tick(lambda tick: _run_killed_at(tmp_path, tick, automine=automine))
    assert hit >= 20  # every I/O call of a whole run was hit (a write both before and after it took effect)
