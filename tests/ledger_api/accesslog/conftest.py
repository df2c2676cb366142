"""Access-log fixtures: a durable SQLite index in a temporary directory, HPKE keys for segments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from ledger_api.chain.devnet import Devnet
from ledger_api.crypto import hpke
from ledger_api.storage.local import LocalBlobStore
from tests.ledger_api.accesslog.chain_support import Chain, make_chain
from tests.ledger_api.accesslog.support import sqlite_engine
from tests.support.servers import postgres_server  # noqa: F401


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = sqlite_engine(tmp_path / "index.db")
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def auditor_keys() -> tuple[bytes, bytes]:
    """(private, public) HPKE X25519 key pair of an auditor organisation."""
    return hpke.generate_keypair()


@pytest.fixture(scope="session")
def gateway_keys() -> tuple[bytes, bytes]:
    return hpke.generate_keypair()


@pytest.fixture(scope="session")
def outsider_keys() -> tuple[bytes, bytes]:
    return hpke.generate_keypair()


@pytest.fixture
def chain(devnet: Devnet, tmp_path: Path) -> Chain:
    """A deployment of this test's own on the session's anvil (log writer: dev account 4)."""
    return make_chain(devnet.rpc_url, tmp_path / "ledger")


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(root=tmp_path / "blobs")
