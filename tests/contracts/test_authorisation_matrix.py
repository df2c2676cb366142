"""Who may call what: every state-changing function of every ledger contract (the inherited
OpenZeppelin ones included) × every kind of caller, each cell run from the same fresh snapshot.

The EXPECTED table below is the specification, derived from the NatSpec (see the notes under it). A
cell is *allow* when the transaction succeeds and *deny* when it reverts (for any reason). Arguments are
valid apart from the caller, so a deny is about who calls. The test fails on any unexpected allow or
deny and prints the whole matrix; it also fails if a state-changing function is missing from the table
or the table changes size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from ledger_api.chain.artifacts import contract_abi
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import CONTRACTS
from ledger_api.chain.encoding import OrganisationKind
from ledger_api.chain.errors import ContractReverted, TransactionFailed
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
    Actors,
    b32,
    digest,
    fresh_account,
    grant_request,
    single_event,
    transact,
)

#: Columns: who calls. `owner`, `grantee`, `other` and `suspended` are the signers of POLICE,
#: COMMITTEE, PROPERTY and SUSPENDED (suspended). `pending` has been offered DEFAULT_ADMIN_ROLE.
CALLERS = ("admin", "pending", "owner", "grantee", "other", "suspended", "stranger", "logwriter")
ACTOR_FIELD = {"pending": "pending_admin", "logwriter": "log_writer"}

# fmt: off
EXPECTED = """
function                                                 | admin | pending | owner | grantee | other | suspended | stranger | logwriter
OrganisationRegistry.registerOrganisation(new org)       |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.registerOrganisation(after accept)  |   .   |    Y    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.suspendOrganisation(PROPERTY)       |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.reinstateOrganisation(SUSPENDED)    |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.proposeSignerChange(PROPERTY, fresh) |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.acceptSignerChange(PROPERTY)        |   .   |    .    |   .   |    .    |   Y   |     .     |    .     |     .
OrganisationRegistry.completeSignerChange(PROPERTY, due) |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.cancelSignerChange(PROPERTY)        |   Y   |    .    |   .   |    .    |   Y   |     .     |    .     |     .
OrganisationRegistry.setCommunities(PROPERTY)            |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.rotateKey(POLICE)                   |   .   |    .    |   Y   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.rotateKey(caller's own org)         |   .   |    .    |   Y   |    Y    |   Y   |     .     |    .     |     .
OrganisationRegistry.grantRole(ORG_ADMIN, fresh)         |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.grantRole(LOG_WRITER, fresh)        |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.grantRole(DEFAULT_ADMIN, fresh)     |   .   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.revokeRole(LOG_WRITER, logwriter)   |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.revokeRole(DEFAULT_ADMIN, admin)    |   .   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.renounceRole(ORG_ADMIN, caller)     |   Y   |    Y    |   Y   |    Y    |   Y   |     Y     |    Y     |     Y
OrganisationRegistry.renounceRole(ORG_ADMIN, admin)      |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.renounceRole(DEFAULT_ADMIN, caller) |   .   |    Y    |   Y   |    Y    |   Y   |     Y     |    Y     |     Y
OrganisationRegistry.beginDefaultAdminTransfer(stranger) |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.cancelDefaultAdminTransfer()        |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.acceptDefaultAdminTransfer()        |   .   |    Y    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.changeDefaultAdminDelay(1 hour)     |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
OrganisationRegistry.rollbackDefaultAdminDelay()         |   Y   |    .    |   .   |    .    |   .   |     .     |    .     |     .
GrantRegistry.createGrant(POLICE -> COMMITTEE)           |   Y   |    .    |   Y   |    .    |   .   |     .     |    .     |     .
GrantRegistry.createGrant(caller's own org -> another)   |   Y   |    .    |   Y   |    Y    |   Y   |     .     |    .     |     .
GrantRegistry.revokeGrant(grant of POLICE)               |   Y   |    .    |   Y   |    .    |   .   |     .     |    .     |     .
GrantRegistry.revokeGrant(grant of COMMITTEE)            |   Y   |    .    |   .   |    Y    |   .   |     .     |    .     |     .
GrantRegistry.revokeGrant(grant of SUSPENDED)            |   Y   |    .    |   .   |    .    |   .   |     Y     |    .     |     .
RecordAnchors.anchorRecord(new record)                   |   .   |    .    |   Y   |    Y    |   Y   |     .     |    .     |     .
RecordAnchors.anchorRecord(record PROPERTY anchored)     |   .   |    .    |   Y   |    Y    |   .   |     .     |    .     |     .
RecordAnchors.anchorBatch(new root)                      |   .   |    .    |   Y   |    Y    |   Y   |     .     |    .     |     .
RecordAnchors.anchorBatch(root PROPERTY anchored)        |   .   |    .    |   Y   |    Y    |   .   |     .     |    .     |     .
AccessLogAnchors.anchorTreeHead(larger head)             |   .   |    .    |   .   |    .    |   .   |     .     |    .     |     Y
"""  # noqa: E501 - one table row per line reads best
# fmt: on
#: Notes on the less obvious cells (NatSpec + OpenZeppelin AccessControlDefaultAdminRules 5.x):
#: - Only ORG_ADMIN_ROLE administers organisations; the pending admin does not hold it until it accepts
#:   the hand-over, which moves ORG_ADMIN_ROLE from the old admin to the new one together with
#:   DEFAULT_ADMIN_ROLE ("after accept": the pending admin accepts first, then the cell's caller calls).
#: - A signer change: ORG_ADMIN_ROLE proposes; the organisation's current signer accepts (at once); once
#:   the delay has passed the proposed signer (a fresh account: no column) or ORG_ADMIN_ROLE completes it;
#:   ORG_ADMIN_ROLE or the current signer cancels it.
#: - rotateKey: only the organisation's own signer, and not while suspended ("caller's own org" is
#:   POLICE for callers without an organisation).
#: - grantRole/revokeRole need the role's admin (DEFAULT_ADMIN_ROLE); DEFAULT_ADMIN_ROLE itself is never
#:   granted or revoked that way, not even by the admin (only the two-step hand-over moves it).
#: - renounceRole(role, caller) never reverts for a caller who lacks the role (a no-op in OpenZeppelin),
#:   but the default admin cannot renounce DEFAULT_ADMIN_ROLE while a hand-over to someone is pending.
#:   Renouncing for someone else's address reverts (AccessControlBadConfirmation).
#: - createGrant: the owner organisation's active signer, or ORG_ADMIN_ROLE acting for it ("caller's own
#:   org" is POLICE -> COMMITTEE for callers without an organisation, else own org -> POLICE/COMMITTEE).
#: - revokeGrant: the owner's signer (even while suspended) or ORG_ADMIN_ROLE.
#: - anchorRecord/anchorBatch: any active organisation's signer (the owner is the signer's organisation);
#:   an admin that signs for no organisation cannot. Anchors are write-once per owner organisation:
#:   when PROPERTY has already anchored the record id and version (or the root), every other active
#:   organisation may still anchor it under its own name; only PROPERTY itself is refused.
#: - anchorTreeHead: LOG_WRITER_ROLE only.

ROW_COUNT = 34
CELL_COUNT = ROW_COUNT * len(CALLERS)  # 272

OWN_ORG = {"owner": POLICE, "grantee": COMMITTEE, "other": PROPERTY, "suspended": SUSPENDED}


def parse_expected(table: str) -> dict[str, dict[str, bool]]:
    lines = [line for line in table.strip().splitlines() if line.strip()]
    header = [cell.strip() for cell in lines[0].split("|")]
    assert tuple(header[1:]) == CALLERS, header
    expected: dict[str, dict[str, bool]] = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split("|")]
        assert len(cells) == len(CALLERS) + 1, line
        assert all(c in {"Y", "."} for c in cells[1:]), line
        assert cells[0] not in expected, f"duplicate row {cells[0]}"
        expected[cells[0]] = {caller: mark == "Y" for caller, mark in zip(CALLERS, cells[1:], strict=True)}
    return expected


@dataclass(frozen=True)
class Context:
    ledger: LedgerChain
    actors: Actors
    now: int
    grant_of: dict[str, int]  # owner organisation -> id of a grant it owns


Builder = Callable[[Context, str], Any]


def _registry(ctx: Context) -> Any:
    return ctx.ledger.registry.functions


def _caller_address(ctx: Context, caller: str) -> str:
    return str(getattr(ctx.actors, ACTOR_FIELD.get(caller, caller)).address)


def _register_after_accept(ctx: Context, _: str) -> Any:
    # Setup (each cell starts from the same snapshot): the pending admin completes the hand-over.
    transact(ctx.ledger, _registry(ctx).acceptDefaultAdminTransfer(), ctx.actors.pending_admin)
    return _registry(ctx).registerOrganisation(
        b32("AU-NEW-01"),
        int(OrganisationKind.AUDITOR),
        fresh_account("matrix-new-org").address,
        [b32(COMMUNITY_A)],
        PUBLIC_KEY,
    )


def _signer_change(ctx: Context, *, due: bool = False) -> Any:
    # Setup: the admin proposes a fresh signer for PROPERTY (and, when ``due``, its delay passes).
    transact(ctx.ledger, _registry(ctx).proposeSignerChange(b32(PROPERTY), fresh_account("matrix-signer").address),
             ctx.actors.admin)  # fmt: skip
    if due:
        delay = ctx.ledger.transactor.call(_registry(ctx).signerChangeDelay())
        ctx.ledger.w3.provider.ethereum_tester.time_travel(ctx.ledger.latest_timestamp() + delay + 1)  # type: ignore[attr-defined]
    return _registry(ctx)


def _record_property_anchored(ctx: Context, _: str) -> Any:
    # Setup: PROPERTY anchors the record id and version first, with its own hashes.
    records = ctx.ledger.records.functions
    transact(
        ctx.ledger, records.anchorRecord(digest("matrix-record"), 1, digest("p-ct"), digest("p-c")), ctx.actors.other
    )
    return records.anchorRecord(digest("matrix-record"), 1, digest("matrix-ct"), digest("matrix-commitment"))


def _root_property_anchored(ctx: Context, _: str) -> Any:
    # Setup: PROPERTY anchors the root first, with its own size and manifest.
    records = ctx.ledger.records.functions
    transact(ctx.ledger, records.anchorBatch(digest("matrix-root"), 8, digest("p-manifest")), ctx.actors.other)
    return records.anchorBatch(digest("matrix-root"), 16, digest("matrix-manifest"))


def _own_grant(ctx: Context, caller: str) -> Any:
    owner = OWN_ORG.get(caller, POLICE)
    grantee = COMMITTEE if owner != COMMITTEE else POLICE
    return ctx.ledger.grants.functions.createGrant(grant_request(now=ctx.now, owner=owner, grantee=grantee))


BUILDERS: dict[str, Builder] = {
    "OrganisationRegistry.registerOrganisation(new org)": lambda ctx, _: _registry(ctx).registerOrganisation(
        b32("AU-NEW-01"),
        int(OrganisationKind.AUDITOR),
        fresh_account("matrix-new-org").address,
        [b32(COMMUNITY_A)],
        PUBLIC_KEY,
    ),
    "OrganisationRegistry.registerOrganisation(after accept)": _register_after_accept,
    "OrganisationRegistry.suspendOrganisation(PROPERTY)": lambda ctx, _: _registry(ctx).suspendOrganisation(
        b32(PROPERTY)
    ),
    "OrganisationRegistry.reinstateOrganisation(SUSPENDED)": lambda ctx, _: _registry(ctx).reinstateOrganisation(
        b32(SUSPENDED)
    ),
    "OrganisationRegistry.proposeSignerChange(PROPERTY, fresh)": lambda ctx, _: _registry(ctx).proposeSignerChange(
        b32(PROPERTY), fresh_account("matrix-signer").address
    ),
    "OrganisationRegistry.acceptSignerChange(PROPERTY)": lambda ctx, _: _signer_change(ctx).acceptSignerChange(
        b32(PROPERTY)
    ),
    "OrganisationRegistry.completeSignerChange(PROPERTY, due)": lambda ctx, _: _signer_change(
        ctx, due=True
    ).completeSignerChange(b32(PROPERTY)),
    "OrganisationRegistry.cancelSignerChange(PROPERTY)": lambda ctx, _: _signer_change(ctx).cancelSignerChange(
        b32(PROPERTY)
    ),
    "OrganisationRegistry.setCommunities(PROPERTY)": lambda ctx, _: _registry(ctx).setCommunities(
        b32(PROPERTY), [b32(COMMUNITY_A), b32(COMMUNITY_B)]
    ),
    "OrganisationRegistry.rotateKey(POLICE)": lambda ctx, _: _registry(ctx).rotateKey(
        b32(POLICE), PUBLIC_KEY[:-1] + b"\xff"
    ),
    "OrganisationRegistry.rotateKey(caller's own org)": lambda ctx, caller: _registry(ctx).rotateKey(
        b32(OWN_ORG.get(caller, POLICE)), PUBLIC_KEY[:-1] + b"\xff"
    ),
    "OrganisationRegistry.grantRole(ORG_ADMIN, fresh)": lambda ctx, _: _registry(ctx).grantRole(
        ORG_ADMIN_ROLE, fresh_account("matrix-role").address
    ),
    "OrganisationRegistry.grantRole(LOG_WRITER, fresh)": lambda ctx, _: _registry(ctx).grantRole(
        LOG_WRITER_ROLE, fresh_account("matrix-role").address
    ),
    "OrganisationRegistry.grantRole(DEFAULT_ADMIN, fresh)": lambda ctx, _: _registry(ctx).grantRole(
        DEFAULT_ADMIN_ROLE, fresh_account("matrix-role").address
    ),
    "OrganisationRegistry.revokeRole(LOG_WRITER, logwriter)": lambda ctx, _: _registry(ctx).revokeRole(
        LOG_WRITER_ROLE, ctx.actors.log_writer.address
    ),
    "OrganisationRegistry.revokeRole(DEFAULT_ADMIN, admin)": lambda ctx, _: _registry(ctx).revokeRole(
        DEFAULT_ADMIN_ROLE, ctx.actors.admin.address
    ),
    "OrganisationRegistry.renounceRole(ORG_ADMIN, caller)": lambda ctx, caller: _registry(ctx).renounceRole(
        ORG_ADMIN_ROLE, _caller_address(ctx, caller)
    ),
    "OrganisationRegistry.renounceRole(ORG_ADMIN, admin)": lambda ctx, _: _registry(ctx).renounceRole(
        ORG_ADMIN_ROLE, ctx.actors.admin.address
    ),
    "OrganisationRegistry.renounceRole(DEFAULT_ADMIN, caller)": lambda ctx, caller: _registry(ctx).renounceRole(
        DEFAULT_ADMIN_ROLE, _caller_address(ctx, caller)
    ),
    "OrganisationRegistry.beginDefaultAdminTransfer(stranger)": lambda ctx, _: _registry(ctx).beginDefaultAdminTransfer(
        ctx.actors.stranger.address
    ),
    "OrganisationRegistry.cancelDefaultAdminTransfer()": lambda ctx, _: _registry(ctx).cancelDefaultAdminTransfer(),
    "OrganisationRegistry.acceptDefaultAdminTransfer()": lambda ctx, _: _registry(ctx).acceptDefaultAdminTransfer(),
    "OrganisationRegistry.changeDefaultAdminDelay(1 hour)": lambda ctx, _: _registry(ctx).changeDefaultAdminDelay(3600),
    "OrganisationRegistry.rollbackDefaultAdminDelay()": lambda ctx, _: _registry(ctx).rollbackDefaultAdminDelay(),
    "GrantRegistry.createGrant(POLICE -> COMMITTEE)": lambda ctx, _: ctx.ledger.grants.functions.createGrant(
        grant_request(now=ctx.now)
    ),
    "GrantRegistry.createGrant(caller's own org -> another)": _own_grant,
    "GrantRegistry.revokeGrant(grant of POLICE)": lambda ctx, _: ctx.ledger.grants.functions.revokeGrant(
        ctx.grant_of[POLICE]
    ),
    "GrantRegistry.revokeGrant(grant of COMMITTEE)": lambda ctx, _: ctx.ledger.grants.functions.revokeGrant(
        ctx.grant_of[COMMITTEE]
    ),
    "GrantRegistry.revokeGrant(grant of SUSPENDED)": lambda ctx, _: ctx.ledger.grants.functions.revokeGrant(
        ctx.grant_of[SUSPENDED]
    ),
    "RecordAnchors.anchorRecord(new record)": lambda ctx, _: ctx.ledger.records.functions.anchorRecord(
        digest("matrix-record"), 1, digest("matrix-ct"), digest("matrix-commitment")
    ),
    "RecordAnchors.anchorRecord(record PROPERTY anchored)": _record_property_anchored,
    "RecordAnchors.anchorBatch(new root)": lambda ctx, _: ctx.ledger.records.functions.anchorBatch(
        digest("matrix-root"), 16, digest("matrix-manifest")
    ),
    "RecordAnchors.anchorBatch(root PROPERTY anchored)": _root_property_anchored,
    "AccessLogAnchors.anchorTreeHead(larger head)": lambda ctx, _: ctx.ledger.access_log.functions.anchorTreeHead(
        10, digest("matrix-log-root")
    ),
}


def _state_changing_functions() -> set[str]:
    return {
        f"{contract}.{item['name']}"
        for contract in CONTRACTS
        for item in contract_abi(contract)
        if item["type"] == "function" and item["stateMutability"] not in {"view", "pure"}
    }


def test_the_table_covers_every_state_changing_function() -> None:
    expected = parse_expected(EXPECTED)
    assert len(expected) == ROW_COUNT
    assert sum(len(row) for row in expected.values()) == CELL_COUNT == 272
    assert set(expected) == set(BUILDERS)
    assert {label.split("(")[0] for label in expected} == _state_changing_functions()


def _outcome(ctx: Context, row: str, caller: str) -> tuple[bool, str]:
    account: LocalAccount = getattr(ctx.actors, ACTOR_FIELD.get(caller, caller))
    fn = BUILDERS[row](ctx, caller)
    try:
        receipt = transact(ctx.ledger, fn, account)
    except ContractReverted as exc:
        return False, exc.name
    except TransactionFailed as exc:
        return False, str(exc)
    assert receipt["status"] == 1
    return True, ""


def _render(expected: dict[str, dict[str, bool]], actual: dict[tuple[str, str], tuple[bool, str]]) -> str:
    width = max(len(row) for row in expected)
    lines = [f"{'function':<{width}} | " + " | ".join(f"{c:^9}" for c in CALLERS)]
    lines.append("-" * len(lines[0]))
    for row, cells in expected.items():
        marks = []
        for caller in CALLERS:
            allowed, _ = actual[(row, caller)]
            mark = "allow" if allowed else "deny"
            if allowed != cells[caller]:
                mark = "ALLOW!!" if allowed else "DENY!!"
            marks.append(f"{mark:^9}")
        lines.append(f"{row:<{width}} | " + " | ".join(marks))
    lines.append("(ALLOW!! = unexpected allow, DENY!! = unexpected deny)")
    lines.append("Deny reasons:")
    for row in expected:
        reasons = sorted({reason for (r, _), (ok, reason) in actual.items() if r == row and not ok})
        if reasons:
            lines.append(f"  {row}: {', '.join(reasons)}")
    return "\n".join(lines)


@pytest.mark.slow
def test_authorisation_matrix(ledger: LedgerChain, actors: Actors, w3: Any) -> None:
    tester = w3.provider.ethereum_tester
    now = ledger.latest_timestamp()
    grant_of: dict[str, int] = {}

    def grant(owner: str, grantee: str, signer: LocalAccount) -> None:
        fn = ledger.grants.functions.createGrant(grant_request(now=now, owner=owner, grantee=grantee))
        grant_of[owner] = int(single_event(ledger.grants, "GrantCreated", transact(ledger, fn, signer))["grantId"])

    # One grant owned by each of POLICE, COMMITTEE and SUSPENDED (made before its suspension).
    grant(POLICE, COMMITTEE, actors.owner)
    grant(COMMITTEE, PROPERTY, actors.grantee)
    ledger.reinstate_organisation(signer=actors.admin, org_id=SUSPENDED)
    grant(SUSPENDED, POLICE, actors.suspended)
    ledger.suspend_organisation(signer=actors.admin, org_id=SUSPENDED)
    base = tester.take_snapshot()
    ctx = Context(ledger=ledger, actors=actors, now=now, grant_of=grant_of)

    expected = parse_expected(EXPECTED)
    actual: dict[tuple[str, str], tuple[bool, str]] = {}
    for row in expected:
        for caller in CALLERS:
            tester.revert_to_snapshot(base)
            actual[(row, caller)] = _outcome(ctx, row, caller)

    table = _render(expected, actual)
    print("\n" + table)
    assert len(actual) == CELL_COUNT
    unexpected_allow = [(r, c) for (r, c), (ok, _) in actual.items() if ok and not expected[r][c]]
    unexpected_deny = [(r, c) for (r, c), (ok, _) in actual.items() if not ok and expected[r][c]]
    assert (unexpected_allow, unexpected_deny) == ([], []), "\n" + table
