"""`ledger reindex` rebuilds the index from chain events and storage alone (DESIGN.md invariant 3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import AnchorBatch, RecordVersion, SubjectLink
from ledger_api.records.reindex import reindex
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, Ledger, wait_until
from tests.ledger_api.gateway.records import payload, sample_records

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
