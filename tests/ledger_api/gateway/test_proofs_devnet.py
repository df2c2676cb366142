"""Proofs an auditor checks against the chain: record inclusion, access-log inclusion and consistency."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger_api.accesslog.entry import Entry
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.transactor import Transactor
from ledger_api.merkle import leaf_hash
from ledger_api.merkle.rfc9162 import decode_proof, verify_consistency, verify_inclusion
from ledger_api.records.leaves import RecordLeaf
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, Ledger, wait_until
from tests.ledger_api.gateway.records import BREAK_GLASS, in_community, payload, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def chain_of(ledger: Ledger) -> LedgerChain:
    return LedgerChain(
        transactor=Transactor.from_url(ledger.settings.rpc_url), deployment=ledger.provisioned.deployment
    )


def org32(org_id: str) -> bytes:
    return org_id.encode().ljust(32, b"\x00")


def anchored(client: TestClient, ledger: Ledger, org: str, record_id: str) -> bool:
    answer = client.get(f"/v1/records/{record_id}/status", headers=ledger.auth(org))
    return bool(answer.status_code == 200 and answer.json()["state"] == "anchored")


def test_a_record_proof_verifies_offline_and_on_chain(client: TestClient, ledger_home: Ledger) -> None:
    incidents = sample_records("police.incidents", POLICE, limit=5)
    assert client.post("/v1/records", json=payload(incidents), headers=ledger_home.auth(POLICE)).status_code == 202
    chain = chain_of(ledger_home)
    for record in incidents:
        wait_until(lambda r=record: anchored(client, ledger_home, POLICE, r.record_id))  # type: ignore[misc]
        answer = client.get(f"/v1/records/{record.record_id}/proof", headers=ledger_home.auth(POLICE))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        leaf = RecordLeaf(**body["leaf"])
        assert (leaf.record_id, leaf.owner_org) == (record.record_id, POLICE)
        assert leaf.leaf_hash().hex() == body["leaf_hash"]
        proof = decode_proof(body["inclusion_path"])
        root = bytes.fromhex(body["batch_root"])
        verify_inclusion(leaf.leaf_hash(), body["leaf_index"], body["tree_size"], proof, root)
        assert chain.records.functions.isRecordAnchored(
            bytes.fromhex(leaf.record_id), leaf.version, org32(POLICE), bytes.fromhex(leaf.ciphertext_hash),
            bytes.fromhex(leaf.commitment), root, body["leaf_index"], proof,
        ).call()  # fmt: skip
        stored = chain.records.functions.batch(org32(POLICE), root).call()
        assert (stored[1], stored[2]) == (body["tree_size"], body["block_number"])
        receipt = chain.w3.eth.get_transaction_receipt(body["transaction"])
        assert receipt["blockNumber"] == body["block_number"]
        # A tampered proof is refused by the chain.
        assert not chain.records.functions.isRecordAnchored(
            bytes.fromhex(leaf.record_id), leaf.version, org32(POLICE), bytes.fromhex(leaf.ciphertext_hash),
            b"\x01" * 32, root, body["leaf_index"], proof,
        ).call()  # fmt: skip

    target = incidents[0].record_id
    # Others see no such record, exactly like a missing one; a missing version is missing too.
    assert client.get(f"/v1/records/{target}/proof", headers=ledger_home.auth(COMMITTEE)).status_code == 404
    assert client.get(f"/v1/records/{'0' * 64}/proof", headers=ledger_home.auth(POLICE)).status_code == 404
    missing = client.get(f"/v1/records/{target}/proof", params={"version": 99}, headers=ledger_home.auth(POLICE))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get(f"/v1/records/{target}/proof").status_code == 401


def _read(client: TestClient, ledger: Ledger, org: str, record_id: str, purpose: str) -> dict[str, Any]:
    params = BREAK_GLASS if purpose == "emergency_response" else {"purpose": purpose}
    answer = client.get(f"/v1/records/{record_id}", params=params, headers=ledger.auth(org))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _entry_proof(client: TestClient, ledger: Ledger, org: str, index: int, **params: int) -> Any:
    return client.get(f"/v1/access-log/entries/{index}/proof", params=params, headers=ledger.auth(org))


def test_access_log_proofs_match_the_anchored_heads(client: TestClient, ledger_home: Ledger) -> None:
    chain = chain_of(ledger_home)
    (hazard,) = in_community(sample_records("committee.hazard_reports", COMMITTEE, limit=1))
    own = sample_records("police.incidents", POLICE)[20]
    client.post("/v1/records", json=payload([hazard]), headers=ledger_home.auth(COMMITTEE))
    client.post("/v1/records", json=payload([own]), headers=ledger_home.auth(POLICE))

    first = _read(client, ledger_home, POLICE, own.record_id, "investigation")["access"]["entry_index"]
    wait_until(lambda: _entry_proof(client, ledger_home, POLICE, first).status_code == 200)
    # An emergency read of the committee's record: the entry is the accessor's and the owner's to see.
    second = _read(client, ledger_home, POLICE, hazard.record_id, "emergency_response")["access"]["entry_index"]
    wait_until(lambda: _entry_proof(client, ledger_home, COMMITTEE, second).status_code == 200)

    for org, index in ((POLICE, first), (POLICE, second), (COMMITTEE, second)):
        body = _entry_proof(client, ledger_home, org, index).json()
        document = {k: v for k, v in body["entry"].items() if k != "format"}
        entry = Entry.model_validate(document)
        assert leaf_hash(entry.leaf_data()).hex() == body["leaf_hash"]
        head = body["head"]
        assert head is not None
        assert (head["size"], head["root"]) == (body["tree_size"], body["root"])
        on_chain = chain.access_log.functions.headAt(head["index"]).call()
        assert (on_chain[0].hex(), on_chain[1], on_chain[2]) == (head["root"], head["size"], head["block_number"])
        proof = decode_proof(body["inclusion_path"])
        verify_inclusion(bytes.fromhex(body["leaf_hash"]), index, body["tree_size"], proof, on_chain[0])
        assert chain.access_log.functions.isEntryIncluded(
            head["index"], bytes.fromhex(body["leaf_hash"]), index, proof
        ).call()

    # Neither accessor nor owner: no such entry.
    assert _entry_proof(client, ledger_home, PROPERTY, first).status_code == 404
    assert _entry_proof(client, ledger_home, COMMITTEE, first).status_code == 404
    assert _entry_proof(client, ledger_home, POLICE, 10**9).status_code == 404
    assert _entry_proof(client, ledger_home, POLICE, second, tree_size=second).status_code == 404
    at_own_size = _entry_proof(client, ledger_home, POLICE, first, tree_size=first + 1).json()
    verify_inclusion(
        bytes.fromhex(at_own_size["leaf_hash"]), first, first + 1, decode_proof(at_own_size["inclusion_path"]),
        bytes.fromhex(at_own_size["root"]),
    )  # fmt: skip

    heads = client.get("/v1/access-log/heads", headers=ledger_home.auth(PROPERTY)).json()["heads"]
    assert len(heads) >= 2
    assert len(heads) <= chain.access_log.functions.headCount().call()
    for head in heads:
        on_chain = chain.access_log.functions.headAt(head["index"]).call()
        assert (on_chain[0].hex(), on_chain[1]) == (head["root"], head["size"])
    old, new = heads[0], heads[-1]
    answer = client.get(
        "/v1/access-log/consistency", params={"from_size": old["size"], "to_size": new["size"]},
        headers=ledger_home.auth(PROPERTY),
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    old_root = chain.access_log.functions.headAt(old["index"]).call()[0]
    new_root = chain.access_log.functions.headAt(new["index"]).call()[0]
    verify_consistency(old["size"], new["size"], old_root, new_root, decode_proof(body["proof"]))
    not_a_head = client.get(
        "/v1/access-log/consistency", params={"from_size": old["size"], "to_size": new["size"] + 1000},
        headers=ledger_home.auth(PROPERTY),
    )  # fmt: skip
    assert not_a_head.status_code == 404
    backwards = client.get(
        "/v1/access-log/consistency", params={"from_size": new["size"], "to_size": old["size"]},
        headers=ledger_home.auth(PROPERTY),
    )  # fmt: skip
    assert backwards.status_code == 422 or old["size"] == new["size"]
    assert client.get("/v1/access-log/heads").status_code == 401
