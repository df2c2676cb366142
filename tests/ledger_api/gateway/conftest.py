"""Gateway fixtures: a provisioned ledger on the session's anvil, and the app in-process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web3 import Web3

from ledger_api.chain.devnet import Devnet
from ledger_api.chain.transactor import Transactor
from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from ledger_api.provision import DEMO_ORGANISATIONS, Provisioned, provision
from ledger_api.settings import Settings

POLICE, PROPERTY, COMMITTEE = (o.org_id for o in DEMO_ORGANISATIONS)


@dataclass(frozen=True, kw_only=True)
class Ledger:
    settings: Settings
    provisioned: Provisioned

    def auth(self, org_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.provisioned.api_keys[org_id]}"}


def make_settings(home: Path, rpc_url: str, **overrides: object) -> Settings:
    return Settings(home=home, rpc_url=rpc_url, anchor_max_wait_s=0.2, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ledger_home(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    """A fresh deployment with the three demo organisations enrolled, for this test module."""
    settings = make_settings(tmp_path_factory.mktemp("ledger-home"), devnet.rpc_url)
    transactor = Transactor(w3=Web3(Web3.HTTPProvider(devnet.rpc_url)))
    return Ledger(settings=settings, provisioned=provision(settings=settings, transactor=transactor))


@pytest.fixture(scope="module")
def client(ledger_home: Ledger) -> Iterator[TestClient]:
    services = GatewayServices.from_settings(ledger_home.settings)
    with TestClient(create_app(services)) as test_client:
        yield test_client


def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 30.0, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s")
