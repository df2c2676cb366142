"""The anchoring worker recovers from what a crash or a chain-node restart leaves behind.

One focused test per failure the crash tests exposed or that reading the worker turned up, each on a
real anvil (its own, so that blocks can be taken back with ``evm_snapshot``/``evm_revert`` the way a
node restarted from an older state dump loses them, and mining can be held with ``evm_setAutomine``):

* a node that goes away while a transaction is signed must not leave a nonce no transaction will use;
* anchors lost with the chain's newest blocks are anchored again, by a worker started afterwards (the
  gateway restarted too) and by one that lived through the outage, even when the chain has grown past
  its old head again;
* a nonce gap below the signer's queued transactions (its transaction was in a lost block) is filled;
* a transaction mined between the worker's receipt query and its nonce query is not signed again;
* when the root was anchored by another transaction than the one recorded last, the batch names the one
  that did it (the status endpoint shows it);
* the loop survives any error, logs it, and keeps going; a node without the contract is a chain error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from web3 import Web3

from ledger_api.anchoring.worker import AnchoringSettings, AnchoringWorker
from ledger_api.chain.anchor_writer import AnchorWriter, SignedTx
from ledger_api.chain.devnet import Devnet
from ledger_api.chain.errors import ChainError, ChainUnavailable
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.transactor import Transactor
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import AnchorBatch, RecordVersion
from ledger_api.provision import provision
from tests.ledger_api.gateway.conftest import POLICE, make_settings
from tests.ledger_api.gateway.records import sample_records

pytestmark = [pytest.mark.devnet]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """An anvil of this module's own: its blocks are taken back and its mining held."""
    node = Devnet(home=tmp_path_factory.mktemp("anchoring-anvil"), port=None, persist=False)
    node.up()
    try:
        yield node
    finally:
        node.down()


@dataclass
class Ledger:
    """A fresh deployment on the module's anvil, its index, storage and keys; no worker running."""

    services: GatewayServices
    rpc: JsonRpc
    pushed: int = 0
    workers: list[AnchoringWorker] = field(default_factory=list)

    def writer(self, cls: type[AnchorWriter] = AnchorWriter) -> AnchorWriter:
        account = self.services.signers.get(POLICE)
        assert account is not None
        return cls(
            rpc=self.rpc,
            signer=account,
            owner_org=POLICE,
            records_address=self.services.deployment.address("RecordAnchors"),
            chain_id=self.rpc.chain_id(),
        )

    def worker(self, writer: AnchorWriter, *, blobs: Any = None, **overrides: Any) -> AnchoringWorker:
        settings = {"max_wait_s": 0.0, "poll_s": 0.01, "backoff_max_s": 0.2, **overrides}
        worker = AnchoringWorker(
            engine=self.services.engine,
            blobs=blobs or self.services.blobs,
            writers={POLICE: writer},
            settings=AnchoringSettings(**settings),
        )
        self.workers.append(worker)
        return worker

    def push(self, count: int) -> None:
        records = sample_records("police.incidents", POLICE)[self.pushed : self.pushed + count]
        assert len(records) == count
        self.services.ingest.push(org_id=POLICE, records=records)
        self.pushed += count

    def batches(self) -> list[AnchorBatch]:
        with Session(self.services.engine) as session:
            return list(session.exec(select(AnchorBatch).order_by(AnchorBatch.id)).all())

    def all_anchored(self) -> bool:
        with Session(self.services.engine) as session:
            waiting = session.exec(select(RecordVersion).where(RecordVersion.batch_id == None)).first()  # noqa: E711
            batches = session.exec(select(AnchorBatch)).all()
        return waiting is None and bool(batches) and all(b.state == "anchored" for b in batches)

    def on_chain(self, writer: AnchorWriter, batch: AnchorBatch) -> bool:
        return writer.anchored_batch(bytes.fromhex(batch.root)) is not None

    def snapshot(self) -> str:
        return str(self.rpc.call("evm_snapshot"))

    def lose_blocks_since(self, snapshot: str) -> None:
        """The node restarts from the state it had at ``snapshot``: every later block is gone."""
        assert self.rpc.call("evm_revert", [snapshot]) is True

    def mine(self, blocks: int = 1) -> None:
        self.rpc.call("anvil_mine", [hex(blocks)])

    def receipt_status(self, tx_hash: str | None) -> int | None:
        receipt = self.rpc.receipt(tx_hash) if tx_hash else None
        return int(receipt["status"], 16) if receipt else None


@pytest.fixture
def ledger(chain: Devnet, tmp_path: Path) -> Iterator[Ledger]:
    settings = make_settings(tmp_path / "ledger", chain.rpc_url)
    provision(settings=settings, transactor=Transactor(w3=Web3(Web3.HTTPProvider(chain.rpc_url))))
    services = GatewayServices.from_settings(settings)
    rpc = JsonRpc(url=chain.rpc_url)
    try:
        yield Ledger(services=services, rpc=rpc)
    finally:
        rpc.call("evm_setAutomine", [True])
        rpc.close()
        services.close()


