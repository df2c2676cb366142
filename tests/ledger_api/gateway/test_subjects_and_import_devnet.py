"""Subject linking by blind index, and importing department files through the gateway."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from adapters.canonical import Subject
from ledger_api.client import GatewayClient
from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import SubjectLink
from tests.conftest import SHARED_DIR
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, Ledger
from tests.ledger_api.gateway.records import payload, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def test_records_about_one_person_link_across_organisations_without_plaintext(
    client: TestClient, ledger_home: Ledger
) -> None:
    incident = next(r for r in sample_records("police.incidents", POLICE)[120:] if any(s.id_number for s in r.subjects))
    person = next(s.id_number for s in incident.subjects if s.id_number)
    assert person is not None
    hazard = sample_records("committee.hazard_reports", COMMITTEE)[5]
    hazard = hazard.model_copy(update={"subjects": (*hazard.subjects, Subject(role="reporter", id_number=person))})
    for org, record in ((POLICE, incident), (COMMITTEE, hazard)):
        assert client.post("/v1/records", json=payload([record]), headers=ledger_home.auth(org)).status_code == 202

    answer = client.post(
        "/v1/subjects/blind-index", json={"id_number": person.lower()}, headers=ledger_home.auth(POLICE)
    )
    assert answer.status_code == 200
    index = answer.json()["blind_index"]
    services = client.app.state.services  # type: ignore[attr-defined]
    with Session(services.engine) as session:
        linked = set(session.exec(select(SubjectLink.record_id).where(col(SubjectLink.blind_index) == index)).all())
        stored = " ".join(session.exec(select(SubjectLink.blind_index)).all())
    assert linked == {incident.record_id, hazard.record_id}
    assert person not in stored  # only keyed hashes are kept

    for org, mine in ((POLICE, incident), (COMMITTEE, hazard)):
        seen = client.get(f"/v1/subjects/{index}/records", headers=ledger_home.auth(org)).json()["records"]
        assert [r["record_id"] for r in seen] == [mine.record_id]  # without a grant, only one's own

    bad = client.post(
        "/v1/subjects/blind-index", json={"id_number": "110101199003070000"}, headers=ledger_home.auth(POLICE)
    )
    assert bad.status_code == 422
    assert "check character" in bad.json()["detail"]


def test_importing_the_same_file_twice_creates_nothing_new(client: TestClient, ledger_home: Ledger) -> None:
    gateway = GatewayClient(api_key=ledger_home.provisioned.api_keys[POLICE], http=client)
    data = (SHARED_DIR / "samples" / "police" / "key_persons.json").read_bytes()
    assert gateway.whoami() == POLICE
    first = gateway.import_file("police.key_persons", data, file_name="key_persons.json", community="330102001")
    assert (first["rows"], first["valid"], first["bad"]) == (40, 40, [])
    before = _count(client)
    second = gateway.import_file("police.key_persons", data, file_name="key_persons.json", community="330102001")
    assert second["valid"] == 40
    assert _count(client) == before


def _count(client: TestClient) -> int:
    from sqlalchemy import func

    from ledger_api.index.models import RecordVersion

    services = client.app.state.services  # type: ignore[attr-defined]
    with Session(services.engine) as session:
        return int(session.exec(select(func.count()).select_from(RecordVersion)).one())


def test_cli_dry_run_reports_exactly_what_expected_json_says(tmp_path: object) -> None:
    truth = json.loads((SHARED_DIR / "samples" / "EXPECTED.json").read_text())["committee/residents.csv"]
    result = subprocess.run(
        [sys.executable, "-m", "ledger_api.cli", "import", "--adapter", "committee.residents",
         str(SHARED_DIR / "samples" / "committee" / "residents.csv"), "--community", "330102002",
         "--as-of", "2025-03-31T00:00:00+08:00", "--dry-run", "--owner", COMMITTEE, "--json"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == truth["rows"]
    assert report["valid"] == truth["valid_unique"]
    assert sorted(report["duplicates"]) == sorted(truth["duplicate_native_ids"])
    assert sorted(b["native_id"] for b in report["bad"]) == sorted(truth["bad_native_ids"])
    assert all({"row", "native_id", "reason"} <= set(b) for b in report["bad"])


def test_cli_names_a_file_it_cannot_read_in_one_line(tmp_path: object) -> None:
    from pathlib import Path

    broken = Path(str(tmp_path)) / "incidents.csv"
    broken.write_text("没有,任何,已知,列\n1,2,3,4\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "ledger_api.cli", "import", "--adapter", "police.incidents", str(broken),
         "--community", "330102001", "--dry-run", "--owner", POLICE],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("ledger: error: ")
    assert str(broken) in result.stderr


def test_the_blind_index_is_rate_limited_per_organisation_and_its_use_logged(
    ledger_home: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: unlimited, so any caller could turn every ID number of a district into its blind index."""
    settings = ledger_home.settings.model_copy(update={"blind_index_per_minute": 1.0, "blind_index_burst": 3})
    services = GatewayServices.from_settings(settings)
    person = "11010519491231002X"
    with TestClient(create_app(services, run_worker=False)) as limited, caplog.at_level(logging.INFO):
        answers = [
            limited.post("/v1/subjects/blind-index", json={"id_number": person}, headers=ledger_home.auth(POLICE))
            for _ in range(4)
        ]
        other = limited.post(
            "/v1/subjects/blind-index", json={"address": "东湖社区3幢"}, headers=ledger_home.auth(COMMITTEE)
        )
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[3]
    assert refused.json()["type"].endswith("/rate-limited")
    assert refused.json()["detail"].startswith(f"{POLICE}: more than 1 blind-index look-ups per minute")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert other.status_code == 200  # each organisation has its own allowance
    lines = [r.getMessage() for r in caplog.records if r.name == "ledger_api.gateway.routers.subjects"]
    assert lines.count(f"blind index: {POLICE} looked up a id number") == 3
    assert f"blind index: {POLICE} refused a id number look-up: over its rate limit" in lines
    assert not any(person in line or answers[0].json()["blind_index"] in line for line in lines)
