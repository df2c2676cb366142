"""Gas report of the ledger contracts, measured on a private anvil.

``python -m ledger_api.chain.gas_report [--json]`` starts its own anvil (free loopback port, temporary
home, nothing persisted), deploys the contracts and measures, with realistic arguments:

* the deployment gas of every contract;
* ``gasUsed`` of every state-changing function of every contract (the OpenZeppelin role functions
  included), for the cases that matter (first and later calls, scope sizes, key sizes, admin vs owner);
* ``eth_estimateGas`` of the main views (access check, record anchored in a batch of 1,024, the
  per-owner ``anchoredLeaf`` and ``batch`` look-ups, inclusion proof for a tree of 1,024) — an estimate
  includes the 21,000 base cost and the calldata;
* ``anchorBatch`` gas divided by the batch size for batches of 100, 500 and 1,000 records.

It prints a table (or JSON with ``--json``) and stops anvil at the end. The report fails when a
state-changing function in the ABIs was not measured, so it cannot silently fall behind the contracts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from ledger_api.chain.artifacts import compiler_version, contract_abi
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import CONTRACTS, LOG_WRITER_ROLE, deploy_contracts
from ledger_api.chain.devnet import Devnet, dev_account
from ledger_api.chain.encoding import OrganisationKind, Purpose, code_to_bytes32
from ledger_api.chain.errors import ChainError
from ledger_api.chain.providers import connect
from ledger_api.chain.transactor import Transactor

ORG_ADMIN_ROLE = Web3.keccak(text="ORG_ADMIN_ROLE")
ZERO32 = b"\x00" * 32
#: X25519 public key with its HPKE KEM id (RFC 9180 §7.1): 2 + 32 bytes.
X25519_KEY = b"\x00\x20" + bytes(range(1, 33))
#: ML-KEM-768 + X25519 hybrid (X-Wing) public key with its KEM id: 2 + 1216 bytes.
HYBRID_KEY = b"\x64\x7a" + bytes(i % 251 for i in range(1216))
BATCH_SIZES = (100, 500, 1000)
PROOF_TREE_SIZE = 1024
DAY = 86_400


@dataclass(frozen=True, kw_only=True)
class GasRow:
    contract: str
    function: str
    case: str
    gas: int


@dataclass(frozen=True, kw_only=True)
class BatchRow:
    size: int
    gas: int
    gas_per_record: float


@dataclass(kw_only=True)
class GasReport:
    chain_id: int
    compiler: str
    deployments: list[GasRow] = field(default_factory=list)
    transactions: list[GasRow] = field(default_factory=list)
    views: list[GasRow] = field(default_factory=list)
    anchor_batch_per_record: list[BatchRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- RFC 9162 hashing (kept local: this module uses ledger_api.chain only) ----------------------------


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _root(leaves: Sequence[bytes]) -> bytes:
    """MTH of RFC 9162 §2.1.1 over leaf hashes (n >= 1)."""
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node_hash(_root(leaves[:k]), _root(leaves[k:]))


def _inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, from the leaf's sibling up."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_inclusion_proof(index, leaves[:k]), _root(leaves[k:])]
    return [*_inclusion_proof(index - k, leaves[k:]), _root(leaves[:k])]


def _record_leaf(record_id: bytes, version: int, owner: bytes, ciphertext_hash: bytes, commitment: bytes) -> bytes:
    packed = b"\x01" + record_id + version.to_bytes(4, "big") + owner + ciphertext_hash + commitment
    return _leaf_hash(packed)


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


# --- measuring -----------------------------------------------------------------------------------------


class _Meter:
    def __init__(self, ledger: LedgerChain, report: GasReport) -> None:
        self.ledger = ledger
        self.report = report
        self._contracts = {
            "OrganisationRegistry": ledger.registry,
            "GrantRegistry": ledger.grants,
            "RecordAnchors": ledger.records,
            "AccessLogAnchors": ledger.access_log,
            "InclusionVerifier": ledger.verifier,
        }

    def fn(self, contract: str, function: str, *args: Any) -> Any:
        return getattr(self._contracts[contract].functions, function)(*args)

    def tx(self, contract: str, function: str, case: str, signer: LocalAccount, *args: Any) -> TxReceipt:
        receipt = self.ledger.transactor.transact(self.fn(contract, function, *args), signer=signer)
        self.report.transactions.append(
            GasRow(contract=contract, function=function, case=case, gas=int(receipt["gasUsed"]))
        )
        return receipt

    def view(self, contract: str, function: str, case: str, *args: Any) -> None:
        gas = int(self.fn(contract, function, *args).estimate_gas({"from": dev_account(0).address}))
        self.report.views.append(GasRow(contract=contract, function=function, case=case, gas=gas))


def _grant_request(
    owner: str,
    grantee: str,
    now: int,
    *,
    record_types: Sequence[str] = (),
    communities: Sequence[str] = (),
    record_id: bytes = ZERO32,
) -> tuple[Any, ...]:
    return (
        code_to_bytes32(owner),
        code_to_bytes32(grantee),
        int(Purpose.INVESTIGATION),
        [code_to_bytes32(t) for t in record_types],
        [code_to_bytes32(c) for c in communities],
        record_id,
        0,
        now + 30 * DAY,
    )


def _measure_deployments(w3: Web3, addresses: dict[str, str], first_block: int, report: GasReport) -> None:
    names = {address.lower(): name for name, address in addresses.items()}
    for number in range(first_block, int(w3.eth.block_number) + 1):
        for tx_hash in w3.eth.get_block(number)["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            created = receipt.get("contractAddress")
            if created and str(created).lower() in names:
                name = names[str(created).lower()]
                gas = int(receipt["gasUsed"])
                report.deployments.append(GasRow(contract=name, function="constructor", case="deploy", gas=gas))


@dataclass(frozen=True, kw_only=True)
class _Actors:
    """The dev accounts the measurements sign with."""

    admin: LocalAccount
    new_admin: LocalAccount
    police: LocalAccount
    committee: LocalAccount
    prop: LocalAccount
    log_writer: LocalAccount
    spare: LocalAccount
    auditor: LocalAccount


REG, GRANTS, RECORDS, LOG = "OrganisationRegistry", "GrantRegistry", "RecordAnchors", "AccessLogAnchors"
POLICE_ID, COMMITTEE_ID = "PS-XIHU-01", "CM-XIHU-01"
COMMUNITIES = ("330102001", "330106002", "330106003")


def measure(rpc_url: str) -> GasReport:
    """Deploy on the node at ``rpc_url`` (a fresh dev chain) and measure everything."""
    w3 = connect(rpc_url, timeout_s=60)
    transactor = Transactor(w3=w3)
    actors = _Actors(**{f.name: dev_account(i) for i, f in enumerate(fields(_Actors))})  # accounts 0..7, in order
    # No signer-change delay, so that completing a change is measured too (the delay costs no gas).
    deployment = deploy_contracts(
        transactor=transactor, admin=actors.admin, log_writer=actors.log_writer.address, signer_change_delay_s=0
    )
    report = GasReport(chain_id=transactor.chain_id, compiler=compiler_version())
    _measure_deployments(w3, deployment.addresses, deployment.block_number, report)
    ledger = LedgerChain(transactor=transactor, deployment=deployment)
    m = _Meter(ledger, report)
    _measure_organisations(m, actors)
    _measure_roles(m, w3, actors)
    _measure_grants(m, ledger.latest_timestamp(), actors)
    batch_leaves = _measure_record_anchors(m, report, actors)
    log_leaves = _measure_log_anchors(m, actors)
    _measure_views(m, batch_leaves, log_leaves)
    _require_complete(report)
    return report


def _measure_organisations(m: _Meter, a: _Actors) -> None:
    admin, police, committee, prop, spare, auditor = a.admin, a.police, a.committee, a.prop, a.spare, a.auditor
    reg, b32 = REG, code_to_bytes32
    community_a, community_b, community_c = (b32(c) for c in COMMUNITIES)
    m.tx(
        reg,
        "registerOrganisation",
        "first organisation, 2 communities, X25519 key",
        admin,
        b32("PS-XIHU-01"),
        int(OrganisationKind.POLICE),
        police.address,
        [community_a, community_b],
        X25519_KEY,
    )
    m.tx(
        reg,
        "registerOrganisation",
        "1 community, X25519 key",
        admin,
        b32("CM-XIHU-01"),
        int(OrganisationKind.COMMITTEE),
        committee.address,
        [community_a],
        X25519_KEY,
    )
    m.tx(
        reg,
        "registerOrganisation",
        "1 community, ML-KEM-768+X25519 key (1218 B)",
        admin,
        b32("PM-XIHU-01"),
        int(OrganisationKind.PROPERTY),
        prop.address,
        [community_a],
        HYBRID_KEY,
    )
    m.tx(reg, "registerOrganisation", "no community, X25519 key", admin,
         b32("AU-CITY-01"), int(OrganisationKind.AUDITOR), auditor.address, [], X25519_KEY)  # fmt: skip
    m.tx(reg, "rotateKey", "X25519 key (34 B)", police, b32("PS-XIHU-01"), X25519_KEY[:-1] + b"\xff")
    m.tx(reg, "rotateKey", "ML-KEM-768+X25519 key (1218 B)", police, b32("PS-XIHU-01"), HYBRID_KEY)
    m.tx(reg, "setCommunities", "3 communities", admin, b32("PM-XIHU-01"), [community_a, community_b, community_c])
    m.tx(reg, "proposeSignerChange", "new signer", admin, b32("AU-CITY-01"), spare.address)
    m.tx(reg, "acceptSignerChange", "by the organisation's signer", auditor, b32("AU-CITY-01"))
    m.tx(reg, "proposeSignerChange", "new signer", admin, b32("AU-CITY-01"), auditor.address)
    m.tx(reg, "cancelSignerChange", "by an admin", admin, b32("AU-CITY-01"))
    m.tx(reg, "proposeSignerChange", "new signer", admin, b32("AU-CITY-01"), auditor.address)
    m.tx(reg, "completeSignerChange", "by the new signer, no delay", auditor, b32("AU-CITY-01"))
    m.tx(reg, "suspendOrganisation", "active organisation", admin, b32("AU-CITY-01"))
    m.tx(reg, "reinstateOrganisation", "suspended organisation", admin, b32("AU-CITY-01"))


def _measure_roles(m: _Meter, w3: Web3, a: _Actors) -> None:
    """Roles and the two-step admin hand-over (OpenZeppelin AccessControlDefaultAdminRules)."""
    admin, new_admin, auditor, reg = a.admin, a.new_admin, a.auditor, REG
    m.tx(reg, "grantRole", "LOG_WRITER_ROLE to a new account", admin, LOG_WRITER_ROLE, auditor.address)
    m.tx(reg, "revokeRole", "LOG_WRITER_ROLE", admin, LOG_WRITER_ROLE, auditor.address)
    m.tx(reg, "grantRole", "ORG_ADMIN_ROLE to a new account", admin, ORG_ADMIN_ROLE, auditor.address)
    m.tx(reg, "renounceRole", "ORG_ADMIN_ROLE, by its holder", auditor, ORG_ADMIN_ROLE, auditor.address)
    m.tx(reg, "beginDefaultAdminTransfer", "first offer", admin, new_admin.address)
    m.tx(reg, "cancelDefaultAdminTransfer", "pending offer", admin)
    m.tx(reg, "beginDefaultAdminTransfer", "after a cancel", admin, new_admin.address)
    # Accepting needs a block later than the offer's: the gas estimate runs against the latest block.
    w3.provider.make_request("evm_increaseTime", [2])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    m.tx(reg, "acceptDefaultAdminTransfer", "by the pending admin (moves ORG_ADMIN_ROLE too)", new_admin)
    m.tx(reg, "changeDefaultAdminDelay", "0 -> 1 day", new_admin, DAY)
    m.tx(reg, "rollbackDefaultAdminDelay", "pending change", new_admin)


def _measure_grants(m: _Meter, now: int, a: _Actors) -> None:
    """Grants (the hand-over moved ORG_ADMIN_ROLE with DEFAULT_ADMIN_ROLE: ``new_admin`` is the org admin now)."""
    police, new_admin, grants = a.police, a.new_admin, GRANTS
    police_id, committee_id = POLICE_ID, COMMITTEE_ID
    m.tx(grants, "createGrant", "owner signer, any scope", police, _grant_request(police_id, committee_id, now))
    m.tx(
        grants,
        "createGrant",
        "owner signer, 2 record types, 1 community",
        police,
        _grant_request(
            police_id, committee_id, now, record_types=["incident", "key_person"], communities=["330102001"]
        ),
    )
    m.tx(
        grants,
        "createGrant",
        "owner signer, one record",
        police,
        _grant_request(police_id, committee_id, now, record_id=_digest("record")),
    )
    m.tx(
        grants,
        "createGrant",
        "org admin, 2 record types, 1 community",
        new_admin,
        _grant_request(
            police_id, committee_id, now, record_types=["incident", "key_person"], communities=["330102001"]
        ),
    )
    many = [f"T{i:03d}" for i in range(64)]
    m.tx(grants, "createGrant", "owner signer, 64 record types, 64 communities (maximum)", police,
         _grant_request(police_id, committee_id, now, record_types=many, communities=many))  # fmt: skip
    m.tx(grants, "revokeGrant", "by the owner signer", police, 1)
    m.tx(grants, "revokeGrant", "by an org admin", new_admin, 3)


def _measure_record_anchors(m: _Meter, report: GasReport, a: _Actors) -> dict[int, list[bytes]]:
    """Single and batch anchors; returns the leaves of each batch, for the proofs the views check."""
    police, committee, records, b32 = a.police, a.committee, RECORDS, code_to_bytes32
    police_b32 = b32(POLICE_ID)
    m.tx(records, "anchorRecord", "version 1", police, _digest("id-1"), 1, _digest("ct-1"), _digest("c-1"))
    m.tx(records, "anchorRecord", "version 2 of the same record", police,
         _digest("id-1"), 2, _digest("ct-2"), _digest("c-2"))  # fmt: skip
    # Anchors are kept per owner organisation: another organisation may use the same record id and version.
    m.tx(records, "anchorRecord", "same record id + version, another owner", committee,
         _digest("id-1"), 1, _digest("ct-other"), _digest("c-other"))  # fmt: skip
    # The first batch ever also pays for the batch counter's first write: measured on its own, so the
    # per-record figures below are the steady state.
    warm_up = [_leaf_hash(f"warm-up {i}".encode()) for i in range(16)]
    m.tx(records, "anchorBatch", "first batch ever (16 records; counter 0 -> 1)", police, _root(warm_up), 16,
         _digest("m-warm-up"))  # fmt: skip
    batch_leaves: dict[int, list[bytes]] = {}
    for size in (*BATCH_SIZES, PROOF_TREE_SIZE):
        leaves = [
            _record_leaf(_digest(f"b{size}-{i}"), 1, police_b32, _digest(f"ct{size}-{i}"), _digest(f"c{size}-{i}"))
            for i in range(size)
        ]
        batch_leaves[size] = leaves
        receipt = m.tx(records, "anchorBatch", f"batch of {size}", police, _root(leaves), size, _digest(f"m{size}"))
        if size in BATCH_SIZES:
            gas = int(receipt["gasUsed"])
            report.anchor_batch_per_record.append(BatchRow(size=size, gas=gas, gas_per_record=round(gas / size, 1)))
    proof_root = _root(batch_leaves[PROOF_TREE_SIZE])
    m.tx(records, "anchorBatch", f"same root as another owner's batch of {PROOF_TREE_SIZE}", committee, proof_root,
         PROOF_TREE_SIZE, _digest("m-other"))  # fmt: skip
    return batch_leaves


def _measure_log_anchors(m: _Meter, a: _Actors) -> list[bytes]:
    """Access-log tree heads; returns the log's leaves."""
    log_writer, log = a.log_writer, LOG
    log_leaves = [_leaf_hash(f"access entry {i}".encode()) for i in range(PROOF_TREE_SIZE)]
    m.tx(
        log, "anchorTreeHead", "first head", log_writer, PROOF_TREE_SIZE // 2, _root(log_leaves[: PROOF_TREE_SIZE // 2])
    )
    m.tx(log, "anchorTreeHead", "later head", log_writer, PROOF_TREE_SIZE, _root(log_leaves))  # fmt: skip
    return log_leaves


