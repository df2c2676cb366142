"""ChainFollower on a real anvil: it agrees with the contract, sees revokes and suspensions at once, keeps
the history auditors need, survives a node that goes backwards, and shares its head checks.

The module runs its own anvil (not the session devnet): it moves the chain's clock forward and takes
blocks back with ``evm_snapshot``/``evm_revert``, which must not disturb the other devnet tests. Each test
gets a fresh deployment on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger_api.access.decision import AccessRequest, Moment, record_key
from ledger_api.access.decision import decide as access_rule
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import Deployment, deploy_contracts
from ledger_api.chain.devnet import Devnet, dev_account
from ledger_api.chain.encoding import AccessDecision, OrganisationKind, Purpose, code_to_bytes32
from ledger_api.chain.errors import ChainUnavailable
from ledger_api.chain.follower import ChainFollower
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.rpc import JsonRpc, RpcError
from ledger_api.chain.transactor import Transactor

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

DAY = 86_400
KEY = b"\x00\x20" + bytes(range(32))
COMMUNITY_A, COMMUNITY_B = "330102001", "330102002"
INCIDENT, RESIDENT = "incident", "resident"
OWNER, GRANTEE, OTHER = "PS-FOL-01", "CM-FOL-01", "PM-FOL-01"
ADMIN = dev_account(0)
SIGNERS = {OWNER: dev_account(1), GRANTEE: dev_account(2), OTHER: dev_account(3)}
KINDS = {OWNER: OrganisationKind.POLICE, GRANTEE: OrganisationKind.COMMITTEE, OTHER: OrganisationKind.PROPERTY}


def record(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


class CountingRpc(JsonRpc):
    """A JsonRpc that counts the calls it makes, by method (thread-safe)."""

    def __init__(self, *, url: str) -> None:
        super().__init__(url=url)
        self.calls: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        with self._count_lock:
            self.calls[method] += 1
        return super().call(method, params)


class RangeCappedRpc(CountingRpc):
    """A node that refuses ``eth_getLogs`` over more than ``max_span`` blocks, as public nodes do."""

    def __init__(self, *, url: str, max_span: int) -> None:
        super().__init__(url=url)
        self.max_span = max_span

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        if method == "eth_getLogs" and params:
            span = int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16) + 1
            if span > self.max_span:
                with self._count_lock:
                    self.calls["refused"] += 1
                raise RpcError(method=method, code=-32005, message=f"block range > {self.max_span}")
        return super().call(method, params)


class FlakyRpc(CountingRpc):
    """Fails its first ``failures`` calls as an unreachable node would."""

    def __init__(self, *, url: str, failures: int) -> None:
        super().__init__(url=url)
        self.failures = failures

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        with self._count_lock:
            failing = self.failures > 0
            self.failures -= 1
        if failing:
            raise ChainUnavailable(f"{method}: connection refused (simulated)")
        return super().call(method, params)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """An anvil of this module's own: its clock is moved and its blocks are taken back."""
    devnet = Devnet(home=tmp_path_factory.mktemp("follower-anvil"), port=None, persist=False)
    devnet.up()
    try:
        yield devnet
    finally:
        devnet.down()


