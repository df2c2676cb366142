"""A chain node restarted from an older state loses its newest blocks, and with them tree heads.

On an anvil of this module's own (its blocks are taken back with ``evm_snapshot``/``evm_revert``, the
way a node restarted from an older state dump loses them, which must not disturb the other devnet
tests): the lost head is anchored again with its very transaction, by the anchorer that lived through
it and by one started afterwards, and the auditor finds the whole log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ledger_api.accesslog import AccessLog, audit_access_log
from ledger_api.chain.devnet import Devnet
from ledger_api.index.models import AccessLogHeadRow
from ledger_api.provision import demo_private_key
from ledger_api.storage.local import LocalBlobStore
from tests.ledger_api.accesslog.chain_support import AUDITOR, make_chain
from tests.ledger_api.accesslog.support import make_entry

pytestmark = [pytest.mark.devnet]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    anvil = Devnet(home=tmp_path_factory.mktemp("accesslog-anvil"), port=None, persist=False)
    anvil.up()
    try:
        yield anvil
    finally:
        anvil.down()


@pytest.mark.parametrize("anchorer_is", ["living", "restarted"])
def test_heads_lost_with_the_chains_newest_blocks_are_anchored_again(
    node: Devnet, tmp_path: Path, engine: Engine, blobs: LocalBlobStore, anchorer_is: str
) -> None:
    chain = make_chain(node.rpc_url, tmp_path / "ledger")
    log = AccessLog(engine)
    anchorer = chain.anchorer(log, blobs)
    log.append_many([make_entry(n) for n in range(5)])
    assert anchorer.drain(timeout_s=30)
    snapshot = chain.rpc.call("evm_snapshot")
    log.append_many([make_entry(n) for n in range(5, 10)])
    assert anchorer.drain(timeout_s=30)
    with Session(engine) as session:
        lost = session.exec(select(AccessLogHeadRow).where(col(AccessLogHeadRow.size) == 10)).one()
    assert chain.writer().head_count() == 2

    assert chain.rpc.call("evm_revert", [snapshot]) is True  # the node restarts from an older state
    assert [h.size for h in chain.writer().heads()] == [5]

    if anchorer_is == "restarted":
        log = AccessLog(engine)
        anchorer = chain.anchorer(log, blobs)
    log.append_many([make_entry(n) for n in range(10, 13)])
    assert anchorer.drain(timeout_s=30), anchorer.status()

    heads = chain.writer().heads()
    assert [h.size for h in heads] == [5, 10, 13]
    assert [h.root for h in heads] == [log.root(5), log.root(10), log.root(13)]
    with Session(engine) as session:
        again = session.exec(select(AccessLogHeadRow).where(col(AccessLogHeadRow.size) == 10)).one()
    assert (again.state, again.tx_hash, again.head_index) == ("anchored", lost.tx_hash, 1)  # the very same tx
    receipt = chain.writer().receipt(lost.tx_hash or "")
    assert receipt is not None
    audit = audit_access_log(
        chain.writer(), blobs, org_id=AUDITOR.org_id, key_index=0, private_key=demo_private_key(AUDITOR.org_id)
    )
    assert audit.ok, audit.problems
    assert audit.entries == tuple(make_entry(n) for n in range(13))


def test_a_nonce_gap_of_the_log_writer_left_by_lost_blocks_is_filled(
    node: Devnet, tmp_path: Path, engine: Engine, blobs: LocalBlobStore
) -> None:
    chain = make_chain(node.rpc_url, tmp_path / "ledger")
    writer = chain.writer()
    snapshot = chain.rpc.call("evm_snapshot")
    # A nonce used by a transaction no head holds (one lost to a replacement, or of another sender using
    # the key), then a head anchored at the next nonce.
    untracked = writer.filler(nonce=writer.nonces()[1])
    writer.broadcast(untracked)
    log = AccessLog(engine)
    anchorer = chain.anchorer(log, blobs, gap_grace_s=0.2)
    log.append_many([make_entry(n) for n in range(5)])
    assert anchorer.drain(timeout_s=30)
    with Session(engine) as session:
        head = session.exec(select(AccessLogHeadRow)).one()
    assert head.nonce == untracked.nonce + 1

    # Both blocks are lost: the head's transaction, sent again, waits behind the unused nonce.
    assert chain.rpc.call("evm_revert", [snapshot]) is True
    assert writer.nonces()[0] == untracked.nonce
    log.append_many([make_entry(n) for n in range(5, 8)])
    assert anchorer.drain(timeout_s=30), anchorer.status()
    assert [h.size for h in chain.writer().heads()] == [5, 8]
    with Session(engine) as session:
        again = session.exec(select(AccessLogHeadRow).where(col(AccessLogHeadRow.size) == 5)).one()
    assert (again.state, again.tx_hash, again.attempts) == ("anchored", head.tx_hash, 1)
    assert writer.nonces()[0] == untracked.nonce + 3  # filler, the head again, the next head