def _measure_views(m: _Meter, batch_leaves: dict[int, list[bytes]], log_leaves: list[bytes]) -> None:
    """Views, by ``eth_estimateGas``."""
    grants, records, log, b32 = GRANTS, RECORDS, LOG, code_to_bytes32
    police_b32, committee_id, community_a = b32(POLICE_ID), COMMITTEE_ID, b32(COMMUNITIES[0])
    proof_root = _root(batch_leaves[PROOF_TREE_SIZE])
    check = (2, b32(committee_id), police_b32, _digest("r"), b32("incident"), community_a, int(Purpose.INVESTIGATION))
    m.view(grants, "accessDecision", "Allowed, scoped grant", *check)
    m.view(grants, "isAuthorised", "Allowed, scoped grant", *check)
    m.view(grants, "accessDecision", "Revoked grant", 1, *check[1:])
    m.view(records, "isRecordAnchored", "single anchor", _digest("id-1"), 1, police_b32, _digest("ct-1"),
           _digest("c-1"), ZERO32, 0, [])  # fmt: skip
    index = 777
    leaves = batch_leaves[PROOF_TREE_SIZE]
    m.view(records, "isRecordAnchored", f"leaf {index} of a batch of {PROOF_TREE_SIZE}",
           _digest(f"b{PROOF_TREE_SIZE}-{index}"), 1, police_b32, _digest(f"ct{PROOF_TREE_SIZE}-{index}"),
           _digest(f"c{PROOF_TREE_SIZE}-{index}"), _root(leaves), index, _inclusion_proof(index, leaves))  # fmt: skip
    m.view(records, "anchoredLeaf", "anchored version", police_b32, _digest("id-1"), 1)
    m.view(records, "anchoredLeaf", "nothing anchored", police_b32, _digest("id-1"), 3)
    m.view(records, "batch", "anchored batch", police_b32, proof_root)
    m.view(records, "batch", "unknown root", police_b32, _digest("no such root"))
    proof = _inclusion_proof(index, log_leaves)
    m.view(
        "InclusionVerifier",
        "verifyInclusion",
        f"tree of {PROOF_TREE_SIZE}",
        log_leaves[index],
        index,
        PROOF_TREE_SIZE,
        proof,
        _root(log_leaves),
    )
    m.view(
        "InclusionVerifier",
        "verifyInclusionRaw",
        f"tree of {PROOF_TREE_SIZE}",
        log_leaves[index],
        index,
        PROOF_TREE_SIZE,
        proof,
        _root(log_leaves),
    )
    m.view(log, "isEntryIncluded", f"head of {PROOF_TREE_SIZE}", 1, log_leaves[index], index, proof)  # fmt: skip


