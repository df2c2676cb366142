"""GrantRegistry: create (by the owner's signer or an org admin), every create error, revoke and its
errors, history kept in storage, and an access-check case built for every AccessDecision value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.encoding import AccessDecision, Purpose
from ledger_api.chain.errors import TransactionFailed
from ledger_api.chain.models import GrantSpec
from tests.contracts.conftest import (
    COMMITTEE,
    COMMUNITY_A,
    COMMUNITY_B,
    DAY,
    ORG_ADMIN_ROLE,
    POLICE,
    PROPERTY,
    SUSPENDED,
    Actors,
    b32,
    call,
    digest,
    grant_request,
    reverts,
    same_address,
    single_event,
    transact,
)

RECORD = digest("record-1")
OTHER_RECORD = digest("record-2")
INCIDENT = "incident"
KEY_PERSON = "key_person"
RESIDENT = "resident"


def create(ledger: LedgerChain, signer: Any, request: tuple[Any, ...]) -> tuple[int, dict[str, Any], Any]:
    receipt = transact(ledger, ledger.grants.functions.createGrant(request), signer)
    event = single_event(ledger.grants, "GrantCreated", receipt)
    return int(event["grantId"]), event, receipt


# --- create ------------------------------------------------------------------------------------------


def test_owner_signer_creates_a_grant(ledger: LedgerChain, actors: Actors, now: int) -> None:
    request = grant_request(
        now=now,
        record_types=[INCIDENT, KEY_PERSON],
        communities=[COMMUNITY_A],
        record_id=RECORD,
        valid_from=now - DAY,
        valid_until=now + 7 * DAY,
    )
    fn = ledger.grants.functions.createGrant(request)
    assert fn.call({"from": actors.owner.address}) == 1  # ids start at 1
    grant_id, event, receipt = create(ledger, actors.owner, request)

    assert grant_id == 1
    assert event == {
        "grantId": 1,
        "ownerOrg": b32(POLICE),
        "granteeOrg": b32(COMMITTEE),
        "purpose": Purpose.INVESTIGATION,
        "recordTypes": [b32(INCIDENT), b32(KEY_PERSON)],
        "communities": [b32(COMMUNITY_A)],
        "recordId": RECORD,
        "validFrom": now - DAY,
        "validUntil": now + 7 * DAY,
        "grantedBy": event["grantedBy"],
        "byAdmin": False,
    }
    assert same_address(event["grantedBy"], actors.owner.address)

    stored = call(ledger, ledger.grants.functions.grant(1))
    assert list(stored) == [
        b32(POLICE),
        b32(COMMITTEE),
        RECORD,
        Purpose.INVESTIGATION,
        False,
        stored[5],
        now - DAY,
        now + 7 * DAY,
        receipt["blockNumber"],
        0,
        [b32(INCIDENT), b32(KEY_PERSON)],
        [b32(COMMUNITY_A)],
    ]
    assert same_address(stored[5], actors.owner.address)
    assert call(ledger, ledger.grants.functions.grantCount()) == 1

    grant = ledger.grant(1)
    assert grant.spec == GrantSpec(
        owner_org=POLICE,
        grantee_org=COMMITTEE,
        purpose=Purpose.INVESTIGATION,
        valid_from=now - DAY,
        valid_until=now + 7 * DAY,
        record_types=(INCIDENT, KEY_PERSON),
        communities=(COMMUNITY_A,),
        record_id=RECORD.hex(),
    )
    assert (grant.by_admin, grant.created_block, grant.revoked_block) == (False, receipt["blockNumber"], 0)


def test_org_admin_creates_a_grant_on_the_owners_behalf(ledger: LedgerChain, actors: Actors, now: int) -> None:
    grant_id, event, _ = create(ledger, actors.admin, grant_request(now=now))
    assert event["byAdmin"] is True
    assert same_address(event["grantedBy"], actors.admin.address)
    grant = ledger.grant(grant_id)
    assert grant.by_admin is True
    assert same_address(grant.granted_by, actors.admin.address)


def test_grant_ids_count_up(ledger: LedgerChain, actors: Actors, now: int) -> None:
    ids = [create(ledger, actors.owner, grant_request(now=now))[0] for _ in range(3)]
    ids.append(create(ledger, actors.grantee, grant_request(now=now, owner=COMMITTEE, grantee=POLICE))[0])
    assert ids == [1, 2, 3, 4]
    assert ledger.grant_count() == 4
    assert [g.grant_id for g in ledger.iter_grants()] == [1, 2, 3, 4]
    assert ledger.grant(4).spec.owner_org == COMMITTEE


def test_scope_may_be_64_entries(ledger: LedgerChain, actors: Actors, now: int) -> None:
    many = [f"T{i:03d}" for i in range(64)]
    grant_id, event, _ = create(ledger, actors.owner, grant_request(now=now, record_types=many, communities=many))
    assert event["recordTypes"] == [b32(t) for t in many]
    assert ledger.grant(grant_id).spec.communities == tuple(many)


@pytest.mark.parametrize("caller", ["grantee", "other", "stranger", "pending_admin", "log_writer", "suspended"])
def test_create_refused_to_anyone_but_owner_and_admin(
    ledger: LedgerChain, actors: Actors, now: int, caller: str
) -> None:
    account = getattr(actors, caller)
    with reverts("GrantRegistryUnauthorised", b32(POLICE), account.address):
        transact(ledger, ledger.grants.functions.createGrant(grant_request(now=now)), account)


def test_create_for_an_unknown_owner(ledger: LedgerChain, actors: Actors, now: int) -> None:
    with reverts("GrantRegistryUnknownOrganisation", b32("NOBODY")):
        transact(ledger, ledger.grants.functions.createGrant(grant_request(now=now, owner="NOBODY")), actors.admin)


def test_create_for_an_unknown_grantee(ledger: LedgerChain, actors: Actors, now: int) -> None:
    with reverts("GrantRegistryUnknownOrganisation", b32("NOBODY")):
        transact(ledger, ledger.grants.functions.createGrant(grant_request(now=now, grantee="NOBODY")), actors.owner)


@pytest.mark.parametrize("caller", ["suspended", "admin"])
def test_create_for_a_suspended_owner(ledger: LedgerChain, actors: Actors, now: int, caller: str) -> None:
    request = grant_request(now=now, owner=SUSPENDED)
    with reverts("GrantRegistryOrganisationSuspended", b32(SUSPENDED)):
        transact(ledger, ledger.grants.functions.createGrant(request), getattr(actors, caller))


def test_create_for_a_suspended_grantee(ledger: LedgerChain, actors: Actors, now: int) -> None:
    with reverts("GrantRegistryOrganisationSuspended", b32(SUSPENDED)):
        transact(ledger, ledger.grants.functions.createGrant(grant_request(now=now, grantee=SUSPENDED)), actors.owner)


def test_create_to_oneself(ledger: LedgerChain, actors: Actors, now: int) -> None:
    with reverts("GrantRegistrySelfGrant", b32(POLICE)):
        transact(ledger, ledger.grants.functions.createGrant(grant_request(now=now, grantee=POLICE)), actors.owner)


def test_create_with_purpose_none(ledger: LedgerChain, actors: Actors, now: int) -> None:
    with reverts("GrantRegistryInvalidPurpose"):
        transact(
            ledger, ledger.grants.functions.createGrant(grant_request(now=now, purpose=Purpose.NONE)), actors.owner
        )


INVALID_WINDOWS: dict[str, Callable[[int], tuple[int, int]]] = {
    "empty window": lambda now: (now + 100, now + 100),
    "reversed window": lambda now: (now + 200, now + 100),
    "zero window": lambda now: (0, 0),
    "already over": lambda now: (0, now - 1000),
    "over long ago": lambda now: (0, 1),
}


@pytest.mark.parametrize("window", list(INVALID_WINDOWS))
def test_create_with_an_invalid_validity(ledger: LedgerChain, actors: Actors, now: int, window: str) -> None:
    start, end = INVALID_WINDOWS[window](now)
    request = grant_request(now=now, valid_from=start, valid_until=end)
    with reverts("GrantRegistryInvalidValidity", start, end):
        transact(ledger, ledger.grants.functions.createGrant(request), actors.owner)


def test_create_with_validity_ending_in_its_own_block(ledger: LedgerChain, actors: Actors, w3: Web3) -> None:
    # validUntil <= block.timestamp of the block that would hold the grant: already over.
    tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
    pending = tester.get_block_by_number("pending")["timestamp"]
    request = grant_request(now=pending, valid_until=pending)
    with reverts("GrantRegistryInvalidValidity", 0, pending):
        transact(ledger, ledger.grants.functions.createGrant(request), actors.owner)


@pytest.mark.parametrize("field", ["record_types", "communities"])
def test_create_with_a_scope_over_64(ledger: LedgerChain, actors: Actors, now: int, field: str) -> None:
    request = grant_request(now=now, **{field: [f"T{i:03d}" for i in range(65)]})
    with reverts("GrantRegistryScopeTooLarge", 65):
        transact(ledger, ledger.grants.functions.createGrant(request), actors.owner)


def test_create_with_an_invalid_purpose_value(ledger: LedgerChain, actors: Actors, now: int) -> None:
    request = list(grant_request(now=now))
    request[2] = len(Purpose)  # outside the enum: rejected by the ABI decoder
    with pytest.raises(TransactionFailed, match="reverted"):
        transact(ledger, ledger.grants.functions.createGrant(tuple(request)), actors.owner)


def test_admin_rights_come_from_org_admin_role(ledger: LedgerChain, actors: Actors, now: int) -> None:
    # The pending default admin is not an org admin; granting it ORG_ADMIN_ROLE lets it act for owners.
    with reverts("GrantRegistryUnauthorised", b32(POLICE), actors.pending_admin.address):
        transact(ledger, ledger.grants.functions.createGrant(grant_request(now=now)), actors.pending_admin)
    transact(ledger, ledger.registry.functions.grantRole(ORG_ADMIN_ROLE, actors.pending_admin.address), actors.admin)
    _, event, _ = create(ledger, actors.pending_admin, grant_request(now=now))
    assert event["byAdmin"] is True


# --- revoke ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("revoker", "by_admin"), [("owner", False), ("admin", True)])
def test_revoke(ledger: LedgerChain, actors: Actors, now: int, revoker: str, by_admin: bool) -> None:
    grant_id, _, created = create(ledger, actors.owner, grant_request(now=now))
    account = getattr(actors, revoker)
    receipt = transact(ledger, ledger.grants.functions.revokeGrant(grant_id), account)
    event = single_event(ledger.grants, "GrantRevoked", receipt)
    assert event == {
        "grantId": grant_id,
        "ownerOrg": b32(POLICE),
        "granteeOrg": b32(COMMITTEE),
        "revokedBy": event["revokedBy"],
        "byAdmin": by_admin,
    }
    assert same_address(event["revokedBy"], account.address)
    grant = ledger.grant(grant_id)
    assert grant.created_block == created["blockNumber"]
    assert grant.revoked_block == receipt["blockNumber"]
    assert grant.revoked
    assert call(ledger, ledger.grants.functions.grant(grant_id))[9] == receipt["blockNumber"]


def test_revoke_twice(ledger: LedgerChain, actors: Actors, now: int) -> None:
    grant_id, _, _ = create(ledger, actors.owner, grant_request(now=now))
    receipt = transact(ledger, ledger.grants.functions.revokeGrant(grant_id), actors.owner)
    for account in (actors.owner, actors.admin):
        with reverts("GrantRegistryAlreadyRevoked", grant_id, receipt["blockNumber"]):
            transact(ledger, ledger.grants.functions.revokeGrant(grant_id), account)


@pytest.mark.parametrize("grant_id", [0, 2, 2**256 - 1])
def test_revoke_unknown_grant(ledger: LedgerChain, actors: Actors, now: int, grant_id: int) -> None:
    create(ledger, actors.owner, grant_request(now=now))
    with reverts("GrantRegistryUnknownGrant", grant_id):
        transact(ledger, ledger.grants.functions.revokeGrant(grant_id), actors.admin)


@pytest.mark.parametrize("caller", ["grantee", "other", "stranger", "pending_admin", "suspended"])
def test_revoke_refused_to_others(ledger: LedgerChain, actors: Actors, now: int, caller: str) -> None:
    grant_id, _, _ = create(ledger, actors.owner, grant_request(now=now))
    account = getattr(actors, caller)
    with reverts("GrantRegistryUnauthorised", b32(POLICE), account.address):
        transact(ledger, ledger.grants.functions.revokeGrant(grant_id), account)


def test_suspended_owner_may_still_revoke(ledger: LedgerChain, actors: Actors, now: int) -> None:
    grant_id, _, _ = create(ledger, actors.owner, grant_request(now=now))
    ledger.suspend_organisation(signer=actors.admin, org_id=POLICE)
    receipt = ledger.revoke_grant(signer=actors.owner, grant_id=grant_id)
    assert single_event(ledger.grants, "GrantRevoked", receipt)["byAdmin"] is False


def test_revoke_follows_the_owners_current_signer(ledger: LedgerChain, actors: Actors, now: int) -> None:
    grant_id, _, _ = create(ledger, actors.owner, grant_request(now=now))
    ledger.propose_signer_change(signer=actors.admin, org_id=POLICE, new_signer=actors.stranger.address)
    ledger.accept_signer_change(signer=actors.owner, org_id=POLICE)
    with reverts("GrantRegistryUnauthorised", b32(POLICE), actors.owner.address):
        transact(ledger, ledger.grants.functions.revokeGrant(grant_id), actors.owner)
    transact(ledger, ledger.grants.functions.revokeGrant(grant_id), actors.stranger)
    assert ledger.grant(grant_id).revoked


def test_grant_view_of_an_unknown_grant(ledger: LedgerChain) -> None:
    for grant_id in (0, 1):
        with reverts("GrantRegistryUnknownGrant", grant_id):
            call(ledger, ledger.grants.functions.grant(grant_id))
    assert ledger.grant_count() == 0


# --- access decisions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """The arguments of an access check, by default the ones the base grant allows."""

    grant_id: int = 1
    grantee: str = COMMITTEE
    owner: str = POLICE
    record_id: bytes = RECORD
    record_type: str = INCIDENT
    community: str = COMMUNITY_A
    purpose: Purpose = Purpose.INVESTIGATION

    def args(self) -> tuple[Any, ...]:
        return (
            self.grant_id,
            b32(self.grantee),
            b32(self.owner),
            self.record_id,
            b32(self.record_type),
            b32(self.community),
            int(self.purpose),
        )


def decide(ledger: LedgerChain, check: Check) -> AccessDecision:
    decision = AccessDecision(call(ledger, ledger.grants.functions.accessDecision(*check.args())))
    authorised = call(ledger, ledger.grants.functions.isAuthorised(*check.args()))
    assert authorised is (decision is AccessDecision.ALLOWED), "isAuthorised must mirror accessDecision"
    return decision


def base_grant(ledger: LedgerChain, actors: Actors, now: int, **changes: Any) -> int:
    """POLICE → COMMITTEE for investigation, incidents and key persons in community A, for 30 days."""
    fields: dict[str, Any] = {"record_types": [INCIDENT, KEY_PERSON], "communities": [COMMUNITY_A]}
    fields.update(changes)
    return create(ledger, actors.owner, grant_request(now=now, **fields))[0]


def _time_travel(ledger: LedgerChain, seconds: int) -> None:
    tester = ledger.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    tester.time_travel(ledger.latest_timestamp() + seconds)


Setup = Callable[[LedgerChain, Actors, int], Check]


def _allowed(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    return Check()


def _unknown_grant(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    return Check(grant_id=2)


def _unknown_grant_zero(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    return Check(grant_id=0)


def _wrong_grantee(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    return Check(grantee=PROPERTY)


def _wrong_owner(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    return Check(owner=PROPERTY)


def _wrong_purpose(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    return Check(purpose=Purpose.FIRE_SAFETY)


def _not_yet_valid(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now, valid_from=now + DAY)
    return Check()


def _expired(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now, valid_until=now + 3600)
    _time_travel(ledger, 2 * 3600)
    return Check()


def _revoked(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    grant_id = base_grant(ledger, actors, now)
    ledger.revoke_grant(signer=actors.owner, grant_id=grant_id)
    return Check()


def _out_of_scope_record_type(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    return Check(record_type=RESIDENT)


def _out_of_scope_community(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    return Check(community=COMMUNITY_B)


def _out_of_scope_record_id(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now, record_id=RECORD)
    return Check(record_id=OTHER_RECORD)


def _in_scope_record_id(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now, record_id=RECORD)
    return Check(record_id=RECORD)


def _owner_suspended(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    ledger.suspend_organisation(signer=actors.admin, org_id=POLICE)
    return Check()


def _grantee_suspended(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    ledger.suspend_organisation(signer=actors.admin, org_id=COMMITTEE)
    return Check()


def _reinstated(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now)
    ledger.suspend_organisation(signer=actors.admin, org_id=COMMITTEE)
    ledger.reinstate_organisation(signer=actors.admin, org_id=COMMITTEE)
    return Check()


def _any_scope(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now, record_types=[], communities=[])
    return Check(record_type=RESIDENT, community=COMMUNITY_B, record_id=digest("anything"))


def _any_record_type_only(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now, record_types=[], communities=[COMMUNITY_A])
    return Check(record_type="hazard_report")


def _any_community_only(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    base_grant(ledger, actors, now, record_types=[INCIDENT], communities=[])
    return Check(community="330199009")


def _revoked_beats_expired(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    grant_id = base_grant(ledger, actors, now, valid_until=now + 3600)
    ledger.revoke_grant(signer=actors.owner, grant_id=grant_id)
    _time_travel(ledger, 2 * 3600)
    return Check()


def _wrong_grantee_beats_revoked(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    grant_id = base_grant(ledger, actors, now)
    ledger.revoke_grant(signer=actors.owner, grant_id=grant_id)
    return Check(grantee=PROPERTY)


def _admin_granted(ledger: LedgerChain, actors: Actors, now: int) -> Check:
    create(ledger, actors.admin, grant_request(now=now))
    return Check()


DECISION_CASES: dict[str, tuple[Setup, AccessDecision]] = {
    "allowed": (_allowed, AccessDecision.ALLOWED),
    "allowed, grant made by an org admin": (_admin_granted, AccessDecision.ALLOWED),
    "allowed, scope lists empty = any": (_any_scope, AccessDecision.ALLOWED),
    "allowed, any record type": (_any_record_type_only, AccessDecision.ALLOWED),
    "allowed, any community": (_any_community_only, AccessDecision.ALLOWED),
    "allowed, the one record of a record grant": (_in_scope_record_id, AccessDecision.ALLOWED),
    "allowed, grantee reinstated": (_reinstated, AccessDecision.ALLOWED),
    "unknown grant id": (_unknown_grant, AccessDecision.UNKNOWN_GRANT),
    "grant id 0": (_unknown_grant_zero, AccessDecision.UNKNOWN_GRANT),
    "wrong grantee": (_wrong_grantee, AccessDecision.WRONG_GRANTEE),
    "wrong owner": (_wrong_owner, AccessDecision.WRONG_OWNER),
    "wrong purpose": (_wrong_purpose, AccessDecision.WRONG_PURPOSE),
    "not yet valid": (_not_yet_valid, AccessDecision.NOT_YET_VALID),
    "expired": (_expired, AccessDecision.EXPIRED),
    "revoked": (_revoked, AccessDecision.REVOKED),
    "out of scope: record id": (_out_of_scope_record_id, AccessDecision.OUT_OF_SCOPE),
    "out of scope: record type": (_out_of_scope_record_type, AccessDecision.OUT_OF_SCOPE),
    "out of scope: community": (_out_of_scope_community, AccessDecision.OUT_OF_SCOPE),
    "owner suspended": (_owner_suspended, AccessDecision.OWNER_SUSPENDED),
    "grantee suspended": (_grantee_suspended, AccessDecision.GRANTEE_SUSPENDED),
    "revoked is reported before expired": (_revoked_beats_expired, AccessDecision.REVOKED),
    "wrong grantee is reported before revoked": (_wrong_grantee_beats_revoked, AccessDecision.WRONG_GRANTEE),
}


def test_every_access_decision_has_a_case() -> None:
    assert {expected for _, expected in DECISION_CASES.values()} == set(AccessDecision)


@pytest.mark.parametrize("case", list(DECISION_CASES))
def test_access_decision(ledger: LedgerChain, actors: Actors, now: int, case: str) -> None:
    setup, expected = DECISION_CASES[case]
    check = setup(ledger, actors, now)
    assert decide(ledger, check) is expected


def test_access_decision_reads_stop_at_once_after_revoke(ledger: LedgerChain, actors: Actors, now: int) -> None:
    grant_id = base_grant(ledger, actors, now)
    assert decide(ledger, Check(grant_id=grant_id)) is AccessDecision.ALLOWED
    receipt = ledger.revoke_grant(signer=actors.admin, grant_id=grant_id)
    # The very next view (at the block that holds the revoke) already refuses.
    assert ledger.w3.eth.block_number == receipt["blockNumber"]
    assert decide(ledger, Check(grant_id=grant_id)) is AccessDecision.REVOKED


def test_grants_do_not_interfere(ledger: LedgerChain, actors: Actors, now: int) -> None:
    first = base_grant(ledger, actors, now)
    second = create(ledger, actors.grantee, grant_request(now=now, owner=COMMITTEE, grantee=PROPERTY))[0]
    ledger.revoke_grant(signer=actors.grantee, grant_id=second)
    assert decide(ledger, Check(grant_id=first)) is AccessDecision.ALLOWED
    assert decide(ledger, Check(grant_id=second, grantee=PROPERTY, owner=COMMITTEE)) is AccessDecision.REVOKED
    assert not ledger.grant(first).revoked


def test_grant_history_is_kept_in_storage(ledger: LedgerChain, actors: Actors, now: int) -> None:
    grant_id, _, created = create(ledger, actors.owner, grant_request(now=now, valid_from=now - 10))
    ledger.w3.provider.ethereum_tester.mine_blocks(3)  # type: ignore[attr-defined]
    revoked = ledger.revoke_grant(signer=actors.owner, grant_id=grant_id)
    grant = ledger.grant(grant_id)
    assert (grant.created_block, grant.revoked_block) == (created["blockNumber"], revoked["blockNumber"])
    assert grant.revoked_block == grant.created_block + 4
    # The model answers "was it valid in block b" from that history alone (no archive state).
    mid = grant.created_block + 2
    ts = now + 1
    assert grant.is_valid_at(block_number=mid, timestamp=ts)
    assert not grant.is_valid_at(block_number=grant.created_block - 1, timestamp=ts)
    assert not grant.is_valid_at(block_number=grant.revoked_block, timestamp=ts)
