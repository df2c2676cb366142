"""kill -9 of the gateway at random points during ingest: no acknowledged write is lost or doubled.

DESIGN.md invariant 5: once the gateway answers 2xx to a push, the record is stored and anchored
exactly once, across crashes. The real gateway (``ledger serve``) runs as a child process; pusher
threads push batches of 1–200 fresh records (and new versions of earlier ones) for the three demo
organisations, while the test SIGKILLs the gateway's process group at random moments — right after a
2xx, while a batch is being anchored, right after start, while it is still starting, or at a random
instant — and starts it again on the same home. At the end the gateway runs until its outbox drains,
and every acknowledged (record_id, version) must be in the index with its blob in storage, and in
exactly one batch anchored on chain: checked from the ``BatchAnchored`` events and the manifests in
storage, not from the index's own bookkeeping.

The RNG is seeded; the seed is printed (``-s``) and recorded as a test property, and
``LEDGER_CRASH_SEED`` replays one.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from web3 import Web3

from ledger_api.chain.devnet import Devnet
from ledger_api.chain.transactor import Transactor
from ledger_api.provision import provision
from ledger_api.settings import Settings
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, make_settings, wait_until
from tests.ledger_api.gateway.records import sample_records
from tests.support.gateway_process import (
    AckLog,
    GatewayProcess,
    Pusher,
    RecordFactory,
    batches_in_flight,
    check_anchored_exactly_once,
    outbox_drained,
    outbox_report,
)

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.xdist_group("devnet")]

KILLS = 22
KILL_MOMENTS = ("after_ack", "during_anchoring", "right_after_start", "while_starting", "random")
TEMPLATES = {
    POLICE: "police.incidents",
    PROPERTY: "property.access_events",
    COMMITTEE: "committee.hazard_reports",
}


def crash_seed() -> int:
    configured = os.environ.get("LEDGER_CRASH_SEED")
    return int(configured) if configured else random.SystemRandom().randrange(2**32)


def kill_plan(rng: random.Random, count: int) -> list[str]:
    """Kill moments, every kind at least twice, in random order (a "while_starting" one kills twice)."""
    plan = [moment for moment in KILL_MOMENTS for _ in range(2)]
    plan += [rng.choice(KILL_MOMENTS) for _ in range(count - len(plan) - 2)]
    rng.shuffle(plan)
    return plan


def test_kill_9_of_the_gateway_during_ingest_loses_and_doubles_nothing(
    devnet: Devnet, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    seed = crash_seed()
    record_property("crash_seed", seed)
    print(f"\ngateway crash test: seed {seed} (replay with LEDGER_CRASH_SEED={seed})")
    rng = random.Random(seed)
    started = time.monotonic()

    settings = make_settings(tmp_path / "ledger", devnet.rpc_url)
    provisioned = provision(settings=settings, transactor=Transactor(w3=Web3(Web3.HTTPProvider(devnet.rpc_url))))
    gateway = GatewayProcess(home=settings.home, rpc_url=devnet.rpc_url, anchor_max_wait_s=0.2)
    acks = AckLog()
    stop = threading.Event()
    pushers = [
        Pusher(
            gateway=gateway,
            owner=owner,
            token=provisioned.api_keys[owner],
            factory=RecordFactory(
                templates=sample_records(adapter, owner), tag=f"s{seed}", rng=random.Random(f"{seed}:{owner}:records")
            ),
            rng=random.Random(f"{seed}:{owner}:pushes"),
            acks=acks,
            stop=stop,
        )
        for owner, adapter in TEMPLATES.items()
    ]
    moments: Counter[str] = Counter()
    gateway.start()
    try:
        for pusher in pushers:
            pusher.start()
        plan = kill_plan(rng, KILLS)
        while gateway.kills < KILLS:
            moment = plan.pop() if plan else rng.choice(KILL_MOMENTS)
            moments[moment] += 1
            _wait_for_moment(moment, acks, settings, rng)
            gateway.kill()
            if moment == "while_starting":
                # Killed once more before it is ready: mid-import, mid-startup, or just as the worker begins.
                gateway.start(wait="nothing")
                time.sleep(rng.uniform(0.0, 2.5))
                gateway.kill()
            gateway.start()
            assert all(p.is_alive() for p in pushers), _failure(seed, pushers)
        # Let the last life of the gateway take some pushes too, then stop pushing.
        acks.wait_for_next(timeout_s=10)
        stop.set()
        for pusher in pushers:
            pusher.join(timeout=60)
        errors = [p.error for p in pushers if p.error is not None]
        assert not errors, _failure(seed, pushers)

        try:
            wait_until(lambda: outbox_drained(settings) == (0, 0), timeout_s=90, interval_s=0.2)
        except AssertionError:
            raise AssertionError(
                f"seed {seed}: the outbox did not drain: {outbox_report(settings)}\n{gateway.log_tail()}"
            ) from None
    finally:
        stop.set()
        gateway.stop()

    acknowledged = acks.versions()
    result = check_anchored_exactly_once(
        settings=settings,
        deployment=provisioned.deployment,
        acknowledged=acknowledged,
        owners=list(TEMPLATES),
    )
    elapsed = time.monotonic() - started
    statuses = Counter[str]()
    for pusher in pushers:
        statuses.update(pusher.stats.statuses)
    failures = Counter[str]()
    for pusher in pushers:
        failures.update(pusher.stats.failures)
    print(
        f"gateway crash test: seed {seed}, {gateway.kills} kills {dict(moments)}, {acks.pushes} acknowledged pushes, "
        f"failed pushes {dict(failures)}, {len(acknowledged)} acknowledged record versions {dict(statuses)}, "
        f"{result.batches} batches on chain, {elapsed:.0f}s"
    )
    assert gateway.kills >= 20, f"seed {seed}: only {gateway.kills} kills"
    assert statuses["new_version"] > 0, f"seed {seed}: no new versions were pushed"
    assert result.acknowledged > 1000, f"seed {seed}: too few acknowledged record versions to mean anything"


def _wait_for_moment(moment: str, acks: AckLog, settings: Settings, rng: random.Random) -> None:
    if moment == "right_after_start":
        return  # the gateway has just answered /v1/ready; its worker has barely begun
    # Otherwise let this life of the gateway take pushes for a while first.
    time.sleep(rng.uniform(0.0, 1.0))
    if moment == "after_ack":
        # Right after a 2xx: the answer is out, the records are at most in the outbox.
        acks.wait_for_next(timeout_s=10)
    elif moment == "during_anchoring":
        # A batch is formed (manifest stored) or its transaction signed and maybe sent, not yet anchored.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and batches_in_flight(settings) == 0:
            time.sleep(0.005)
    # random, while_starting: at the random instant reached above.


def _failure(seed: int, pushers: list[Pusher]) -> str:
    details = "; ".join(f"{p.name}: {p.error!r}" for p in pushers if p.error is not None)
    return f"seed {seed}: pusher failed: {details or 'a pusher thread died'}"
