"""The same engine with its other client, the access log's tree heads, against the fake chain.

A kill at every I/O call of a run (chain calls and segment writes), then a fresh log and anchorer on the
same database: every entry ends up under an anchored head, each head is anchored exactly once, and the
chain's heads are exactly the database's. A head lost with the chain's newest blocks, behind a nonce
gap, is anchored again by its very transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ledger_api.accesslog import AccessLog, TreeHeadAnchorer, TreeHeadSettings
from ledger_api.crypto import hpke
from ledger_api.index.models import AccessLogHeadRow
from tests.ledger_api.accesslog.support import make_entry, sqlite_engine
from tests.ledger_api.outbox.fake_chain import FakeChain, FakeLogWriter, kill_at_every_tick, steps_until_killed
from tests.ledger_api.outbox.test_engine import Blobs, Clock

_GATEWAY_KEY = ("gateway", 0, hpke.generate_keypair()[1])


def _anchorer(engine: Engine, chain: FakeChain, clock: Clock, **settings: Any) -> TreeHeadAnchorer:
    options: dict[str, Any] = {"max_wait_s": 0.0, "batch_max": 3, "segment_max": 3, **settings}
    return TreeHeadAnchorer(
        log=AccessLog(engine),
        blobs=Blobs(chain),
        writer=FakeLogWriter(chain),  # type: ignore[arg-type]  # the fake stands for the chain
        gateway_key=_GATEWAY_KEY,
        settings=TreeHeadSettings(**options),
        clock=clock,
    )


def _drive(anchorer: TreeHeadAnchorer, chain: FakeChain, clock: Clock, size: int) -> None:
    for _ in range(200):
        if anchorer.anchored_size() >= size:
            return
        anchorer.run_once()
        if not chain.automine:
            chain.mine()
        clock.advance(1.0)
    raise AssertionError(f"not anchored; last error: {anchorer.last_error}")


def _assert_each_head_anchored_once(engine: Engine, chain: FakeChain, size: int) -> None:
    with Session(engine) as session:
        rows = session.exec(select(AccessLogHeadRow).order_by(AccessLogHeadRow.size)).all()
    assert rows
    assert rows[-1].size == size
    assert [r.from_index for r in rows] == [0] + [r.size for r in rows[:-1]]  # the segments cover the log
    assert all(r.state == "anchored" and r.segment_key is not None for r in rows)
    on_chain = [(s, root.hex(), block, tx) for s, root, block, tx in chain.state.heads]
    assert on_chain == [(r.size, r.root, r.block_number, r.tx_hash) for r in rows]
    assert [r.head_index for r in rows] == list(range(len(rows)))


def _run_killed_at(tmp_path: Path, tick: int, *, automine: bool) -> bool:
    engine = sqlite_engine(tmp_path / f"heads-{int(automine)}-{tick}.db")
    chain, clock = FakeChain(automine=automine), Clock()
    AccessLog(engine).append_many([make_entry(n) for n in range(6)])
    chain.crash_at = tick
    anchorer = _anchorer(engine, chain, clock)

    def step() -> None:
        anchorer.step()
        clock.advance(1.0)

    crashed = steps_until_killed(chain, step, lambda: anchorer.anchored_size() >= 6)
    # The killed anchorer is never used again: a fresh one starts on the same database.
    fresh = _anchorer(engine, chain, clock)
    _drive(fresh, chain, clock, 6)
    _assert_each_head_anchored_once(engine, chain, 6)
    assert fresh.errors == 0, fresh.last_error
    engine.dispose()
    return crashed


@pytest.mark.parametrize("automine", [True, False], ids=["automine", "blocks-between-steps"])
def test_a_kill_at_every_io_call_resumes_to_exactly_one_anchor_each(tmp_path: Path, automine: bool) -> None:
    hit = kill_at_every_tick(lambda tick: _run_killed_at(tmp_path, tick, automine=automine))
    assert hit >= 20  # every I/O call of a whole run was hit (a write both before and after it took effect)


def test_a_head_lost_behind_a_nonce_gap_is_anchored_again(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "heads.db")
    chain, clock = FakeChain(), Clock()
    before = chain.snapshot()
    writer = FakeLogWriter(chain)
    chain.broadcast(chain.sign(writer.signer_address, b"\x01", nonce=0, fee=100))  # untracked, mined
    anchorer = _anchorer(engine, chain, clock, gap_grace_s=2.0)
    AccessLog(engine).append_many([make_entry(n) for n in range(3)])
    _drive(anchorer, chain, clock, 3)
    with Session(engine) as session:
        head = session.exec(select(AccessLogHeadRow)).one()
    assert head.nonce == 1
    chain.restart_from(before)
    for _ in range(20):
        anchorer.run_once()
        clock.advance(1.0)
    _assert_each_head_anchored_once(engine, chain, 3)
    assert chain.txs[chain.state.blocks[-1][0]].is_filler  # mined with the head it held back
    with Session(engine) as session:
        again = session.exec(select(AccessLogHeadRow)).one()
    assert (again.tx_hash, again.attempts) == (head.tx_hash, 1)