def drive(worker: AnchoringWorker, until: Callable[[], bool], *, timeout_s: float = 15.0) -> None:
    """Run the worker's steps (as its loop does, errors handled) until ``until()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s}s; last worker error: {worker.last_error}")
        worker.run_once()
        time.sleep(0.01)


# --- nonces ----------------------------------------------------------------------------------------------


class SignFailsOnce(AnchorWriter):
    """The node goes away just as the first transaction is being signed (fees are read from it)."""

    failed = False

    def sign(self, calldata: bytes, *, nonce: int, min_fee_level: int = 0) -> SignedTx:
        if not self.failed:
            self.failed = True
            raise ChainUnavailable("eth_getBlockByNumber failed: [Errno 111] Connection refused")
        return super().sign(calldata, nonce=nonce, min_fee_level=min_fee_level)


def test_a_node_lost_while_signing_leaves_no_nonce_gap(ledger: Ledger) -> None:
    writer = ledger.writer(SignFailsOnce)
    first_nonce = ledger.rpc.nonce(writer.address, "pending")
    worker = ledger.worker(writer, gap_grace_s=3600)  # the gap filler must not be what saves the day
    ledger.push(5)
    drive(worker, ledger.all_anchored, timeout_s=10)
    (batch,) = ledger.batches()
    assert batch.nonce == first_nonce
    assert ledger.rpc.nonce(writer.address, "latest") == first_nonce + 1
    assert worker.errors == 1


# --- blocks lost with a node restart ---------------------------------------------------------------------


@pytest.mark.parametrize("regrown", [False, True], ids=["head-below", "head-grown-past"])
def test_anchors_lost_with_the_chain_are_anchored_again_by_a_worker_started_afterwards(
    ledger: Ledger, regrown: bool
) -> None:
    writer = ledger.writer()
    snapshot = ledger.snapshot()
    first = ledger.worker(writer, stuck_after_s=0.5)
    ledger.push(8)
    drive(first, ledger.all_anchored)
    (anchored,) = ledger.batches()
    time.sleep(0.6)  # older than stuck_after_s: sending it again must not count as stuck

    # The node restarts from an older state and the gateway restarts too: a new worker, which never
    # saw the lost block. With blocks coming anyway, the head may even be past the old one again.
    ledger.lose_blocks_since(snapshot)
    if regrown:
        ledger.mine(5)
    assert not ledger.on_chain(writer, anchored)
    second = ledger.worker(writer, stuck_after_s=0.5)
    drive(second, lambda: ledger.on_chain(writer, anchored) and ledger.all_anchored())

    (again,) = ledger.batches()
    on_chain = writer.anchored_batch(bytes.fromhex(again.root))
    assert on_chain is not None
    assert again.block_number == on_chain.block_number
    # The very same signed transaction was sent again; it is the one the batch names.
    assert again.tx_hash == anchored.tx_hash
    assert again.attempts == anchored.attempts
    assert ledger.receipt_status(again.tx_hash) == 1


def test_anchors_lost_during_an_outage_are_anchored_again_by_the_same_worker(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ledger.writer()
    snapshot = ledger.snapshot()
    worker = ledger.worker(writer)
    ledger.push(8)
    drive(worker, ledger.all_anchored)
    (anchored,) = ledger.batches()
    assert anchored.block_number is not None

    # The node goes away and comes back from an older state, then mines past the old head before the
    # worker looks: the head alone does not tell. The outage does.
    ledger.lose_blocks_since(snapshot)
    ledger.mine(anchored.block_number - ledger.rpc.block_number() + 3)
    real_call = ledger.rpc.call
    calls = {"n": 0}

    def node_down_once(method: str, params: Sequence[Any] | None = None) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ChainUnavailable(f"{method} failed: [Errno 111] Connection refused")
        return real_call(method, list(params or []))

    monkeypatch.setattr(ledger.rpc, "call", node_down_once)
    worker.run_once()
    assert worker.errors == 1
    monkeypatch.setattr(ledger.rpc, "call", real_call)
    drive(worker, lambda: ledger.on_chain(writer, anchored) and ledger.all_anchored())
    assert ledger.receipt_status(ledger.batches()[0].tx_hash) == 1


def test_a_nonce_gap_left_by_lost_blocks_is_filled(ledger: Ledger) -> None:
    writer = ledger.writer()
    snapshot = ledger.snapshot()
    # A nonce used by a transaction that no batch holds any more (one that reverted, or lost to the
    # replacement of another batch's transaction); then a batch anchored at the next nonce.
    untracked = writer.filler(nonce=ledger.rpc.nonce(writer.address, "pending"))
    writer.broadcast(untracked)
    worker = ledger.worker(writer, gap_grace_s=0.2)
    ledger.push(6)
    drive(worker, ledger.all_anchored)
    (anchored,) = ledger.batches()
    assert anchored.nonce == untracked.nonce + 1

    # Both blocks are lost. The batch's transaction, sent again, waits behind the unused nonce.
    ledger.lose_blocks_since(snapshot)
    assert ledger.rpc.nonce(writer.address, "latest") == untracked.nonce
    drive(worker, lambda: ledger.on_chain(writer, anchored) and ledger.all_anchored())
    assert ledger.rpc.nonce(writer.address, "latest") == untracked.nonce + 2
    assert ledger.receipt_status(ledger.batches()[0].tx_hash) == 1


# --- which transaction anchored it ------------------------------------------------------------------------


class MinesBeforeNonces(AnchorWriter):
    """A block arrives between the worker's receipt query and its nonce query (2 s blocks do that)."""

    mine_next = False

    def nonces(self) -> tuple[int, int]:
        if self.mine_next:
            self.mine_next = False
            self.rpc.call("evm_mine")
        return super().nonces()