@dataclass
class Ledger:
    chain: LedgerChain
    rpc: CountingRpc
    url: str
    followers: list[ChainFollower] = field(default_factory=list)

    @property
    def deployment(self) -> Deployment:
        return self.chain.deployment

    def follower(self, rpc: JsonRpc | None = None, **kwargs: Any) -> ChainFollower:
        follower = ChainFollower(rpc=rpc or self.rpc, deployment=self.deployment, **kwargs)
        self.followers.append(follower)
        return follower

    def now(self) -> int:
        return self.chain.latest_timestamp()

    def head(self) -> int:
        return self.rpc.block_number()

    def grant(self, *, owner: str = OWNER, grantee: str = GRANTEE, **spec: Any) -> int:
        now = self.now()
        fields: dict[str, Any] = {"purpose": Purpose.INVESTIGATION, "valid_from": now - 60, "valid_until": now + DAY}
        fields.update(spec)
        grant_id, _ = self.chain.create_grant(
            signer=SIGNERS[owner], spec=GrantSpec(owner_org=owner, grantee_org=grantee, **fields)
        )
        return grant_id

    def revoke(self, grant_id: int, owner: str = OWNER) -> int:
        return int(self.chain.revoke_grant(signer=SIGNERS[owner], grant_id=grant_id)["blockNumber"])

    def suspend(self, org_id: str) -> int:
        return int(self.chain.suspend_organisation(signer=ADMIN, org_id=org_id)["blockNumber"])

    def reinstate(self, org_id: str) -> int:
        return int(self.chain.reinstate_organisation(signer=ADMIN, org_id=org_id)["blockNumber"])

    def register(self, org_id: str, signer: LocalAccount, kind: OrganisationKind, communities: list[str]) -> None:
        self.chain.register_organisation(
            signer=ADMIN, org_id=org_id, kind=kind, org_signer=signer.address, communities=communities, public_key=KEY
        )

    def mine(self, blocks: int = 1) -> None:
        self.rpc.call("anvil_mine", [hex(blocks)])

    def advance_time(self, seconds: int) -> None:
        self.rpc.call("evm_increaseTime", [seconds])
        self.rpc.call("evm_mine")

    def contract_decision(self, args: Query, block: int | None = None) -> AccessDecision:
        fn = self.chain.grants.functions.accessDecision(*args.contract_args())
        return AccessDecision(fn.call(block_identifier="latest" if block is None else block))


@dataclass(frozen=True)
class Query:
    grant_id: int
    grantee_org: str = GRANTEE
    owner_org: str = OWNER
    record_id: str = record("r-1")
    record_type: str = INCIDENT
    community_code: str = COMMUNITY_A
    purpose: Purpose = Purpose.INVESTIGATION

    def kwargs(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def contract_args(self) -> tuple[Any, ...]:
        return (
            self.grant_id,
            code_to_bytes32(self.grantee_org),
            code_to_bytes32(self.owner_org),
            bytes.fromhex(self.record_id),
            code_to_bytes32(self.record_type),
            code_to_bytes32(self.community_code),
            int(self.purpose),
        )


@pytest.fixture
def ledger(node: Devnet) -> Iterator[Ledger]:
    """A fresh deployment with three organisations on the module's anvil."""
    w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 60}))
    transactor = Transactor(w3=w3)
    chain = LedgerChain(transactor=transactor, deployment=deploy_contracts(transactor=transactor, admin=ADMIN))
    rpc = CountingRpc(url=node.rpc_url)
    ledger = Ledger(chain=chain, rpc=rpc, url=node.rpc_url)
    for org_id, signer in SIGNERS.items():
        ledger.register(org_id, signer, KINDS[org_id], [COMMUNITY_A, COMMUNITY_B])
    try:
        yield ledger
    finally:
        for follower in ledger.followers:
            follower.stop()
        rpc.call("evm_setAutomine", [True])
        rpc.close()


def decide(follower: ChainFollower, query: Query, now: int | None = None) -> AccessDecision:
    return follower.access_decision(**query.kwargs(), now=now)


def decide_at(follower: ChainFollower, query: Query, *, block: int, timestamp: int) -> AccessDecision:
    """The access rule in block ``block`` mined at ``timestamp``, over the follower's history."""
    grant = follower.grant(query.grant_id)
    request = AccessRequest(
        grantee_org=query.grantee_org,
        owner_org=query.owner_org,
        record_id=record_key(query.record_id),
        record_type=query.record_type,
        community_code=query.community_code,
        purpose=query.purpose,
    )
    suspended = {o for o in (query.owner_org, query.grantee_org) if not follower.organisation_active_at(o, block)}
    terms = None if grant is None else grant.terms()
    return access_rule(terms, request, moment=Moment.at(timestamp, block=block), suspended=suspended)


# --- the follower agrees with the contract ------------------------------------------------------------


