"""End to end on a devnet: records pushed and read through the gateway, then the auditor's commands on chain
and storage only: ``ledger audit consortium-key``, ``ledger audit report``, ``ledger audit subject``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.canonical import Subject
from tests.ledger_api.gateway.conftest import (  # noqa: F401 - fixtures used by name
    COMMITTEE,
    POLICE,
    Ledger,
    client,
    ledger_home,
    wait_until,
)
from tests.ledger_api.gateway.records import BREAK_GLASS, in_community, payload, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def test_report_and_subject_access_from_chain_and_storage(
    client: TestClient,  # noqa: F811 - the imported fixture
    ledger_home: Ledger,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ledger_api.cli import main

    incident = next(r for r in sample_records("police.incidents", POLICE)[40:] if any(s.id_number for s in r.subjects))
    person = next(s.id_number for s in incident.subjects if s.id_number)
    assert person is not None
    hazards = in_community(sample_records("committee.hazard_reports", COMMITTEE)[:3])
    about_person = hazards[0].model_copy(
        update={"subjects": (*hazards[0].subjects, Subject(role="reporter", id_number=person))}
    )
    others = [h for h in hazards[1:] if all(s.id_number != person for s in h.subjects)]
    for org, records in ((POLICE, [incident]), (COMMITTEE, [about_person, *others])):
        assert client.post("/v1/records", json=payload(records), headers=ledger_home.auth(org)).status_code == 202

    def reads_ok(org: str, record_id: str, purpose: str) -> None:
        """Read once successfully (retried only while the pushed record is not yet readable)."""
        path, headers = f"/v1/records/{record_id}", ledger_home.auth(org)
        params = BREAK_GLASS if purpose == "emergency_response" else {"purpose": purpose}
        wait_until(lambda: client.get(path, params=params, headers=headers).status_code == 200)

    reads_ok(POLICE, incident.record_id, "investigation")  # the owner's own read
    reads_ok(POLICE, about_person.record_id, "emergency_response")  # an emergency read about the person
    for hazard in others:
        reads_ok(POLICE, hazard.record_id, "emergency_response")  # emergency reads about someone else
    reads_ok(COMMITTEE, about_person.record_id, "community_governance")

    settings = ledger_home.settings
    monkeypatch.setenv("LEDGER_HOME", str(settings.home))
    monkeypatch.setenv("LEDGER_RPC_URL", settings.rpc_url)
    monkeypatch.setenv("LEDGER_BLOB_STORE", settings.blob_store_url)
    out = tmp_path / "report"

    def report() -> dict[str, Any]:
        code = main(["audit", "report", "--out", str(out)])
        capsys.readouterr()
        document: dict[str, Any] = json.loads((out / "audit-report.json").read_text(encoding="utf-8"))
        assert code == (0 if document["summary"]["ok"] else 1)
        return document

    # The access log's tree heads are anchored within about a second of the reads; until the head that
    # covers them is anchored, the auditor sees a shorter (still consistent) log.
    expected_reads = 3 + len(others)

    def complete() -> bool:
        summary = report()["summary"]
        return summary["ok"] is True and summary["reads"] == expected_reads

    wait_until(complete, timeout_s=60, interval_s=1)
    document = report()
    summary = document["summary"]
    assert summary["reads"] == expected_reads
    assert summary["emergency_reads"] == 1 + len(others)
    emergency = document["emergency_reads"]
    assert {(e["accessor_org"], e["record_id"]) for e in emergency} == {
        (POLICE, h.record_id) for h in (about_person, *others)
    }
    rows = {row["org_id"]: row["counts"] for row in document["matrix"]["rows"]}
    assert rows[POLICE] == {"hazard_report": 1 + len(others), "incident": 1}
    assert rows[COMMITTEE] == {"hazard_report": 1, "incident": 0}
    assert '<section id="emergency">' in (out / "audit-report.html").read_text(encoding="utf-8")

    # The same report from an exported bundle, offline: only the source line and the time differ.
    bundle = tmp_path / "audit.bundle"
    assert main(["audit", "export", "--out", str(bundle)]) == 0
    offline = tmp_path / "offline"
    assert main(["audit", "report", "--bundle", str(bundle), "--out", str(offline), "--format", "json"]) == 0
    capsys.readouterr()
    from_bundle = json.loads((offline / "audit-report.json").read_text(encoding="utf-8"))
    for key in ("source", "generated_at"):
        del from_bundle["summary"][key], document["summary"][key]
    assert from_bundle == document

    assert main(["audit", "consortium-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(bytes.fromhex(key)) == 32
    monkeypatch.setenv("AUDIT_CONSORTIUM_KEY", key)
    argv = ["audit", "subject", "--id-number", person, "--consortium-key-env", "AUDIT_CONSORTIUM_KEY", "--json"]
    assert main(argv) == 0
    subject = json.loads(capsys.readouterr().out)
    found = {(r["accessor_org"], r["record_id"], r["purpose"]) for r in subject["reads"]}
    assert found == {
        (POLICE, incident.record_id, "investigation"),
        (POLICE, about_person.record_id, "emergency_response"),
        (COMMITTEE, about_person.record_id, "community_governance"),
    }
    assert person not in json.dumps(subject)