def test_a_transaction_mined_between_two_queries_is_not_signed_again(ledger: Ledger) -> None:
    writer = ledger.writer(MinesBeforeNonces)
    assert isinstance(writer, MinesBeforeNonces)
    worker = ledger.worker(writer)
    worker.run_once()  # nothing to anchor yet: checks the chain
    ledger.rpc.call("evm_setAutomine", [False])
    ledger.push(4)
    worker.run_once()  # forms the batch, signs, sends: in the pool, not mined
    (sent,) = ledger.batches()
    assert sent.state == "signed"
    writer.mine_next = True
    worker.run_once()  # no receipt, root not anchored... then the block comes
    ledger.rpc.call("evm_setAutomine", [True])
    ledger.mine()
    drive(worker, ledger.all_anchored)
    (batch,) = ledger.batches()
    assert batch.attempts == 1, "the batch was signed again although its transaction was mined"
    assert batch.tx_hash == sent.tx_hash
    assert ledger.receipt_status(batch.tx_hash) == 1


def test_the_batch_names_the_transaction_that_anchored_it(ledger: Ledger) -> None:
    writer = ledger.writer()
    worker = ledger.worker(writer, stuck_after_s=0.05)
    worker.run_once()
    ledger.rpc.call("evm_setAutomine", [False])
    ledger.push(4)
    worker.run_once()  # sends the first transaction, which stays in the pool
    (first,) = ledger.batches()
    assert first.raw_tx is not None
    time.sleep(0.1)
    worker.run_once()  # stuck: replaced at the same nonce with a higher fee
    (replaced,) = ledger.batches()
    assert replaced.tx_hash != first.tx_hash
    # The replacement goes missing and the first transaction is the one mined after all.
    ledger.rpc.call("anvil_dropTransaction", [replaced.tx_hash])
    ledger.rpc.call("eth_sendRawTransaction", ["0x" + first.raw_tx.hex()])
    ledger.mine()
    ledger.rpc.call("evm_setAutomine", [True])
    drive(worker, ledger.all_anchored)
    (batch,) = ledger.batches()
    assert batch.tx_hash == first.tx_hash
    assert ledger.receipt_status(batch.tx_hash) == 1


# --- the loop never dies ----------------------------------------------------------------------------------


class FailingOnce:
    """Blob storage whose first write fails (a full disk, a storage node restarting)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed = False

    def put(self, data: bytes) -> str:
        if not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        key: str = self.inner.put(data)
        return key


def test_the_worker_thread_survives_any_error_and_logs_it(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    writer = ledger.writer()
    worker = ledger.worker(writer, blobs=FailingOnce(ledger.services.blobs))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    caplog.set_level(logging.ERROR, logger="ledger_api.anchoring.worker")
    ledger.push(3)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not ledger.all_anchored():
            assert thread.is_alive(), "the worker thread died"
            assert time.monotonic() < deadline, f"not anchored; last error {worker.last_error}"
            time.sleep(0.05)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert worker.errors == 1
    assert worker.last_error is not None
    assert "No space left on device" in worker.last_error
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.exc_info is not None
    assert isinstance(failure.exc_info[1], OSError)


def test_a_node_without_the_contract_is_a_chain_error(ledger: Ledger) -> None:
    account = ledger.services.signers.get(POLICE)
    assert account is not None
    writer = AnchorWriter(
        rpc=ledger.rpc,
        signer=account,
        owner_org=POLICE,
        records_address="0x" + "42" * 20,  # no code there: a chain reset without the deployment
        chain_id=ledger.rpc.chain_id(),
    )
    with pytest.raises(ChainError, match="RecordAnchors"):
        writer.anchored_batch(b"\x01" * 32)
