"""Masked reads through the gateway: a resident's ID number (its native id too) stays hidden while the
grantee still checks the copy against the anchored commitment (v3), and a record version sealed under
v2 before v3 still opens, verifies and proves its anchor."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters import ImportContext, import_file
from adapters.canonical import CanonicalRecord
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.client import GatewayClient
from ledger_api.records import ingest
from ledger_api.records.commitment import COMMITMENT_SCHEME, V2_COMMITMENT, V2_SCHEME, CommitmentOpening, verify_opening
from tests.conftest import SHARED_DIR
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, Ledger, wait_until
from tests.ledger_api.gateway.records import payload, sample_records
from tests.ledger_api.gateway.test_read_devnet import chain_of, read

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]
COMMITTEE_SIGNER = dev_account(3)  # DEMO_ORGANISATIONS


def residents() -> list[CanonicalRecord]:
    records: list[CanonicalRecord] = []
    context = ImportContext(
        owner_org=COMMITTEE, community_code="330102002", as_of=datetime(2025, 4, 1, tzinfo=timezone(timedelta(hours=8)))
    )
    import_file(Path(SHARED_DIR / "samples" / "committee" / "residents.csv"), "committee.residents",
                context=context, sink=records.extend)  # fmt: skip
    return records[:5]


def grant(ledger: Ledger, *, grantee: str, purpose: Purpose, record_type: str, community: str) -> int:
    chain = chain_of(ledger)
    now = chain.latest_timestamp()
    grant_id, _ = chain.create_grant(signer=COMMITTEE_SIGNER, spec=GrantSpec(
        owner_org=COMMITTEE, grantee_org=grantee, purpose=purpose, valid_from=now - 10, valid_until=now + 3600,
        record_types=(record_type,), communities=(community,)))  # fmt: skip
    return grant_id


def assert_checked_by_client_and_anchored(
    client: TestClient, ledger: Ledger, reader: str, body: dict[str, Any], purpose: str, grant_id: int
) -> None:
    """The Python client checks the masked copy itself, and the commitment is the one anchored in the leaf."""
    via_client = GatewayClient(api_key=ledger.provisioned.api_keys[reader], http=client)
    assert via_client.read(body["record_id"], purpose=purpose, grant=grant_id)["record"] == body["record"]
    url = f"/v1/records/{body['record_id']}/proof"
    wait_until(lambda: client.get(url, headers=ledger.auth(COMMITTEE)).is_success)
    assert client.get(url, headers=ledger.auth(COMMITTEE)).json()["leaf"]["commitment"] == body["anchor"]["commitment"]


def test_a_masked_read_of_a_resident_hides_its_id_number_everywhere_and_still_verifies(
    client: TestClient, ledger_home: Ledger
) -> None:
    records = residents()
    pushed = client.post("/v1/records", json=payload(records), headers=ledger_home.auth(COMMITTEE))
    assert pushed.status_code == 202, pushed.text
    target = records[0]
    record_id = pushed.json()["records"][0]["record_id"]  # the id the owner's gateway gave it
    id_number = target.subjects[0].id_number
    assert id_number is not None
    assert target.source.native_id == id_number
    grant_id = grant(ledger_home, grantee=PROPERTY, purpose=Purpose.PROPERTY_MANAGEMENT, record_type="resident",
                     community=target.community_code)  # fmt: skip

    answer = read(client, ledger_home, PROPERTY, record_id, purpose="property_management", grant=grant_id)
    assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    text = json.dumps(body["record"], ensure_ascii=False)
    for hidden in (id_number, id_number[6:14], target.subjects[0].birth_date.isoformat()):  # type: ignore[union-attr]
        assert hidden not in text
    assert body["record"]["source"]["native_id"] == id_number[:6] + "*" * 12
    assert body["record"]["subjects"][0]["gender"] is None
    assert body["record"]["subjects"][0]["phone"] == target.subjects[0].phone  # the purpose needs it
    assert {"source.native_id", "subjects[0].birth_date", "subjects[0].gender"} <= set(body["masked_fields"])
    opening = CommitmentOpening.from_json(body["anchor"]["opening"])
    assert opening.scheme == COMMITMENT_SCHEME
    assert set(opening.masked) == set(body["masked_fields"])
    assert verify_opening(body["record"], opening, body["anchor"]["commitment"])
    assert_checked_by_client_and_anchored(client, ledger_home, PROPERTY, body, "property_management", grant_id)


def test_a_version_sealed_under_v2_before_v3_still_opens_and_verifies(
    client: TestClient, ledger_home: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    hazard = sample_records("committee.hazard_reports", COMMITTEE)[3]
    assert hazard.subjects[0].phone
    # The push path as it was before v3: sealed with the v2 commitment.
    with monkeypatch.context() as before_v3:
        before_v3.setattr(ingest, "RECORD_COMMITMENT", V2_COMMITMENT)
        pushed = client.post("/v1/records", json=payload([hazard]), headers=ledger_home.auth(COMMITTEE))
    assert pushed.status_code == 202, pushed.text
    record_id = pushed.json()["records"][0]["record_id"]

    owner = read(client, ledger_home, COMMITTEE, record_id, purpose="audit").json()  # type: ignore[attr-defined]
    assert CanonicalRecord.model_validate(owner["record"]) == hazard
    opening = CommitmentOpening.from_json(owner["anchor"]["opening"])
    assert opening.scheme == V2_SCHEME
    assert verify_opening(owner["record"], opening, owner["anchor"]["commitment"])

    # A grantee's masked copy (the grid member's phone withheld) opens the v2 commitment as before.
    grant_id = grant(ledger_home, grantee=POLICE, purpose=Purpose.COMMUNITY_GOVERNANCE, record_type="hazard_report",
                     community=hazard.community_code)  # fmt: skip
    body = read(client, ledger_home, POLICE, record_id, purpose="community_governance", grant=grant_id).json()  # type: ignore[attr-defined]
    assert body["masked_fields"] == ["subjects[0].phone"]
    assert hazard.subjects[0].phone not in json.dumps(body["record"])
    opening = CommitmentOpening.from_json(body["anchor"]["opening"])
    assert (opening.scheme, set(opening.masked)) == (V2_SCHEME, {"subjects[0].phone"})
    assert verify_opening(body["record"], opening, body["anchor"]["commitment"])
    assert body["anchor"]["commitment"] == owner["anchor"]["commitment"]
    assert_checked_by_client_and_anchored(client, ledger_home, POLICE, body, "community_governance", grant_id)