def test_access_decision_equals_the_contract_for_every_outcome(ledger: Ledger) -> None:
    now = ledger.now()
    ledger.register("PS-FOL-SUSP", dev_account(4), OrganisationKind.POLICE, [COMMUNITY_A])
    ledger.register("CM-FOL-SUSP", dev_account(5), OrganisationKind.COMMITTEE, [COMMUNITY_A])
    scoped = ledger.grant(record_types=[INCIDENT], communities=[COMMUNITY_A])
    one_record = ledger.grant(record_id=record("r-1"))
    anything = ledger.grant()
    future = ledger.grant(valid_from=now + 7 * DAY, valid_until=now + 30 * DAY)
    short = ledger.grant(valid_until=now + 600)
    revoked = ledger.grant(record_types=[INCIDENT])
    revoked_and_expired = ledger.grant(valid_until=now + 600)
    owner_suspended = ledger.chain.create_grant(
        signer=dev_account(4),
        spec=GrantSpec(
            owner_org="PS-FOL-SUSP", grantee_org=GRANTEE, purpose=Purpose.INVESTIGATION,
            valid_from=now - 60, valid_until=now + DAY,
        ),
    )[0]  # fmt: skip
    grantee_suspended = ledger.grant(grantee="CM-FOL-SUSP")
    ledger.revoke(revoked)
    ledger.revoke(revoked_and_expired)
    ledger.suspend("PS-FOL-SUSP")
    ledger.suspend("CM-FOL-SUSP")
    ledger.advance_time(1200)  # `short` and `revoked_and_expired` are now over

    table: list[tuple[str, Query, AccessDecision]] = [
        ("scoped, in scope", Query(scoped), AccessDecision.ALLOWED),
        ("one record, that record", Query(one_record), AccessDecision.ALLOWED),
        ("any scope", Query(anything, record_type=RESIDENT, community_code=COMMUNITY_B), AccessDecision.ALLOWED),
        ("unknown grant", Query(10_000), AccessDecision.UNKNOWN_GRANT),
        ("grant id 0", Query(0), AccessDecision.UNKNOWN_GRANT),
        ("wrong grantee", Query(scoped, grantee_org=OTHER), AccessDecision.WRONG_GRANTEE),
        ("owner as grantee", Query(scoped, grantee_org=OWNER, owner_org=GRANTEE), AccessDecision.WRONG_GRANTEE),
        ("wrong owner", Query(scoped, owner_org=OTHER), AccessDecision.WRONG_OWNER),
        ("wrong purpose", Query(scoped, purpose=Purpose.FIRE_SAFETY), AccessDecision.WRONG_PURPOSE),
        ("wrong purpose beats revoked", Query(revoked, purpose=Purpose.AUDIT), AccessDecision.WRONG_PURPOSE),
        ("not yet valid", Query(future), AccessDecision.NOT_YET_VALID),
        ("expired", Query(short), AccessDecision.EXPIRED),
        ("revoked", Query(revoked), AccessDecision.REVOKED),
        ("revoked beats expired", Query(revoked_and_expired), AccessDecision.REVOKED),
        ("revoked beats out of scope", Query(revoked, record_type=RESIDENT), AccessDecision.REVOKED),
        ("out of scope: type", Query(scoped, record_type=RESIDENT), AccessDecision.OUT_OF_SCOPE),
        ("out of scope: community", Query(scoped, community_code=COMMUNITY_B), AccessDecision.OUT_OF_SCOPE),
        ("out of scope: record", Query(one_record, record_id=record("r-2")), AccessDecision.OUT_OF_SCOPE),
        ("expired beats out of scope", Query(short, record_type="x"), AccessDecision.EXPIRED),
        ("owner suspended", Query(owner_suspended, owner_org="PS-FOL-SUSP"), AccessDecision.OWNER_SUSPENDED),
        ("grantee suspended", Query(grantee_suspended, grantee_org="CM-FOL-SUSP"), AccessDecision.GRANTEE_SUSPENDED),
    ]
    assert {expected for _, _, expected in table} == set(AccessDecision)

    follower = ledger.follower()
    assert follower.sync() == ledger.head()
    for name, query, expected in table:
        on_chain = ledger.contract_decision(query)
        in_memory = decide(follower, query)
        assert (on_chain, in_memory) == (expected, expected), name

    # Beyond the table: every grant against a grid of variations, follower == contract each time.
    variations: list[dict[str, Any]] = [
        {},
        {"grantee_org": OTHER},
        {"owner_org": OTHER},
        {"purpose": Purpose.ELDERLY_CARE},
        {"record_type": RESIDENT},
        {"community_code": COMMUNITY_B},
        {"record_id": record("r-9")},
        {"owner_org": "PS-FOL-SUSP"},
        {"grantee_org": "CM-FOL-SUSP"},
    ]
    compared = 0
    for grant_id in range(1, ledger.chain.grant_count() + 2):
        for change in variations:
            query = Query(grant_id, **change)
            assert decide(follower, query) == ledger.contract_decision(query), (grant_id, change)
            compared += 1
    assert compared == 9 * 10

    # The view's grants and organisations are the contract's.
    for grant_id in range(1, ledger.chain.grant_count() + 1):
        assert follower.grant(grant_id) == ledger.chain.grant(grant_id)
    assert follower.grant(10_000) is None
    for org_id in [*SIGNERS, "PS-FOL-SUSP", "CM-FOL-SUSP"]:
        view = follower.organisation(org_id)
        assert view is not None
        assert view.to_model() == ledger.chain.organisation(org_id)
        assert follower.is_active(org_id) is (not view.suspended)
    assert follower.organisation("nobody") is None
    assert not follower.is_active("nobody")
    assert [g.grant_id for g in follower.grants_for(GRANTEE)] == [
        scoped, one_record, anything, future, short, revoked, revoked_and_expired, owner_suspended,
    ]  # fmt: skip
    assert follower.organisation_of_signer(SIGNERS[OWNER].address.lower()) == OWNER
    assert follower.organisation_of_signer(dev_account(9).address) is None


