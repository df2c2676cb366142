"""Keyed record ids through the gateway (DESIGN.md invariant 8, Privacy): assigned by the owner's gateway,
useless to anyone testing a guess, and records stored under legacy (v1) ids keep working."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters import ImportContext, import_file
from adapters.canonical import CanonicalRecord, derive_legacy_record_id, derive_record_id
from ledger_api.crypto.keystore import demo_record_id_key
from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from ledger_api.merkle.rfc9162 import decode_proof, verify_inclusion
from ledger_api.records import ingest as ingest_module
from ledger_api.records.leaves import RecordLeaf
from ledger_api.records.reindex import reindex
from tests.conftest import SHARED_DIR
from tests.ledger_api.gateway.conftest import POLICE, Ledger, wait_until
from tests.ledger_api.gateway.records import payload, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def unkeyed_guess(record: CanonicalRecord) -> str:
    """The id anyone could compute from (owner, type, native id) before ids were keyed."""
    parts = (record.owner_org, str(record.record_type), record.source.native_id)
    encoded = b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)
    return hashlib.sha256(b"ledger/record-id/v1\x00" + encoded).hexdigest()


def as_department(records: list[CanonicalRecord]) -> list[CanonicalRecord]:
    """The records as a department machine parses them: without the owner's key, so without ids."""
    return [r.model_copy(update={"record_id": None}) for r in records]


def resident_registry(*, limit: int) -> list[CanonicalRecord]:
    records: list[CanonicalRecord] = []
    context = ImportContext(
        owner_org=POLICE, community_code="330102001", as_of=datetime(2025, 4, 1, tzinfo=timezone(timedelta(hours=8)))
    )
    import_file(SHARED_DIR / "samples" / "committee" / "residents.csv", "committee.residents", context=context,
                sink=records.extend)  # fmt: skip
    assert {r.record_id for r in records} == {None}
    return records[:limit]


@pytest.fixture(scope="module")
def services(ledger_home: Ledger) -> Iterator[GatewayServices]:
    built = GatewayServices.from_settings(ledger_home.settings)
    yield built
    built.close()


@pytest.fixture(scope="module")
def gateway(services: GatewayServices) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        yield client


def push(client: TestClient, ledger: Ledger, records: list[CanonicalRecord]) -> list[dict[str, Any]]:
    answer = client.post("/v1/records", json=payload(records), headers=ledger.auth(POLICE))
    assert answer.status_code == 202, answer.text
    outcomes: list[dict[str, Any]] = answer.json()["records"]
    return outcomes


def anchored(client: TestClient, ledger: Ledger, record_id: str) -> bool:
    answer = client.get(f"/v1/records/{record_id}/status", headers=ledger.auth(POLICE))
    return answer.status_code == 200 and answer.json()["state"] == "anchored"


def test_the_gateway_assigns_keyed_ids_that_no_unkeyed_guess_matches(gateway: TestClient, ledger_home: Ledger) -> None:
    residents = resident_registry(limit=5)  # their native id is the resident's ID number
    records = [*as_department(sample_records("police.incidents", POLICE, limit=10)), *residents]
    outcomes = push(gateway, ledger_home, records)
    key = demo_record_id_key(POLICE)
    assigned = [o["record_id"] for o in outcomes]
    assert assigned == [derive_record_id(key, POLICE, r.record_type, r.source.native_id) for r in records]
    listed = gateway.get("/v1/records", params={"limit": 500}, headers=ledger_home.auth(POLICE)).json()["records"]
    ids = {r["record_id"] for r in listed}
    assert set(assigned) <= ids
    assert not {unkeyed_guess(r) for r in records} & ids

    # The same export again: the same ids, nothing new.
    again = push(gateway, ledger_home, records)
    assert [o["record_id"] for o in again] == assigned
    assert {o["status"] for o in again} == {"unchanged"}


