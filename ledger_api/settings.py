"""Settings from the environment (prefix ``LEDGER_``) with embedded defaults for the local demo.

The defaults describe one machine: anvil on loopback, files under ``./.ledger``. Anything secret
that has a well-known demo value (the devnet's dev keys, the demo keystore passphrase) is refused
unless the chain is the devnet or ``LEDGER_DEMO=1`` says this is a demo.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Default confirmations by consensus engine (see :attr:`Settings.confirmations_required`).
ENGINE_CONFIRMATIONS = {"anvil": 0, "clique": 3, "qbft": 0, "ibft2": 0}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", frozen=True, extra="ignore")

    home: Path = Field(default=Path(".ledger"), description="Where the devnet, deployments and keys live.")
    rpc_url: str = Field(
        default="http://127.0.0.1:8545",
        description="Any Ethereum JSON-RPC endpoint; several nodes of one chain comma-separated (fail-over).",
    )
    devnet_port: int = 8545
    devnet_block_time_s: float | None = Field(default=None, description="Blocks every N s (None: on demand).")
    chain_engine: Literal["anvil", "clique", "qbft", "ibft2"] = Field(
        default="anvil",
        description="The chain's consensus; it chooses the default confirmations (see confirmations_required).",
    )
    gas_pricing: Literal["auto", "legacy", "eip1559"] = "auto"
    confirmations: int | None = Field(
        default=None, ge=0, description="Blocks on top of a write before it counts (None: the engine's default)."
    )
    log_range: int = Field(
        default=5_000, ge=1, description="Most blocks in one eth_getLogs call (consortium nodes cap the span)."
    )
    keystore: Path | None = Field(default=None, description="Encrypted JSON keystore of the signer.")
    keystore_password: SecretStr | None = None
    demo: bool = False

    # --- gateway -----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in LEDGER_HOME.")
    blob_store: str | None = Field(default=None, description="file:///dir or s3://bucket/prefix?endpoint=URL")
    master_secret: SecretStr | None = Field(default=None, description="Encrypts the keystores at rest.")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_batch_records: int = Field(default=5000, ge=1)
    anchor_batch_max: int = Field(default=2000, ge=1)
    anchor_max_wait_s: float = Field(default=1.0, gt=0)
    api_key_cache_s: float = Field(default=1.0, ge=0)
    """How long a key found valid is trusted without a database lookup (a revocation takes effect within it;
    0 looks every key up on every request)."""
    hpke_suite: Literal["x25519", "mlkem768-x25519"] = Field(
        default="x25519",
        description="Suite of new organisation keys; the ML-KEM-768 + X25519 hybrid protects long-lived "
        "sensitive records against a future quantum adversary.",
    )

    @cached_property
    def confirmations_required(self) -> int:
        """``confirmations``, or the engine's default: a QBFT/IBFT 2.0 block is final once sealed, a dev chain
        has one node; Clique can replace its newest block or two (out-of-turn signers race the in-turn
        one), so a write counts with 3 blocks on top."""
        if self.confirmations is not None:
            return self.confirmations
        return ENGINE_CONFIRMATIONS[self.chain_engine]

    @cached_property
    def devnet_home(self) -> Path:
        return self.home / "devnet"

    @cached_property
    def deployments_dir(self) -> Path:
        return self.home / "deployments"

    @cached_property
    def index_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'index.db').resolve()}"

    @cached_property
    def blob_store_url(self) -> str:
        return self.blob_store or (self.home / "blobs").resolve().as_uri()

    @cached_property
    def keystore_dir(self) -> Path:
        return self.home / "keystore"
