"""Emergency reads are listed for mandatory review: to the owner of the record read, not to others."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, Ledger
from tests.ledger_api.gateway.records import BREAK_GLASS, in_community, payload, sample_records
from tests.ledger_api.gateway.test_read_devnet import read

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def review(client: TestClient, ledger: Ledger, org: str, **params: object) -> Any:
    return client.get("/v1/review/emergency-reads", params=params, headers=ledger.auth(org))


def all_reads(client: TestClient, ledger: Ledger, org: str) -> list[dict[str, Any]]:
    reads: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        params: dict[str, object] = {"limit": 1}
        if after is not None:
            params["after"] = after
        answer = review(client, ledger, org, **params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        reads.extend(body["reads"])
        after = body["next_after"]
        if after is None:
            return reads


def test_the_owner_reviews_emergency_reads_of_its_records_and_others_do_not_see_them(
    client: TestClient, ledger_home: Ledger
) -> None:
    (hazard,) = in_community(sample_records("committee.hazard_reports", COMMITTEE)[3:4])
    assert client.post("/v1/records", json=payload([hazard]), headers=ledger_home.auth(COMMITTEE)).status_code == 202
    # An ordinary (owner) read is not an emergency read and is not listed.
    assert read(client, ledger_home, COMMITTEE, hazard.record_id, purpose="audit").status_code == 200  # type: ignore[attr-defined]
    police = read(client, ledger_home, POLICE, hazard.record_id, **BREAK_GLASS)
    assert police.status_code == 200, police.text  # type: ignore[attr-defined]
    access = police.json()["access"]  # type: ignore[attr-defined]
    assert access["emergency"] is True

    listed = all_reads(client, ledger_home, COMMITTEE)  # paginated one by one
    mine = [r for r in listed if r["record_id"] == hazard.record_id]
    assert len(mine) == 1
    (entry,) = mine
    assert entry == {
        "entry_index": access["entry_index"], "accessor_org": POLICE, "record_id": hazard.record_id, "version": 1,
        "owner_org": COMMITTEE, "purpose": "emergency_response", "time": entry["time"],
        "request_id": access["request_id"], "checked_block": access["checked_block"],
        "reason_class": BREAK_GLASS["reason_class"], "reason": BREAK_GLASS["reason"],
        "incident_ref": BREAK_GLASS["incident_ref"],
    }  # fmt: skip
    assert all(r["owner_org"] == COMMITTEE for r in listed)
    first = review(client, ledger_home, COMMITTEE).json()
    assert first["scope"] == "own-records"

    # The property company owns none of it and sees nothing of it; nor does the reader (not the owner).
    for other in (PROPERTY, POLICE):
        seen = all_reads(client, ledger_home, other)
        assert hazard.record_id not in {r["record_id"] for r in seen}


def test_review_needs_an_api_key(client: TestClient) -> None:
    answer = client.get("/v1/review/emergency-reads")
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")