def test_a_record_stored_under_a_legacy_id_still_opens_verifies_and_is_not_duplicated(
    gateway: TestClient, services: GatewayServices, ledger_home: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = sample_records("police.incidents", POLICE)[40]
    legacy_id = derive_legacy_record_id(POLICE, record.record_type, record.source.native_id)

    def as_before(*, key: bytes, records: list[CanonicalRecord], stored: object) -> tuple[list[CanonicalRecord], list]:
        # The write path before keyed ids: the record stored under the unkeyed id.
        return [r.model_copy(update={"record_id": legacy_id}) for r in records], []

    with monkeypatch.context() as patch:
        patch.setattr(ingest_module, "assign_record_ids", as_before)
        (outcome,) = push(gateway, ledger_home, [record])
    assert (outcome["record_id"], outcome["status"]) == (legacy_id, "created")
    wait_until(lambda: anchored(gateway, ledger_home, legacy_id))

    read = gateway.get(
        f"/v1/records/{legacy_id}", params={"purpose": "investigation"}, headers=ledger_home.auth(POLICE)
    )
    assert read.status_code == 200, read.text
    assert read.json()["record"]["record_id"] == legacy_id
    proof = gateway.get(f"/v1/records/{legacy_id}/proof", headers=ledger_home.auth(POLICE)).json()
    leaf = RecordLeaf(**proof["leaf"])
    assert leaf.record_id == legacy_id
    verify_inclusion(
        leaf.leaf_hash(), proof["leaf_index"], proof["tree_size"], decode_proof(proof["inclusion_path"]),
        bytes.fromhex(proof["batch_root"]),
    )  # fmt: skip

    # Re-importing the old export (no id, or the id the gateway once answered): the same record, unchanged.
    for pushed in (as_department([record]), [record.model_copy(update={"record_id": legacy_id})]):
        (again,) = push(gateway, ledger_home, pushed)
        assert (again["record_id"], again["version"], again["status"]) == (legacy_id, 1, "unchanged")

    # The index rebuilt from chain and storage holds the legacy id, and the re-push still finds it.
    report = reindex(
        engine=services.engine, blobs=services.blobs, keystore=services.keystore, rpc=services.rpc,
        deployment=services.deployment,
    )  # fmt: skip
    assert report.skipped == ()
    changed = record.model_copy(update={"record_id": None, "attributes": {**record.attributes, "备注": "复核"}})
    (next_version,) = push(gateway, ledger_home, [changed])
    assert (next_version["record_id"], next_version["version"]) == (legacy_id, 2)
    status = gateway.get(f"/v1/records/{record.record_id}/status", headers=ledger_home.auth(POLICE))
    assert status.status_code == 404  # no second record under the keyed id

    erased = gateway.delete(f"/v1/records/{legacy_id}", headers=ledger_home.auth(POLICE))
    assert erased.status_code == 200, erased.text


def test_the_record_id_key_is_in_no_blob_manifest_index_or_transaction(
    gateway: TestClient, services: GatewayServices, ledger_home: Ledger
) -> None:
    outcomes = push(gateway, ledger_home, as_department(sample_records("police.incidents", POLICE)[60:80]))
    wait_until(lambda: all(anchored(gateway, ledger_home, o["record_id"]) for o in outcomes))
    key = services.keystore.record_id_key(POLICE)
    needles = (key, key.hex().encode(), key.hex().upper().encode())
    home = ledger_home.settings.home
    stored = [p for p in (home / "blobs").rglob("*") if p.is_file()]
    stored += [p for p in home.glob("index.db*") if p.is_file()]
    assert len(stored) > 20
    assert [p for p in stored if any(n in p.read_bytes() for n in needles)] == []
    calldata = []
    for number in range(services.rpc.block_number() + 1):
        block = services.rpc.call("eth_getBlockByNumber", [hex(number), True])
        calldata += [tx["input"].lower() for tx in block["transactions"]]
    assert len(calldata) > 5
    assert [data for data in calldata if key.hex() in data] == []
