"""The chain node restarts under the gateway, and blocks come every 2 s: acknowledged writes still get
anchored exactly once (DESIGN.md invariant 5), and the status endpoint tells the truth on the way.

(a) While pusher threads keep pushing to the real gateway (``ledger serve``, a child process), the
    test stops anvil gracefully and starts it again several times, and at least once SIGKILLs it.
    anvil persists its state with ``--state`` and a 2 s dump interval, so a SIGKILL loses the blocks
    mined since the last dump: anchors the gateway already saw mined vanish, the signer's nonce goes
    back, and the worker has to notice and anchor those batches again. At the end every acknowledged
    (record_id, version) is in exactly one batch anchored on chain, checked from the ``BatchAnchored``
    events and the manifests in storage.
(b) anvil with ``--block-time 2``: a pushed record's status is ``pending`` at first, then
    ``anchored`` with the transaction and block that really anchored its batch root.

The RNG of (a) is seeded; the seed is printed (``-s``) and recorded as a test property, and
``LEDGER_CRASH_SEED`` replays one.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import Web3

from ledger_api.chain.devnet import Devnet
from ledger_api.chain.events import EventDecoder
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.transactor import Transactor
from ledger_api.provision import Provisioned, provision
from ledger_api.settings import Settings
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, make_settings, wait_until
from tests.ledger_api.gateway.records import sample_records
from tests.support.gateway_process import (
    AckLog,
    GatewayProcess,
    Pusher,
    RecordFactory,
    check_anchored_exactly_once,
    outbox_drained,
    outbox_report,
)

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.xdist_group("devnet")]

TEMPLATES = {
    POLICE: "police.incidents",
    PROPERTY: "property.access_events",
    COMMITTEE: "committee.hazard_reports",
}


def crash_seed() -> int:
    configured = os.environ.get("LEDGER_CRASH_SEED")
    return int(configured) if configured else random.SystemRandom().randrange(2**32)


def provisioned_chain(home: Path, *, block_time_s: float | None = None) -> tuple[Devnet, Settings, Provisioned]:
    """A dedicated persisted anvil with the ledger deployed and the demo organisations registered.

    Provisioning runs on an auto-mining node; it is then stopped (dumping its state) and started again
    with ``block_time_s``: the deployment is on disk before anything can crash, and provisioning does
    not wait 2 s per transaction.
    """
    chain = Devnet(home=home / "anvil", port=None, persist=True)
    chain.up()
    try:
        settings = make_settings(home / "ledger", chain.rpc_url)
        provisioned = provision(settings=settings, transactor=Transactor(w3=Web3(Web3.HTTPProvider(chain.rpc_url))))
    finally:
        chain.down()
    # A port of its own again (nothing has the first one's URL yet): a parallel worker may have taken it.
    chain = Devnet(home=home / "anvil", port=None, persist=True, block_time_s=block_time_s)
    chain.up()
    return chain, make_settings(home / "ledger", chain.rpc_url), provisioned


def head(chain: Devnet) -> int | None:
    return chain.status().block_number


def kill_after_a_fresh_anchor(chain: Devnet) -> int:
    """SIGKILL anvil just after it mined an anchoring block that its last state dump cannot hold.

    anvil dumps its state every 2 s: wait for a dump, then for a block mined within 1 s of it, give
    the worker 0.2 s to see the anchor mined, and kill. Returns the head at the kill.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        dumped = chain.state_path.stat().st_mtime_ns
        while chain.state_path.stat().st_mtime_ns == dumped:
            time.sleep(0.005)
        after_dump = time.monotonic()
        before = head(chain) or 0
        while time.monotonic() - after_dump < 1.0:
            if (head(chain) or 0) > before:
                time.sleep(0.2)
                mined = head(chain) or 0
                chain.kill()
                return mined
            time.sleep(0.01)
    raise AssertionError("no block was mined for 30 s: nothing is being anchored")


