"""What every command needs, built lazily from settings: the chain, the deployment, a signer."""

from __future__ import annotations

import argparse
import os
from functools import cached_property
from pathlib import Path

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.clique import CliqueNetwork
from ledger_api.chain.deploy import Deployment, DeploymentStore
from ledger_api.chain.devnet import Devnet
from ledger_api.chain.signers import Signer, load_signer
from ledger_api.chain.transactor import Transactor
from ledger_api.settings import Settings

ADMIN_KEY_ENV = "LEDGER_ADMIN_KEY"


def enter_demo_mode() -> None:
    """For the commands that *are* the demo (``demo``, ``run``, ``bench``): they start their own loopback
    devnet, so the published demo secrets are what they must use (``Settings.demo_mode`` still checks the
    RPC is on loopback). Every other command needs ``LEDGER_DEMO=1`` said explicitly."""
    os.environ.setdefault("LEDGER_DEMO", "1")


def add_chain_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc-url", help="JSON-RPC endpoint (default: LEDGER_RPC_URL or the local devnet)")


def add_signer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-env",
        default=ADMIN_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the signer's hex private key (default {ADMIN_KEY_ENV}; "
        "on the devnet the first dev account when unset)",
    )
    parser.add_argument(
        "--keystore", type=Path, help="encrypted JSON keystore of the signer (password: LEDGER_KEYSTORE_PASSWORD)"
    )


class CliContext:
    def __init__(self, *, settings: Settings, rpc_url: str | None = None) -> None:
        self.settings = settings
        self.rpc_url = rpc_url or settings.rpc_url

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CliContext:
        return cls(settings=Settings(), rpc_url=getattr(args, "rpc_url", None))

    @cached_property
    def transactor(self) -> Transactor:
        return Transactor.from_url(
            self.rpc_url, gas_pricing=self.settings.gas_pricing, confirmations=self.settings.confirmations_required
        )

    @cached_property
    def deployments(self) -> DeploymentStore:
        return DeploymentStore(directory=self.settings.deployments_dir)

    @cached_property
    def deployment(self) -> Deployment:
        return self.deployments.require(self.transactor.chain_id)

    @cached_property
    def chain(self) -> LedgerChain:
        return LedgerChain(transactor=self.transactor, deployment=self.deployment)

    def signer(self, args: argparse.Namespace, *, devnet_default_index: int | None = 0) -> Signer:
        keystore = getattr(args, "keystore", None) or self.settings.keystore
        password = self.settings.keystore_password.get_secret_value() if self.settings.keystore_password else None
        return load_signer(
            chain_id=self.transactor.chain_id,
            key_env=getattr(args, "key_env", ADMIN_KEY_ENV),
            keystore=keystore,
            keystore_password=password,
            devnet_default_index=devnet_default_index,
            demo=self.settings.demo_mode,
        )

    def clique(self, *, nodes: int = 4, period_s: int = 1) -> CliqueNetwork:
        return CliqueNetwork(home=self.settings.devnet_home / "clique", nodes=nodes, period_s=period_s)

    def existing_clique(self) -> CliqueNetwork | None:
        """The clique network of this LEDGER_HOME, when one was created (its layout is kept)."""
        return CliqueNetwork.existing(self.settings.devnet_home / "clique")

    def devnet(self, *, port: int | None = None, block_time_s: float | None = None) -> Devnet:
        return Devnet(
            home=self.settings.devnet_home,
            port=port or self.settings.devnet_port,
            block_time_s=block_time_s if block_time_s is not None else self.settings.devnet_block_time_s,
        )
