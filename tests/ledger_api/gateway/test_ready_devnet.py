"""``/v1/ready`` answers anyone, so it says whether each part is ready and nothing else.

Before, with the chain unreachable it answered ``"chain": "unavailable: <the JSON-RPC error>"``, which
names the RPC URL, credentials included (``https://user:secret@node…``), and internal exception text.
"""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from ledger_api.chain.rpc import JsonRpc
from ledger_api.gateway.services import GatewayServices

pytestmark = pytest.mark.devnet

SECRET_URL = "http://operator:s3cret-token@127.0.0.1:9/rpc"


def test_ready_says_ok_and_nothing_more(client: TestClient) -> None:
    body = client.get("/v1/ready").json()
    assert body == {"status": "ok", "checks": dict.fromkeys(("index", "blobs", "chain", "anchoring"), "ok")}


def test_an_unreachable_chain_is_reported_without_its_url_or_error(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    services: GatewayServices = client.app.state.services  # type: ignore[attr-defined]
    real = services.rpc
    services.rpc = JsonRpc(url=SECRET_URL, timeout_s=2.0)
    try:
        with caplog.at_level(logging.WARNING, logger="ledger_api.gateway.routers.health"):
            answer = client.get("/v1/ready")
    finally:
        services.rpc = real
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "checks": {"index": "ok", "blobs": "ok", "chain": "unavailable", "anchoring": "ok"},
    }
    assert "s3cret" not in answer.text
    # The operator still learns why, from the gateway's own log.
    assert any("readiness: chain unavailable" in r.getMessage() for r in caplog.records)