def test_view_follows_signer_community_and_key_changes(ledger: Ledger) -> None:
    follower = ledger.follower()
    follower.sync()
    ledger.chain.propose_signer_change(signer=ADMIN, org_id=OTHER, new_signer=dev_account(8).address)
    follower.ensure_current()
    assert follower.organisation_of_signer(SIGNERS[OTHER].address) == OTHER  # proposed, not yet effective
    ledger.chain.accept_signer_change(signer=SIGNERS[OTHER], org_id=OTHER)
    ledger.chain.set_communities(signer=ADMIN, org_id=OTHER, communities=[COMMUNITY_B])
    rotated = ledger.chain.rotate_key(signer=dev_account(8), org_id=OTHER, public_key=b"\x00\x20" + b"\x07" * 32)
    follower.ensure_current()

    view = follower.organisation(OTHER)
    assert view is not None
    assert view.to_model() == ledger.chain.organisation(OTHER)
    assert view.public_keys == (KEY, b"\x00\x20" + b"\x07" * 32)
    assert view.public_keys[0] == ledger.chain.public_key(OTHER, 0)
    assert view.key_blocks[1] == rotated["blockNumber"]
    assert follower.organisation_of_signer(dev_account(8).address) == OTHER
    assert follower.organisation_of_signer(SIGNERS[OTHER].address) is None
    assert ledger.chain.organisation_of_signer(SIGNERS[OTHER].address) is None


# --- reads stop at once -----------------------------------------------------------------------------


def test_revoke_and_suspension_stop_reads_at_once(ledger: Ledger) -> None:
    grant_id = ledger.grant()
    other_grant = ledger.grant()
    follower = ledger.follower()
    follower.start(poll_s=3600)  # a background thread that will not help within this test
    follower.ensure_current()
    assert decide(follower, Query(grant_id)) is AccessDecision.ALLOWED

    ledger.revoke(grant_id)  # mined (the receipt is in) before ensure_current() starts
    follower.ensure_current()
    assert decide(follower, Query(grant_id)) is AccessDecision.REVOKED
    assert decide(follower, Query(other_grant)) is AccessDecision.ALLOWED

    ledger.suspend(OWNER)
    follower.ensure_current()
    assert decide(follower, Query(other_grant)) is AccessDecision.OWNER_SUSPENDED
    assert not follower.is_active(OWNER)

    ledger.reinstate(OWNER)
    ledger.suspend(GRANTEE)
    follower.ensure_current()
    assert decide(follower, Query(other_grant)) is AccessDecision.GRANTEE_SUSPENDED

    ledger.reinstate(GRANTEE)
    follower.ensure_current()
    assert decide(follower, Query(other_grant)) is AccessDecision.ALLOWED
    assert ledger.contract_decision(Query(other_grant)) is AccessDecision.ALLOWED


