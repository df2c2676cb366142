"""The follower lag bound: answers decided from the chain follower's view refuse (503) when it lags the node.

The gateway reaches the devnet through a small HTTP relay in this module, so that the node can "die" for
the gateway (the relay stops) while the devnet goes on serving every other test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient

from ledger_api.chain.devnet import Devnet
from ledger_api.gateway.app import create_app
from ledger_api.gateway.problems import PROBLEM_JSON
from ledger_api.gateway.services import GatewayServices
from tests.ledger_api.gateway.conftest import POLICE, Ledger, make_settings, wait_until
from tests.ledger_api.gateway.records import payload, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

MAX_LAG_S = 0.5


class _Relay(ThreadingHTTPServer):
    """Forwards JSON-RPC POSTs to the devnet; :meth:`cut` makes the node unreachable for good."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.cut_off = False

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = httpx.post(upstream, content=body, headers={"Content-Type": "application/json"})
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def cut(self) -> None:
        if not self.cut_off:
            self.cut_off = True
            self.shutdown()
            self.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@dataclass(frozen=True, kw_only=True)
class Lagging:
    client: TestClient
    services: GatewayServices
    relay: _Relay
    record_id: str
    blind_index: str


@pytest.fixture(scope="module")
def lagging(ledger_home: Ledger, devnet: Devnet) -> Iterator[Lagging]:
    relay = _Relay(devnet.rpc_url)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    settings = make_settings(ledger_home.settings.home, relay.url, follower_max_lag_s=MAX_LAG_S)
    services = GatewayServices.from_settings(settings)
    with TestClient(create_app(services)) as client:
        record = sample_records("police.incidents", POLICE, limit=1)[0]
        auth = ledger_home.auth(POLICE)
        assert client.post("/v1/records", json=payload([record]), headers=auth).status_code == 202
        wait_until(
            lambda: client.get(f"/v1/records/{record.record_id}/status", headers=auth).json()["state"] == "anchored"
        )
        subject = next(s.id_number for s in record.subjects if s.id_number)
        index = client.post("/v1/subjects/blind-index", json={"id_number": subject}, headers=auth).json()
        yield Lagging(
            client=client, services=services, relay=relay, record_id=record.record_id, blind_index=index["blind_index"]
        )
    relay.cut()


def _reads(lagging: Lagging) -> dict[str, str]:
    return {
        "listing": "/v1/records",
        "proof": f"/v1/records/{lagging.record_id}/proof",
        "subject links": f"/v1/subjects/{lagging.blind_index}/records",
        "feed": "/v1/feed?after=0",
    }


def test_a_current_follower_answers_as_before(lagging: Lagging, ledger_home: Ledger) -> None:
    answers = {
        name: lagging.client.get(path, headers=ledger_home.auth(POLICE)) for name, path in _reads(lagging).items()
    }
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 200)
    assert lagging.record_id in {r["record_id"] for r in answers["listing"].json()["records"]}
    assert lagging.record_id in answers["feed"].text


def test_a_stalled_follower_is_brought_current_by_the_request(lagging: Lagging, ledger_home: Ledger) -> None:
    follower = lagging.services.follower
    follower.stop()  # its polling thread, as if stuck: the node is still reachable
    try:
        wait_until(lambda: (age := follower.confirmed_age_s()) is not None and age > MAX_LAG_S)
        before = follower.confirmed_age_s()
        answer = lagging.client.get("/v1/records", headers=ledger_home.auth(POLICE))
        assert answer.status_code == 200, answer.text
        after = follower.confirmed_age_s()
        assert before is not None
        assert after is not None
        assert after < before  # the request itself confirmed the view at the node's head
    finally:
        follower.start(poll_s=0.2)


def test_a_live_feed_ends_when_the_follower_falls_behind(lagging: Lagging, ledger_home: Ledger) -> None:
    headers = {**ledger_home.auth(POLICE), "Accept": "text/event-stream"}
    with lagging.client.stream("GET", "/v1/feed", params={"after": 0}, headers=headers) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines) == "retry: 1000"
        lagging.relay.cut()  # the node is gone for this gateway, from now on
        rest = list(lines)  # the stream ends by itself
    assert rest[-2].startswith(": the chain follower's view (block "), rest
    assert "over the bound LEDGER_FOLLOWER_MAX_LAG_S=0.5 s" in rest[-2]


def test_a_follower_behind_an_unreachable_node_refuses_with_503_naming_the_lag(
    lagging: Lagging, ledger_home: Ledger
) -> None:
    follower = lagging.services.follower
    lagging.relay.cut()  # the node is gone for this gateway (if the test above did not cut it already)
    head = follower.head()[0]
    wait_until(lambda: (age := follower.confirmed_age_s()) is not None and age > MAX_LAG_S)
    for name, path in _reads(lagging).items():
        answer = lagging.client.get(path, headers=ledger_home.auth(POLICE))
        assert answer.status_code == 503, (name, answer.status_code, answer.text)
        assert answer.headers["content-type"] == PROBLEM_JSON
        problem = answer.json()
        assert problem["type"].endswith("/chain-view-behind"), problem
        assert f"(block {head}) was confirmed at the node's head last " in problem["detail"], problem
        assert f"over the bound LEDGER_FOLLOWER_MAX_LAG_S={MAX_LAG_S:g} s" in problem["detail"], problem
        # Authentication still comes first: an anonymous caller learns nothing about the chain.
        assert lagging.client.get(path).status_code == 401