def test_anvil_restarted_and_killed_during_ingest_loses_nothing(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    seed = crash_seed()
    record_property("crash_seed", seed)
    print(f"\nchain crash test: seed {seed} (replay with LEDGER_CRASH_SEED={seed})")
    rng = random.Random(seed)
    started = time.monotonic()
    chain, settings, provisioned = provisioned_chain(tmp_path)
    gateway = GatewayProcess(home=settings.home, rpc_url=chain.rpc_url, anchor_max_wait_s=0.2)
    acks = AckLog()
    stop = threading.Event()
    pushers = [
        Pusher(
            gateway=gateway,
            owner=owner,
            token=provisioned.api_keys[owner],
            factory=RecordFactory(
                templates=sample_records(adapter, owner), tag=f"c{seed}", rng=random.Random(f"{seed}:{owner}:records")
            ),
            rng=random.Random(f"{seed}:{owner}:pushes"),
            acks=acks,
            stop=stop,
            max_batch=120,
            pause_s=0.05,
        )
        for owner, adapter in TEMPLATES.items()
    ]
    # Graceful restarts; SIGKILLs that lose the last blocks; and one SIGKILL of anvil and the gateway
    # together (a power cut of a one-machine deployment: the new worker never saw the lost blocks).
    operations = ["restart", "restart", "kill", "kill_both", rng.choice(["restart", "kill", "kill_both"])]
    rng.shuffle(operations)
    lost_blocks: list[int] = []
    try:
        gateway.start()
        for pusher in pushers:
            pusher.start()
        for operation in operations:
            time.sleep(rng.uniform(1.5, 3.0))  # pushing and anchoring on a live chain
            if operation == "restart":
                chain.down()  # SIGTERM: anvil dumps its state on the way out
                time.sleep(rng.uniform(0.1, 1.5))
                chain.up()
                continue
            mined = kill_after_a_fresh_anchor(chain)
            if operation == "kill_both":
                gateway.kill()
            time.sleep(rng.uniform(0.1, 1.0))
            chain.up()
            lost_blocks.append(mined - (head(chain) or 0))
            if operation == "kill_both":
                gateway.start()
            assert all(p.is_alive() for p in pushers), _failure(seed, pushers)
        time.sleep(1.0)
        stop.set()
        for pusher in pushers:
            pusher.join(timeout=60)
        assert not [p.error for p in pushers if p.error is not None], _failure(seed, pushers)
        try:
            wait_until(lambda: outbox_drained(settings) == (0, 0), timeout_s=90, interval_s=0.2)
        except AssertionError:
            raise AssertionError(
                f"seed {seed}: the outbox did not drain: {outbox_report(settings)}\n{gateway.log_tail()}"
            ) from None
    finally:
        stop.set()
        gateway.stop()
        chain.down()

    acknowledged = acks.versions()
    chain.up()
    try:
        result = check_anchored_exactly_once(
            settings=settings, deployment=provisioned.deployment, acknowledged=acknowledged, owners=list(TEMPLATES)
        )
    finally:
        chain.down()
    statuses = Counter[str]()
    for pusher in pushers:
        statuses.update(pusher.stats.statuses)
    print(
        f"chain crash test: seed {seed}, operations {operations}, blocks lost by the kills {lost_blocks}, "
        f"{acks.pushes} acknowledged pushes, {len(acknowledged)} acknowledged record versions {dict(statuses)}, "
        f"{result.batches} batches on chain, {time.monotonic() - started:.0f}s"
    )
    assert any(n > 0 for n in lost_blocks), f"seed {seed}: no kill lost a block ({lost_blocks}); nothing was tested"
    assert result.acknowledged > 500, f"seed {seed}: too few acknowledged record versions to mean anything"


def test_with_2s_blocks_status_is_pending_then_anchored_with_the_real_transaction(tmp_path: Path) -> None:
    chain, settings, provisioned = provisioned_chain(tmp_path, block_time_s=2)
    # Batches wait 1 s to fill: the status queried right after a push cannot have been anchored yet.
    gateway = GatewayProcess(home=settings.home, rpc_url=chain.rpc_url, anchor_max_wait_s=1.0)
    rpc = JsonRpc(url=chain.rpc_url)
    decoder = EventDecoder("RecordAnchors")
    records_address = provisioned.deployment.address("RecordAnchors").lower()
    acks = AckLog()
    try:
        gateway.start()
        pushed: dict[str, tuple[str, int]] = {}  # record_id -> (owner, version)
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            for round_, size in enumerate((1, 40, 150)):
                for owner, adapter in TEMPLATES.items():
                    factory = RecordFactory(
                        templates=sample_records(adapter, owner), tag=f"bt{round_}", rng=random.Random(round_)
                    )
                    documents = factory.batch(size, update_share=0)
                    auth = {"Authorization": f"Bearer {provisioned.api_keys[owner]}"}
                    answer = client.post("/v1/records", json={"records": documents}, headers=auth)
                    assert answer.status_code == 202, answer.text
                    outcomes = answer.json()["records"]
                    acks.add(owner, outcomes)
                    pushed.update({o["record_id"]: (owner, o["version"]) for o in outcomes})
                    # Nothing is anchored yet: the batch is not even formed.
                    for outcome in outcomes[:3] + outcomes[-2:]:
                        status = _status(client, provisioned, owner, outcome["record_id"])
                        assert status["state"] == "pending", status
                        assert status["transaction"] is None, status
                        assert status["block_number"] is None, status
                time.sleep(1.0)

            anchored: dict[str, dict[str, Any]] = {}

            def all_anchored() -> bool:
                for record_id, (owner, _version) in pushed.items():
                    if record_id in anchored:
                        continue
                    status = _status(client, provisioned, owner, record_id)
                    if status["state"] != "anchored":
                        return False
                    anchored[record_id] = status
                return True

            wait_until(all_anchored, timeout_s=90, interval_s=0.5)

        receipts: dict[str, dict[str, Any]] = {}
        for record_id, status in anchored.items():
            owner, version = pushed[record_id]
            assert status["version"] == version
            assert status["transaction"], status
            assert status["block_number"], status
            receipt = receipts.get(status["transaction"])
            if receipt is None:
                receipt = rpc.receipt(status["transaction"])
                assert receipt is not None, f"transaction {status['transaction']} of {record_id} is not on chain"
                receipts[status["transaction"]] = receipt
            assert int(receipt["status"], 16) == 1, f"{status['transaction']} reverted: {status}"
            assert int(receipt["blockNumber"], 16) == status["block_number"], status
            events = [decoder.decode(log) for log in receipt["logs"] if log["address"].lower() == records_address]
            roots = {
                (bytes(e.args["ownerOrg"]).rstrip(b"\0").decode(), bytes(e.args["root"]).hex())
                for e in events
                if e is not None and e.name == "BatchAnchored"
            }
            assert (owner, status["batch_root"]) in roots, f"{status['transaction']} did not anchor {status}"
        assert len(receipts) >= 3  # several batches, several blocks
        check_anchored_exactly_once(
            settings=settings,
            deployment=provisioned.deployment,
            acknowledged=acks.versions(),
            owners=list(TEMPLATES),
        )
    finally:
        rpc.close()
        gateway.stop()
        chain.down()


def _status(client: httpx.Client, provisioned: Provisioned, owner: str, record_id: str) -> dict[str, Any]:
    answer = client.get(
        f"/v1/records/{record_id}/status", headers={"Authorization": f"Bearer {provisioned.api_keys[owner]}"}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _failure(seed: int, pushers: list[Pusher]) -> str:
    details = "; ".join(f"{p.name}: {p.error!r}" for p in pushers if p.error is not None)
    return f"seed {seed}: pusher failed: {details or 'a pusher thread died'}"
