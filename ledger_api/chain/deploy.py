"""Deploy the ledger contracts, and remember where, per chain id, so that a re-run reuses them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger_api.chain.artifacts import contract_abi, contract_bytecode, load_artifacts
from ledger_api.chain.errors import DeploymentNotFound
from ledger_api.chain.transactor import Transactor

#: Deployment order: the registry first, since the others are constructed with its address.
CONTRACTS = (
    "OrganisationRegistry",
    "GrantRegistry",
    "RecordAnchors",
    "AccessLogAnchors",
    "InclusionVerifier",
)
LOG_WRITER_ROLE = Web3.keccak(text="LOG_WRITER_ROLE")


@dataclass(frozen=True, kw_only=True)
class Deployment:
    chain_id: int
    block_number: int
    """The block of the first deployment transaction: where event scans start."""
    addresses: dict[str, str]
    source_hash: str
    admin: str

    def address(self, contract: str) -> str:
        return self.addresses[contract]


class DeploymentStore:
    """Deployment records as ``<directory>/<chain id>.json``."""

    def __init__(self, *, directory: Path) -> None:
        self._directory = directory

    def path(self, chain_id: int) -> Path:
        return self._directory / f"{chain_id}.json"

    def load(self, chain_id: int) -> Deployment | None:
        path = self.path(chain_id)
        if not path.is_file():
            return None
        return Deployment(**json.loads(path.read_text(encoding="utf-8")))

    def require(self, chain_id: int) -> Deployment:
        deployment = self.load(chain_id)
        if deployment is None:
            raise DeploymentNotFound(f"no ledger deployment recorded for chain {chain_id} ({self.path(chain_id)})")
        return deployment

    def save(self, deployment: Deployment) -> Path:
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self.path(deployment.chain_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(deployment), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path


DEFAULT_SIGNER_CHANGE_DELAY_S = 3 * 86_400
"""How long an admin's signer change waits for the organisation's own acceptance (a weekend and a day:
long enough for the organisation to notice the proposal event and cancel a change it did not ask for)."""


def deploy_contracts(
    *,
    transactor: Transactor,
    admin: LocalAccount,
    log_writer: str | None = None,
    admin_transfer_delay_s: int = 0,
    signer_change_delay_s: int = DEFAULT_SIGNER_CHANGE_DELAY_S,
) -> Deployment:
    """Deploy every ledger contract with ``admin`` as the registry's admin; grant the log writer its role."""
    w3 = transactor.w3
    addresses: dict[str, str] = {}
    first_block = None

    def deploy(name: str, *args: object) -> str:
        nonlocal first_block
        factory = w3.eth.contract(abi=contract_abi(name), bytecode=contract_bytecode(name))
        receipt = transactor.transact(factory.constructor(*args), signer=admin)
        if first_block is None:
            first_block = int(receipt["blockNumber"])
        address = str(receipt["contractAddress"])
        addresses[name] = address
        return address

    registry = deploy("OrganisationRegistry", admin.address, admin_transfer_delay_s, signer_change_delay_s)
    for name in CONTRACTS[1:-1]:
        deploy(name, registry)
    deploy("InclusionVerifier")
    if log_writer is not None:
        registry_contract = w3.eth.contract(address=registry, abi=contract_abi("OrganisationRegistry"))  # type: ignore[call-overload]
        transactor.transact(registry_contract.functions.grantRole(LOG_WRITER_ROLE, log_writer), signer=admin)
    assert first_block is not None
    return Deployment(
        chain_id=transactor.chain_id,
        block_number=first_block,
        addresses=addresses,
        source_hash=str(load_artifacts()["source_hash"]),
        admin=admin.address,
    )


def deployment_is_live(w3: Web3, deployment: Deployment) -> bool:
    """True when every recorded contract still has code (a devnet reset wipes them)."""
    return all(len(w3.eth.get_code(Web3.to_checksum_address(a))) > 0 for a in deployment.addresses.values())


def ensure_deployed(
    *,
    transactor: Transactor,
    store: DeploymentStore,
    admin: LocalAccount,
    log_writer: str | None = None,
    force: bool = False,
) -> tuple[Deployment, bool]:
    """The recorded deployment when it is live (reused: True), otherwise a new one (reused: False)."""
    existing = store.load(transactor.chain_id)
    if existing is not None and not force and deployment_is_live(transactor.w3, existing):
        return existing, True
    deployment = deploy_contracts(transactor=transactor, admin=admin, log_writer=log_writer)
    store.save(deployment)
    return deployment, False