def test_expiry_by_wall_clock_without_a_new_block(ledger: Ledger) -> None:
    now = ledger.now()
    grant_id = ledger.grant(valid_from=now - 60, valid_until=now + 30)
    later = ledger.grant(valid_from=now + 20, valid_until=now + 120)
    follower = ledger.follower()
    head, head_ts = follower.ensure_current(), follower.head()[1]
    valid_until = now + 30

    # No block is mined from here on: the contract still allows; the follower given the clock does not.
    assert ledger.contract_decision(Query(grant_id)) is AccessDecision.ALLOWED
    assert decide(follower, Query(grant_id)) is AccessDecision.ALLOWED
    assert decide(follower, Query(grant_id), now=valid_until - 1) is AccessDecision.ALLOWED
    assert decide(follower, Query(grant_id), now=valid_until) is AccessDecision.EXPIRED
    assert decide(follower, Query(grant_id), now=valid_until + DAY) is AccessDecision.EXPIRED
    assert ledger.contract_decision(Query(grant_id)) is AccessDecision.ALLOWED
    assert ledger.head() == head

    # Never looser than the contract: a clock that has passed validFrom does not open a grant the head
    # block does not open yet, and a clock behind the chain does not either.
    assert ledger.contract_decision(Query(later)) is AccessDecision.NOT_YET_VALID
    assert decide(follower, Query(later), now=now + 60) is AccessDecision.NOT_YET_VALID
    assert decide(follower, Query(grant_id), now=head_ts - 3600) is AccessDecision.NOT_YET_VALID

    ledger.advance_time(25)  # a block at >= now + 20: `later` opens on chain, `grant_id` not yet over
    follower.ensure_current()
    assert ledger.contract_decision(Query(later)) is AccessDecision.ALLOWED
    assert decide(follower, Query(later), now=follower.head()[1]) is AccessDecision.ALLOWED
    assert decide(follower, Query(grant_id), now=int(time.time()) + 10 * DAY) is AccessDecision.EXPIRED


# --- history from events ------------------------------------------------------------------------------


def test_grant_history_from_events_matches_the_contract(ledger: Ledger) -> None:
    now = ledger.now()
    grant_id = ledger.grant(valid_from=now - 60, valid_until=now + DAY)
    ledger.mine(3)
    suspended_at = ledger.suspend(GRANTEE)
    ledger.mine(2)
    reinstated_at = ledger.reinstate(GRANTEE)
    ledger.mine(2)
    revoked_at = ledger.revoke(grant_id)
    ledger.mine(2)
    follower = ledger.follower()
    follower.sync()

    stored = ledger.chain.grant(grant_id)
    grant = follower.grant(grant_id)
    assert grant is not None
    assert (grant.created_block, grant.revoked_block) == (stored.created_block, stored.revoked_block)
    created_at = stored.created_block
    assert revoked_at == stored.revoked_block > created_at

    head = ledger.head()
    for block in range(created_at - 2, head + 1):
        timestamp = int(ledger.rpc.block(block)["timestamp"], 16)  # type: ignore[index]
        valid = follower.grant_valid_at(grant_id, block_number=block, timestamp=timestamp)
        assert valid is (created_at <= block < revoked_at), block
        assert not follower.grant_valid_at(grant_id, block_number=block, timestamp=now + 2 * DAY)
        assert not follower.grant_valid_at(grant_id, block_number=block, timestamp=now - 61)
        # The historical decision, from events only (the follower's grant and suspension history fed to the
        # access rule, as the auditor does), is what the contract said in that block (this anvil keeps
        # archive state, which the follower never needs).
        at = decide_at(follower, Query(grant_id), block=block, timestamp=timestamp)
        assert at == ledger.contract_decision(Query(grant_id), block=block), block
        active = follower.organisation_active_at(GRANTEE, block)
        assert active is not (suspended_at <= block < reinstated_at), block
    assert not follower.grant_valid_at(999, block_number=head, timestamp=now)

    registered = follower.organisation(GRANTEE)
    assert registered is not None
    assert follower.suspension_history(GRANTEE) == [
        (registered.registered_block, False),
        (suspended_at, True),
        (reinstated_at, False),
    ]
    assert not follower.organisation_active_at(GRANTEE, registered.registered_block - 1)
    assert follower.organisation_active_at(GRANTEE, registered.registered_block)
    assert follower.suspension_history("nobody") == []
    assert not follower.organisation_active_at("nobody", head)


