"""The write path through HTTP: push, dedup, versions, encryption, storage, anchoring, status."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.canonical import CanonicalRecord
from ledger_api.crypto.envelope import open_record
from ledger_api.crypto.keystore import DEMO_MASTER_SECRET, OrgKeystore
from ledger_api.merkle.rfc9162 import verify_inclusion
from ledger_api.records.commitment import RECORD_COMMITMENT
from ledger_api.records.leaves import BatchManifest, RecordLeaf
from ledger_api.storage import blob_store_from_settings
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, Ledger, wait_until
from tests.ledger_api.gateway.records import payload, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def push(client: TestClient, ledger: Ledger, org: str, records: list[CanonicalRecord]) -> Any:
    return client.post("/v1/records", json=payload(records), headers=ledger.auth(org))


def status(client: TestClient, ledger: Ledger, org: str, record_id: str) -> Any:
    return client.get(f"/v1/records/{record_id}/status", headers=ledger.auth(org))


def test_push_is_acknowledged_stored_encrypted_and_anchored(client: TestClient, ledger_home: Ledger) -> None:
    records = sample_records("police.incidents", POLICE, limit=40)
    answer = push(client, ledger_home, POLICE, records)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["accepted"] == 40
    assert body["stored"] == 40
    assert [r["record_id"] for r in body["records"]] == [r.record_id for r in records]
    assert {(r["version"], r["status"]) for r in body["records"]} == {(1, "created")}

    def anchored() -> bool:
        return all(status(client, ledger_home, POLICE, r.record_id).json()["state"] == "anchored" for r in records)

    wait_until(anchored)
    first = status(client, ledger_home, POLICE, records[0].record_id).json()
    assert first["transaction"].startswith("0x")
    assert first["block_number"] > 0

    # Storage holds ciphertext only, hashing to the anchored value; the owner's key opens it.
    blobs = blob_store_from_settings(ledger_home.settings.blob_store_url)
    blob = blobs.get(first["ciphertext_hash"])
    assert records[0].source.native_id.encode() not in blob
    keystore = OrgKeystore.open(ledger_home.settings.keystore_dir, master_secret=DEMO_MASTER_SECRET, demo=True)
    opened = open_record(
        blob,
        org_id=POLICE,
        key_index=0,
        private_key=keystore.private_key(POLICE, 0),
        expected_hash=first["ciphertext_hash"],
        expected_commitment=first["commitment"],
        commitment_scheme=RECORD_COMMITMENT,
    )
    assert CanonicalRecord.model_validate_json(opened.plaintext) == records[0]

    # The batch manifest in storage rebuilds the root anchored on chain, and proves the record.
    services = client.app.state.services  # type: ignore[attr-defined]
    manifest_key = _manifest_key(services, first["batch_root"])
    manifest = BatchManifest.from_bytes(blobs.get(manifest_key))
    assert manifest.root().hex() == first["batch_root"]
    leaf = RecordLeaf(
        record_id=first["record_id"],
        version=1,
        owner_org=POLICE,
        ciphertext_hash=first["ciphertext_hash"],
        commitment=first["commitment"],
    )
    proof = manifest.tree().inclusion_proof(first["leaf_index"])
    verify_inclusion(
        leaf.leaf_hash(), first["leaf_index"], manifest.tree().size, proof, bytes.fromhex(first["batch_root"])
    )
    from web3 import Web3

    from ledger_api.chain.client import LedgerChain
    from ledger_api.chain.transactor import Transactor

    chain = LedgerChain(
        transactor=Transactor(w3=Web3(Web3.HTTPProvider(ledger_home.settings.rpc_url))),
        deployment=ledger_home.provisioned.deployment,
    )
    assert chain.records.functions.isRecordAnchored(
        bytes.fromhex(leaf.record_id),
        1,
        POLICE.encode().ljust(32, b"\0"),
        bytes.fromhex(leaf.ciphertext_hash),
        bytes.fromhex(leaf.commitment),
        bytes.fromhex(first["batch_root"]),
        first["leaf_index"],
        proof,
    ).call()


def _manifest_key(services: Any, root: str) -> str:
    from sqlmodel import Session, select

    from ledger_api.index.models import AnchorBatch

    with Session(services.engine) as session:
        batch = session.exec(select(AnchorBatch).where(AnchorBatch.root == root)).one()
        return batch.manifest_key


def test_pushing_the_same_records_again_creates_nothing(client: TestClient, ledger_home: Ledger) -> None:
    records = sample_records("police.incidents", POLICE)[40:60]
    assert push(client, ledger_home, POLICE, records).json()["stored"] == 20
    again = push(client, ledger_home, POLICE, records).json()
    assert again["stored"] == 0
    assert {r["status"] for r in again["records"]} == {"unchanged"}
    assert {r["version"] for r in again["records"]} == {1}


def test_changed_content_is_a_new_version(client: TestClient, ledger_home: Ledger) -> None:
    original = sample_records("police.incidents", POLICE)[60]
    push(client, ledger_home, POLICE, [original])
    changed = original.model_copy(update={"attributes": {**original.attributes, "处理结果": "已结案"}})
    answer = push(client, ledger_home, POLICE, [changed]).json()
    assert answer["records"] == [{"record_id": original.record_id, "version": 2, "status": "new_version"}]
    # The same record re-exported at another row of another file is not a new version.
    moved = changed.model_copy(update={"source": changed.source.model_copy(update={"file": "other.csv", "row": 9})})
    assert push(client, ledger_home, POLICE, [moved]).json()["records"][0]["status"] == "unchanged"
    wait_until(lambda: status(client, ledger_home, POLICE, original.record_id).json()["state"] == "anchored")
    assert status(client, ledger_home, POLICE, original.record_id).json()["version"] == 2


def test_a_push_for_a_community_its_owner_does_not_serve_is_stored_as_pushed(
    client: TestClient, ledger_home: Ledger
) -> None:
    """The rule, made explicit (README, "The gateway"): an organisation's registered communities bound what
    it may read in an emergency and what grants name, not where its records happened. A station records an
    incident across its border as it happened; that record is shared only under a grant naming that
    community (the grant check and the auditor both read the community from the anchored manifest)."""
    record = sample_records("police.incidents", POLICE)[61]
    served = client.get("/v1/me", headers=ledger_home.auth(POLICE)).json()
    elsewhere = record.model_copy(update={"community_code": "330199001"})
    assert elsewhere.community_code not in served.get("communities", ())
    answer = push(client, ledger_home, POLICE, [elsewhere])
    assert answer.status_code == 202, answer.text
    wait_until(lambda: status(client, ledger_home, POLICE, record.record_id).json()["state"] == "anchored")
    listed = client.get("/v1/records", params={"community": "330199001"}, headers=ledger_home.auth(POLICE)).json()
    assert [r["record_id"] for r in listed["records"]] == [record.record_id]


def test_a_record_of_another_owner_is_refused_and_nothing_is_stored(client: TestClient, ledger_home: Ledger) -> None:
    mine = sample_records("police.incidents", POLICE)[70:72]
    theirs = sample_records("police.incidents", COMMITTEE)[72]
    answer = push(client, ledger_home, POLICE, [*mine, theirs])
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["errors"] == [{"index": 2, "field": "owner_org", "message": problem["errors"][0]["message"]}]
    assert status(client, ledger_home, POLICE, mine[0].record_id).status_code == 404


def test_a_forged_record_id_is_refused(client: TestClient, ledger_home: Ledger) -> None:
    record = sample_records("police.incidents", POLICE)[80]
    forged = record.model_copy(update={"record_id": "ab" * 32})
    answer = push(client, ledger_home, POLICE, [forged])
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert (error["index"], error["field"]) == (0, "record_id")
    assert "derive_record_id" in error["message"]


def test_another_organisations_record_looks_missing(client: TestClient, ledger_home: Ledger) -> None:
    record = sample_records("police.incidents", POLICE)[90]
    push(client, ledger_home, POLICE, [record])
    theirs = status(client, ledger_home, COMMITTEE, record.record_id)
    missing = status(client, ledger_home, COMMITTEE, "cd" * 32)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["title"] == missing.json()["title"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer lk_000000000000_nope"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["none", "unknown-key", "wrong-scheme"],
)
def test_requests_without_valid_credentials_get_401(client: TestClient, headers: dict[str, str]) -> None:
    record = sample_records("police.incidents", POLICE, limit=1)
    for answer in (
        client.post("/v1/records", json=payload(record), headers=headers),
        client.get(f"/v1/records/{record[0].record_id}/status", headers=headers),
        client.get("/v1/me", headers=headers),
    ):
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_revoked_key_stops_working(client: TestClient, ledger_home: Ledger) -> None:
    from ledger_api.index.apikeys import issue_key, revoke_key

    services = client.app.state.services  # type: ignore[attr-defined]
    issued = issue_key(services.engine, org_id=POLICE)
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert client.get("/v1/me", headers=headers).json() == {"org_id": POLICE}
    revoke_key(services.engine, key_id=issued.key_id)
    # Keys found valid are trusted for `api_key_cache_s` (1 s) without a database lookup: no longer.
    revoked_at = time.monotonic()
    while client.get("/v1/me", headers=headers).status_code != 401:
        assert time.monotonic() - revoked_at < services.settings.api_key_cache_s + 0.5, "still accepted"
        time.sleep(0.05)
    # An unknown or revoked key is never remembered: a fresh key works at once, a wrong one never does.
    fresh = issue_key(services.engine, org_id=POLICE)
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {fresh.token}"}).status_code == 200
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {fresh.token}x"}).status_code == 401


def test_body_over_the_size_limit_is_refused_with_413(client: TestClient, ledger_home: Ledger) -> None:
    limit = ledger_home.settings.max_body_bytes
    answer = client.post(
        "/v1/records",
        content=b"{" + b" " * limit + b"}",
        headers={**ledger_home.auth(POLICE), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["type"].endswith("payload-too-large")


def test_malformed_bodies_are_problem_details(client: TestClient, ledger_home: Ledger) -> None:
    headers = {**ledger_home.auth(POLICE), "Content-Type": "application/json"}
    for body in (b"not json", b"{}", b'{"records": []}', b'{"records": [{"record_id": 1}]}'):
        answer = client.post("/v1/records", content=body, headers=headers)
        assert answer.status_code == 422, body
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == 422


def test_openapi_and_schema_are_published(client: TestClient) -> None:
    spec = client.get("/v1/openapi.json").json()
    assert "/v1/records" in spec["paths"]
    assert "/v1/records/{record_id}/status" in spec["paths"]
    schema = client.get("/v1/schema/record").json()
    assert schema["$id"].endswith("canonical-record:1.0")


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/v1/health").json()["status"] == "ok"
    ready = client.get("/v1/ready").json()
    assert ready["status"] == "ok"
    assert set(ready["checks"]) == {"index", "blobs", "chain", "anchoring"}


def test_import_endpoint_reports_rows_and_stores_records(client: TestClient, ledger_home: Ledger) -> None:
    from tests.conftest import SHARED_DIR

    data = (SHARED_DIR / "samples" / "committee" / "hazard_reports.json").read_bytes()
    params = {"community": "330102002", "file_name": "hazard_reports.json"}
    first = client.post(
        "/v1/import/committee.hazard_reports", content=data, params=params, headers=ledger_home.auth(COMMITTEE)
    )
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["rows"], report["valid"], report["duplicates"], report["bad"]) == (120, 120, [], [])
    unknown = client.post("/v1/import/nope.nothing", content=data, params=params, headers=ledger_home.auth(COMMITTEE))
    assert unknown.status_code == 404
