"""No release the audit cannot see: a gateway that cannot anchor its access log refuses reads (503).

Before, a gateway with no log-writer key, or with its tree-head anchorer stopped, served reads whose
entries no tree head would ever cover, and the auditor saw an empty log.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger_api.chain.signers import LOG_WRITER_ID
from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from tests.ledger_api.gateway.conftest import POLICE, Ledger, make_settings, wait_until
from tests.ledger_api.gateway.records import payload, sample_records

pytestmark = [pytest.mark.devnet]


def _read(client: TestClient, ledger: Ledger, record_id: str) -> object:
    return client.get(f"/v1/records/{record_id}", params={"purpose": "investigation"}, headers=ledger.auth(POLICE))


@pytest.fixture(scope="module")
def record_id(client: TestClient, ledger_home: Ledger) -> str:
    record = sample_records("police.incidents", POLICE)[5]
    assert client.post("/v1/records", json=payload([record]), headers=ledger_home.auth(POLICE)).status_code == 202
    wait_until(
        lambda: (
            client.get(f"/v1/records/{record.record_id}/status", headers=ledger_home.auth(POLICE)).json()["state"]
            == "anchored"
        )
    )
    return record.record_id


def test_without_a_log_writer_key_reads_are_refused_and_nothing_is_logged(
    ledger_home: Ledger, record_id: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(ledger_home.settings.home, home)
    (home / "signers" / f"{LOG_WRITER_ID.encode().hex()}.json").unlink()
    services = GatewayServices.from_settings(make_settings(home, ledger_home.settings.rpc_url))
    assert services.tree_heads is None
    before = services.access_log.refresh()
    with TestClient(create_app(services)) as client:
        answer = _read(client, ledger_home, record_id)
    assert answer.status_code == 503, answer.text  # type: ignore[attr-defined]
    problem = answer.json()  # type: ignore[attr-defined]
    assert problem["type"].endswith("/access-log-not-anchored")
    assert problem["detail"] == (
        "reads are refused: this gateway holds no access-log writer key, so nothing anchors its access log"
    )
    assert "record" not in problem
    assert services.access_log.refresh() == before  # refused before anything was logged or opened


def test_a_backlog_older_than_the_bound_stops_reads(ledger_home: Ledger, record_id: str, tmp_path: Path) -> None:
    # A copy of the home: this module's own gateway (the `client` fixture) anchors the original's log.
    home = tmp_path / "home"
    shutil.copytree(ledger_home.settings.home, home)
    settings = make_settings(home, ledger_home.settings.rpc_url, access_log_max_backlog_s=1.0)
    services = GatewayServices.from_settings(settings)
    # The anchorer runs neither in this process nor anywhere else: the first read's entry stays unanchored.
    with TestClient(create_app(services, run_worker=False)) as client:
        assert _read(client, ledger_home, record_id).status_code == 200  # type: ignore[attr-defined]
        time.sleep(2.2)  # past the bound, and past the guard's one-second refresh
        refused = _read(client, ledger_home, record_id)
    assert refused.status_code == 503, refused.text  # type: ignore[attr-defined]
    assert "LEDGER_ACCESS_LOG_MAX_BACKLOG_S" in refused.json()["detail"]  # type: ignore[attr-defined]
