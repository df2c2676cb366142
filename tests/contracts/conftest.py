"""Contract fixtures on eth-tester (py-evm): provider → deployed contracts → registered organisations,
with a snapshot taken once and reverted after every test, as web3.py's own test fixtures do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import deploy_contracts
from ledger_api.chain.encoding import OrganisationKind
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
    transactor.transact(ledger.registry.functions.beginDefaultAdminTransfer(actors.pending_admin.address),
                        signer=actors.admin)
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
