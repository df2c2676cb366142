"""Erasure by crypto-shredding: the owner destroys every wrapped key; reads answer 410, anchors still verify."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from ledger_api.chain.devnet import dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.crypto.envelope import parse_blob
from ledger_api.index.models import AnchorBatch
from ledger_api.records.leaves import BatchManifest, RecordLeaf
from ledger_api.storage import blob_store_from_settings
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, Ledger, wait_until
from tests.ledger_api.gateway.records import payload, sample_records
from tests.ledger_api.gateway.test_read_devnet import chain_of, read

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def status(client: TestClient, ledger: Ledger, org: str, record_id: str) -> Any:
    return client.get(f"/v1/records/{record_id}/status", headers=ledger.auth(org))


def erase(client: TestClient, ledger: Ledger, org: str, record_id: str) -> Any:
    return client.delete(f"/v1/records/{record_id}", headers=ledger.auth(org))


def test_the_owner_shreds_a_record_reads_answer_410_and_the_anchor_still_verifies(
    client: TestClient, ledger_home: Ledger
) -> None:
    target = sample_records("police.incidents", POLICE)[60]
    assert client.post("/v1/records", json=payload([target]), headers=ledger_home.auth(POLICE)).status_code == 202
    wait_until(lambda: status(client, ledger_home, POLICE, target.record_id).json()["state"] == "anchored")
    before = status(client, ledger_home, POLICE, target.record_id).json()
    original_key = before["ciphertext_hash"]

    chain = chain_of(ledger_home)
    now = chain.latest_timestamp()
    grant_id, _ = chain.create_grant(signer=dev_account(1), spec=GrantSpec(
        owner_org=POLICE, grantee_org=COMMITTEE, purpose=Purpose.INVESTIGATION, valid_from=now - 10,
        valid_until=now + 3600, record_types=("incident",), communities=(target.community_code,)))  # fmt: skip
    granted = read(client, ledger_home, COMMITTEE, target.record_id, purpose="investigation", grant=grant_id)
    assert granted.status_code == 200, granted.text  # type: ignore[attr-defined]

    # Another organisation (even the grantee) cannot erase: the record looks missing, nothing changes.
    blobs = blob_store_from_settings(ledger_home.settings.blob_store_url)
    for other in (PROPERTY, COMMITTEE):
        refused = erase(client, ledger_home, other, target.record_id)
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert blobs.exists(original_key)
    assert read(client, ledger_home, POLICE, target.record_id, purpose="investigation").status_code == 200  # type: ignore[attr-defined]

    answer = erase(client, ledger_home, POLICE, target.record_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["newly_erased"] == 1
    (version,) = body["versions"]
    assert version["version"] == 1
    assert version["ciphertext_hash"] == original_key

    # Reads answer 410 for the owner and for the grantee.
    for org, params in ((POLICE, {}), (COMMITTEE, {"grant": grant_id})):
        gone = read(client, ledger_home, org, target.record_id, purpose="investigation", **params)
        assert gone.status_code == 410, gone.text  # type: ignore[attr-defined]
        assert gone.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]

    # The original blob (the only holder of the wrapped keys) is gone; what remains has no wrapped key.
    assert not blobs.exists(original_key)
    shredded = blobs.get(version["shredded_blob_key"])
    parsed = parse_blob(shredded)
    assert parsed.wrapped_keys == ()
    assert parsed.shredded is True
    assert target.source.native_id.encode() not in shredded

    # Status keeps the anchored hash; the chain still proves the original leaf.
    after = status(client, ledger_home, POLICE, target.record_id).json()
    assert after["ciphertext_hash"] == original_key
    assert after["batch_root"] == before["batch_root"]
    services = client.app.state.services  # type: ignore[attr-defined]
    with Session(services.engine) as session:
        batch = session.exec(select(AnchorBatch).where(AnchorBatch.root == before["batch_root"])).one()
    manifest = BatchManifest.from_bytes(blobs.get(batch.manifest_key))
    leaf = RecordLeaf(
        record_id=target.record_id, version=1, owner_org=POLICE, ciphertext_hash=original_key,
        commitment=before["commitment"],
    )  # fmt: skip
    proof = manifest.tree().inclusion_proof(before["leaf_index"])
    assert manifest.tree().leaf_hash_at(before["leaf_index"]) == leaf.leaf_hash()
    assert chain.records.functions.isRecordAnchored(
        bytes.fromhex(target.record_id), 1, POLICE.encode().ljust(32, b"\0"), bytes.fromhex(original_key),
        bytes.fromhex(before["commitment"]), bytes.fromhex(before["batch_root"]), before["leaf_index"], proof,
    ).call()  # fmt: skip

    # Idempotent: erasing again answers 200 with the same versions and nothing newly erased.
    again = erase(client, ledger_home, POLICE, target.record_id)
    assert again.status_code == 200, again.text
    assert again.json()["versions"] == body["versions"]
    assert again.json()["newly_erased"] == 0


def test_erasing_an_unknown_record_is_404(client: TestClient, ledger_home: Ledger) -> None:
    assert erase(client, ledger_home, POLICE, "0" * 64).status_code == 404


def test_a_suspended_owner_cannot_shred_its_records(client: TestClient, ledger_home: Ledger) -> None:
    """Before: 200, and a suspended organisation (suspended, say, over misuse) destroyed the evidence."""
    target = sample_records("committee.hazard_reports", COMMITTEE)[3]
    assert client.post("/v1/records", json=payload([target]), headers=ledger_home.auth(COMMITTEE)).status_code == 202
    wait_until(lambda: status(client, ledger_home, COMMITTEE, target.record_id).json()["state"] == "anchored")
    blob_key = status(client, ledger_home, COMMITTEE, target.record_id).json()["ciphertext_hash"]
    chain = chain_of(ledger_home)
    chain.suspend_organisation(signer=dev_account(0), org_id=COMMITTEE)
    try:
        refused = erase(client, ledger_home, COMMITTEE, target.record_id)
    finally:
        chain.reinstate_organisation(signer=dev_account(0), org_id=COMMITTEE)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == f"organisation {COMMITTEE} is suspended on chain"
    assert blob_store_from_settings(ledger_home.settings.blob_store_url).exists(blob_key)
    assert status(client, ledger_home, COMMITTEE, target.record_id).json()["state"] == "anchored"
