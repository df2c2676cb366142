"""Settings from the environment (prefix ``LEDGER_``) with embedded defaults for the local demo.

The defaults describe one machine: anvil on loopback, files under ``./.ledger``. Anything secret
that has a well-known demo value (the devnet's dev keys, the demo keystore passphrase, the demo
auditor's key) is refused unless ``LEDGER_DEMO=1`` says this is a demo *and* every RPC URL is on loopback
(:attr:`Settings.demo_mode`). A chain id alone proves nothing: any network can call itself 31337.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger_api.access.decision import EMERGENCY_READS_PER_HOUR
from ledger_api.errors import ConfigurationError

MAX_API_KEY_CACHE_S = 5.0
"""The longest a running gateway may keep trusting an API key that another process revoked."""

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
    api_key_cache_s: float = Field(default=1.0, ge=0, le=MAX_API_KEY_CACHE_S)
    """How long a key found valid is trusted without a database lookup: a revocation by another process takes
    effect within it (at most 5 s), one by this process at once; 0 looks every key up on every request."""
    access_log_max_backlog_s: float = Field(default=120.0, gt=0)
    """Reads are refused (503) while the oldest access entry no anchored tree head covers is older than this."""
    staging_grace_s: float = Field(default=3600.0, ge=60)
    """A staged blob no index row names is discarded once older than this (ledger_api.records.staging): long
    enough that no push still in flight, here or in another instance, loses its blobs; hence at least 60 s."""
    staging_sweep_s: float = Field(default=300.0, gt=0)
    """How often the gateway sweeps the staging area (it also does at start-up, before serving)."""
    blind_index_per_minute: float = Field(default=30.0, gt=0)
    """Blind-index look-ups one organisation may make per minute (bursts of ``blind_index_burst``): the
    endpoint turns any ID number into the key records are linked by, so an unlimited one is a guessing oracle."""
    blind_index_burst: int = Field(default=20, ge=1)
    emergency_per_hour: int = Field(default=EMERGENCY_READS_PER_HOUR, ge=1, le=10_000)
    """Break-glass reads (emergency, no grant) one organisation may make an hour, all at once if need be
    (429 beyond; ``ledger audit verify --emergency-per-hour`` holds the log to the same bound)."""
    follower_max_lag_s: float = Field(default=3.0, gt=0, le=300)
    """Listings, the feed, subject links and record proofs answer from the chain follower's view of grants
    and organisations: when it was last confirmed at the node's head longer ago than this (and cannot be
    brought there at once), they answer 503 instead of from a stale view. The follower polls every 0.2 s."""
    hpke_suite: Literal["x25519", "mlkem768-x25519"] = Field(
        default="x25519",
        description="Suite of new organisation keys; the ML-KEM-768 + X25519 hybrid protects long-lived "
        "sensitive records against a future quantum adversary.",
    )

    @property
    def demo_mode(self) -> bool:
        """Whether the published demo secrets may be used: ``LEDGER_DEMO=1`` on a loopback chain only.

        A plain property, never cached: ``model_copy(update={"rpc_url": …})`` (``ledger serve --rpc-url``)
        copies cached values, and a cached answer for a loopback URL must not survive a move to a remote one.

        ``LEDGER_DEMO=1`` with an RPC URL off this machine is refused outright rather than ignored: the
        operator asked for demo keys on what may be a real network."""
        if not self.demo:
            return False
        remote = [url for url in self.rpc_url.split(",") if not is_loopback_url(url.strip())]
        if remote:
            raise ConfigurationError(
                f"LEDGER_DEMO=1 is honoured only with a loopback RPC; {remote[0]} is not on this machine"
            )
        return True

    @property
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


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
