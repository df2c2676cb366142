"""One table, three paths: every ``AccessDecision`` outcome from the access rule itself
(:func:`ledger_api.access.decision.decide` over the terms the test wrote), from the gateway's
:class:`ChainFollower` (event replay from the chain, then the rule) and from the contract's
``GrantRegistry.accessDecision`` on eth-tester, and the three agree on every row.

The chain state for every row is built once for the module (eth-tester mines about 17 transactions a
second); the rows only query it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3

from ledger_api.access.decision import AccessDecision, AccessRequest, GrantTerms, Moment, Purpose, decide, record_key
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import deploy_contracts
from ledger_api.chain.encoding import OrganisationKind, code_to_bytes32
from ledger_api.chain.follower import ChainFollower
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.transactor import Transactor
from tests.support.eth_tester_provider import StandardErrorsEthereumTesterProvider

DAY = 86_400
KEY = b"\x00\x20" + bytes(range(32))
COMMUNITY_A, COMMUNITY_B = "330102001", "330106002"
INCIDENT, RESIDENT = "incident", "resident"
OWNER, GRANTEE, OTHER = "PS-TAB-01", "CM-TAB-01", "PM-TAB-01"
LAPSED_OWNER, LAPSED_GRANTEE = "PS-TAB-02", "CM-TAB-02"  # suspended once their grants exist
ORGS = {
    OWNER: OrganisationKind.POLICE,
    GRANTEE: OrganisationKind.COMMITTEE,
    OTHER: OrganisationKind.PROPERTY,
    LAPSED_OWNER: OrganisationKind.POLICE,
    LAPSED_GRANTEE: OrganisationKind.COMMITTEE,
}


def record(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def account(label: str) -> LocalAccount:
    return Account.from_key(Web3.keccak(text=f"decision-table-{label}"))


class EthTesterRpc(JsonRpc):
    """The JSON-RPC calls the follower makes, answered by eth-tester in their wire form (hex quantities)."""

    def __init__(self, w3: Web3) -> None:
        super().__init__(url="http://eth-tester.invalid/decision-table")  # never dialled: call() answers
        self._w3 = w3

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        params = params or []
        if method == "eth_blockNumber":
            return hex(self._w3.eth.block_number)
        if method == "eth_getBlockByNumber":
            tag = params[0]
            block = self._w3.eth.get_block(int(tag, 16) if tag.startswith("0x") else tag)
            return {
                "number": hex(block["number"]),
                "timestamp": hex(block["timestamp"]),
                "hash": HexBytes(block["hash"]).to_0x_hex(),
                "parentHash": HexBytes(block["parentHash"]).to_0x_hex(),
            }
        if method == "eth_getLogs":
            return self._logs(params[0])
        raise AssertionError(f"the follower made an unexpected call: {method}")

    def _logs(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for address in query["address"]:
            logs = self._w3.eth.get_logs(
                {
                    "address": Web3.to_checksum_address(address),
                    "fromBlock": int(query["fromBlock"], 16),
                    "toBlock": int(query["toBlock"], 16),
                }
            )
            wanted = set(query["topics"][0])
            for log in logs:
                topics = [HexBytes(t).to_0x_hex() for t in log["topics"]]
                if topics and topics[0] in wanted:
                    found.append(
                        {
                            "address": str(log["address"]),
                            "topics": topics,
                            "data": HexBytes(log["data"]).to_0x_hex(),
                            "blockNumber": hex(log["blockNumber"]),
                            "blockHash": HexBytes(log["blockHash"]).to_0x_hex(),
                            "transactionHash": HexBytes(log["transactionHash"]).to_0x_hex(),
                            "logIndex": hex(log["logIndex"]),
                            "removed": False,
                        }
                    )
        return found


@dataclass(frozen=True)
class Query:
    grant: str
    """The name of a grant the chain state holds, or ``"none"`` for an id no grant has."""
    grantee_org: str = GRANTEE
    owner_org: str = OWNER
    record_id: str = record("r-1")
    record_type: str = INCIDENT
    community_code: str = COMMUNITY_A
    purpose: Purpose = Purpose.INVESTIGATION


@dataclass
class World:
    """The chain state every row queries, and what the test itself knows of each grant."""

    chain: LedgerChain
    follower: ChainFollower
    grant_ids: dict[str, int] = field(default_factory=dict)
    terms: dict[str, GrantTerms] = field(default_factory=dict)
    suspended: set[str] = field(default_factory=set)

    def grant_id(self, name: str) -> int:
        return self.grant_ids.get(name, 10_000)


def _build(w3: Web3) -> World:
    funder = w3.eth.accounts[0]
    admin = account("admin")
    signers = {org_id: account(org_id) for org_id in ORGS}
    for acct in [admin, *signers.values()]:
        w3.eth.send_transaction({"from": funder, "to": acct.address, "value": 10**21})
    transactor = Transactor(w3=w3)
    chain = LedgerChain(transactor=transactor, deployment=deploy_contracts(transactor=transactor, admin=admin))
    for org_id, kind in ORGS.items():
        chain.register_organisation(
            signer=admin,
            org_id=org_id,
            kind=kind,
            org_signer=signers[org_id].address,
            communities=[COMMUNITY_A, COMMUNITY_B],
            public_key=KEY,
        )
    world = World(chain=chain, follower=ChainFollower(rpc=EthTesterRpc(w3), deployment=chain.deployment))
    now = chain.latest_timestamp()

    def grant(name: str, owner: str = OWNER, grantee: str = GRANTEE, **spec: Any) -> None:
        fields: dict[str, Any] = {"purpose": Purpose.INVESTIGATION, "valid_from": now - 60, "valid_until": now + DAY}
        spec_ = GrantSpec(owner_org=owner, grantee_org=grantee, **(fields | spec))
        grant_id, receipt = chain.create_grant(signer=signers[owner], spec=spec_)
        world.grant_ids[name] = grant_id
        world.terms[name] = GrantTerms.of(spec_, purpose=spec_.purpose, created_block=int(receipt["blockNumber"]))

    grant("scoped", record_types=(INCIDENT,), communities=(COMMUNITY_A,))
    grant("one record", record_id=record("r-1"))
    grant("anything")
    grant("future", valid_from=now + 10 * DAY, valid_until=now + 20 * DAY)
    grant("short", valid_until=now + 600, record_types=(INCIDENT,))
    grant("revoked")
    grant("revoked and expired", valid_until=now + 600)
    grant("lapsed owner", owner=LAPSED_OWNER)
    grant("lapsed owner, scoped", owner=LAPSED_OWNER, record_types=(INCIDENT,))
    grant("lapsed grantee", grantee=LAPSED_GRANTEE)
    for name in ("revoked", "revoked and expired"):
        receipt = chain.revoke_grant(signer=signers[OWNER], grant_id=world.grant_ids[name])
        world.terms[name] = dataclasses.replace(world.terms[name], revoked_block=int(receipt["blockNumber"]))
    for org_id in (LAPSED_OWNER, LAPSED_GRANTEE):
        chain.suspend_organisation(signer=admin, org_id=org_id)
        world.suspended.add(org_id)
    # Past the short grants' end: the chain's clock (the next block's timestamp) moves 1000 s on.
    w3.provider.ethereum_tester.time_travel(now + 1000)  # type: ignore[attr-defined]
    world.follower.sync()
    return world


@pytest.fixture(scope="module")
def world() -> World:
    return _build(Web3(StandardErrorsEthereumTesterProvider()))


#: Every outcome at least once, and the contract's order where two refusals apply.
TABLE: list[tuple[str, Query, AccessDecision]] = [
    ("scoped, in scope", Query("scoped"), AccessDecision.ALLOWED),
    ("one record, that record", Query("one record"), AccessDecision.ALLOWED),
    ("any scope", Query("anything", record_type=RESIDENT, community_code=COMMUNITY_B), AccessDecision.ALLOWED),
    ("unknown grant", Query("none"), AccessDecision.UNKNOWN_GRANT),
    ("wrong grantee", Query("scoped", grantee_org=OTHER), AccessDecision.WRONG_GRANTEE),
    ("owner as grantee", Query("scoped", grantee_org=OWNER, owner_org=GRANTEE), AccessDecision.WRONG_GRANTEE),
    ("wrong owner", Query("scoped", owner_org=OTHER), AccessDecision.WRONG_OWNER),
    ("wrong purpose", Query("scoped", purpose=Purpose.FIRE_SAFETY), AccessDecision.WRONG_PURPOSE),
    ("wrong purpose beats revoked", Query("revoked", purpose=Purpose.AUDIT), AccessDecision.WRONG_PURPOSE),
    ("revoked", Query("revoked"), AccessDecision.REVOKED),
    ("revoked beats expired", Query("revoked and expired"), AccessDecision.REVOKED),
    ("revoked beats out of scope", Query("revoked", record_id=record("r-2")), AccessDecision.REVOKED),
    ("not yet valid", Query("future"), AccessDecision.NOT_YET_VALID),
    ("expired", Query("short"), AccessDecision.EXPIRED),
    ("expired beats out of scope", Query("short", record_type=RESIDENT), AccessDecision.EXPIRED),
    ("out of scope: record type", Query("scoped", record_type=RESIDENT), AccessDecision.OUT_OF_SCOPE),
    ("out of scope: community", Query("scoped", community_code=COMMUNITY_B), AccessDecision.OUT_OF_SCOPE),
    ("out of scope: one record", Query("one record", record_id=record("r-2")), AccessDecision.OUT_OF_SCOPE),
    (
        "out of scope beats owner suspended",
        Query("lapsed owner, scoped", owner_org=LAPSED_OWNER, record_type=RESIDENT),
        AccessDecision.OUT_OF_SCOPE,
    ),
    ("owner suspended", Query("lapsed owner", owner_org=LAPSED_OWNER), AccessDecision.OWNER_SUSPENDED),
    ("grantee suspended", Query("lapsed grantee", grantee_org=LAPSED_GRANTEE), AccessDecision.GRANTEE_SUSPENDED),
]


def test_the_table_names_every_outcome() -> None:
    assert {expected for _, _, expected in TABLE} == set(AccessDecision)


def _rule(world: World, query: Query, at: int) -> AccessDecision:
    request = AccessRequest(
        grantee_org=query.grantee_org,
        owner_org=query.owner_org,
        record_id=record_key(query.record_id),
        record_type=query.record_type,
        community_code=query.community_code,
        purpose=query.purpose,
    )
    return decide(world.terms.get(query.grant), request, moment=Moment.at(at), suspended=world.suspended)


def _follower(world: World, query: Query) -> AccessDecision:
    return world.follower.access_decision(
        grant_id=world.grant_id(query.grant),
        grantee_org=query.grantee_org,
        owner_org=query.owner_org,
        record_id=query.record_id,
        record_type=query.record_type,
        community_code=query.community_code,
        purpose=query.purpose,
    )


def _contract(world: World, query: Query) -> AccessDecision:
    fn = world.chain.grants.functions.accessDecision(
        world.grant_id(query.grant),
        code_to_bytes32(query.grantee_org),
        code_to_bytes32(query.owner_org),
        bytes.fromhex(query.record_id),
        code_to_bytes32(query.record_type),
        code_to_bytes32(query.community_code),
        int(query.purpose),
    )
    return AccessDecision(world.chain.transactor.call(fn))


@pytest.mark.parametrize(("label", "query", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_rule_follower_and_contract_agree(world: World, label: str, query: Query, expected: AccessDecision) -> None:
    # eth-tester runs a view call in a block with the latest block's timestamp: the follower's head.
    head, head_time = world.follower.head()
    assert head == world.chain.w3.eth.block_number
    assert head_time == world.chain.latest_timestamp()
    decisions = {
        "rule": _rule(world, query, head_time),
        "follower": _follower(world, query),
        "contract": _contract(world, query),
    }
    assert decisions == dict.fromkeys(decisions, expected), label


# --- what a refusal may tell, and the reach of a break-glass read ------------------------------------------


def test_a_grant_covers_a_record_only_when_it_speaks_of_it_for_this_caller() -> None:
    from ledger_api.access.decision import AccessRequest, GrantTerms, Moment, covers_record

    grant = GrantTerms(
        owner_org="PS-XIHU-01", grantee_org="CM-CUIYUAN-01", purpose=4, valid_from=0, valid_until=10,
        record_types=frozenset({"incident"}), communities=frozenset({"330102001"}), created_block=5, revoked_block=7,
    )  # fmt: skip
    request = AccessRequest(
        grantee_org="CM-CUIYUAN-01", owner_org="PS-XIHU-01", record_id="ab" * 32, record_type="incident",
        community_code="330102001", purpose=2,
    )  # fmt: skip
    late = Moment.at(100, block=9)  # expired, revoked and for another purpose: still about this record
    assert covers_record(grant, request, moment=late)
    for change in ({"grantee_org": "PM-LVCHENG-01"}, {"owner_org": "CM-CUIYUAN-01"}, {"record_type": "resident"},
                   {"community_code": "330102002"}):  # fmt: skip
        assert not covers_record(grant, dataclasses.replace(request, **change), moment=late), change
    assert not covers_record(grant, request, moment=Moment.at(1, block=4))  # not created yet at that block
    assert not covers_record(None, request, moment=late)


def test_break_glass_reaches_the_communities_served_at_the_block() -> None:
    from ledger_api.access.decision import EmergencyReason, communities_at, emergency_in_reach

    history = ((5, ("330102001",)), (9, ("330102002",)))
    assert communities_at(history, 4) == frozenset()
    assert communities_at(history, 8) == {"330102001"}
    assert communities_at(history, 9) == {"330102002"}
    assert emergency_in_reach(communities_at(history, 8), "330102001")
    assert not emergency_in_reach(communities_at(history, 9), "330102001")
    assert EmergencyReason.parse("Missing-Person").reveals == {"id_number", "phone"}
    assert EmergencyReason.PUBLIC_ORDER.reveals == frozenset()
    with pytest.raises(ValueError, match="unknown emergency reason class"):
        EmergencyReason.parse("curiosity")
