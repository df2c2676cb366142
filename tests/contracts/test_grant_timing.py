"""Grant validity at exact timestamps, and a grant and its revoke in one block (either order).

Which timestamp does a view see on eth-tester? ``eth_call`` at ``latest`` (web3's default block) runs
in the context of the latest *mined* block: ``block.timestamp`` is that block's timestamp and
``block.number`` its number (``_execute_and_revert_transaction`` builds the VM at that header). The
``probe_timestamp`` helper checks this directly with a contract-less ``eth_call`` of init code that
returns ``TIMESTAMP``. (``eth_estimateGas`` and transactions run in the *next* block's context.)

``ethereum_tester.time_travel(x)`` mines one empty block stamped ``x - 1`` and leaves the pending block
at ``x``; ``mine_blocks(1)`` then mines a block stamped ``x``, the next one ``x + 1`` (py-evm uses
``max(wall clock, parent + 1)``, and the test times are far ahead of the wall clock). So
``latest_at(t)`` below = ``time_travel(t + 1)``, asserted on every use.
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.encoding import AccessDecision
from tests.contracts.conftest import (
    COMMITTEE,
    COMMUNITY_A,
    POLICE,
    Actors,
    b32,
    call,
    events,
    grant_request,
    single_event,
    transact,
)

#: Init code: TIMESTAMP, PUSH1 0, MSTORE, PUSH1 32, PUSH1 0, RETURN — returns block.timestamp.
TIMESTAMP_PROBE = "0x4260005260206000f3"
FAR = 10_000_000  # seconds ahead of the chain: the wall clock never catches up during a test


def probe_timestamp(w3: Web3) -> int:
    """block.timestamp as a view (eth_call at the latest block) sees it."""
    return int.from_bytes(w3.eth.call({"data": TIMESTAMP_PROBE}), "big")


def latest_at(tester: Any, w3: Web3, timestamp: int) -> None:
    """Make the latest block one stamped ``timestamp`` (and check a view sees exactly that)."""
    tester.time_travel(timestamp + 1)
    assert w3.eth.get_block("latest")["timestamp"] == timestamp
    assert probe_timestamp(w3) == timestamp


def mine_one(tester: Any, w3: Web3, expected_timestamp: int) -> None:
    tester.mine_blocks(1)
    assert w3.eth.get_block("latest")["timestamp"] == expected_timestamp
    assert probe_timestamp(w3) == expected_timestamp


def decision(ledger: LedgerChain, grant_id: int) -> AccessDecision:
    args = (grant_id, b32(COMMITTEE), b32(POLICE), b"\x01" * 32, b32("incident"), b32(COMMUNITY_A), 2)
    value = AccessDecision(call(ledger, ledger.grants.functions.accessDecision(*args)))
    assert call(ledger, ledger.grants.functions.isAuthorised(*args)) is (value is AccessDecision.ALLOWED)
    return value


def create(ledger: LedgerChain, actors: Actors, **window: int) -> int:
    request = grant_request(now=ledger.latest_timestamp(), **window)
    receipt = transact(ledger, ledger.grants.functions.createGrant(request), actors.owner)
    return int(single_event(ledger.grants, "GrantCreated", receipt)["grantId"])


def test_views_see_the_latest_block_timestamp(ledger: LedgerChain, tester: Any, w3: Web3) -> None:
    start = w3.eth.get_block("latest")["timestamp"]
    assert probe_timestamp(w3) == start
    latest_at(tester, w3, start + FAR)
    assert w3.eth.get_block("pending")["timestamp"] == start + FAR + 1
    mine_one(tester, w3, start + FAR + 1)


def test_valid_until_is_exclusive(ledger: LedgerChain, actors: Actors, tester: Any, w3: Web3) -> None:
    until = ledger.latest_timestamp() + FAR
    grant_id = create(ledger, actors, valid_until=until)
    assert decision(ledger, grant_id) is AccessDecision.ALLOWED

    latest_at(tester, w3, until - 1)
    assert decision(ledger, grant_id) is AccessDecision.ALLOWED
    mine_one(tester, w3, until)
    assert decision(ledger, grant_id) is AccessDecision.EXPIRED
    mine_one(tester, w3, until + 1)
    assert decision(ledger, grant_id) is AccessDecision.EXPIRED
    # The model's reading of the window agrees with the contract's.
    grant = ledger.grant(grant_id)
    block = w3.eth.block_number
    assert grant.is_valid_at(block_number=block, timestamp=until - 1)
    assert not grant.is_valid_at(block_number=block, timestamp=until)


def test_valid_from_is_inclusive(ledger: LedgerChain, actors: Actors, tester: Any, w3: Web3) -> None:
    start = ledger.latest_timestamp() + FAR
    grant_id = create(ledger, actors, valid_from=start, valid_until=start + 100)
    assert decision(ledger, grant_id) is AccessDecision.NOT_YET_VALID

    latest_at(tester, w3, start - 1)
    assert decision(ledger, grant_id) is AccessDecision.NOT_YET_VALID
    mine_one(tester, w3, start)
    assert decision(ledger, grant_id) is AccessDecision.ALLOWED
    mine_one(tester, w3, start + 1)
    assert decision(ledger, grant_id) is AccessDecision.ALLOWED
    latest_at(tester, w3, start + 99)
    assert decision(ledger, grant_id) is AccessDecision.ALLOWED
    mine_one(tester, w3, start + 100)
    assert decision(ledger, grant_id) is AccessDecision.EXPIRED


def test_one_second_grant(ledger: LedgerChain, actors: Actors, tester: Any, w3: Web3) -> None:
    start = ledger.latest_timestamp() + FAR
    grant_id = create(ledger, actors, valid_from=start, valid_until=start + 1)
    latest_at(tester, w3, start - 1)
    assert decision(ledger, grant_id) is AccessDecision.NOT_YET_VALID
    mine_one(tester, w3, start)
    assert decision(ledger, grant_id) is AccessDecision.ALLOWED
    mine_one(tester, w3, start + 1)
    assert decision(ledger, grant_id) is AccessDecision.EXPIRED


# --- a grant and its revoke in the same block ------------------------------------------------------


def _signed(ledger: LedgerChain, fn: Any, signer: LocalAccount, *, gas: int) -> bytes:
    """``fn`` signed by ``signer`` with an explicit nonce (its next one) and gas limit; the explicit gas
    keeps web3 from estimating, which would fail for the revoke of a grant that does not exist yet.

    The two transactions of a block come from two signers: with auto-mining off, eth-tester validates
    each sent transaction against the latest *mined* state, so a second transaction of the same sender
    (nonce + 1) would be refused before the block is mined. Their order in the block is the send order.
    """
    nonce = ledger.w3.eth.get_transaction_count(signer.address)
    params = {"from": signer.address, "chainId": ledger.transactor.chain_id, "nonce": nonce, "gas": gas}
    params.update(ledger.transactor.fee_fields())  # type: ignore[typeddict-item]
    return bytes(signer.sign_transaction(fn.build_transaction(params)).raw_transaction)


def _mine_together(ledger: LedgerChain, tester: Any, raws: list[bytes]) -> list[Any]:
    """Send ``raws`` with auto-mining off, mine them in one block, and return their receipts."""
    w3 = ledger.w3
    tester.disable_auto_mine_transactions()
    try:
        hashes = [w3.eth.send_raw_transaction(raw) for raw in raws]
        tester.mine_blocks(1)
    finally:
        tester.enable_auto_mine_transactions()  # also mines one (empty) block
    return [w3.eth.get_transaction_receipt(h) for h in hashes]


def test_grant_then_revoke_in_one_block(ledger: LedgerChain, actors: Actors, tester: Any) -> None:
    next_id = ledger.grant_count() + 1
    create_fn = ledger.grants.functions.createGrant(grant_request(now=ledger.latest_timestamp()))
    revoke_fn = ledger.grants.functions.revokeGrant(next_id)
    created, revoked = _mine_together(
        ledger,
        tester,
        [
            _signed(ledger, create_fn, actors.owner, gas=1_000_000),
            _signed(ledger, revoke_fn, actors.admin, gas=200_000),
        ],
    )
    assert (created["status"], revoked["status"]) == (1, 1)
    assert created["blockNumber"] == revoked["blockNumber"]
    assert (created["transactionIndex"], revoked["transactionIndex"]) == (0, 1)
    assert single_event(ledger.grants, "GrantCreated", created)["grantId"] == next_id
    event = single_event(ledger.grants, "GrantRevoked", revoked)
    assert (event["grantId"], event["byAdmin"]) == (next_id, True)

    grant = ledger.grant(next_id)
    assert grant.created_block == grant.revoked_block == created["blockNumber"]
    assert decision(ledger, next_id) is AccessDecision.REVOKED
    # "A grant revoked in the block that created it never covered any read."
    for block in range(created["blockNumber"] - 1, created["blockNumber"] + 3):
        assert not grant.is_valid_at(block_number=block, timestamp=ledger.latest_timestamp())


def test_revoke_then_grant_in_one_block(ledger: LedgerChain, actors: Actors, tester: Any) -> None:
    next_id = ledger.grant_count() + 1
    create_fn = ledger.grants.functions.createGrant(grant_request(now=ledger.latest_timestamp()))
    revoke_fn = ledger.grants.functions.revokeGrant(next_id)
    revoked, created = _mine_together(
        ledger,
        tester,
        [
            _signed(ledger, revoke_fn, actors.admin, gas=200_000),
            _signed(ledger, create_fn, actors.owner, gas=1_000_000),
        ],
    )
    assert revoked["blockNumber"] == created["blockNumber"]
    assert (revoked["transactionIndex"], created["transactionIndex"]) == (0, 1)
    assert revoked["status"] == 0  # grant `next_id` did not exist yet: GrantRegistryUnknownGrant
    assert events(ledger.grants, "GrantRevoked", revoked) == []
    assert created["status"] == 1
    assert single_event(ledger.grants, "GrantCreated", created)["grantId"] == next_id

    grant = ledger.grant(next_id)
    assert grant.created_block == created["blockNumber"]
    assert grant.revoked_block == 0
    assert decision(ledger, next_id) is AccessDecision.ALLOWED
