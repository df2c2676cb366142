"""ChainFollower against a scripted fake node (no anvil): single flight, errors, rollbacks, background mode.

The agreement with the contract is shown on a real anvil in ``test_follower_devnet.py``; here the node
is a few lines of Python so that the timing of concurrent callers can be controlled exactly.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from ledger_api.chain.deploy import Deployment
from ledger_api.chain.errors import ChainUnavailable
from ledger_api.chain.follower import ChainFollower
from ledger_api.chain.rpc import JsonRpc

DEPLOYMENT = Deployment(
    chain_id=1,
    block_number=5,
    addresses={"OrganisationRegistry": "0x" + "11" * 20, "GrantRegistry": "0x" + "22" * 20},
    source_hash="test",
    admin="0x" + "33" * 20,
)


class FakeNode(JsonRpc):
    """A chain of empty blocks whose head and block hashes the test sets; no network is used."""

    def __init__(self) -> None:
        super().__init__(url="http://127.0.0.1:9")
        self.head = 10
        self.fork = 0  # changes every block hash from ``fork_from`` on, as a replaced chain would
        self.fork_from = 0
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None  # when set, the next eth_blockNumber waits for it
        self.entered = threading.Event()
        self.fail: list[BaseException] = []  # raised by the next eth_blockNumber calls, in order

    def block_hash(self, number: int) -> str:
        salt = self.fork if number >= self.fork_from else 0
        return f"0x{salt:032x}{number:032x}"

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        with self.lock:
            self.calls[method] += 1
        if method == "eth_blockNumber":
            gate, self.gate = self.gate, None
            head = self.head
            if gate is not None:
                self.entered.set()
                gate.wait(10)
            if self.fail:
                raise self.fail.pop(0)
            return hex(head)
        if method == "eth_getBlockByNumber":
            number = int(params[0], 16) if params else self.head
            if number > self.head:
                return None
            return {
                "number": hex(number),
                "timestamp": hex(1_000 + number),
                "hash": self.block_hash(number),
                "parentHash": self.block_hash(number - 1),
            }
        if method == "eth_getLogs":
            return []
        raise AssertionError(f"unexpected {method}")


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


def start_callers(follower: ChainFollower, count: int) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = []

    def caller() -> None:
        try:
            results.append(follower.ensure_current())
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def test_callers_that_arrive_during_a_check_share_the_next_one(node: FakeNode) -> None:
    follower = ChainFollower(rpc=node, deployment=DEPLOYMENT)
    assert follower.sync() == 10
    node.gate = gate = threading.Event()
    first, first_results = start_callers(follower, 1)
    assert node.entered.wait(5)  # the first check has asked for the head (10) and is still in flight
    node.head = 12  # ...when a block is mined, then 30 readers arrive
    node.calls.clear()
    waiters, results = start_callers(follower, 30)
    time.sleep(0.2)
    assert node.calls["eth_blockNumber"] == 0  # they wait; none asks the node on its own
    gate.set()
    for thread in [*first, *waiters]:
        thread.join(5)
    assert first_results == [10]
    # None of them adopted the first check (its head predates their arrival); they shared one more.
    assert results == [12] * 30
    assert node.calls["eth_blockNumber"] == 1
    assert follower.head() == (12, 1_012)


def test_a_failed_check_fails_every_caller_sharing_it_and_the_next_call_recovers(node: FakeNode) -> None:
    follower = ChainFollower(rpc=node, deployment=DEPLOYMENT)
    node.gate = gate = threading.Event()
    node.fail = [ChainUnavailable("first check fails"), ChainUnavailable("shared check fails")]
    first, first_results = start_callers(follower, 1)
    assert node.entered.wait(5)
    waiters, results = start_callers(follower, 10)
    time.sleep(0.2)
    gate.set()
    for thread in [*first, *waiters]:
        thread.join(5)
    assert len(first_results) == 1
    assert isinstance(first_results[0], ChainUnavailable)
    assert len(results) == 10
    assert all(isinstance(r, ChainUnavailable) for r in results)
    assert follower.ensure_current() == 10


def test_head_below_the_processed_head_rebuilds(node: FakeNode) -> None:
    follower = ChainFollower(rpc=node, deployment=DEPLOYMENT)
    follower.sync()
    node.head = 8
    assert follower.ensure_current() == 8
    assert follower.rebuilds == 1
    assert follower.head() == (8, 1_008)
    node.head = 3  # below the deployment block: nothing of the ledger is left
    assert follower.sync() == 3
    assert follower.rebuilds == 2
    assert follower.grant_count() == 0


def test_replaced_blocks_rebuild(node: FakeNode) -> None:
    follower = ChainFollower(rpc=node, deployment=DEPLOYMENT)
    follower.sync()
    node.fork, node.fork_from = 1, 9  # blocks 9 and 10 replaced, chain grown to 14
    node.head = 14
    follower.ensure_current()
    assert follower.rebuilds == 1
    node.fork, node.fork_from = 2, 14  # the head block replaced at the same height
    assert follower.ensure_current() == 14
    assert follower.rebuilds == 1  # the one-call check cannot see it (documented)...
    follower.sync()
    assert follower.rebuilds == 2  # ...a sync compares the hash and does
    node.head = 15
    follower.sync()
    assert follower.rebuilds == 2  # a plain new block is not a replacement


def test_current_view_costs_one_block_number(node: FakeNode) -> None:
    follower = ChainFollower(rpc=node, deployment=DEPLOYMENT)
    follower.sync()
    node.calls.clear()
    for _ in range(5):
        follower.ensure_current()
    assert dict(node.calls) == {"eth_blockNumber": 5}


def test_background_thread_survives_any_error(node: FakeNode, caplog: pytest.LogCaptureFixture) -> None:
    node.fail = [ChainUnavailable("down"), ValueError("garbled answer"), KeyError("hash")]
    follower = ChainFollower(rpc=node, deployment=DEPLOYMENT)
    follower.start(poll_s=0.01, backoff_max_s=0.05)
    try:
        deadline = time.monotonic() + 5
        while follower.head()[0] != 10:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        node.head = 11
        while follower.head()[0] != 11:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert follower.running
    finally:
        follower.stop()
    assert not follower.running
    assert caplog.text.count("chain follower sync failed") == 3
