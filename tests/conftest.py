"""Fixtures shared by the whole suite: where shared/ lives, a real anvil devnet and a real four-node Clique
network per test session (each started only when a test asks for it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from ledger_api.chain.clique import CliqueNetwork
from ledger_api.chain.devnet import Devnet
from tests.support.clique import start_network

# Property tests assert behaviour, never speed: Hypothesis' default 200 ms deadline per example failed a
# correct Merkle property test on a loaded 2-core machine (301 ms), so no test here has a deadline.
settings.register_profile("ledger", deadline=None)
settings.load_profile("ledger")

# The suite runs on loopback devnets with the published demo keys and secrets, which only demo mode
# allows (Settings.demo_mode); a test that checks the refusal outside it says so explicitly.
os.environ["LEDGER_DEMO"] = "1"

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
