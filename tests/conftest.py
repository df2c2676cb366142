"""Fixtures shared by the whole suite: where shared/ lives, a real anvil devnet and a real four-node Clique
network per test session (each started only when a test asks for it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_api.chain.clique import CliqueNetwork
from ledger_api.chain.devnet import Devnet
from tests.support.clique import start_network

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.fail(f"../shared is missing beside the repository (looked in {SHARED_DIR})")
    return SHARED_DIR


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """A real anvil on a free loopback port, history pruned, stopped at the end of the session."""
    node = Devnet(home=tmp_path_factory.mktemp("devnet"), port=None, prune_history=True)
    node.up()
    try:
        yield node
    finally:
        node.down()


@pytest.fixture(scope="session")
def clique(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliqueNetwork]:
    """Four geth Clique signers on loopback, peered, sealing a block a second; stopped at the end of the
    session. Tests that kill nodes start them again (tests/support/clique.py)."""
    network = start_network(tmp_path_factory.mktemp("clique"))
    try:
        yield network
    finally:
        network.down()
