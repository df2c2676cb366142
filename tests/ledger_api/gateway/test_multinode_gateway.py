"""The gateway on a real four-signer Clique network, nodes killed under it (DESIGN.md invariant 5).

The gateway (``ledger serve``, a child process) is given every node, its own first
(``LEDGER_RPC_URL=node3,node0,node1,node2``), Clique's confirmations (``LEDGER_CHAIN_ENGINE=clique``: 3)
and legacy gas pricing, as on a Besu or GoQuorum network. Pusher threads keep pushing while signers
are SIGKILLed: one (blocks keep coming), two of four (blocks stop: Clique needs a majority of signers
taking turns; pushes are still acknowledged and stored), and the gateway's own node (it fails over).
After each, every acknowledged record version is anchored exactly once, checked from the chain's
``BatchAnchored`` events and the manifests in storage.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from adapters.canonical import RecordType
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.clique import CliqueNetwork
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.transactor import Transactor
from ledger_api.index.database import make_engine
from ledger_api.provision import DEMO_ORGANISATIONS, Provisioned, provision
from ledger_api.settings import Settings
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY
from tests.ledger_api.gateway.records import sample_records
from tests.support.clique import (
    agree_at_depth,
    all_nodes_up,
    describe_node,
    head,
    isolate_idle,
    kill_signer,
    seal_alone,
    wait_for_blocks,
    wait_until,
)
from tests.support.gateway_process import (
    AckLog,
    GatewayProcess,
    Pusher,
    RecordFactory,
    check_anchored_exactly_once,
    outbox_drained,
    outbox_report,
)

pytestmark = [pytest.mark.multinode, pytest.mark.slow, pytest.mark.xdist_group("clique")]

GATEWAY_NODE = 3
TEMPLATES = {POLICE: "police.incidents", PROPERTY: "property.access_events", COMMITTEE: "committee.hazard_reports"}
ACCOUNTS = {o.org_id: o.account for o in DEMO_ORGANISATIONS}


@dataclass(frozen=True, kw_only=True)
class Ledger:
    settings: Settings
    provisioned: Provisioned
    gateway: GatewayProcess
    acks: AckLog


@pytest.fixture(scope="module")
def ledger(clique: CliqueNetwork, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """Contracts and the demo organisations provisioned through node 1; the gateway on node 3 first."""
    urls = [clique.node_url(i) for i in (GATEWAY_NODE, 0, 1, 2)]
    settings = Settings(home=tmp_path_factory.mktemp("ledger-multinode"), rpc_url=",".join(urls), chain_engine="clique")
    provisioned = provision(settings=settings, transactor=Transactor.from_url(clique.node_url(1)))
    gateway = GatewayProcess(
        home=settings.home,
        rpc_url=settings.rpc_url,
        anchor_max_wait_s=0.2,
        env={"LEDGER_CHAIN_ENGINE": "clique", "LEDGER_GAS_PRICING": "legacy"},
    )
    gateway.start()
    try:
        yield Ledger(settings=settings, provisioned=provisioned, gateway=gateway, acks=AckLog())
    finally:
        gateway.stop()


def _pushers(ledger: Ledger, stop: threading.Event, tag: str) -> list[Pusher]:
    return [
        Pusher(
            gateway=ledger.gateway,
            owner=owner,
            token=ledger.provisioned.api_keys[owner],
            factory=RecordFactory(
                templates=sample_records(adapter, owner), tag=tag, rng=random.Random(f"{tag}{owner}")
            ),
            rng=random.Random(f"{tag}:{owner}"),
            acks=ledger.acks,
            stop=stop,
            max_batch=40,
            pause_s=0.2,
        )
        for owner, adapter in TEMPLATES.items()
    ]


class Pushing:
    """Pushers running for the length of a ``with`` block; their errors fail the test at its end."""

    def __init__(self, ledger: Ledger, tag: str) -> None:
        self._stop = threading.Event()
        self.pushers = _pushers(ledger, self._stop, tag)

    def __enter__(self) -> Pushing:
        for pusher in self.pushers:
            pusher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for pusher in self.pushers:
            pusher.join(timeout=60)
        errors = [p.error for p in self.pushers if p.error is not None]
        assert not errors, f"a pusher failed: {errors}"

    def acknowledged(self) -> int:
        return sum(p.stats.acknowledged_records for p in self.pushers)


def _drained_and_anchored_exactly_once(ledger: Ledger) -> None:
    try:
        wait_until(lambda: outbox_drained(ledger.settings) == (0, 0), timeout_s=120, what="the outbox drained")
    except AssertionError:
        raise AssertionError(f"{outbox_report(ledger.settings)}\n{ledger.gateway.log_tail()}") from None
    check = check_anchored_exactly_once(
        settings=ledger.settings,
        deployment=ledger.provisioned.deployment,
        acknowledged=ledger.acks.versions(),
        owners=list(TEMPLATES),
    )
    assert check.acknowledged > 0


def _push(ledger: Ledger, owner: str, count: int, *, tag: str) -> str:
    """Push ``count`` fresh records of ``owner``, acknowledged (202); the first one's record id."""
    factory = RecordFactory(templates=sample_records(TEMPLATES[owner], owner), tag=tag, rng=random.Random(tag))
    answer = httpx.post(
        f"{ledger.gateway.url}/v1/records",
        json={"records": factory.batch(count, update_share=0)},
        headers={"Authorization": f"Bearer {ledger.provisioned.api_keys[owner]}"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    ledger.acks.add(owner, answer.json()["records"])
    return str(answer.json()["records"][0]["record_id"])


def _status(ledger: Ledger, owner: str, record_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{ledger.gateway.url}/v1/records/{record_id}/status",
        headers={"Authorization": f"Bearer {ledger.provisioned.api_keys[owner]}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _read(ledger: Ledger, record_id: str, grant_id: int) -> httpx.Response:
    return httpx.get(
        f"{ledger.gateway.url}/v1/records/{record_id}",
        params={"purpose": Purpose.COMMUNITY_GOVERNANCE.label, "grant": str(grant_id)},
        headers={"Authorization": f"Bearer {ledger.provisioned.api_keys[COMMITTEE]}"},
        timeout=30,
    )


def test_pushes_are_anchored_with_confirmations_and_reads_are_decided_on_the_network(
    clique: CliqueNetwork, ledger: Ledger
) -> None:
    record_id = _push(ledger, PROPERTY, 20, tag="rd")
    wait_until(lambda: _status(ledger, PROPERTY, record_id)["state"] == "anchored", timeout_s=60, what="anchored")
    status = _status(ledger, PROPERTY, record_id)
    # Anchored means 3 blocks on top (Clique's default), as node 0 (not the gateway's) sees it too.
    assert (head(clique, 0) or 0) >= status["block_number"] + 3, status
    rpc = JsonRpc(url=clique.node_url(0))
    receipt = rpc.receipt(status["transaction"])
    rpc.close()
    assert receipt is not None
    assert int(receipt["blockNumber"], 16) == status["block_number"]

    # The owner grants through node 2 and revokes through node 1; the gateway decides at its node's head.
    owner_chain = LedgerChain.from_settings(rpc_url=clique.node_url(2), deployment=ledger.provisioned.deployment)
    now = owner_chain.latest_timestamp()
    grant_id, granted = owner_chain.create_grant(
        signer=dev_account(ACCOUNTS[PROPERTY]),
        spec=GrantSpec(
            owner_org=PROPERTY,
            grantee_org=COMMITTEE,
            purpose=Purpose.COMMUNITY_GOVERNANCE,
            valid_from=now - 60,
            valid_until=now + 3600,
            record_types=(RecordType.ACCESS_EVENT.value,),
        ),
    )
    wait_until(lambda: (head(clique, GATEWAY_NODE) or 0) >= granted["blockNumber"], timeout_s=30, what="grant seen")
    allowed = _read(ledger, record_id, grant_id)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["record"]["record_id"] == record_id
    revoker = LedgerChain.from_settings(rpc_url=clique.node_url(1), deployment=ledger.provisioned.deployment)
    revoked = revoker.revoke_grant(signer=dev_account(ACCOUNTS[PROPERTY]), grant_id=grant_id)
    wait_until(lambda: (head(clique, GATEWAY_NODE) or 0) >= revoked["blockNumber"], timeout_s=30, what="revoke seen")
    refused = _read(ledger, record_id, grant_id)
    assert refused.status_code == 403, refused.text
    assert "revoked" in refused.text.lower()
    _drained_and_anchored_exactly_once(ledger)


def test_one_signer_killed_blocks_go_on_and_it_rejoins(clique: CliqueNetwork, ledger: Ledger) -> None:
    with all_nodes_up(clique), Pushing(ledger, "one") as pushing:
        wait_until(lambda: pushing.acknowledged() > 50, timeout_s=60, what="pushes acknowledged")
        kill_signer(clique, 1)
        acknowledged = pushing.acknowledged()
        wait_for_blocks(clique, 0, 5)  # three signers of four keep sealing
        wait_until(lambda: pushing.acknowledged() > acknowledged + 50, timeout_s=60, what="pushes go on")
        clique.start_node(1)
        wait_until(lambda: (head(clique, 1) or 0) >= (head(clique, 0) or 0) - 1, timeout_s=60, what="node 1 caught up")
        wait_for_blocks(clique, 1, 4)
    agree_at_depth(clique, 3)
    _drained_and_anchored_exactly_once(ledger)


def test_two_of_four_signers_killed_blocks_stop_pushes_are_kept_and_anchored_once_they_return(
    clique: CliqueNetwork, ledger: Ledger
) -> None:
    with all_nodes_up(clique), Pushing(ledger, "two") as pushing:
        wait_until(lambda: pushing.acknowledged() > 50, timeout_s=60, what="pushes acknowledged")
        clique.kill_node(1)
        clique.kill_node(2)
        # Two signers may still seal a block or two each in turn, then neither may sign again: a signer
        # signs at most one of every floor(4/2)+1 = 3 consecutive blocks.
        wait_until(lambda: _stalled(clique, 0, quiet_s=4.0), timeout_s=60, what="blocks stopped")
        stalled_at = head(clique, 0) or 0
        acknowledged = pushing.acknowledged()
        wait_until(lambda: pushing.acknowledged() > acknowledged + 50, timeout_s=60, what="pushes acknowledged")
        assert head(clique, 0) == stalled_at, "blocks came with two of four signers down"
        assert head(clique, GATEWAY_NODE) == stalled_at
        clique.start_node(1)
        clique.start_node(2)
        wait_for_blocks(clique, 0, 4)
    agree_at_depth(clique, 3)
    _drained_and_anchored_exactly_once(ledger)


def test_the_gateways_own_node_killed_it_fails_over_and_goes_on(clique: CliqueNetwork, ledger: Ledger) -> None:
    with all_nodes_up(clique), Pushing(ledger, "own") as pushing:
        wait_until(lambda: pushing.acknowledged() > 50, timeout_s=60, what="pushes acknowledged")
        kill_signer(clique, GATEWAY_NODE)
        acknowledged = pushing.acknowledged()
        anchored = _anchored_versions(ledger)
        wait_until(lambda: pushing.acknowledged() > acknowledged + 100, timeout_s=60, what="pushes go on")
        # Anchors go on through another node while the gateway's own is down.
        wait_until(
            lambda: _anchored_versions(ledger) > anchored + 100,
            timeout_s=90,
            what="anchoring went on without the gateway's node",
        )
        assert head(clique, GATEWAY_NODE) is None
        ready = httpx.get(f"{ledger.gateway.url}/v1/ready", timeout=30)
        assert ready.status_code == 200, ready.text
    _drained_and_anchored_exactly_once(ledger)


def test_an_anchor_in_a_block_the_network_replaced_counts_only_on_the_majoritys_chain(
    clique: CliqueNetwork, ledger: Ledger
) -> None:
    """The gateway's node is cut off and seals, alone, a block holding the gateway's anchor: with Clique's
    3 confirmations the anchor is never counted there (a minority of signers cannot seal 3 blocks). When
    the node rejoins, its block is replaced; the same transaction is mined on the majority's chain, and
    the record counts as anchored in that block, exactly once."""
    # Fail-over sticks to the node that answered (chain/providers.py): after an earlier test killed node 3
    # the gateway still talks to node 0. Started again, it sends through its own node first.
    ledger.gateway.restart()
    lone = JsonRpc(url=clique.node_url(GATEWAY_NODE))
    with all_nodes_up(clique):
        isolate_idle(clique, GATEWAY_NODE)
        record_id = _push(ledger, POLICE, 5, tag="reorg")
        # The node seals its one block only once the anchor is in its pool: the block holds the anchor.
        anchor: dict[str, Any] = {}
        wait_until(
            lambda: _in_pool(lone, _batch_tx(ledger, record_id), anchor),
            timeout_s=30,
            what="anchor sent",
            state=lambda: describe_node(clique, GATEWAY_NODE),
        )
        seal_alone(clique, GATEWAY_NODE)
        # By sender and nonce, not hash: while it waits the gateway may replace the anchor (a higher price,
        # the same nonce), and either copy may be the one sealed.
        wait_until(
            lambda: _sealed(lone, anchor) is not None,
            timeout_s=60,
            what="the cut-off node sealed the anchor",
            state=lambda: describe_node(clique, GATEWAY_NODE),
        )
        sealed_alone = _sealed(lone, anchor)
        assert sealed_alone is not None
        wait_for_blocks(clique, 0, 3)
        assert _status(ledger, POLICE, record_id)["state"] == "pending", "counted on a minority's block"
        clique.rejoin_node(GATEWAY_NODE)
        wait_until(lambda: _status(ledger, POLICE, record_id)["state"] == "anchored", timeout_s=90, what="anchored")
    lone.close()
    status = _status(ledger, POLICE, record_id)
    assert clique.call(0, "eth_getBlockByNumber", [hex(status["block_number"]), False])["hash"] != sealed_alone, (
        "anchored in the replaced block"
    )
    _drained_and_anchored_exactly_once(ledger)


def _in_pool(node: JsonRpc, tx_hash: str | None, found: dict[str, Any]) -> bool:
    transaction = node.call("eth_getTransactionByHash", [tx_hash]) if tx_hash else None
    if transaction is not None:
        found.update(transaction)
    return transaction is not None


def _sealed(node: JsonRpc, transaction: dict[str, Any]) -> str | None:
    """The hash of the block on ``node`` that holds a transaction from the same sender at the same nonce."""
    block = node.block("latest")
    for _ in range(4):
        if block is None or int(block["number"], 16) == 0:
            return None
        for tx_hash in block["transactions"]:
            mined = node.call("eth_getTransactionByHash", [tx_hash])
            if mined["from"].lower() == transaction["from"].lower() and mined["nonce"] == transaction["nonce"]:
                return str(block["hash"])
        block = node.block(int(block["number"], 16) - 1)
    return None


def _batch_tx(ledger: Ledger, record_id: str) -> str | None:
    engine = make_engine(ledger.settings.index_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT b.tx_hash FROM record_versions r JOIN anchor_batches b ON r.batch_id = b.id "
                    "WHERE r.record_id = :record_id"
                ),
                {"record_id": record_id},
            ).first()
    finally:
        engine.dispose()
    return str(row[0]) if row is not None and row[0] else None


def _stalled(network: CliqueNetwork, index: int, *, quiet_s: float) -> bool:
    before = head(network, index)
    time.sleep(quiet_s)
    return head(network, index) == before


def _anchored_versions(ledger: Ledger) -> int:
    """Record versions the gateway's index holds as anchored (with its confirmations)."""
    engine = make_engine(ledger.settings.index_url)
    try:
        with engine.connect() as connection:
            anchored = connection.execute(
                text(
                    "SELECT count(*) FROM record_versions r JOIN anchor_batches b ON r.batch_id = b.id "
                    "WHERE b.state = 'anchored'"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return int(anchored)
