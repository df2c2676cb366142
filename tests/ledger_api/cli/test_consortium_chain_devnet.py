"""The admin scripts on a chain priced like a consortium chain: zero gas price, legacy transactions,
and a signer from an encrypted keystore file instead of the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_api.chain.devnet import Devnet, dev_account
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.signers import write_keystore

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

KEY = "0020" + "ab" * 32


@pytest.fixture(scope="module")
def zero_gas_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """Base fee 0 and gas price 0, as Besu/GoQuorum consortium chains run."""
    node = Devnet(home=tmp_path_factory.mktemp("zero-gas"), port=None, persist=False,
                  extra_args=("--base-fee", "0", "--gas-price", "0", "--no-priority-fee"))  # fmt: skip
    node.up()
    yield node
    node.down()


def test_zero_gas_legacy_chain_with_a_keystore_signer(zero_gas_chain: Devnet, tmp_path: Path) -> None:
    admin = dev_account(8)
    keystore = write_keystore(admin, path=tmp_path / "admin.json", password="a long keystore passphrase")
    env = {**os.environ, "LEDGER_HOME": str(tmp_path / "home"), "LEDGER_RPC_URL": zero_gas_chain.rpc_url,
           "LEDGER_GAS_PRICING": "legacy", "LEDGER_KEYSTORE_PASSWORD": "a long keystore passphrase"}  # fmt: skip
    env.pop("LEDGER_ADMIN_KEY", None)

    def ledger(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "ledger_api.cli", *args, "--keystore", str(keystore)],
                                env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    rpc = JsonRpc(url=zero_gas_chain.rpc_url)
    balance_before = int(rpc.call("eth_getBalance", [admin.address, "latest"]), 16)
    deployment = json.loads(ledger("deploy", "--json"))
    assert deployment["admin"] == admin.address
    ledger("org", "register", "PS-ZERO-01", "--kind", "police", "--signer", dev_account(5).address,
           "--communities", "330102001", "--public-key", KEY)  # fmt: skip
    ledger("org", "register", "CM-ZERO-01", "--kind", "committee", "--signer", dev_account(6).address,
           "--public-key", KEY)  # fmt: skip
    ledger("grant", "--owner", "PS-ZERO-01", "--grantee", "CM-ZERO-01", "--purpose", "elderly_care", "--days", "1")
    grants = json.loads(ledger("grants", "list", "--json"))
    assert [(g["owner"], g["by_admin"]) for g in grants] == [("PS-ZERO-01", True)]

    # Every transaction was a legacy one (type 0) at gas price 0, and the admin paid nothing.
    latest = int(rpc.call("eth_blockNumber"), 16)
    types = set()
    for number in range(1, latest + 1):
        block = rpc.call("eth_getBlockByNumber", [hex(number), True])
        for tx in block["transactions"]:
            types.add((tx["type"], int(tx["gasPrice"], 16)))
    assert types == {("0x0", 0)}
    assert int(rpc.call("eth_getBalance", [admin.address, "latest"]), 16) == balance_before
    rpc.close()


def test_a_wrong_keystore_password_is_one_clear_line(zero_gas_chain: Devnet, tmp_path: Path) -> None:
    keystore = write_keystore(dev_account(8), path=tmp_path / "admin.json", password="the right passphrase")
    env = {**os.environ, "LEDGER_HOME": str(tmp_path / "home"), "LEDGER_RPC_URL": zero_gas_chain.rpc_url,
           "LEDGER_KEYSTORE_PASSWORD": "the wrong passphrase"}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "ledger_api.cli", "deploy", "--keystore", str(keystore)],
                            env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("ledger: error: cannot open keystore")
    assert result.stderr.count("\n") == 1
