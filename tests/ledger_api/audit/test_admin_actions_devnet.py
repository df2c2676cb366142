"""Admin actions made visible: a grant an admin made for an owner, a read under it (flagged for review),
and a signer change an admin proposed and the organisation accepted, in the JSON report, the HTML page
and the offline bundle's report alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger_api.audit.bundle import decode_bundle, encode_bundle
from ledger_api.audit.evidence import Evidence
from ledger_api.audit.html import render_html
from ledger_api.audit.report import build_report
from ledger_api.audit.verifier import verify
from ledger_api.chain.devnet import Devnet
from ledger_api.cli import main as ledger_main
from ledger_api.cli.audit_report_commands import REPORT_FILE_STEM
from tests.ledger_api.audit.scenario import (
    AdminActions,
    Scenario,
    build_scenario,
    collect_scenario_evidence,
)
from tests.ledger_api.audit.test_report_html import Dom
from tests.ledger_api.gateway.conftest import COMMITTEE, PROPERTY

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

GENERATED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def scenario(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("audit-admin"), devnet.rpc_url, admin_actions=True)


@pytest.fixture(scope="module")
def admin(scenario: Scenario) -> AdminActions:
    assert scenario.admin is not None
    return scenario.admin


@pytest.fixture(scope="module")
def evidence(scenario: Scenario) -> Evidence:
    return collect_scenario_evidence(scenario)


@pytest.fixture(scope="module")
def document(evidence: Evidence) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(build_report(verify(evidence), generated_at=GENERATED).to_json())
    return parsed


def test_the_ledger_with_admin_actions_verifies_clean(scenario: Scenario, evidence: Evidence) -> None:
    result = verify(evidence)
    assert result.discrepancies == ()
    assert len(result.reads) == scenario.entries - len(scenario.refusal_entries) == 6
    assert [r.entry_index for r in result.refusals] == list(scenario.refusal_entries)


def test_the_report_lists_exactly_the_grant_the_admin_made(document: dict[str, Any], admin: AdminActions) -> None:
    (grant,) = document["admin_grants"]
    assert grant == {
        "grant_id": admin.grant_id,
        "action": "created",
        "owner_org": PROPERTY,
        "grantee_org": COMMITTEE,
        "by": admin.admin,
        "time": grant["time"],
        "block": admin.grant_block,
        "transaction": admin.grant_tx,
    }
    assert grant["time"].endswith("+08:00")
    # The owners' own grants (the police's, the property company's first) are not admin actions.
    assert document["summary"]["grants"] == 3
    assert document["summary"]["admin_grant_actions"] == 1


def test_the_read_under_the_admin_made_grant_is_flagged_for_review(
    document: dict[str, Any], admin: AdminActions
) -> None:
    (read,) = document["admin_granted_reads"]
    assert (read["entry_index"], read["accessor_org"], read["owner_org"]) == (admin.read_entry, COMMITTEE, PROPERTY)
    assert (read["grant_id"], read["purpose"], read["covered"]) == (admin.grant_id, "fire_safety", True)
    assert document["summary"]["admin_granted_reads"] == 1
    assert document["summary"]["ok"] is True  # a review item, not a discrepancy
    assert [r["entry_index"] for r in document["emergency_reads"]] != [admin.read_entry]


def test_the_report_lists_every_signer_change_step(document: dict[str, Any], admin: AdminActions) -> None:
    steps = [(s["step"], s["by"], s["block"], s["transaction"]) for s in document["signer_changes"]]
    assert steps == [
        ("proposed", admin.admin, admin.proposal_block, admin.proposal_tx),
        ("accepted", admin.old_signer, admin.acceptance_block, admin.acceptance_tx),
        ("changed", admin.old_signer, admin.acceptance_block, admin.acceptance_tx),
    ]
    proposed, accepted, changed = document["signer_changes"]
    assert {s["org_id"] for s in document["signer_changes"]} == {PROPERTY}
    assert (proposed["previous_signer"], proposed["new_signer"]) == (admin.old_signer, admin.new_signer)
    assert proposed["effective_at"] is not None
    assert proposed["effective_at"] > proposed["time"]  # the delay (both local, ISO 8601, same offset)
    assert accepted["new_signer"] is None
    assert (changed["previous_signer"], changed["new_signer"]) == (admin.old_signer, admin.new_signer)
    assert document["summary"]["signer_change_steps"] == 3


def test_the_html_shows_the_admin_actions(evidence: Evidence, admin: AdminActions) -> None:
    dom = Dom(render_html(build_report(verify(evidence), generated_at=GENERATED)))
    reads = dom.text_by_id["admin-reads"]
    assert "Reads under admin-made grants, for review (1)" in reads
    assert f"|{COMMITTEE}|{PROPERTY}|" in reads
    assert [row["data-entry"] for row in dom.tags("tr") if row.get("data-entry")].count(str(admin.read_entry)) == 1
    grants = dom.text_by_id["admin-grants"]
    assert "Grants an admin made or revoked (1)" in grants
    assert f"|{admin.grant_id}|created|{PROPERTY}|{COMMITTEE}|{admin.admin}|{admin.grant_block}|" in grants
    changes = dom.text_by_id["signer-changes"]
    assert "Signer changes (3)" in changes
    assert [row["data-step"] for row in dom.tags("tr") if row.get("data-signer-org") == PROPERTY] == [
        "proposed",
        "accepted",
        "changed",
    ]
    assert f"|took effect|{admin.old_signer}|{admin.old_signer}|{admin.new_signer}|" in changes
    assert f"|proposed|{admin.admin}|{admin.old_signer}|{admin.new_signer}|" in changes


def test_the_offline_bundle_gives_the_same_report(
    evidence: Evidence, document: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded, found = decode_bundle(encode_bundle(evidence))
    assert found == []
    offline: dict[str, Any] = json.loads(build_report(verify(loaded), generated_at=GENERATED).to_json())
    assert offline["summary"].pop("source") != document["summary"]["source"]
    online = {**document, "summary": {k: v for k, v in document["summary"].items() if k != "source"}}
    assert offline == online
    # And through the CLI: export, then report from the bundle alone.
    bundle = tmp_path / "admin.bundle"
    bundle.write_bytes(encode_bundle(evidence))
    out = tmp_path / "report"
    assert ledger_main(["audit", "report", "--bundle", str(bundle), "--out", str(out), "--format", "both"]) == 0
    capsys.readouterr()
    from_cli = json.loads((out / f"{REPORT_FILE_STEM}.json").read_text())
    html = Dom((out / f"{REPORT_FILE_STEM}.html").read_text())
    assert "Signer changes (3)" in html.text_by_id["signer-changes"]
    assert from_cli["admin_grants"] == document["admin_grants"]
    assert from_cli["signer_changes"] == document["signer_changes"]
    assert from_cli["admin_granted_reads"] == document["admin_granted_reads"]
