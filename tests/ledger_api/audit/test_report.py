"""The JSON report: exact counts for the sample week (see report_samples for the schedule)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger_api.audit.anomalies import AnomalyRules
from ledger_api.audit.report import REPORT_FORMAT, build_report
from tests.ledger_api.audit.report_samples import (
    AUDITOR,
    COMMITTEE,
    POLICE,
    PROPERTY,
    local,
    make_read,
    week_result,
)

GENERATED = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    report = build_report(week_result(), generated_at=GENERATED)
    parsed: dict[str, Any] = json.loads(report.to_json())
    return parsed


def test_top_level_keys_are_the_documented_ones(document: dict[str, Any]) -> None:
    assert list(document) == [
        "format", "summary", "organisations", "matrix", "timeline", "emergency_reads", "discrepancies",
        "anomalies", "anomaly_rules", "admin_granted_reads", "admin_grants", "signer_changes",
        "refusals",
    ]  # fmt: skip
    assert document["format"] == REPORT_FORMAT


def test_summary_counts(document: dict[str, Any]) -> None:
    assert document["summary"] == {
        "source": "bundle week.zip",
        "chain_id": 31337,
        "checkpoint_block": 900,
        "generated_at": "2026-03-09T09:00:00+08:00",
        "ok": False,
        "records": 4,
        "distinct_records": 4,
        "reads": 60,
        "emergency_reads": 9,
        "uncovered_reads": 1,
        "unanchored_reads": 1,
        "organisations": 4,
        "grants": 2,
        "tree_heads": 1,
        "discrepancies": 2,
        "discrepancies_by_kind": {"blob-missing": 1, "read-not-covered": 1},
        "anomalies": 4,
        "first_read": "2026-03-02T09:05:00+08:00",
        "last_read": "2026-03-07T10:00:00+08:00",
        "admin_grant_actions": 0,
        "signer_change_steps": 0,
        "admin_granted_reads": 0,
        "admin_events_known": True,
        "refusals": 0,
        "emergency_refusals": 0,
    }


def test_the_matrix_counts_reads_by_accessor_and_record_type(document: dict[str, Any]) -> None:
    matrix = document["matrix"]
    assert matrix["record_types"] == ["incident", "resident", "unknown"]
    rows = {row["org_id"]: (row["counts"], row["total"]) for row in matrix["rows"]}
    assert rows == {
        AUDITOR: ({"incident": 0, "resident": 0, "unknown": 1}, 1),
        COMMITTEE: ({"incident": 43, "resident": 0, "unknown": 0}, 43),
        PROPERTY: ({"incident": 4, "resident": 1, "unknown": 0}, 5),
        POLICE: ({"incident": 0, "resident": 11, "unknown": 0}, 11),
    }
    assert matrix["totals"] == {"incident": 47, "resident": 12, "unknown": 1}
    assert matrix["total"] == 60


def test_the_timeline_is_per_local_day_with_every_day_between_first_and_last_read(document: dict[str, Any]) -> None:
    timeline = document["timeline"]
    assert (timeline["granularity"], timeline["timezone"]) == ("day", "Asia/Shanghai")
    days = [(b["start"][:10], b["reads"], b["emergency"]) for b in timeline["buckets"]]
    assert days == [
        ("2026-03-02", 8, 0),
        ("2026-03-03", 8, 0),
        ("2026-03-04", 10, 2),
        ("2026-03-05", 28, 2),
        ("2026-03-06", 5, 5),
        ("2026-03-07", 1, 0),
    ]
    assert timeline["buckets"][3]["by_organisation"] == {COMMITTEE: 25, PROPERTY: 2, POLICE: 1}
    assert timeline["buckets"][0]["start"] == "2026-03-02T00:00:00+08:00"
    assert timeline["buckets"][0]["end"] == "2026-03-03T00:00:00+08:00"


def test_a_short_span_is_shown_per_hour_with_empty_hours_kept() -> None:
    reads = (make_read(POLICE, local(3, 9, 10)), make_read(POLICE, local(3, 9, 50)), make_read(POLICE, local(3, 12)))
    timeline = build_report(week_result(reads=reads)).timeline
    assert timeline.granularity == "hour"
    assert [(b.start.hour, b.reads) for b in timeline.buckets] == [(9, 2), (10, 0), (11, 0), (12, 1)]


def test_a_read_just_after_midnight_in_shanghai_counts_for_that_local_day() -> None:
    # 16:30 UTC on March 2 is 00:30 on March 3 in Shanghai.
    reads = (make_read(POLICE, datetime(2026, 3, 2, 16, 30, tzinfo=UTC)),)
    [bucket] = build_report(week_result(reads=reads), granularity="day").timeline.buckets
    assert bucket.start.isoformat() == "2026-03-03T00:00:00+08:00"


def test_every_emergency_read_awaits_review_in_time_order(document: dict[str, Any]) -> None:
    emergencies = document["emergency_reads"]
    assert [(e["accessor_org"], e["time"]) for e in emergencies] == [
        (PROPERTY, "2026-03-04T15:00:00+08:00"),
        (PROPERTY, "2026-03-04T18:00:00+08:00"),
        (PROPERTY, "2026-03-05T09:00:00+08:00"),
        (PROPERTY, "2026-03-05T14:00:00+08:00"),
        *((POLICE, f"2026-03-06T0{hour}:00:00+08:00") for hour in range(1, 6)),
    ]
    first = emergencies[0]
    assert first["purpose"] == "emergency_response"
    assert first["record_id"] == f"{1:064x}"
    assert set(first) >= {"entry_index", "accessor_kind", "owner_org", "version", "record_type", "grant_id", "basis"}


def test_discrepancies_are_carried_verbatim(document: dict[str, Any]) -> None:
    assert [d["kind"] for d in document["discrepancies"]] == ["read-not-covered", "blob-missing"]
    assert document["discrepancies"][0] == {
        "kind": "read-not-covered",
        "subject": "access entry #59",
        "detail": "AU-STREET-01 read a record no grant covered",
        "where": "block 859",
    }


def test_per_organisation_summary(document: dict[str, Any]) -> None:
    orgs = {org["org_id"]: org for org in document["organisations"]}
    assert list(orgs) == sorted(orgs)
    police = orgs[POLICE]
    assert (police["kind"], police["reads_made"], police["emergency_reads"], police["anomalies"]) == (
        "police",
        11,
        5,
        2,
    )
    assert police["reads_of_its_records"] == 47  # 43 by the committee, 4 by property
    assert police["records_owned"] == 2
    assert (police["grants_given"], police["grants_received"]) == (1, 1)
    assert orgs[PROPERTY]["suspended"] is True
    assert orgs[AUDITOR]["uncovered_reads"] == 1


def test_an_organisation_seen_only_in_reads_is_still_summarised() -> None:
    reads = (make_read("XX-UNKNOWN-01", local(2, 10)),)
    report = build_report(week_result(reads=reads, organisations=()))
    [org] = report.organisations
    assert (org.org_id, org.kind, org.reads_made) == ("XX-UNKNOWN-01", None, 1)


def test_anomalies_and_their_rules_are_in_the_report(document: dict[str, Any]) -> None:
    assert [(a["kind"], a["org_id"], a["count"]) for a in document["anomalies"]] == [
        ("off-hours", POLICE, 2),
        ("rate-spike", COMMITTEE, 25),
        ("emergency-burst", POLICE, 5),
        ("off-hours", PROPERTY, 1),
    ]
    assert document["anomaly_rules"]["working_start"] == "08:00"
    assert document["anomaly_rules"]["emergency_window_s"] == 86400


def test_custom_rules_change_the_flags() -> None:
    report = build_report(week_result(), anomaly_rules=AnomalyRules(emergency_burst_reads=4, spike_factor=20))
    kinds = [(a.kind.value, a.org_id) for a in report.anomalies]
    assert ("emergency-burst", PROPERTY) in kinds
    assert ("rate-spike", COMMITTEE) not in kinds


def test_a_clean_audit_without_reads_is_ok_and_empty() -> None:
    report = build_report(week_result(reads=(), discrepancies=()), generated_at=GENERATED)
    document = json.loads(report.to_json())
    assert document["summary"]["ok"] is True
    assert document["summary"]["first_read"] is None
    assert document["timeline"]["buckets"] == []
    assert document["matrix"] == {"record_types": [], "rows": [], "totals": {}, "total": 0}
    assert report.ok


def test_the_same_result_gives_the_same_json() -> None:
    assert build_report(week_result(), generated_at=GENERATED).to_json() == (
        build_report(week_result(), generated_at=GENERATED).to_json()
    )