# --- a node that goes backwards ---------------------------------------------------------------------


def test_head_going_backwards_rebuilds_and_forgets_the_lost_grant(ledger: Ledger) -> None:
    kept = ledger.grant()
    follower = ledger.follower()
    follower.ensure_current()

    snapshot = ledger.rpc.call("evm_snapshot")
    lost = ledger.grant()
    ledger.revoke(kept)
    follower.ensure_current()
    assert follower.grant(lost) is not None
    assert decide(follower, Query(kept)) is AccessDecision.REVOKED

    assert ledger.rpc.call("evm_revert", [snapshot]) is True  # the node restarts from an older state
    head = follower.ensure_current()
    assert head == ledger.head()
    assert follower.rebuilds == 1
    assert follower.grant(lost) is None
    assert decide(follower, Query(lost)) is AccessDecision.UNKNOWN_GRANT
    assert decide(follower, Query(kept)) is AccessDecision.ALLOWED
    assert follower.head()[0] == head


def test_lost_blocks_are_noticed_after_the_chain_grew_past_the_old_head(ledger: Ledger) -> None:
    follower = ledger.follower()
    follower.sync()
    snapshot = ledger.rpc.call("evm_snapshot")
    lost = ledger.grant()
    follower.sync()
    assert follower.grant(lost) is not None

    assert ledger.rpc.call("evm_revert", [snapshot]) is True
    ledger.mine(5)  # the head is above the follower's again, but its block is not the one it processed
    follower.ensure_current()
    assert follower.rebuilds == 1
    assert follower.grant(lost) is None

    # Replaced at the same height: the cheap ensure_current cannot see it, sync() (the background
    # thread) compares the head block's hash and does.
    snapshot = ledger.rpc.call("evm_snapshot")
    lost_again = ledger.grant()
    follower.sync()
    assert ledger.rpc.call("evm_revert", [snapshot]) is True
    ledger.mine(1)
    follower.sync()
    assert follower.rebuilds == 2
    assert follower.grant(lost_again) is None
    assert follower.head()[0] == ledger.head()


# --- single flight ------------------------------------------------------------------------------------


