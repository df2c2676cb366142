"""The read path: grants as the chain holds them, masking by purpose, every read logged first."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from adapters.canonical import CanonicalRecord, canonical_json
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.transactor import Transactor
from ledger_api.client import GatewayClient
from ledger_api.records.commitment import RECORD_COMMITMENT, CommitmentOpening, verify_opening
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, PROPERTY, Ledger, wait_until
from tests.ledger_api.gateway.records import BREAK_GLASS, in_community, payload, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def chain_of(ledger: Ledger) -> LedgerChain:
    return LedgerChain(
        transactor=Transactor.from_url(ledger.settings.rpc_url), deployment=ledger.provisioned.deployment
    )


def read(client: TestClient, ledger: Ledger, org: str, record_id: str, **params: object) -> object:
    return client.get(f"/v1/records/{record_id}", params=params, headers=ledger.auth(org))


def test_a_grant_opens_reads_for_its_purpose_and_a_revoke_closes_them_at_once(
    client: TestClient, ledger_home: Ledger
) -> None:
    incidents = [r for r in sample_records("police.incidents", POLICE)[:30] if any(s.id_number for s in r.subjects)]
    assert client.post("/v1/records", json=payload(incidents), headers=ledger_home.auth(POLICE)).status_code == 202
    target = incidents[0]
    services = client.app.state.services  # type: ignore[attr-defined]

    # No grant: the record does not exist for the committee, in reads and in listings.
    assert read(client, ledger_home, COMMITTEE, target.record_id, purpose="elderly_care").status_code == 404  # type: ignore[attr-defined]
    listed = client.get("/v1/records", headers=ledger_home.auth(COMMITTEE)).json()["records"]
    assert target.record_id not in {r["record_id"] for r in listed}

    chain = chain_of(ledger_home)
    now = chain.latest_timestamp()
    grant_id, _ = chain.create_grant(signer=dev_account(1), spec=GrantSpec(
        owner_org=POLICE, grantee_org=COMMITTEE, purpose=Purpose.ELDERLY_CARE, valid_from=now - 10,
        valid_until=now + 3600, record_types=("incident",), communities=(target.community_code,)))  # fmt: skip

    size_before = services.access_log.size
    answer = read(client, ledger_home, COMMITTEE, target.record_id, purpose="elderly_care", grant=grant_id)
    assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    subject = next(s for s in body["record"]["subjects"] if s["id_number"])
    original = next(s for s in target.subjects if s.id_number)
    assert subject["id_number"] != original.id_number
    assert "*" in subject["id_number"]
    assert any(path.endswith("id_number") for path in body["masked_fields"])
    # Masked, yet the grantee checks what it received against the commitment: the opening gives the digest
    # of each masked value (not its field salt) and the field salt of each value received in clear.
    opening = CommitmentOpening.from_json(body["anchor"]["opening"])
    assert set(opening.masked) == {p for p in body["masked_fields"]}
    assert verify_opening(body["record"], opening, body["anchor"]["commitment"])
    forged = json.loads(json.dumps(body["record"]))
    forged["location"]["text"] = "somewhere else"
    assert not verify_opening(forged, opening, body["anchor"]["commitment"])
    # ... and that commitment is the one in the record's leaf, included under the root anchored on chain.
    wait_until(lambda: client.get(f"/v1/records/{target.record_id}/proof", headers=ledger_home.auth(POLICE)).is_success)
    proof = client.get(f"/v1/records/{target.record_id}/proof", headers=ledger_home.auth(POLICE)).json()
    assert proof["leaf"]["commitment"] == body["anchor"]["commitment"]
    assert body["access"]["grant_id"] == grant_id
    assert body["access"]["emergency"] is False
    # The access entry was durable before the answer: it is in the log, at the index the answer names.
    assert services.access_log.size == size_before + 1
    entry = services.access_log.entry(body["access"]["entry_index"])
    assert (entry.accessor_org, entry.record_id, entry.grant_id, entry.purpose) == (
        COMMITTEE, target.record_id, grant_id, "elderly_care")  # fmt: skip

    # The Python client checks every read against its commitment itself.
    via_client = GatewayClient(api_key=ledger_home.provisioned.api_keys[COMMITTEE], http=client)
    assert via_client.read(target.record_id, purpose="elderly_care", grant=grant_id)["record"] == body["record"]

    listed = client.get("/v1/records", headers=ledger_home.auth(COMMITTEE)).json()["records"]
    in_scope = {r.record_id for r in incidents if r.community_code == target.community_code}
    assert in_scope <= {r["record_id"] for r in listed}

    wrong_purpose = read(client, ledger_home, COMMITTEE, target.record_id, purpose="investigation", grant=grant_id)
    assert wrong_purpose.status_code == 403  # type: ignore[attr-defined]
    assert "WRONG_PURPOSE" in wrong_purpose.json()["detail"]  # type: ignore[attr-defined]
    other = read(client, ledger_home, PROPERTY, target.record_id, purpose="elderly_care", grant=grant_id)
    assert other.status_code == 404  # type: ignore[attr-defined]

    chain.revoke_grant(signer=dev_account(1), grant_id=grant_id)
    revoked = read(client, ledger_home, COMMITTEE, target.record_id, purpose="elderly_care", grant=grant_id)
    assert revoked.status_code == 403  # type: ignore[attr-defined]
    assert "REVOKED" in revoked.json()["detail"]  # type: ignore[attr-defined]
    # Two releases and three refusals (wrong purpose, a grant of another grantee, revoked): each one logged.
    assert services.access_log.size == size_before + 5
    refused = services.access_log.entry(services.access_log.size - 1)
    assert (refused.kind, refused.accessor_org, refused.record_id, refused.grant_id, refused.refusal) == (
        "refusal", COMMITTEE, target.record_id, grant_id, "REVOKED")  # fmt: skip


def test_the_owner_reads_in_clear_and_checks_the_commitment(client: TestClient, ledger_home: Ledger) -> None:
    record = sample_records("police.incidents", POLICE)[40]
    client.post("/v1/records", json=payload([record]), headers=ledger_home.auth(POLICE))
    body = read(client, ledger_home, POLICE, record.record_id, purpose="investigation").json()  # type: ignore[attr-defined]
    assert body["masked_fields"] == []
    received = CanonicalRecord.model_validate(body["record"])
    assert received == record
    # The owner sees everything in clear: the opening reveals every field salt and masks nothing.
    opening = CommitmentOpening.from_json(body["anchor"]["opening"])
    assert opening.masked == {}
    assert verify_opening(json.loads(canonical_json(received)), opening, body["anchor"]["commitment"])
    assert RECORD_COMMITMENT.name == opening.scheme
    wait_until(lambda: read(client, ledger_home, POLICE, record.record_id, purpose="audit").json()["anchor"][  # type: ignore[attr-defined]
        "transaction"] is not None)  # fmt: skip


def test_emergency_reads_are_for_configured_kinds_and_flagged(client: TestClient, ledger_home: Ledger) -> None:
    (hazard,) = in_community(sample_records("committee.hazard_reports", COMMITTEE)[7:8])
    client.post("/v1/records", json=payload([hazard]), headers=ledger_home.auth(COMMITTEE))
    police = read(client, ledger_home, POLICE, hazard.record_id, **BREAK_GLASS)
    assert police.status_code == 200  # type: ignore[attr-defined]
    access = police.json()["access"]  # type: ignore[attr-defined]
    assert access["emergency"] is True
    assert access["grant_id"] == 0
    incident = sample_records("police.incidents", POLICE)[50]
    client.post("/v1/records", json=payload([incident]), headers=ledger_home.auth(POLICE))
    committee = read(client, ledger_home, COMMITTEE, incident.record_id, **BREAK_GLASS)
    assert committee.status_code == 404  # type: ignore[attr-defined]


def test_an_unknown_query_parameter_is_named_not_ignored(client: TestClient, ledger_home: Ledger) -> None:
    """A misspelt filter must not silently widen a listing to everything."""
    answer = client.get("/v1/records", params={"comunity": "330102001"}, headers=ledger_home.auth(POLICE))
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"location": "query/comunity", "message": "unknown query parameter", "type": "extra_forbidden"}
    ]
    assert client.get("/v1/records", params={"community": "330102001"}, headers=ledger_home.auth(POLICE)).is_success
    # Anonymous callers learn nothing from it: authentication comes first.
    assert client.get("/v1/records", params={"comunity": "330102001"}).status_code == 401
