"""``GET /v1/feed``: the committee hears of a granted police incident once it is anchored, and of nothing else."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.transactor import Transactor
from ledger_api.index.models import RecordVersion
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, Ledger, wait_until
from tests.ledger_api.gateway.records import payload, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

#: Anchor max wait (0.2 s in these tests) + one block + slack: a behaviour bound, not a benchmark.
DELIVERY_BOUND_S = 5.0
SSE = {"Accept": "text/event-stream"}


def _events(text: str) -> list[dict[str, Any]]:
    """The data of the ``record`` events of an event-stream text."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        if "event: record" in lines:
            data = "".join(line.removeprefix("data: ") for line in lines if line.startswith("data: "))
            out.append(json.loads(data))
    return out


def _batch_of(client: TestClient, record_id: str) -> int | None:
    engine = client.app.state.services.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        return session.exec(select(RecordVersion.batch_id).where(col(RecordVersion.record_id) == record_id)).first()


def test_the_feed_streams_anchored_records_the_caller_may_see(client: TestClient, ledger_home: Ledger) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    chain = LedgerChain(
        transactor=Transactor.from_url(ledger_home.settings.rpc_url), deployment=ledger_home.provisioned.deployment
    )
    now = chain.latest_timestamp()
    chain.create_grant(signer=dev_account(1), spec=GrantSpec(
        owner_org=POLICE, grantee_org=COMMITTEE, purpose=Purpose.ELDERLY_CARE, valid_from=now - 10,
        valid_until=now + 3600, record_types=("incident",)))  # fmt: skip
    wait_until(lambda: bool(services.follower.grants_for(COMMITTEE)))

    lines: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    opened = threading.Event()

    def listen() -> None:
        with client.stream("GET", "/v1/feed", headers={**ledger_home.auth(COMMITTEE), **SSE}) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            opened.set()
            for line in answer.iter_lines():
                lines.put(line)
                if stop.is_set():
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(10)

    hidden = sample_records("property.access_events", PROPERTY, limit=1)[0]  # no grant covers it
    incident = sample_records("police.incidents", POLICE)[60]
    assert client.post("/v1/records", json=payload([hidden]), headers=ledger_home.auth(PROPERTY)).status_code == 202
    pushed = time.monotonic()
    assert client.post("/v1/records", json=payload([incident]), headers=ledger_home.auth(POLICE)).status_code == 202

    received: list[dict[str, Any]] = []
    cursor = -1
    hidden_batch: int | None = None
    delivered_after: float | None = None
    deadline = pushed + 30
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            line = ""
        if line.startswith("data: "):
            received.append(json.loads(line.removeprefix("data: ")))
            if delivered_after is None and any(e["record_id"] == incident.record_id for e in received):
                delivered_after = time.monotonic() - pushed
        elif line.startswith("id: "):
            cursor = int(line.removeprefix("id: ").split(":")[0])  # <batch cursor>:<entry cursor>
        hidden_batch = hidden_batch or _batch_of(client, hidden.record_id)
        if delivered_after is not None and hidden_batch is not None and cursor >= hidden_batch:
            break  # the stream has gone past the hidden record's batch
    stop.set()

    assert delivered_after is not None, received
    assert delivered_after < DELIVERY_BOUND_S, delivered_after
    event = next(e for e in received if e["record_id"] == incident.record_id)
    assert (event["owner_org"], event["record_type"], event["version"]) == (POLICE, "incident", 1)
    assert event["block_number"] > 0
    assert hidden_batch is not None
    assert cursor >= hidden_batch
    assert all(e["owner_org"] in (POLICE, COMMITTEE) for e in received)
    assert hidden.record_id not in {e["record_id"] for e in received}

    # A poll (no `Accept: text/event-stream`) from the start gives the backlog and ends; the owner sees its own.
    backlog = client.get("/v1/feed", params={"after": 0}, headers=ledger_home.auth(COMMITTEE))
    assert backlog.status_code == 200
    assert incident.record_id in {e["record_id"] for e in _events(backlog.text)}
    assert hidden.record_id not in {e["record_id"] for e in _events(backlog.text)}
    own = client.get("/v1/feed", params={"after": 0}, headers=ledger_home.auth(PROPERTY))
    assert hidden.record_id in {e["record_id"] for e in _events(own.text)}
    # Resuming after the last id sends nothing already sent.
    resumed = client.get("/v1/feed", headers={**ledger_home.auth(COMMITTEE), "Last-Event-ID": str(cursor)})
    assert incident.record_id not in {e["record_id"] for e in _events(resumed.text)}


def test_the_feed_needs_a_key(client: TestClient) -> None:
    answer = client.get("/v1/feed", headers=SSE)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/feed", headers={"Last-Event-ID": "x"}).status_code == 401
