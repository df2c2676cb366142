"""On a real anvil: the gas of an access check does not depend on how many grants exist.

A fresh deployment (so other devnet tests are not disturbed) gets one grant, the access check of that
grant is estimated, 9,999 more grants are added in bulk (signed locally with explicit nonces, sent as
JSON-RPC batches with auto-mining paused, mined ~70 per block to stay under the gas target), and the
check is estimated again for grant 1 and for grant 10,000.

``eth_estimateGas`` includes the intrinsic calldata cost (4 gas per zero byte, 16 per non-zero byte),
and the grant id is calldata: id 10,000 (0x2710) has one more non-zero byte than id 1. The comparison is
therefore of the estimate minus the intrinsic gas, and the estimates for grant 1 before and after are
compared as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import deploy_contracts
from ledger_api.chain.devnet import Devnet, dev_account
from ledger_api.chain.encoding import OrganisationKind, Purpose
from ledger_api.chain.errors import ContractReverted
from ledger_api.chain.transactor import Transactor
from tests.contracts.conftest import PUBLIC_KEY, b32, digest, grant_request

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

OWNER, GRANTEE = "PS-GAS-01", "CM-GAS-01"
GRANTS = 10_000
MAX_PER_BLOCK = 100
BLOCK_GAS_TARGET = 14_000_000  # under anvil's 15M target (30M limit / 2)


@dataclass(frozen=True)
class AnvilLedger:
    ledger: LedgerChain
    owner: LocalAccount
    grantee: LocalAccount


@pytest.fixture(scope="module")
def anvil_ledger(devnet: Devnet) -> AnvilLedger:
    w3 = Web3(Web3.HTTPProvider(devnet.rpc_url, request_kwargs={"timeout": 60}))
    transactor = Transactor(w3=w3)
    admin, owner, grantee = dev_account(7), dev_account(8), dev_account(9)
    ledger = LedgerChain(transactor=transactor, deployment=deploy_contracts(transactor=transactor, admin=admin))
    for org_id, kind, signer in (
        (OWNER, OrganisationKind.POLICE, owner),
        (GRANTEE, OrganisationKind.COMMITTEE, grantee),
    ):
        ledger.register_organisation(
            signer=admin, org_id=org_id, kind=kind, org_signer=signer.address, communities=["330102001"],
            public_key=PUBLIC_KEY,
        )  # fmt: skip
    return AnvilLedger(ledger=ledger, owner=owner, grantee=grantee)


def _request(ledger: LedgerChain) -> tuple[Any, ...]:
    return grant_request(
        now=ledger.latest_timestamp(),
        owner=OWNER,
        grantee=GRANTEE,
        purpose=Purpose.INVESTIGATION,
        record_types=["incident"],
        communities=["330102001"],
    )


def _check_args(grant_id: int) -> tuple[Any, ...]:
    return (grant_id, b32(GRANTEE), b32(OWNER), digest("r"), b32("incident"), b32("330102001"), 2)


def _intrinsic(data: bytes) -> int:
    return 21_000 + sum(4 if b == 0 else 16 for b in data)


def _execution_gas(ledger: LedgerChain, function: str, grant_id: int) -> tuple[int, int]:
    """(eth_estimateGas, estimate minus intrinsic gas) of ``function`` for ``grant_id``."""
    fn = getattr(ledger.grants.functions, function)(*_check_args(grant_id))
    estimate = int(fn.estimate_gas({"from": dev_account(0).address}))
    data = bytes.fromhex(ledger.grants.encode_abi(function, list(_check_args(grant_id)))[2:])
    return estimate, estimate - _intrinsic(data)


def _bulk_create(anvil: AnvilLedger, count: int) -> list[str]:
    ledger, signer = anvil.ledger, anvil.owner
    w3 = ledger.w3
    data = ledger.grants.encode_abi("createGrant", [_request(ledger)])
    estimate = int(w3.eth.estimate_gas({"from": signer.address, "to": ledger.grants.address, "data": data}))
    # Blocks stay under the 15M gas target, so the base fee does not climb; the fee cap has headroom anyway.
    per_block = min(MAX_PER_BLOCK, BLOCK_GAS_TARGET // estimate)
    fees = ledger.transactor.fee_fields()
    fees["maxFeePerGas"] = 4 * int(fees["maxFeePerGas"]) + 10**9  # type: ignore[typeddict-item]
    nonce = w3.eth.get_transaction_count(signer.address, "pending")
    common = {
        "to": ledger.grants.address,
        "data": data,
        "gas": estimate * 2,
        "chainId": ledger.transactor.chain_id,
        **fees,
    }
    raws = [signer.sign_transaction({**common, "nonce": nonce + i}).raw_transaction for i in range(count)]

    hashes: list[str] = []
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        for start in range(0, count, per_block):
            chunk = raws[start : start + per_block]
            hashes += _batch(w3, [("eth_sendRawTransaction", [Web3.to_hex(raw)]) for raw in chunk])
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    return hashes


def _batch(w3: Web3, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    """One JSON-RPC batch (web3's batch_requests refuses eth_sendRawTransaction); results in order."""
    responses = w3.provider.make_batch_request(calls)  # type: ignore[attr-defined]
    assert isinstance(responses, list), responses
    errors = [r["error"] for r in responses if "error" in r]
    assert errors == [], errors[:3]
    return [r["result"] for r in responses]


def _receipt_statuses(w3: Web3, hashes: list[str]) -> set[int]:
    statuses: set[int] = set()
    for start in range(0, len(hashes), 1000):
        receipts = _batch(w3, [("eth_getTransactionReceipt", [h]) for h in hashes[start : start + 1000]])
        statuses |= {int(r["status"], 16) for r in receipts}
    return statuses


@pytest.mark.slow
def test_access_check_gas_does_not_depend_on_the_number_of_grants(anvil_ledger: AnvilLedger) -> None:
    ledger = anvil_ledger.ledger
    receipt = ledger.transactor.transact(
        ledger.grants.functions.createGrant(_request(ledger)), signer=anvil_ledger.owner
    )
    (created,) = ledger.grants.events.GrantCreated().process_receipt(receipt)
    assert created["args"]["grantId"] == 1
    before = {f: _execution_gas(ledger, f, 1) for f in ("accessDecision", "isAuthorised")}
    assert ledger.transactor.call(ledger.grants.functions.isAuthorised(*_check_args(1))) is True

    started = time.monotonic()
    hashes = _bulk_create(anvil_ledger, GRANTS - 1)
    statuses = _receipt_statuses(ledger.w3, hashes)
    elapsed = time.monotonic() - started
    assert statuses == {1}
    assert ledger.grant_count() == GRANTS
    print(f"bulk creation of {GRANTS - 1} grants took {elapsed:.0f}s")  # a figure, not a bound (machines vary 2x)
    assert ledger.transactor.call(ledger.grants.functions.isAuthorised(*_check_args(GRANTS))) is True

    for function, (estimate_before, execution_before) in before.items():
        estimate_after, execution_after = _execution_gas(ledger, function, 1)
        estimate_last, execution_last = _execution_gas(ledger, function, GRANTS)
        assert estimate_after == estimate_before, function
        assert execution_before == execution_after == execution_last, function
        assert estimate_last - estimate_before == 12  # one more non-zero calldata byte (16 - 4)
        print(
            f"{function}: estimate {estimate_before} (1 grant) / {estimate_after} (grant 1 of {GRANTS}) / "
            f"{estimate_last} (grant {GRANTS}); execution {execution_before}; bulk {elapsed:.1f}s"
        )


def test_view_reverts_decode_on_a_real_node(anvil_ledger: AnvilLedger) -> None:
    # anvil answers a reverted eth_call with its revert data, so the production path decodes it by name.
    ledger = anvil_ledger.ledger
    with pytest.raises(ContractReverted) as info:
        ledger.transactor.call(ledger.grants.functions.grant(0))
    assert (info.value.name, info.value.args_decoded) == ("GrantRegistryUnknownGrant", (0,))
    with pytest.raises(ContractReverted) as info:
        ledger.transactor.call(ledger.registry.functions.organisation(b32("NOBODY")))
    assert info.value.name == "OrganisationRegistryUnknownOrganisation"
    assert info.value.args_decoded == (b32("NOBODY"),)
