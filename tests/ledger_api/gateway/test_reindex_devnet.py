"""`ledger reindex` rebuilds the index from chain events and storage alone (DESIGN.md invariant 3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from ledger_api.crypto.envelope import shred
from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import AccessLogEntryRow, AccessLogHeadRow, AnchorBatch, RecordVersion, SubjectLink
from ledger_api.merkle.rfc9162 import decode_proof, verify_consistency, verify_inclusion
from ledger_api.records.erasure import Erasure
from ledger_api.records.reindex import ReindexReport, reindex
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, Ledger, wait_until
from tests.ledger_api.gateway.records import payload, sample_records
from tests.ledger_api.gateway.test_read_devnet import chain_of

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def snapshot(services: GatewayServices) -> dict[tuple[str, int], tuple[object, ...]]:
    with Session(services.engine) as session:
        rows = session.exec(
            select(RecordVersion, AnchorBatch).join(
                AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id), isouter=True
            )
        ).all()
        return {
            (r.record_id, r.version): (
                r.owner_org, r.record_type, r.community_code, r.occurred_at, r.fingerprint, r.blob_key, r.commitment,
                r.key_index, r.leaf_index, b.root if b else None, b.state if b else None,
                b.block_number if b else None,
            )
            for r, b in rows
        }  # fmt: skip


def links(services: GatewayServices) -> set[tuple[str, str, str]]:
    with Session(services.engine) as session:
        return {(x.blind_index, x.kind, x.record_id) for x in session.exec(select(SubjectLink)).all()}


@pytest.fixture
def services(ledger_home: Ledger) -> Iterator[GatewayServices]:
    built = GatewayServices.from_settings(ledger_home.settings)
    yield built
    built.close()


def test_reindex_rebuilds_anchored_and_pending_records(services: GatewayServices, ledger_home: Ledger) -> None:
    anchored_first = sample_records("police.incidents", POLICE, limit=50)
    changed = anchored_first[0].model_copy(update={"attributes": {**anchored_first[0].attributes, "备注": "复核"}})
    hazards = sample_records("committee.hazard_reports", COMMITTEE, limit=30)
    with TestClient(create_app(services)) as client:
        for org, batch in ((POLICE, anchored_first), (POLICE, [changed]), (COMMITTEE, hazards)):
            assert client.post("/v1/records", json=payload(batch), headers=ledger_home.auth(org)).status_code == 202

        def all_anchored() -> bool:
            return all(v[-2] == "anchored" for v in snapshot(services).values())

        wait_until(all_anchored)
    # Pushed while no worker runs: acknowledged, not yet anchored.
    pending = sample_records("property.access_events", "PM-LVCHENG-01", limit=20)
    with TestClient(create_app(services, run_worker=False)) as client:
        assert (
            client.post("/v1/records", json=payload(pending), headers=ledger_home.auth("PM-LVCHENG-01")).status_code
            == 202
        )

    before, before_links = snapshot(services), links(services)
    assert len(before) == 50 + 1 + 30 + 20

    report = reindex(
        engine=services.engine,
        blobs=services.blobs,
        keystore=services.keystore,
        rpc=services.rpc,
        deployment=services.deployment,
    )

    after = snapshot(services)
    assert report.pending_records == 20
    assert report.anchored_records == 81
    assert report.skipped == ()
    assert links(services) == before_links
    assert set(after) == set(before)
    for key, row in before.items():
        # Everything but the receive time survives; pending rows stay pending.
        assert after[key] == row, key


def rebuild(services: GatewayServices) -> ReindexReport:
    return reindex(
        engine=services.engine,
        blobs=services.blobs,
        keystore=services.keystore,
        rpc=services.rpc,
        deployment=services.deployment,
    )


def status_of(client: TestClient, ledger: Ledger, org: str, record_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/records/{record_id}/status", headers=ledger.auth(org))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def own_read(client: TestClient, ledger: Ledger, record_id: str) -> Any:
    return client.get(f"/v1/records/{record_id}", params={"purpose": "investigation"}, headers=ledger.auth(POLICE))


def test_erased_records_stay_erased_across_reindex_even_from_storage_alone(
    services: GatewayServices, ledger_home: Ledger
) -> None:
    incidents = sample_records("police.incidents", POLICE)[100:103]
    erased, interrupted, kept = incidents
    with TestClient(create_app(services)) as client:
        assert client.post("/v1/records", json=payload(incidents), headers=ledger_home.auth(POLICE)).status_code == 202
        for record in incidents:
            wait_until(lambda r=record: status_of(client, ledger_home, POLICE, r.record_id)["state"] == "anchored")  # type: ignore[misc]
        before = {r.record_id: status_of(client, ledger_home, POLICE, r.record_id) for r in incidents}
        receipt = client.delete(f"/v1/records/{erased.record_id}", headers=ledger_home.auth(POLICE)).json()
        assert receipt["newly_erased"] == 1
        assert own_read(client, ledger_home, erased.record_id).status_code == 410
    # An erasure interrupted after storing the shredded blob: the index never heard of it, the original is
    # still there. The owner asked for it; a rebuild must not bring the record back.
    interrupted_key = before[interrupted.record_id]["ciphertext_hash"]
    services.blobs.put(shred(services.blobs.get(interrupted_key)))

    report = rebuild(services)

    assert report.erased_records == 2
    assert report.skipped == ()
    assert not services.blobs.exists(interrupted_key), "the left-behind original still holds wrapped keys"
    with Session(services.engine) as session:
        rows = {
            r.record_id: r
            for r in session.exec(
                select(RecordVersion).where(col(RecordVersion.record_id).in_([r.record_id for r in incidents]))
            ).all()
        }
        erasures = {e.record_id: e for e in session.exec(select(Erasure)).all()}
    assert rows[erased.record_id].shredded_at is not None
    assert rows[erased.record_id].community_code == erased.community_code, "metadata kept from the old index"
    assert rows[interrupted.record_id].shredded_at is not None
    assert rows[kept.record_id].shredded_at is None
    assert erasures[interrupted.record_id].erased_by == POLICE, "the missing erasures row is restored"
    with TestClient(create_app(services)) as client:
        assert own_read(client, ledger_home, erased.record_id).status_code == 410
        assert own_read(client, ledger_home, interrupted.record_id).status_code == 410
        assert own_read(client, ledger_home, kept.record_id).status_code == 200
        for record in incidents:
            # Status and proofs keep the anchored hash and batch: the chain still proves the original leaf.
            after = status_of(client, ledger_home, POLICE, record.record_id)
            for field in ("ciphertext_hash", "commitment", "batch_root", "leaf_index", "state"):
                assert after[field] == before[record.record_id][field], (record.record_id, field)
            assert (
                client.get(f"/v1/records/{record.record_id}/proof", headers=ledger_home.auth(POLICE)).status_code == 200
            )
        again = client.delete(f"/v1/records/{erased.record_id}", headers=ledger_home.auth(POLICE)).json()
        assert again["versions"] == receipt["versions"]
        assert again["newly_erased"] == 0

    # A brand-new database, rebuilt from the chain and storage alone: still erased, never resurrected.
    fresh_settings = ledger_home.settings.model_copy(
        update={"database_url": f"sqlite:///{ledger_home.settings.home.resolve() / 'fresh-index.db'}"}
    )
    fresh = GatewayServices.from_settings(fresh_settings)
    try:
        fresh_report = rebuild(fresh)
        assert fresh_report.skipped == ()
        assert fresh_report.erased_records == 2
        with Session(fresh.engine) as session:
            rebuilt = {
                r.record_id: r
                for r in session.exec(
                    select(RecordVersion).where(col(RecordVersion.record_id).in_([r.record_id for r in incidents]))
                ).all()
            }
        for record in (erased, interrupted):
            row = rebuilt[record.record_id]
            assert row.shredded_at is not None
            # Type and community come from the anchored manifest (the plaintext is gone); the anchor stays.
            assert (row.record_type, row.community_code) == ("incident", record.community_code)
            assert row.blob_key == before[record.record_id]["ciphertext_hash"]
        with TestClient(create_app(fresh, run_worker=False)) as client:
            for record in (erased, interrupted):
                gone = own_read(client, ledger_home, record.record_id)
                assert gone.status_code == 410, gone.text
                assert (
                    status_of(client, ledger_home, POLICE, record.record_id)["ciphertext_hash"]
                    == (before[record.record_id]["ciphertext_hash"])
                )
            assert own_read(client, ledger_home, kept.record_id).status_code == 200
    finally:
        fresh.close()


def test_reindex_keeps_the_access_log_and_reads_append_to_it(services: GatewayServices, ledger_home: Ledger) -> None:
    record = sample_records("police.incidents", POLICE)[110]
    chain = chain_of(ledger_home)
    with TestClient(create_app(services)) as client:
        assert client.post("/v1/records", json=payload([record]), headers=ledger_home.auth(POLICE)).status_code == 202
        first = own_read(client, ledger_home, record.record_id)
        assert first.status_code == 200, first.text
        index = first.json()["access"]["entry_index"]

        def entry_proof() -> Any:
            return client.get(f"/v1/access-log/entries/{index}/proof", headers=ledger_home.auth(POLICE))

        wait_until(lambda: entry_proof().status_code == 200)
        proof_before = entry_proof().json()
        heads_before = client.get("/v1/access-log/heads", headers=ledger_home.auth(POLICE)).json()["heads"]
    with Session(services.engine) as session:
        entries_before = session.exec(select(AccessLogEntryRow.seq, AccessLogEntryRow.leaf_hash)).all()
        head_rows_before = session.exec(select(AccessLogHeadRow.size, AccessLogHeadRow.root)).all()

    rebuild(services)

    with Session(services.engine) as session:
        assert session.exec(select(AccessLogEntryRow.seq, AccessLogEntryRow.leaf_hash)).all() == entries_before
        assert session.exec(select(AccessLogHeadRow.size, AccessLogHeadRow.root)).all() == head_rows_before
    with TestClient(create_app(services)) as client:
        assert client.get(f"/v1/access-log/entries/{index}/proof", headers=ledger_home.auth(POLICE)).json() == (
            proof_before
        )
        second = own_read(client, ledger_home, record.record_id)
        assert second.status_code == 200, second.text
        next_index = second.json()["access"]["entry_index"]
        assert next_index == len(entries_before), "the next read appends to the same log, after every old entry"

        def newer_head() -> list[dict[str, Any]]:
            heads: list[dict[str, Any]] = client.get("/v1/access-log/heads", headers=ledger_home.auth(POLICE)).json()[
                "heads"
            ]
            return [h for h in heads if h["size"] > next_index]

        wait_until(lambda: bool(newer_head()))
        new_head = newer_head()[-1]
        old_head = heads_before[-1]
        consistency = client.get(
            "/v1/access-log/consistency",
            params={"from_size": old_head["size"], "to_size": new_head["size"]},
            headers=ledger_home.auth(POLICE),
        )
        assert consistency.status_code == 200, consistency.text
    # Both heads are the chain's, and the new one extends the old: the log only grew across the rebuild.
    old_root = chain.access_log.functions.headAt(old_head["index"]).call()[0]
    new_root = chain.access_log.functions.headAt(new_head["index"]).call()[0]
    verify_consistency(
        old_head["size"], new_head["size"], old_root, new_root, decode_proof(consistency.json()["proof"])
    )
    body = proof_before
    on_chain = chain.access_log.functions.headAt(body["head"]["index"]).call()
    verify_inclusion(
        bytes.fromhex(body["leaf_hash"]), index, body["tree_size"], decode_proof(body["inclusion_path"]), on_chain[0]
    )
