"""Tree heads anchored on a real chain: heads equal the log's roots, grow consistently, and with the
segments in storage let an auditor rebuild the whole log without the gateway's database.

Each test gets a deployment of its own (``provision`` into a temporary home, with an auditor
organisation registered on chain); the log writer is dev account 4, as on every provisioned deployment.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ledger_api.accesslog import (
    AccessLog,
    AccessLogDiverged,
    Entry,
    TreeHeadWriter,
    anchored_heads,
    audit_access_log,
    open_segment,
)
from ledger_api.chain.anchor_writer import BroadcastOutcome, SignedTx
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.errors import ChainUnavailable
from ledger_api.chain.rpc import JsonRpc
from ledger_api.index.models import AccessLogHeadRow
from ledger_api.merkle import verify_consistency, verify_inclusion
from ledger_api.provision import LOG_WRITER_ACCOUNT, demo_private_key
from ledger_api.storage.local import LocalBlobStore
from tests.ledger_api.accesslog.chain_support import AUDITOR, GATEWAY_ID, Chain
from tests.ledger_api.accesslog.support import make_entry

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def _append(log: AccessLog, count: int, start: int) -> list[Entry]:
    entries = [make_entry(start + i, tag="devnet") for i in range(count)]
    log.append_many(entries)
    return entries


def test_anchored_heads_are_the_logs_roots_and_the_auditor_rebuilds_the_log(
    chain: Chain, engine: Engine, blobs: LocalBlobStore
) -> None:
    log = AccessLog(engine)
    anchorer = chain.anchorer(log, blobs, segment_max=100)
    entries: list[Entry] = []
    for count in [1, 2, 5, 13, 64, 250, 3]:
        entries += _append(log, count, len(entries))
        assert anchorer.drain(timeout_s=30), anchorer.status()
    assert anchorer.errors == 0, anchorer.last_error

    writer = chain.writer()
    heads = writer.heads()
    # A backlog larger than segment_max (250) is anchored in several heads.
    assert [h.size for h in heads] == [1, 3, 8, 21, 85, 185, 285, 335, 338]
    for head in heads:
        assert head.root == log.root(head.size)
    assert anchored_heads(log) == {h.size: h.root.hex() for h in heads}
    for old, new in itertools.pairwise(heads):
        verify_consistency(old.size, new.size, old.root, new.root, log.consistency_proof(old.size, new.size))

    rng = random.Random(7)
    for head in (heads[-1], heads[4]):
        for index in rng.sample(range(head.size), 5):
            proof = log.inclusion_proof(index, head.size)
            verify_inclusion(entries[index].leaf_hash(), index, head.size, proof, head.root)
            assert writer.is_entry_included(head.index, entries[index].leaf_hash(), index, proof)
            assert not writer.is_entry_included(head.index, make_entry(10**6).leaf_hash(), index, proof)

    # The auditor, from the chain and the storage alone, with its own key from the registry.
    audit = audit_access_log(
        writer, blobs, org_id=AUDITOR.org_id, key_index=0, private_key=demo_private_key(AUDITOR.org_id)
    )
    assert audit.ok, audit.problems
    assert (audit.size, audit.heads_verified, audit.extra_segments) == (338, len(heads), ())
    assert list(audit.entries) == entries
    # The gateway's own key opens every segment too (it can rebuild its index from storage).
    with Session(engine) as session:
        keys = session.exec(select(AccessLogHeadRow.segment_key)).all()
    assert len(keys) == len(heads)
    for key in keys:
        assert key is not None
        open_segment(blobs.get(key), org_id=GATEWAY_ID, key_index=0, private_key=chain.gateway_private)


class Crash(BaseException):
    """A kill -9 at this very point: nothing after it runs."""


def _crashing(at: str) -> type[TreeHeadWriter]:
    class CrashingWriter(TreeHeadWriter):
        def broadcast(self, tx: SignedTx) -> BroadcastOutcome:
            if at == "before_broadcast":
                raise Crash
            super().broadcast(tx)
            raise Crash

    return CrashingWriter


@pytest.mark.parametrize("at", ["before_broadcast", "after_broadcast"])
def test_after_a_crash_the_same_signed_transaction_anchors_the_head(
    chain: Chain, engine: Engine, blobs: LocalBlobStore, at: str
) -> None:
    log = AccessLog(engine)
    _append(log, 10, 0)
    with pytest.raises(Crash):
        chain.anchorer(log, blobs, writer=chain.writer(_crashing(at))).step()
    with Session(engine) as session:
        head = session.exec(select(AccessLogHeadRow)).one()
    assert (head.state, head.size, head.attempts) == ("signed", 10, 1)
    assert head.segment_key is not None
    assert blobs.exists(head.segment_key)
    assert chain.writer().head_count() == (1 if at == "after_broadcast" else 0)

    # Restart: a new log and anchorer on the same database.
    again = AccessLog(engine)
    anchorer = chain.anchorer(again, blobs)
    assert anchorer.drain(timeout_s=30), anchorer.status()
    with Session(engine) as session:
        done = session.exec(select(AccessLogHeadRow)).one()
    assert (done.state, done.tx_hash, done.attempts, done.head_index) == ("anchored", head.tx_hash, 1, 0)
    assert done.anchored_at is not None
    assert done.anchored_at.tzinfo is not None
    assert chain.writer().heads()[0].root == log.root(10)
    assert chain.writer().head_count() == 1


def test_a_head_the_chain_already_holds_is_marked_anchored_without_sending(
    chain: Chain, engine: Engine, blobs: LocalBlobStore
) -> None:
    log = AccessLog(engine)
    _append(log, 6, 0)

    class EarlierCopyMined(TreeHeadWriter):
        """Between forming the head and sending it, an earlier copy of its transaction is mined."""

        def preflight(self, size: int, root: bytes) -> Any:
            if self.head_count() == 0:
                chain.anchor_directly(size, root)
            return super().preflight(size, root)

    anchorer = chain.anchorer(log, blobs, writer=chain.writer(EarlierCopyMined))
    assert anchorer.drain(timeout_s=30), anchorer.status()
    with Session(engine) as session:
        head = session.exec(select(AccessLogHeadRow)).one()
    assert (head.state, head.attempts, head.tx_hash, head.head_index) == ("anchored", 0, None, 0)
    assert chain.writer().head_count() == 1  # never sent a second, smaller-or-equal head

    # A database that does not know a head the chain holds (a restore): the head is taken in, its
    # segment written, and anchoring carries on above it.
    _append(log, 4, 6)
    chain.anchor_directly(10, log.root(10))
    with Session(engine) as session:
        session.delete(session.exec(select(AccessLogHeadRow)).one())
        session.commit()
    anchorer = chain.anchorer(AccessLog(engine), blobs)
    assert anchorer.drain(timeout_s=30), anchorer.status()
    _append(log, 2, 10)
    assert anchorer.drain(timeout_s=30), anchorer.status()
    assert [h.size for h in chain.writer().heads()] == [6, 10, 12]
    audit = audit_access_log(
        chain.writer(), blobs, org_id=AUDITOR.org_id, key_index=0, private_key=demo_private_key(AUDITOR.org_id)
    )
    assert audit.ok, audit.problems
    assert audit.size == 12


def test_a_chain_that_holds_another_tree_is_reported_and_never_built_on(
    chain: Chain, engine: Engine, blobs: LocalBlobStore, caplog: pytest.LogCaptureFixture
) -> None:
    log = AccessLog(engine)
    _append(log, 5, 0)
    chain.anchor_directly(3, b"\x11" * 32)  # not this log's root at 3
    anchorer = chain.anchorer(log, blobs)
    assert anchorer.run_once() is False
    assert anchorer.errors == 1
    assert anchorer.last_error is not None
    assert AccessLogDiverged.__name__ in anchorer.last_error
    stop = threading.Event()
    loop = threading.Thread(target=anchorer.run, args=(stop,))
    loop.start()
    stop.wait(0.6)
    assert loop.is_alive()  # it logs and keeps going, never dies
    stop.set()
    loop.join(timeout=10)
    assert anchorer.errors >= 2
    assert chain.writer().head_count() == 1
    assert anchorer.anchored_size() == 0
    assert any("diverged" in r.getMessage() or "root" in r.getMessage() for r in caplog.records)


class FlakyRpc(JsonRpc):
    """A node that is away for a while (refused connections), then back."""

    def __init__(self, *, url: str, outage_calls: int) -> None:
        super().__init__(url=url)
        self.failures_left = outage_calls

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise ChainUnavailable(f"{method}: connection refused (simulated outage)")
        return super().call(method, params)


def test_the_loop_outlives_a_chain_outage_and_anchors_afterwards(
    chain: Chain, engine: Engine, blobs: LocalBlobStore
) -> None:
    log = AccessLog(engine)
    _append(log, 20, 0)
    rpc = FlakyRpc(url=chain.rpc.url, outage_calls=7)
    writer = TreeHeadWriter(
        rpc=rpc, signer=dev_account(LOG_WRITER_ACCOUNT), address=chain.contract, chain_id=chain.rpc.chain_id()
    )
    anchorer = chain.anchorer(log, blobs, writer=writer)
    stop = threading.Event()
    loop = threading.Thread(target=anchorer.run, args=(stop,))
    loop.start()
    try:
        _wait_until(lambda: anchorer.anchored_size() >= 20)
        _append(log, 5, 20)  # appended while the loop runs
        _wait_until(lambda: anchorer.anchored_size() >= 25)
    finally:
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive()
    assert anchorer.errors >= 1
    assert anchorer.anchored_size() == 25
    heads = chain.writer().heads()
    assert heads[-1].size == 25
    assert heads[-1].root == log.root(25)


def _wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
