"""Contract fixtures on eth-tester (py-evm): provider → deployed contracts → registered organisations,
with a snapshot taken once and reverted after every test, as web3.py's own test fixtures do."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import deploy_contracts
from ledger_api.chain.encoding import OrganisationKind, Purpose, code_to_bytes32
from ledger_api.chain.errors import ContractReverted
from ledger_api.chain.transactor import Transactor
from tests.support.eth_tester_provider import StandardErrorsEthereumTesterProvider

#: X25519 HPKE public key (KEM id 0x0020, RFC 9180 §7.1) with placeholder key bytes.
PUBLIC_KEY = b"\x00\x20" + bytes(range(32))
COMMUNITY_A = "330102001"
COMMUNITY_B = "330106002"


@dataclass(frozen=True, kw_only=True)
class Actors:
    """Who calls the contracts in the tests. Organisation ids are fixed below."""

    admin: LocalAccount
    pending_admin: LocalAccount
    owner: LocalAccount  # signer of POLICE (the owner of the data in most tests)
    grantee: LocalAccount  # signer of COMMITTEE
    other: LocalAccount  # signer of PROPERTY (an organisation with no grant)
    suspended: LocalAccount  # signer of SUSPENDED (registered, then suspended)
    stranger: LocalAccount  # signs for no organisation and holds no role
    log_writer: LocalAccount  # holds LOG_WRITER_ROLE


POLICE = "PS-XIHU-01"
COMMITTEE = "CM-XIHU-01"
PROPERTY = "PM-XIHU-01"
SUSPENDED = "PS-GONE-01"


@pytest.fixture(scope="session")
def w3() -> Web3:
    return Web3(StandardErrorsEthereumTesterProvider())


@pytest.fixture(scope="session")
def actors(w3: Web3) -> Actors:
    names = ["admin", "pending_admin", "owner", "grantee", "other", "suspended", "stranger", "log_writer"]
    accounts = {name: Account.from_key(Web3.keccak(text=f"ledger-test-{name}")) for name in names}
    funder = w3.eth.accounts[0]
    for account in accounts.values():
        w3.eth.send_transaction({"from": funder, "to": account.address, "value": 10**21})
    return Actors(**accounts)


@pytest.fixture(scope="session")
def transactor(w3: Web3) -> Transactor:
    return Transactor(w3=w3)


@pytest.fixture(scope="session")
def deployed(transactor: Transactor, actors: Actors) -> LedgerChain:
    deployment = deploy_contracts(transactor=transactor, admin=actors.admin, log_writer=actors.log_writer.address)
    ledger = LedgerChain(transactor=transactor, deployment=deployment)
    for org_id, kind, signer, communities in [
        (POLICE, OrganisationKind.POLICE, actors.owner, [COMMUNITY_A, COMMUNITY_B]),
        (COMMITTEE, OrganisationKind.COMMITTEE, actors.grantee, [COMMUNITY_A]),
        (PROPERTY, OrganisationKind.PROPERTY, actors.other, [COMMUNITY_A]),
        (SUSPENDED, OrganisationKind.POLICE, actors.suspended, [COMMUNITY_B]),
    ]:
        ledger.register_organisation(
            signer=actors.admin,
            org_id=org_id,
            kind=kind,
            org_signer=signer.address,
            communities=communities,
            public_key=PUBLIC_KEY,
        )
    ledger.suspend_organisation(signer=actors.admin, org_id=SUSPENDED)
    # A two-step admin hand-over in progress: `pending_admin` has been offered the role, not accepted.
    transactor.transact(
        ledger.registry.functions.beginDefaultAdminTransfer(actors.pending_admin.address), signer=actors.admin
    )
    return ledger


@pytest.fixture
def ledger(deployed: LedgerChain, w3: Web3) -> Iterator[LedgerChain]:
    """The deployed ledger, reverted to its freshly deployed state after each test."""
    tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
    snapshot = tester.take_snapshot()
    try:
        yield deployed
    finally:
        tester.revert_to_snapshot(snapshot)


# --- Helpers and fixtures of the contract test suite (appended; the fixtures above are unchanged) ------

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
DEFAULT_ADMIN_ROLE = ZERO32
ORG_ADMIN_ROLE = Web3.keccak(text="ORG_ADMIN_ROLE")
LOG_WRITER_ROLE = Web3.keccak(text="LOG_WRITER_ROLE")
DAY = 86_400


def b32(code: str) -> bytes:
    """An organisation id, community code or record type as the contracts store it."""
    return code_to_bytes32(code)


def digest(label: str) -> bytes:
    """A deterministic non-zero 32-byte value (record ids, ciphertext hashes, roots) named by ``label``."""
    return hashlib.sha256(label.encode()).digest()


def _normalised(value: Any) -> Any:
    # Addresses come back checksummed or lower-case depending on the path: compare them case-insensitively.
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, (list, tuple)):
        return tuple(_normalised(v) for v in value)
    return value


@contextmanager
def reverts(name: str, *args: Any) -> Iterator[pytest.ExceptionInfo[ContractReverted]]:
    """Expect a revert with the custom error ``name`` and exactly the arguments ``args``."""
    with pytest.raises(ContractReverted) as info:
        yield info
    assert info.value.name == name, f"reverted with {info.value}, expected {name}{args}"
    assert _normalised(info.value.args_decoded) == _normalised(args), (
        f"reverted with {info.value}, expected {name}{args}"
    )


def events(contract: Contract, name: str, receipt: TxReceipt) -> list[dict[str, Any]]:
    """The arguments of every ``name`` event that ``contract`` emitted in ``receipt``."""
    decoded = getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD)
    return [dict(e["args"]) for e in decoded if str(e["address"]).lower() == str(contract.address).lower()]


def single_event(contract: Contract, name: str, receipt: TxReceipt) -> dict[str, Any]:
    """The arguments of the one ``name`` event in ``receipt`` (fails when there is not exactly one)."""
    found = events(contract, name, receipt)
    assert len(found) == 1, f"expected one {name} event, found {len(found)}: {found}"
    return found[0]


def same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def grant_request(
    *,
    now: int,
    owner: str = POLICE,
    grantee: str = COMMITTEE,
    purpose: Purpose = Purpose.INVESTIGATION,
    record_types: Sequence[str] = (),
    communities: Sequence[str] = (),
    record_id: bytes = ZERO32,
    valid_from: int = 0,
    valid_until: int | None = None,
) -> tuple[Any, ...]:
    """A ``GrantRequest`` tuple; valid for 30 days from ``now`` unless told otherwise."""
    return (
        b32(owner),
        b32(grantee),
        int(purpose),
        [b32(t) for t in record_types],
        [b32(c) for c in communities],
        record_id,
        valid_from,
        now + 30 * DAY if valid_until is None else valid_until,
    )


def fresh_account(label: str) -> LocalAccount:
    """An account that holds nothing and signs for nobody (derived from ``label``)."""
    return Account.from_key(Web3.keccak(text=f"ledger-test-fresh-{label}"))


@pytest.fixture
def tester(ledger: LedgerChain, w3: Web3) -> Any:
    """The eth-tester instance behind ``w3`` (time travel, mining, auto-mine switch, snapshots)."""
    return w3.provider.ethereum_tester  # type: ignore[attr-defined]


@pytest.fixture
def now(ledger: LedgerChain) -> int:
    """Timestamp of the latest block, which is the block a view call runs in on eth-tester."""
    return ledger.latest_timestamp()


def transact(ledger: LedgerChain, fn: Any, signer: LocalAccount) -> TxReceipt:
    """Send ``fn`` signed by ``signer`` through the production :class:`Transactor` (reverts decoded)."""
    return ledger.transactor.transact(fn, signer=signer)


def call(ledger: LedgerChain, fn: Any, *, sender: str | None = None) -> Any:
    """A view call through the production :class:`Transactor`: a revert comes back as the provider's
    JSON-RPC error with its data and is decoded by the production ``RevertDecoder``."""
    return ledger.transactor.call(fn, sender=sender)
