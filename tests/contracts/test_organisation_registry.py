"""OrganisationRegistry: registration, suspension, signers, communities, key rotation, views and the
two-step hand-over of DEFAULT_ADMIN_ROLE (OpenZeppelin AccessControlDefaultAdminRules)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.encoding import OrganisationKind
from ledger_api.chain.errors import TransactionFailed
from tests.contracts.conftest import (
    COMMITTEE,
    COMMUNITY_A,
    COMMUNITY_B,
    DEFAULT_ADMIN_ROLE,
    LOG_WRITER_ROLE,
    ORG_ADMIN_ROLE,
    POLICE,
    PROPERTY,
    PUBLIC_KEY,
    SUSPENDED,
    ZERO32,
    ZERO_ADDRESS,
    Actors,
    b32,
    call,
    events,
    fresh_account,
    grant_request,
    reverts,
    same_address,
    single_event,
    transact,
)

NEW_ORG = "AU-XIHU-01"
NEW_KEY = b"\x00\x20" + bytes(range(100, 132))
#: ML-KEM-768 + X25519 hybrid (X-Wing, KEM id 0x647a) public keys are 1216 bytes.
HYBRID_KEY = b"\x64\x7a" + bytes(i % 251 for i in range(1216))


def register_fn(
    ledger: LedgerChain,
    *,
    org_id: bytes = b32(NEW_ORG),
    kind: int = int(OrganisationKind.AUDITOR),
    signer: str | None = None,
    communities: list[bytes] | None = None,
    key: bytes = PUBLIC_KEY,
) -> object:
    return ledger.registry.functions.registerOrganisation(
        org_id,
        kind,
        signer if signer is not None else fresh_account("new-org").address,
        [b32(COMMUNITY_A)] if communities is None else communities,
        key,
    )


# --- registration ------------------------------------------------------------------------------------


def test_register_stores_the_organisation_and_emits_its_event(ledger: LedgerChain, actors: Actors) -> None:
    signer = fresh_account("auditor").address
    count_before = call(ledger, ledger.registry.functions.organisationCount())
    receipt = transact(
        ledger,
        register_fn(ledger, signer=signer, communities=[b32(COMMUNITY_A), b32(COMMUNITY_B)], key=HYBRID_KEY),
        actors.admin,
    )

    event = single_event(ledger.registry, "OrganisationRegistered", receipt)
    assert event["orgId"] == b32(NEW_ORG)
    assert event["kind"] == OrganisationKind.AUDITOR
    assert same_address(event["signer"], signer)
    assert event["communities"] == [b32(COMMUNITY_A), b32(COMMUNITY_B)]
    assert event["publicKey"] == HYBRID_KEY

    kind, suspended, stored_signer, key_count, communities = call(
        ledger, ledger.registry.functions.organisation(b32(NEW_ORG))
    )
    assert (kind, suspended, key_count) == (OrganisationKind.AUDITOR, False, 1)
    assert same_address(stored_signer, signer)
    assert communities == [b32(COMMUNITY_A), b32(COMMUNITY_B)]
    status = call(ledger, ledger.registry.functions.organisationStatus(b32(NEW_ORG)))
    assert status[0] == OrganisationKind.AUDITOR
    assert status[1] is False
    assert same_address(status[2], signer)
    assert call(ledger, ledger.registry.functions.isActive(b32(NEW_ORG))) is True
    assert call(ledger, ledger.registry.functions.organisationOfSigner(signer)) == b32(NEW_ORG)
    assert call(ledger, ledger.registry.functions.publicKey(b32(NEW_ORG), 0)) == HYBRID_KEY
    assert call(ledger, ledger.registry.functions.currentPublicKey(b32(NEW_ORG))) == [0, HYBRID_KEY]
    assert call(ledger, ledger.registry.functions.organisationCount()) == count_before + 1
    assert call(ledger, ledger.registry.functions.organisationIdAt(count_before)) == b32(NEW_ORG)


@pytest.mark.parametrize("size", [3, 4096], ids=["shortest key (kem id + 1 byte)", "longest key (4096 bytes)"])
def test_register_accepts_public_keys_at_the_length_limits(ledger: LedgerChain, actors: Actors, size: int) -> None:
    key = b"\x00\x20" + b"\x07" * (size - 2)
    transact(ledger, register_fn(ledger, key=key), actors.admin)
    assert call(ledger, ledger.registry.functions.publicKey(b32(NEW_ORG), 0)) == key


def test_register_accepts_64_communities_and_none(ledger: LedgerChain, actors: Actors) -> None:
    many = [b32(f"C{i:03d}") for i in range(64)]
    transact(ledger, register_fn(ledger, communities=many), actors.admin)
    assert call(ledger, ledger.registry.functions.organisation(b32(NEW_ORG)))[4] == many
    transact(
        ledger,
        register_fn(ledger, org_id=b32("EMPTY-01"), signer=fresh_account("empty").address, communities=[]),
        actors.admin,
    )
    assert call(ledger, ledger.registry.functions.organisation(b32("EMPTY-01")))[4] == []


def test_register_rejects_a_zero_id(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistryInvalidOrganisation", ZERO32):
        transact(ledger, register_fn(ledger, org_id=ZERO32), actors.admin)


def test_register_rejects_kind_none(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistryInvalidOrganisation", b32(NEW_ORG)):
        transact(ledger, register_fn(ledger, kind=int(OrganisationKind.NONE)), actors.admin)


def test_register_rejects_a_kind_outside_the_enum(ledger: LedgerChain, actors: Actors) -> None:
    # The ABI decoder rejects an out-of-range enum before the function body runs: no custom error.
    with pytest.raises(TransactionFailed):
        transact(ledger, register_fn(ledger, kind=len(OrganisationKind)), actors.admin)


@pytest.mark.parametrize("count", [65, 200])
def test_register_rejects_more_than_64_communities(ledger: LedgerChain, actors: Actors, count: int) -> None:
    with reverts("OrganisationRegistryTooManyCommunities", count, 64):
        transact(ledger, register_fn(ledger, communities=[b32(f"C{i:03d}") for i in range(count)]), actors.admin)
    assert call(ledger, ledger.registry.functions.isActive(b32(NEW_ORG))) is False


def test_register_checks_the_id_before_the_community_count(ledger: LedgerChain, actors: Actors) -> None:
    too_many = [b32(f"C{i:03d}") for i in range(65)]
    with reverts("OrganisationRegistryInvalidOrganisation", ZERO32):
        transact(ledger, register_fn(ledger, org_id=ZERO32, communities=too_many), actors.admin)
    with reverts("OrganisationRegistryTooManyCommunities", 65, 64):
        transact(ledger, register_fn(ledger, org_id=b32(POLICE), communities=too_many), actors.admin)


def test_register_rejects_an_id_already_registered(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistryAlreadyRegistered", b32(POLICE)):
        transact(ledger, register_fn(ledger, org_id=b32(POLICE)), actors.admin)


def test_register_rejects_the_zero_signer(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistrySignerUnavailable", ZERO_ADDRESS, ZERO32):
        transact(ledger, register_fn(ledger, signer=ZERO_ADDRESS), actors.admin)


@pytest.mark.parametrize(("holder", "org"), [("owner", POLICE), ("suspended", SUSPENDED)])
def test_register_rejects_a_signer_in_use(ledger: LedgerChain, actors: Actors, holder: str, org: str) -> None:
    signer = getattr(actors, holder).address
    with reverts("OrganisationRegistrySignerUnavailable", signer, b32(org)):
        transact(ledger, register_fn(ledger, signer=signer), actors.admin)


@pytest.mark.parametrize("size", [0, 1, 2, 4097], ids=["empty", "1 byte", "kem id only", "4097 bytes"])
def test_register_rejects_an_invalid_public_key(ledger: LedgerChain, actors: Actors, size: int) -> None:
    with reverts("OrganisationRegistryInvalidPublicKey"):
        transact(ledger, register_fn(ledger, key=b"\x00\x20\x01"[:size] + b"\x01" * max(0, size - 3)), actors.admin)


@pytest.mark.parametrize("caller", ["pending_admin", "owner", "stranger", "log_writer"])
def test_register_needs_org_admin_role(ledger: LedgerChain, actors: Actors, caller: str) -> None:
    account = getattr(actors, caller)
    with reverts("AccessControlUnauthorizedAccount", account.address, ORG_ADMIN_ROLE):
        transact(ledger, register_fn(ledger), account)


# --- suspension --------------------------------------------------------------------------------------


def test_suspend_and_reinstate(ledger: LedgerChain, actors: Actors) -> None:
    receipt = transact(ledger, ledger.registry.functions.suspendOrganisation(b32(PROPERTY)), actors.admin)
    event = single_event(ledger.registry, "OrganisationSuspended", receipt)
    assert event["orgId"] == b32(PROPERTY)
    assert same_address(event["by"], actors.admin.address)
    assert call(ledger, ledger.registry.functions.isActive(b32(PROPERTY))) is False
    assert call(ledger, ledger.registry.functions.organisationStatus(b32(PROPERTY)))[1] is True
    assert ledger.organisation(PROPERTY).suspended

    receipt = transact(ledger, ledger.registry.functions.reinstateOrganisation(b32(PROPERTY)), actors.admin)
    event = single_event(ledger.registry, "OrganisationReinstated", receipt)
    assert event["orgId"] == b32(PROPERTY)
    assert same_address(event["by"], actors.admin.address)
    assert call(ledger, ledger.registry.functions.isActive(b32(PROPERTY))) is True
    assert not ledger.organisation(PROPERTY).suspended


def test_suspending_a_suspended_organisation_reverts_unchanged(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistrySuspensionUnchanged", b32(SUSPENDED), True):
        transact(ledger, ledger.registry.functions.suspendOrganisation(b32(SUSPENDED)), actors.admin)


def test_reinstating_an_active_organisation_reverts_unchanged(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistrySuspensionUnchanged", b32(POLICE), False):
        transact(ledger, ledger.registry.functions.reinstateOrganisation(b32(POLICE)), actors.admin)


@pytest.mark.parametrize("function", ["suspendOrganisation", "reinstateOrganisation"])
def test_suspension_of_an_unknown_organisation(ledger: LedgerChain, actors: Actors, function: str) -> None:
    with reverts("OrganisationRegistryUnknownOrganisation", b32(NEW_ORG)):
        transact(ledger, getattr(ledger.registry.functions, function)(b32(NEW_ORG)), actors.admin)


@pytest.mark.parametrize(("function", "org"), [("suspendOrganisation", POLICE), ("reinstateOrganisation", SUSPENDED)])
def test_suspension_needs_org_admin_role(ledger: LedgerChain, actors: Actors, function: str, org: str) -> None:
    with reverts("AccessControlUnauthorizedAccount", actors.owner.address, ORG_ADMIN_ROLE):
        transact(ledger, getattr(ledger.registry.functions, function)(b32(org)), actors.owner)


# --- signers -----------------------------------------------------------------------------------------


DELAY = 3 * 86_400  # deploy_contracts' default signer-change delay


def fund(ledger: LedgerChain, account: LocalAccount) -> None:
    ledger.w3.eth.send_transaction({"from": ledger.w3.eth.accounts[0], "to": account.address, "value": 10**20})


def propose(ledger: LedgerChain, actors: Actors, org: str, new: str) -> TxReceipt:
    return transact(ledger, ledger.registry.functions.proposeSignerChange(b32(org), new), actors.admin)


def test_a_proposed_signer_change_changes_nothing_until_accepted(ledger: LedgerChain, actors: Actors) -> None:
    new = fresh_account("police-new-signer")
    receipt = propose(ledger, actors, POLICE, new.address)
    event = single_event(ledger.registry, "OrganisationSignerChangeProposed", receipt)
    effective_at = ledger.w3.eth.get_block(receipt["blockNumber"])["timestamp"] + DELAY
    assert (event["orgId"], event["effectiveAt"]) == (b32(POLICE), effective_at)
    assert same_address(event["currentSigner"], actors.owner.address)
    assert same_address(event["newSigner"], new.address)
    assert same_address(event["proposedBy"], actors.admin.address)
    assert not events(ledger.registry, "OrganisationSignerChanged", receipt)
    assert same_address(ledger.organisation(POLICE).signer, actors.owner.address)
    pending = call(ledger, ledger.registry.functions.pendingSigner(b32(POLICE)))
    assert same_address(pending[0], new.address)
    assert pending[1] == effective_at


def test_the_owner_accepts_and_the_signer_moves(ledger: LedgerChain, actors: Actors) -> None:
    new = fresh_account("police-new-signer")
    propose(ledger, actors, POLICE, new.address)
    receipt = transact(ledger, ledger.registry.functions.acceptSignerChange(b32(POLICE)), actors.owner)
    accepted = single_event(ledger.registry, "OrganisationSignerChangeAccepted", receipt)
    assert accepted["orgId"] == b32(POLICE)
    assert same_address(accepted["acceptedBy"], actors.owner.address)
    event = single_event(ledger.registry, "OrganisationSignerChanged", receipt)
    assert event["orgId"] == b32(POLICE)
    assert same_address(event["previousSigner"], actors.owner.address)
    assert same_address(event["newSigner"], new.address)

    assert same_address(ledger.organisation(POLICE).signer, new.address)
    assert call(ledger, ledger.registry.functions.organisationOfSigner(new.address)) == b32(POLICE)
    assert call(ledger, ledger.registry.functions.organisationOfSigner(actors.owner.address)) == ZERO32
    assert same_address(call(ledger, ledger.registry.functions.pendingSigner(b32(POLICE)))[0], ZERO_ADDRESS)
    # The old signer no longer acts for the organisation ...
    with reverts("OrganisationRegistryNotSigner", b32(POLICE), actors.owner.address):
        transact(ledger, ledger.registry.functions.rotateKey(b32(POLICE), NEW_KEY), actors.owner)
    # ... and is free to sign for another one.
    transact(ledger, register_fn(ledger, signer=actors.owner.address), actors.admin)
    assert call(ledger, ledger.registry.functions.organisationOfSigner(actors.owner.address)) == b32(NEW_ORG)


def test_without_acceptance_the_change_waits_for_its_delay(ledger: LedgerChain, actors: Actors, tester: Any) -> None:
    new = fresh_account("police-new-signer")
    receipt = propose(ledger, actors, POLICE, new.address)
    effective_at = single_event(ledger.registry, "OrganisationSignerChangeProposed", receipt)["effectiveAt"]
    complete = ledger.registry.functions.completeSignerChange(b32(POLICE))
    with reverts("OrganisationRegistrySignerChangeNotDue", b32(POLICE), effective_at):
        transact(ledger, complete, actors.admin)
    tester.time_travel(effective_at + 1)
    with reverts("OrganisationRegistrySignerChangeUnauthorised", b32(POLICE), actors.stranger.address):
        transact(ledger, complete, actors.stranger)
    fund(ledger, new)
    receipt = transact(ledger, complete, new)  # the new signer shows it holds the key
    assert not events(ledger.registry, "OrganisationSignerChangeAccepted", receipt)
    event = single_event(ledger.registry, "OrganisationSignerChanged", receipt)
    assert same_address(event["previousSigner"], actors.owner.address)
    assert same_address(ledger.organisation(POLICE).signer, new.address)


@pytest.mark.parametrize("by", ["owner", "admin"])
def test_the_owner_or_an_admin_cancels_a_pending_change(
    ledger: LedgerChain, actors: Actors, tester: Any, by: str
) -> None:
    new = fresh_account("police-new-signer")
    propose(ledger, actors, POLICE, new.address)
    receipt = transact(ledger, ledger.registry.functions.cancelSignerChange(b32(POLICE)), getattr(actors, by))
    event = single_event(ledger.registry, "OrganisationSignerChangeCancelled", receipt)
    assert same_address(event["newSigner"], new.address)
    assert same_address(event["cancelledBy"], getattr(actors, by).address)
    tester.time_travel(ledger.latest_timestamp() + DELAY + 10)
    with reverts("OrganisationRegistryNoPendingSigner", b32(POLICE)):
        transact(ledger, ledger.registry.functions.completeSignerChange(b32(POLICE)), actors.admin)
    assert same_address(ledger.organisation(POLICE).signer, actors.owner.address)


def test_only_the_organisations_signer_accepts(ledger: LedgerChain, actors: Actors) -> None:
    propose(ledger, actors, POLICE, fresh_account("police-new-signer").address)
    for caller in (actors.admin, actors.grantee, actors.stranger):
        with reverts("OrganisationRegistrySignerChangeUnauthorised", b32(POLICE), caller.address):
            transact(ledger, ledger.registry.functions.acceptSignerChange(b32(POLICE)), caller)
    with reverts("OrganisationRegistrySignerChangeUnauthorised", b32(POLICE), actors.stranger.address):
        transact(ledger, ledger.registry.functions.cancelSignerChange(b32(POLICE)), actors.stranger)


def test_nothing_pending_nothing_to_accept(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistryNoPendingSigner", b32(POLICE)):
        transact(ledger, ledger.registry.functions.acceptSignerChange(b32(POLICE)), actors.owner)


def test_a_signer_taken_meanwhile_cannot_take_effect(ledger: LedgerChain, actors: Actors) -> None:
    new = fresh_account("contested-signer")
    propose(ledger, actors, POLICE, new.address)
    transact(ledger, register_fn(ledger, signer=new.address), actors.admin)
    with reverts("OrganisationRegistrySignerUnavailable", new.address, b32(NEW_ORG)):
        transact(ledger, ledger.registry.functions.acceptSignerChange(b32(POLICE)), actors.owner)


def test_change_signer_of_a_suspended_organisation_is_allowed(ledger: LedgerChain, actors: Actors) -> None:
    new = fresh_account("suspended-new-signer")
    propose(ledger, actors, SUSPENDED, new.address)
    transact(ledger, ledger.registry.functions.acceptSignerChange(b32(SUSPENDED)), actors.suspended)
    assert same_address(ledger.organisation(SUSPENDED).signer, new.address)
    assert ledger.organisation(SUSPENDED).suspended


@pytest.mark.parametrize(("holder", "org"), [("grantee", COMMITTEE), ("owner", POLICE), ("suspended", SUSPENDED)])
def test_change_signer_rejects_a_signer_in_use(ledger: LedgerChain, actors: Actors, holder: str, org: str) -> None:
    signer = getattr(actors, holder).address
    with reverts("OrganisationRegistrySignerUnavailable", signer, b32(org)):
        propose(ledger, actors, POLICE, signer)


def test_change_signer_rejects_the_zero_address(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistrySignerUnavailable", ZERO_ADDRESS, ZERO32):
        propose(ledger, actors, POLICE, ZERO_ADDRESS)


def test_change_signer_of_an_unknown_organisation(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistryUnknownOrganisation", b32(NEW_ORG)):
        propose(ledger, actors, NEW_ORG, actors.stranger.address)


def test_change_signer_needs_org_admin_role(ledger: LedgerChain, actors: Actors) -> None:
    # Not even the organisation's own signer may hand its seat on.
    with reverts("AccessControlUnauthorizedAccount", actors.owner.address, ORG_ADMIN_ROLE):
        fn = ledger.registry.functions.proposeSignerChange(b32(POLICE), actors.stranger.address)
        transact(ledger, fn, actors.owner)


# --- communities -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "communities", [[COMMUNITY_B], [], [f"C{i:03d}" for i in range(64)]], ids=["one", "none", "64"]
)
def test_set_communities_replaces_the_list(ledger: LedgerChain, actors: Actors, communities: list[str]) -> None:
    codes = [b32(c) for c in communities]
    receipt = transact(ledger, ledger.registry.functions.setCommunities(b32(POLICE), codes), actors.admin)
    event = single_event(ledger.registry, "OrganisationCommunitiesChanged", receipt)
    assert event == {"orgId": b32(POLICE), "communities": codes}
    assert ledger.organisation(POLICE).communities == tuple(communities)


@pytest.mark.parametrize("count", [65, 200])
def test_set_communities_rejects_more_than_64(ledger: LedgerChain, actors: Actors, count: int) -> None:
    with reverts("OrganisationRegistryTooManyCommunities", count, 64):
        transact(
            ledger,
            ledger.registry.functions.setCommunities(b32(POLICE), [b32(f"C{i:03d}") for i in range(count)]),
            actors.admin,
        )
    assert ledger.organisation(POLICE).communities == (COMMUNITY_A, COMMUNITY_B)


def test_set_communities_checks_the_organisation_before_the_count(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistryUnknownOrganisation", b32(NEW_ORG)):
        transact(
            ledger,
            ledger.registry.functions.setCommunities(b32(NEW_ORG), [b32(f"C{i:03d}") for i in range(65)]),
            actors.admin,
        )


def test_set_communities_of_an_unknown_organisation(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistryUnknownOrganisation", b32(NEW_ORG)):
        transact(ledger, ledger.registry.functions.setCommunities(b32(NEW_ORG), []), actors.admin)


def test_set_communities_needs_org_admin_role(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("AccessControlUnauthorizedAccount", actors.owner.address, ORG_ADMIN_ROLE):
        transact(ledger, ledger.registry.functions.setCommunities(b32(POLICE), []), actors.owner)


# --- key rotation ------------------------------------------------------------------------------------


def test_rotate_key_keeps_old_keys_readable_by_index(ledger: LedgerChain, actors: Actors) -> None:
    rotate = ledger.registry.functions.rotateKey(b32(POLICE), NEW_KEY)
    assert rotate.call({"from": actors.owner.address}) == 1  # the index it is about to return
    receipt = transact(ledger, rotate, actors.owner)
    assert single_event(ledger.registry, "OrganisationKeyRotated", receipt) == {
        "orgId": b32(POLICE),
        "keyIndex": 1,
        "publicKey": NEW_KEY,
    }
    receipt = transact(ledger, ledger.registry.functions.rotateKey(b32(POLICE), HYBRID_KEY), actors.owner)
    assert single_event(ledger.registry, "OrganisationKeyRotated", receipt)["keyIndex"] == 2

    assert call(ledger, ledger.registry.functions.publicKey(b32(POLICE), 0)) == PUBLIC_KEY
    assert call(ledger, ledger.registry.functions.publicKey(b32(POLICE), 1)) == NEW_KEY
    assert call(ledger, ledger.registry.functions.publicKey(b32(POLICE), 2)) == HYBRID_KEY
    assert call(ledger, ledger.registry.functions.currentPublicKey(b32(POLICE))) == [2, HYBRID_KEY]
    organisation = ledger.organisation(POLICE)
    assert organisation.key_count == 3
    assert organisation.public_key == HYBRID_KEY
    with reverts("OrganisationRegistryUnknownKey", b32(POLICE), 3):
        call(ledger, ledger.registry.functions.publicKey(b32(POLICE), 3))
    # Other organisations' keys are untouched.
    assert call(ledger, ledger.registry.functions.currentPublicKey(b32(COMMITTEE))) == [0, PUBLIC_KEY]


@pytest.mark.parametrize("caller", ["admin", "grantee", "stranger"])
def test_rotate_key_only_by_the_organisations_signer(ledger: LedgerChain, actors: Actors, caller: str) -> None:
    account = getattr(actors, caller)
    with reverts("OrganisationRegistryNotSigner", b32(POLICE), account.address):
        transact(ledger, ledger.registry.functions.rotateKey(b32(POLICE), NEW_KEY), account)


def test_rotate_key_refused_while_suspended(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistrySuspended", b32(SUSPENDED)):
        transact(ledger, ledger.registry.functions.rotateKey(b32(SUSPENDED), NEW_KEY), actors.suspended)


@pytest.mark.parametrize("size", [0, 2, 4097])
def test_rotate_key_rejects_an_invalid_key(ledger: LedgerChain, actors: Actors, size: int) -> None:
    with reverts("OrganisationRegistryInvalidPublicKey"):
        transact(ledger, ledger.registry.functions.rotateKey(b32(POLICE), b"\x00" * size), actors.owner)


def test_rotate_key_of_an_unknown_organisation(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("OrganisationRegistryUnknownOrganisation", b32(NEW_ORG)):
        transact(ledger, ledger.registry.functions.rotateKey(b32(NEW_ORG), NEW_KEY), actors.owner)


# --- views -------------------------------------------------------------------------------------------


def test_views_of_the_registered_organisations(ledger: LedgerChain, actors: Actors) -> None:
    assert call(ledger, ledger.registry.functions.organisationCount()) == 4
    ids = [call(ledger, ledger.registry.functions.organisationIdAt(i)) for i in range(4)]
    assert ids == [b32(POLICE), b32(COMMITTEE), b32(PROPERTY), b32(SUSPENDED)]
    assert [o.org_id for o in ledger.organisations()] == [POLICE, COMMITTEE, PROPERTY, SUSPENDED]
    for org, signer, active in [
        (POLICE, actors.owner, True),
        (COMMITTEE, actors.grantee, True),
        (PROPERTY, actors.other, True),
        (SUSPENDED, actors.suspended, False),
    ]:
        assert call(ledger, ledger.registry.functions.isActive(b32(org))) is active
        assert call(ledger, ledger.registry.functions.organisationOfSigner(signer.address)) == b32(org)
        assert ledger.organisation_of_signer(signer.address) == org
    assert ledger.organisation(POLICE).kind is OrganisationKind.POLICE
    assert ledger.organisation(COMMITTEE).communities == (COMMUNITY_A,)


def test_views_of_an_unknown_organisation(ledger: LedgerChain, actors: Actors) -> None:
    unknown = b32(NEW_ORG)
    assert call(ledger, ledger.registry.functions.organisationStatus(unknown)) == [0, False, ZERO_ADDRESS]
    assert call(ledger, ledger.registry.functions.isActive(unknown)) is False
    assert call(ledger, ledger.registry.functions.organisationOfSigner(actors.stranger.address)) == ZERO32
    assert call(ledger, ledger.registry.functions.organisationOfSigner(actors.admin.address)) == ZERO32
    for fn in (
        ledger.registry.functions.organisation(unknown),
        ledger.registry.functions.currentPublicKey(unknown),
        ledger.registry.functions.publicKey(unknown, 0),
    ):
        with reverts("OrganisationRegistryUnknownOrganisation", unknown):
            call(ledger, fn)


@pytest.mark.parametrize("index", [4, 5, 2**256 - 1])
def test_organisation_id_past_the_end(ledger: LedgerChain, index: int) -> None:
    with reverts("OrganisationRegistryUnknownIndex", index):
        call(ledger, ledger.registry.functions.organisationIdAt(index))


def test_organisation_id_index_grows_with_registration(ledger: LedgerChain, actors: Actors) -> None:
    transact(ledger, register_fn(ledger), actors.admin)
    assert call(ledger, ledger.registry.functions.organisationIdAt(4)) == b32(NEW_ORG)
    with reverts("OrganisationRegistryUnknownIndex", 5):
        call(ledger, ledger.registry.functions.organisationIdAt(5))


def test_roles_after_deployment(ledger: LedgerChain, actors: Actors) -> None:
    has = ledger.registry.functions.hasRole
    assert call(ledger, has(DEFAULT_ADMIN_ROLE, actors.admin.address)) is True
    assert call(ledger, has(ORG_ADMIN_ROLE, actors.admin.address)) is True
    assert call(ledger, has(LOG_WRITER_ROLE, actors.log_writer.address)) is True
    assert call(ledger, has(ORG_ADMIN_ROLE, actors.pending_admin.address)) is False
    assert call(ledger, has(DEFAULT_ADMIN_ROLE, actors.pending_admin.address)) is False
    assert same_address(call(ledger, ledger.registry.functions.defaultAdmin()), actors.admin.address)
    assert call(ledger, ledger.registry.functions.ORG_ADMIN_ROLE()) == ORG_ADMIN_ROLE
    assert call(ledger, ledger.registry.functions.LOG_WRITER_ROLE()) == LOG_WRITER_ROLE
    assert ledger.is_org_admin(actors.admin.address)
    assert not ledger.is_org_admin(actors.owner.address)


# --- roles and the two-step admin hand-over ------------------------------------------------------------


def test_pending_admin_accepts_the_hand_over(ledger: LedgerChain, actors: Actors) -> None:
    pending, schedule = call(ledger, ledger.registry.functions.pendingDefaultAdmin())
    assert same_address(pending, actors.pending_admin.address)
    assert 0 < schedule <= ledger.latest_timestamp()

    receipt = transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), actors.pending_admin)
    # Both roles move: DEFAULT_ADMIN_ROLE (OpenZeppelin) and then ORG_ADMIN_ROLE (OrganisationRegistry).
    old, new = actors.admin.address, actors.pending_admin.address
    assert role_events(ledger, "RoleRevoked", receipt) == [
        (DEFAULT_ADMIN_ROLE, old.lower(), new.lower()),
        (ORG_ADMIN_ROLE, old.lower(), new.lower()),
    ]
    assert role_events(ledger, "RoleGranted", receipt) == [
        (DEFAULT_ADMIN_ROLE, new.lower(), new.lower()),
        (ORG_ADMIN_ROLE, new.lower(), new.lower()),
    ]

    has = ledger.registry.functions.hasRole
    assert same_address(call(ledger, ledger.registry.functions.defaultAdmin()), actors.pending_admin.address)
    assert call(ledger, has(DEFAULT_ADMIN_ROLE, actors.pending_admin.address)) is True
    assert call(ledger, has(DEFAULT_ADMIN_ROLE, actors.admin.address)) is False
    assert call(ledger, ledger.registry.functions.pendingDefaultAdmin()) == [ZERO_ADDRESS, 0]

    # The old admin lost DEFAULT_ADMIN_ROLE: it can no longer manage roles ...
    newcomer = fresh_account("newcomer").address
    with reverts("AccessControlUnauthorizedAccount", actors.admin.address, DEFAULT_ADMIN_ROLE):
        transact(ledger, ledger.registry.functions.grantRole(ORG_ADMIN_ROLE, newcomer), actors.admin)
    # ... while the new one can.
    receipt = transact(ledger, ledger.registry.functions.grantRole(ORG_ADMIN_ROLE, newcomer), actors.pending_admin)
    granted = single_event(ledger.registry, "RoleGranted", receipt)
    assert granted["role"] == ORG_ADMIN_ROLE
    assert same_address(granted["account"], newcomer)


def test_hand_over_moves_org_admin_role(ledger: LedgerChain, actors: Actors) -> None:
    """ORG_ADMIN_ROLE follows DEFAULT_ADMIN_ROLE on accept: the old admin can no longer administer
    organisations or grants, the new admin can."""
    old, new = actors.admin, actors.pending_admin
    with reverts("AccessControlUnauthorizedAccount", new.address, ORG_ADMIN_ROLE):
        transact(ledger, register_fn(ledger), new)  # before accepting: not yet an org admin

    transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), new)
    has = ledger.registry.functions.hasRole
    assert call(ledger, has(ORG_ADMIN_ROLE, old.address)) is False
    assert call(ledger, has(ORG_ADMIN_ROLE, new.address)) is True
    assert not ledger.is_org_admin(old.address)
    assert ledger.is_org_admin(new.address)

    # The old admin is denied everything ORG_ADMIN_ROLE allowed ...
    with reverts("AccessControlUnauthorizedAccount", old.address, ORG_ADMIN_ROLE):
        transact(ledger, register_fn(ledger), old)
    with reverts("AccessControlUnauthorizedAccount", old.address, ORG_ADMIN_ROLE):
        transact(ledger, ledger.registry.functions.suspendOrganisation(b32(POLICE)), old)
    request = grant_request(now=ledger.latest_timestamp())
    with reverts("GrantRegistryUnauthorised", b32(POLICE), old.address):
        transact(ledger, ledger.grants.functions.createGrant(request), old)

    # ... and the new admin is allowed it.
    receipt = transact(ledger, register_fn(ledger), new)
    assert single_event(ledger.registry, "OrganisationRegistered", receipt)["orgId"] == b32(NEW_ORG)
    receipt = transact(ledger, ledger.grants.functions.createGrant(request), new)
    created = single_event(ledger.grants, "GrantCreated", receipt)
    assert (created["ownerOrg"], created["byAdmin"]) == (b32(POLICE), True)
    assert same_address(created["grantedBy"], new.address)
    receipt = transact(ledger, ledger.registry.functions.suspendOrganisation(b32(PROPERTY)), new)
    assert same_address(single_event(ledger.registry, "OrganisationSuspended", receipt)["by"], new.address)


def test_hand_over_leaves_other_org_admins_alone(ledger: LedgerChain, actors: Actors) -> None:
    second = fresh_account("second-org-admin")
    transact(ledger, ledger.registry.functions.grantRole(ORG_ADMIN_ROLE, second.address), actors.admin)
    transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), actors.pending_admin)
    assert ledger.is_org_admin(second.address)
    assert ledger.is_org_admin(actors.pending_admin.address)
    assert not ledger.is_org_admin(actors.admin.address)


def test_hand_over_when_the_old_admin_had_renounced_org_admin(ledger: LedgerChain, actors: Actors) -> None:
    # Nothing to revoke (no RoleRevoked for ORG_ADMIN_ROLE); the new admin still gains the role.
    transact(ledger, ledger.registry.functions.renounceRole(ORG_ADMIN_ROLE, actors.admin.address), actors.admin)
    receipt = transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), actors.pending_admin)
    old, new = actors.admin.address.lower(), actors.pending_admin.address.lower()
    assert role_events(ledger, "RoleRevoked", receipt) == [(DEFAULT_ADMIN_ROLE, old, new)]
    assert role_events(ledger, "RoleGranted", receipt) == [(DEFAULT_ADMIN_ROLE, new, new), (ORG_ADMIN_ROLE, new, new)]
    assert ledger.is_org_admin(actors.pending_admin.address)


def test_hand_over_to_an_existing_org_admin(ledger: LedgerChain, actors: Actors) -> None:
    # The new admin already holds ORG_ADMIN_ROLE: it keeps it (no second RoleGranted); the old one loses it.
    new = actors.pending_admin.address
    transact(ledger, ledger.registry.functions.grantRole(ORG_ADMIN_ROLE, new), actors.admin)
    receipt = transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), actors.pending_admin)
    old = actors.admin.address.lower()
    assert role_events(ledger, "RoleRevoked", receipt) == [
        (DEFAULT_ADMIN_ROLE, old, new.lower()),
        (ORG_ADMIN_ROLE, old, new.lower()),
    ]
    assert role_events(ledger, "RoleGranted", receipt) == [(DEFAULT_ADMIN_ROLE, new.lower(), new.lower())]
    assert ledger.is_org_admin(new)
    assert not ledger.is_org_admin(actors.admin.address)


def test_hand_over_to_the_admin_itself_keeps_org_admin(ledger: LedgerChain, actors: Actors) -> None:
    # Revoked from the previous admin, then granted to the new one, who is the same account.
    admin = actors.admin
    transact(ledger, ledger.registry.functions.beginDefaultAdminTransfer(admin.address), admin)
    receipt = transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), admin)
    me = admin.address.lower()
    assert role_events(ledger, "RoleRevoked", receipt) == [(DEFAULT_ADMIN_ROLE, me, me), (ORG_ADMIN_ROLE, me, me)]
    assert role_events(ledger, "RoleGranted", receipt) == [(DEFAULT_ADMIN_ROLE, me, me), (ORG_ADMIN_ROLE, me, me)]
    assert ledger.is_org_admin(admin.address)
    assert same_address(call(ledger, ledger.registry.functions.defaultAdmin()), admin.address)
    transact(ledger, register_fn(ledger), admin)


@pytest.mark.parametrize("caller", ["admin", "owner", "stranger", "log_writer"])
def test_only_the_pending_admin_can_accept(ledger: LedgerChain, actors: Actors, caller: str) -> None:
    account = getattr(actors, caller)
    with reverts("AccessControlInvalidDefaultAdmin", account.address):
        transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), account)
    assert same_address(call(ledger, ledger.registry.functions.defaultAdmin()), actors.admin.address)


def role_events(ledger: LedgerChain, name: str, receipt: TxReceipt) -> list[tuple[bytes, str, str]]:
    """``(role, account, sender)`` of every ``name`` (RoleGranted/RoleRevoked) event, addresses lower-case."""
    return [(e["role"], e["account"].lower(), e["sender"].lower()) for e in events(ledger.registry, name, receipt)]


def test_begin_to_someone_else_replaces_the_pending_admin(ledger: LedgerChain, actors: Actors) -> None:
    receipt = transact(
        ledger, ledger.registry.functions.beginDefaultAdminTransfer(actors.stranger.address), actors.admin
    )
    scheduled = single_event(ledger.registry, "DefaultAdminTransferScheduled", receipt)
    assert same_address(scheduled["newAdmin"], actors.stranger.address)
    block = ledger.w3.eth.get_block(receipt["blockNumber"])
    assert scheduled["acceptSchedule"] == block["timestamp"]  # delay 0
    assert len(events(ledger.registry, "DefaultAdminTransferCanceled", receipt)) == 1  # the implicit cancel
    with reverts("AccessControlInvalidDefaultAdmin", actors.pending_admin.address):
        transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), actors.pending_admin)
    transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), actors.stranger)
    assert same_address(call(ledger, ledger.registry.functions.defaultAdmin()), actors.stranger.address)
    assert ledger.is_org_admin(actors.stranger.address)
    assert not ledger.is_org_admin(actors.pending_admin.address)
    assert not ledger.is_org_admin(actors.admin.address)


def test_cancel_withdraws_the_offer(ledger: LedgerChain, actors: Actors) -> None:
    receipt = transact(ledger, ledger.registry.functions.cancelDefaultAdminTransfer(), actors.admin)
    assert len(events(ledger.registry, "DefaultAdminTransferCanceled", receipt)) == 1
    assert call(ledger, ledger.registry.functions.pendingDefaultAdmin()) == [ZERO_ADDRESS, 0]
    with reverts("AccessControlInvalidDefaultAdmin", actors.pending_admin.address):
        transact(ledger, ledger.registry.functions.acceptDefaultAdminTransfer(), actors.pending_admin)


def test_accept_in_the_block_of_the_offer_is_too_early(ledger: LedgerChain, actors: Actors, w3: Web3) -> None:
    """With delay 0 the schedule is the offer's block timestamp and must have *passed*: an accept mined
    in the same block as a fresh offer fails; the next block accepts."""
    tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
    tx = ledger.transactor
    begin = ledger.registry.functions.beginDefaultAdminTransfer(actors.stranger.address)
    accept = ledger.registry.functions.acceptDefaultAdminTransfer()
    signed = []
    for fn, signer in ((begin, actors.admin), (accept, actors.stranger)):
        params = {
            "from": signer.address,
            "chainId": tx.chain_id,
            "nonce": w3.eth.get_transaction_count(signer.address),
            "gas": 300_000,
            **tx.fee_fields(),
        }
        signed.append(signer.sign_transaction(fn.build_transaction(params)).raw_transaction)
    tester.disable_auto_mine_transactions()
    try:
        hashes = [w3.eth.send_raw_transaction(raw) for raw in signed]
        tester.mine_blocks(1)
        begin_receipt, accept_receipt = (w3.eth.get_transaction_receipt(h) for h in hashes)
        assert begin_receipt["blockNumber"] == accept_receipt["blockNumber"]
        assert (begin_receipt["status"], accept_receipt["status"]) == (1, 0)
        schedule = single_event(ledger.registry, "DefaultAdminTransferScheduled", begin_receipt)["acceptSchedule"]
        # Replayed as a call in the context of that block (still the latest): the schedule has not passed.
        with reverts("AccessControlEnforcedDefaultAdminDelay", schedule):
            call(ledger, accept, sender=actors.stranger.address)
    finally:
        tester.enable_auto_mine_transactions()  # mines one more (empty) block
    transact(ledger, accept, actors.stranger)
    assert same_address(call(ledger, ledger.registry.functions.defaultAdmin()), actors.stranger.address)


def test_admin_delay_change_and_rollback(ledger: LedgerChain, actors: Actors) -> None:
    receipt = transact(ledger, ledger.registry.functions.changeDefaultAdminDelay(3600), actors.admin)
    scheduled = single_event(ledger.registry, "DefaultAdminDelayChangeScheduled", receipt)
    block = ledger.w3.eth.get_block(receipt["blockNumber"])
    # Increasing from 0 waits min(new delay, 5 days) before taking effect.
    assert scheduled == {"newDelay": 3600, "effectSchedule": block["timestamp"] + 3600}
    assert call(ledger, ledger.registry.functions.pendingDefaultAdminDelay()) == [3600, block["timestamp"] + 3600]
    assert call(ledger, ledger.registry.functions.defaultAdminDelay()) == 0

    receipt = transact(ledger, ledger.registry.functions.rollbackDefaultAdminDelay(), actors.admin)
    assert len(events(ledger.registry, "DefaultAdminDelayChangeCanceled", receipt)) == 1
    assert call(ledger, ledger.registry.functions.pendingDefaultAdminDelay()) == [0, 0]


def test_default_admin_role_cannot_be_granted_or_revoked_directly(ledger: LedgerChain, actors: Actors) -> None:
    for fn in (
        ledger.registry.functions.grantRole(DEFAULT_ADMIN_ROLE, actors.stranger.address),
        ledger.registry.functions.revokeRole(DEFAULT_ADMIN_ROLE, actors.admin.address),
    ):
        with reverts("AccessControlEnforcedDefaultAdminRules"):
            transact(ledger, fn, actors.admin)


def test_admin_cannot_renounce_while_a_hand_over_is_pending(ledger: LedgerChain, actors: Actors) -> None:
    _, schedule = call(ledger, ledger.registry.functions.pendingDefaultAdmin())
    with reverts("AccessControlEnforcedDefaultAdminDelay", schedule):
        transact(ledger, ledger.registry.functions.renounceRole(DEFAULT_ADMIN_ROLE, actors.admin.address), actors.admin)


def test_renounce_needs_the_callers_own_address(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("AccessControlBadConfirmation"):
        transact(
            ledger, ledger.registry.functions.renounceRole(LOG_WRITER_ROLE, actors.log_writer.address), actors.admin
        )


def test_log_writer_role_grant_revoke_and_renounce(ledger: LedgerChain, actors: Actors) -> None:
    has = ledger.registry.functions.hasRole
    newcomer = fresh_account("log-writer-2")
    receipt = ledger.grant_log_writer(signer=actors.admin, account=newcomer.address)
    granted = single_event(ledger.registry, "RoleGranted", receipt)
    assert granted["role"] == LOG_WRITER_ROLE
    assert same_address(granted["account"], newcomer.address)
    assert same_address(granted["sender"], actors.admin.address)
    assert call(ledger, has(LOG_WRITER_ROLE, newcomer.address)) is True

    receipt = transact(ledger, ledger.registry.functions.revokeRole(LOG_WRITER_ROLE, newcomer.address), actors.admin)
    assert single_event(ledger.registry, "RoleRevoked", receipt)["role"] == LOG_WRITER_ROLE
    assert call(ledger, has(LOG_WRITER_ROLE, newcomer.address)) is False

    receipt = transact(
        ledger,
        ledger.registry.functions.renounceRole(LOG_WRITER_ROLE, actors.log_writer.address),
        actors.log_writer,
    )
    revoked = single_event(ledger.registry, "RoleRevoked", receipt)
    assert same_address(revoked["account"], actors.log_writer.address)
    assert same_address(revoked["sender"], actors.log_writer.address)
    assert call(ledger, has(LOG_WRITER_ROLE, actors.log_writer.address)) is False