def test_concurrent_ensure_current_shares_head_checks(ledger: Ledger) -> None:
    grant_id = ledger.grant()
    rpc = CountingRpc(url=ledger.url)
    follower = ledger.follower(rpc)
    follower.sync()
    ledger.revoke(grant_id)  # the follower is one block behind when the readers arrive
    threads_n = 64
    barrier = threading.Barrier(threads_n)
    heads: list[int] = []
    decisions: list[AccessDecision] = []
    errors: list[BaseException] = []
    rpc.calls.clear()

    def reader() -> None:
        try:
            barrier.wait()
            head = follower.ensure_current()
            heads.append(head)
            decisions.append(decide(follower, Query(grant_id)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(heads) == threads_n
    assert set(heads) == {ledger.head()}
    assert set(decisions) == {AccessDecision.REVOKED}
    assert rpc.calls["eth_blockNumber"] <= threads_n // 8, rpc.calls
    assert rpc.calls["eth_getLogs"] <= 2, rpc.calls


def test_a_caller_never_adopts_a_check_that_started_before_it(ledger: Ledger) -> None:
    """The head check in flight when a caller arrives may predate the caller's transaction."""
    grant_id = ledger.grant()
    started, release = threading.Event(), threading.Event()

    class SlowRpc(CountingRpc):
        hold = True

        def call(self, method: str, params: list[Any] | None = None) -> Any:
            result = super().call(method, params)
            if method == "eth_blockNumber" and self.hold:
                self.hold = False
                started.set()  # the node has answered the first caller's head query...
                release.wait(10)  # ...which is still in flight when the revoke below is mined
            return result

    follower = ledger.follower(SlowRpc(url=ledger.url))
    first_result: list[int] = []
    first = threading.Thread(target=lambda: first_result.append(follower.ensure_current()))
    first.start()
    assert started.wait(10)
    revoked_at = ledger.revoke(grant_id)
    second_result: list[int] = []
    second = threading.Thread(target=lambda: second_result.append(follower.ensure_current()))
    second.start()
    time.sleep(0.2)  # the second caller is now waiting on the first check
    release.set()
    first.join(10)
    second.join(10)
    assert first_result[0] < revoked_at <= second_result[0]
    assert decide(follower, Query(grant_id)) is AccessDecision.REVOKED


def test_ensure_current_raises_while_the_node_is_unreachable_then_recovers(ledger: Ledger) -> None:
    follower = ledger.follower(FlakyRpc(url=ledger.url, failures=1))
    with pytest.raises(ChainUnavailable):
        follower.ensure_current()  # the caller must refuse the read: currency cannot be shown
    assert follower.ensure_current() == ledger.head()


# --- background mode ----------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_background_thread_keeps_the_view_current_and_survives_chain_errors(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    rpc = FlakyRpc(url=ledger.url, failures=3)
    follower = ledger.follower(rpc)
    with caplog.at_level(logging.WARNING, logger="ledger_api.chain.follower"):
        follower.start(poll_s=0.02, backoff_max_s=0.1)
        grant_id = ledger.grant()
        wait_for(lambda: follower.grant(grant_id) is not None)
    assert follower.running
    assert "chain follower sync failed" in caplog.text
    ledger.revoke(grant_id)
    wait_for(lambda: decide(follower, Query(grant_id)) is AccessDecision.REVOKED)
    # Reads find the view current: ensure_current costs one eth_blockNumber and nothing else.
    wait_for(lambda: follower.head()[0] == ledger.head())
    follower.stop()
    assert not follower.running
    rpc.calls.clear()
    follower.ensure_current()
    assert dict(rpc.calls) == {"eth_blockNumber": 1}


# --- rebuilding from scratch --------------------------------------------------------------------------


def send_all(ledger: Ledger, txs: list[tuple[LocalAccount, Any]]) -> None:
    """Sign locally with explicit nonces and send without waiting (anvil mines one block per tx)."""
    w3 = ledger.chain.w3
    gas_price = 2 * w3.eth.gas_price + 10**9
    nonces = {a.address: int(w3.eth.get_transaction_count(a.address, "pending")) for a, _ in txs}
    last = ""
    for account, fn in txs:
        tx = fn.build_transaction({
            "from": account.address, "nonce": nonces[account.address], "gas": 1_500_000,
            "gasPrice": gas_price, "chainId": ledger.chain.transactor.chain_id,
        })  # fmt: skip
        nonces[account.address] += 1
        last = ledger.rpc.call("eth_sendRawTransaction", [Web3.to_hex(account.sign_transaction(tx).raw_transaction)])
    receipt = w3.eth.wait_for_transaction_receipt(last, timeout=60)  # type: ignore[arg-type]
    assert receipt["status"] == 1


def snapshot_of(follower: ChainFollower) -> dict[str, Any]:
    return {
        "head": follower.head(),
        "grants": [follower.grant(i) for i in range(1, follower.grant_count() + 1)],
        "organisations": follower.organisations(),
        "suspensions": {o.org_id: follower.suspension_history(o.org_id) for o in follower.organisations()},
        "signers": {o.org_id: follower.organisation_of_signer(o.signer) for o in follower.organisations()},
    }


@pytest.mark.slow
def test_restarting_from_scratch_rebuilds_the_same_state(ledger: Ledger) -> None:
    chain, now = ledger.chain, ledger.now()
    incremental = ledger.follower()
    incremental.sync()
    owner = SIGNERS[OWNER]
    grants = chain.grants.functions
    registry = chain.registry.functions
    b32 = code_to_bytes32
    grant_count = 0
    for round_ in range(6):
        txs: list[tuple[LocalAccount, Any]] = []
        for i in range(40):
            request = (
                b32(OWNER), b32(GRANTEE if i % 3 else OTHER), 1 + i % 7,
                [b32(INCIDENT)] if i % 2 else [], [b32(COMMUNITY_A)] if i % 5 == 0 else [],
                bytes.fromhex(record(f"{round_}-{i}")) if i % 11 == 0 else b"\x00" * 32,
                now - 60 + i, now + DAY + i,
            )  # fmt: skip
            txs.append((owner, grants.createGrant(request)))
        txs += [(owner, grants.revokeGrant(grant_count + i)) for i in range(1, 40, 4)]
        txs.append((ADMIN, registry.suspendOrganisation(b32(OTHER))))
        txs.append((ADMIN, registry.reinstateOrganisation(b32(OTHER))))
        txs.append((SIGNERS[GRANTEE], registry.rotateKey(b32(GRANTEE), b"\x00\x20" + bytes([round_]) * 32)))
        send_all(ledger, txs)
        grant_count += 40
        ledger.mine(3)
        incremental.sync()  # the long-lived follower keeps up round by round
    chain.set_communities(signer=ADMIN, org_id=OWNER, communities=[COMMUNITY_B])
    chain.suspend_organisation(signer=ADMIN, org_id=GRANTEE)
    incremental.ensure_current()

    capped = RangeCappedRpc(url=ledger.url, max_span=37)
    started = time.perf_counter()
    fresh = ledger.follower(capped, log_chunk=100)
    fresh.sync()
    rebuild_s = time.perf_counter() - started
    assert capped.calls["refused"] > 0
    assert capped.calls["eth_getLogs"] > capped.calls["refused"]

    assert fresh.grant_count() == incremental.grant_count() == chain.grant_count() == 6 * 40
    assert snapshot_of(fresh) == snapshot_of(incremental)
    assert [fresh.grant(i) for i in range(1, grant_count + 1)] == list(chain.iter_grants())
    for org_id in SIGNERS:
        view = fresh.organisation(org_id)
        assert view is not None
        assert view.to_model() == chain.organisation(org_id)
    assert len(fresh.suspension_history(OTHER)) == 1 + 2 * 6
    print(f"\nrebuilt {fresh.head()[0] - ledger.deployment.block_number} blocks in {rebuild_s:.2f}s")


# --- throughput ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_throughput(ledger: Ledger) -> None:
    grant_id = ledger.grant(record_types=[INCIDENT], communities=[COMMUNITY_A])
    for _ in range(50):
        ledger.grant()
    follower = ledger.follower()
    follower.sync()
    kwargs = Query(grant_id).kwargs()
    now = int(time.time())

    n = 200_000
    started = time.perf_counter()
    for _ in range(n):
        follower.access_decision(**kwargs, now=now)
    decisions_per_s = n / (time.perf_counter() - started)

    rpc = CountingRpc(url=ledger.url)
    shared = ledger.follower(rpc)
    shared.sync()
    rpc.calls.clear()
    threads_n, duration_s = 32, 2.0
    counts = [0] * threads_n
    stop_at = time.monotonic() + duration_s

    def reader(index: int) -> None:
        while time.monotonic() < stop_at:
            shared.ensure_current()
            counts[index] += 1

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(threads_n)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ensures_per_s = sum(counts) / elapsed
    rpcs_per_s = rpc.calls["eth_blockNumber"] / elapsed
    print(
        f"\naccess_decision: {decisions_per_s:,.0f}/s; ensure_current ({threads_n} threads): "
        f"{ensures_per_s:,.0f}/s over {rpcs_per_s:,.0f} eth_blockNumber/s"
    )
    assert decisions_per_s > 20_000
    assert ensures_per_s > 4 * rpcs_per_s