def _require_complete(report: GasReport) -> None:
    measured = {f"{row.contract}.{row.function}" for row in report.transactions}
    wanted = {
        f"{name}.{item['name']}"
        for name in CONTRACTS
        for item in contract_abi(name)
        if item["type"] == "function" and item["stateMutability"] not in {"view", "pure"}
    }
    missing = sorted(wanted - measured)
    if missing:
        raise ChainError(f"gas report does not cover {', '.join(missing)}")
    deployed = {row.contract for row in report.deployments}
    if deployed != set(CONTRACTS):
        raise ChainError(f"deployment gas missing for {sorted(set(CONTRACTS) - deployed)}")


# --- output --------------------------------------------------------------------------------------------


def render(report: GasReport) -> str:
    lines = [f"Ledger contracts gas report (solc {report.compiler}, chain {report.chain_id}, anvil)", ""]

    def table(title: str, rows: Sequence[GasRow]) -> None:
        width_fn = max(len(f"{r.contract}.{r.function}") for r in rows)
        width_case = max(len(r.case) for r in rows)
        lines.append(title)
        lines.append(f"  {'function':<{width_fn}}  {'case':<{width_case}}  {'gas':>9}")
        for r in rows:
            lines.append(f"  {r.contract + '.' + r.function:<{width_fn}}  {r.case:<{width_case}}  {r.gas:>9,}")
        lines.append("")

    table("Deployment (gasUsed)", report.deployments)
    table("Transactions (gasUsed)", report.transactions)
    table("Views (eth_estimateGas, incl. 21,000 base and calldata)", report.views)
    lines.append("anchorBatch gas per record")
    lines.append(f"  {'records':>7}  {'gas':>9}  {'gas/record':>10}")
    for b in report.anchor_batch_per_record:
        lines.append(f"  {b.size:>7}  {b.gas:>9,}  {b.gas_per_record:>10,.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger_api.chain.gas_report", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ledger-gas-report-") as home:
        node = Devnet(home=Path(home), port=None, persist=False)
        try:
            node.up()
            report = measure(node.rpc_url)
        except ChainError as exc:
            print(f"gas report failed: {exc}", file=sys.stderr)
            return 1
        finally:
            node.down()
    print(json.dumps(report.to_json(), indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
