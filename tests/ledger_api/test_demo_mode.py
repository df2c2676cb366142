"""Demo secrets (the keystore placeholder, the devnet's dev keys, the demo auditor key) only in demo mode:
``LEDGER_DEMO=1`` *and* a loopback RPC. Before, chain id 31337 alone unlocked them, and any network can
call itself 31337."""

from __future__ import annotations

import pytest

from ledger_api.chain.devnet import DEVNET_CHAIN_ID, dev_account
from ledger_api.chain.signers import load_signer
from ledger_api.crypto.errors import InsecureSecretError
from ledger_api.crypto.keystore import DEMO_MASTER_SECRET
from ledger_api.crypto.keystore_secret import master_secret
from ledger_api.errors import ConfigurationError
from ledger_api.settings import Settings


def test_the_devnet_chain_id_alone_unlocks_no_demo_secret() -> None:
    settings = Settings(demo=False, rpc_url="http://127.0.0.1:8545")
    assert settings.demo_mode is False
    with pytest.raises(InsecureSecretError, match="needs LEDGER_DEMO=1 and a loopback RPC"):
        master_secret(settings, chain_id=DEVNET_CHAIN_ID)
    with pytest.raises(ConfigurationError, match="dev keys need LEDGER_DEMO=1"):
        load_signer(chain_id=DEVNET_CHAIN_ID, key_env="LEDGER_NO_SUCH_KEY", demo=settings.demo_mode)


def test_demo_mode_on_loopback_uses_the_demo_secrets() -> None:
    settings = Settings(demo=True, rpc_url="http://127.0.0.1:8545,http://localhost:8546,http://[::1]:8547")
    assert settings.demo_mode is True
    assert master_secret(settings, chain_id=DEVNET_CHAIN_ID) == DEMO_MASTER_SECRET
    signer = load_signer(chain_id=DEVNET_CHAIN_ID, key_env="LEDGER_NO_SUCH_KEY", demo=True)
    assert signer.address == dev_account(0).address


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:8545", "https://node.example:8545", "http://127.0.0.1:8545,http://10.0.0.6:8545"]
)
def test_demo_mode_is_refused_off_this_machine(url: str) -> None:
    with pytest.raises(ConfigurationError, match="LEDGER_DEMO=1 is honoured only with a loopback RPC"):
        _ = Settings(demo=True, rpc_url=url).demo_mode


def test_a_copy_pointed_at_a_remote_node_leaves_demo_mode() -> None:
    """``ledger serve --rpc-url`` copies the settings with another URL: the loopback verdict must not carry over."""
    local = Settings(demo=True, rpc_url="http://127.0.0.1:8545")
    assert local.demo_mode is True
    remote = local.model_copy(update={"rpc_url": "http://10.0.0.5:8545"})
    with pytest.raises(ConfigurationError, match="honoured only with a loopback RPC"):
        _ = remote.demo_mode
