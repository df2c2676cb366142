"""``ledger devnet up --engine clique --nodes 4``: four geth signers, peered and sealing; ``status`` and
``down`` for the whole network; the chain kept across a down/up cycle (same ports, same blocks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.multinode, pytest.mark.slow, pytest.mark.xdist_group("clique")]


def _ledger(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "ledger_api.cli", "devnet", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_clique_devnet_comes_up_reports_every_node_and_keeps_its_chain(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    try:
        up = _ledger(home, "up", "--engine", "clique", "--nodes", "4")
        assert up.returncode == 0, up.stderr
        assert "clique, 4 signers, chain 31337" in up.stdout
        assert "LEDGER_RPC_URL=http://127.0.0.1:" in up.stdout
        status = json.loads(_ledger(home, "status", "--json").stdout)
        assert status["engine"] == "clique"
        assert status["running"] is True
        assert len(status["nodes"]) == 4
        assert all(node["peers"] == 3 for node in status["nodes"]), status
        assert len({node["signer"] for node in status["nodes"]}) == 4
        assert status["rpc_url"] == ",".join(node["rpc_url"] for node in status["nodes"])

        down = _ledger(home, "down")
        assert down.returncode == 0, down.stderr
        assert "clique network stopped" in down.stdout
        stopped = _ledger(home, "status", "--json")
        assert stopped.returncode == 3
        assert not any(node["running"] for node in json.loads(stopped.stdout)["nodes"])

        again = _ledger(home, "up", "--engine", "clique", "--nodes", "4")
        assert again.returncode == 0, again.stderr
        restarted = json.loads(_ledger(home, "status", "--json").stdout)
        assert restarted["rpc_url"] == status["rpc_url"]  # the same network, on the same ports
        before = max(node["block_number"] for node in status["nodes"])
        assert min(node["block_number"] for node in restarted["nodes"]) >= before, (status, restarted)
    finally:
        _ledger(home, "down")


def test_usage_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    nodes = _ledger(tmp_path, "up", "--nodes", "4")
    assert nodes.returncode == 1
    assert "--nodes 4: anvil is one node; use --engine clique" in nodes.stderr
    block_time = _ledger(tmp_path, "up", "--engine", "clique", "--block-time", "0.5")
    assert block_time.returncode == 1
    assert "Clique seals every whole number of seconds" in block_time.stderr
    assert "Traceback" not in nodes.stderr + block_time.stderr
