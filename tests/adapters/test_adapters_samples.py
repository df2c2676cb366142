"""The shared sample exports against their truth in samples/EXPECTED.json, exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters import CanonicalRecord, all_adapters, import_file

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"


def _expected_files() -> list[str]:
    path = SAMPLES / "EXPECTED.json"
    return sorted(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else []


def _adapter_for(sample: str) -> Any:
    by_sample = {getattr(a, "sample_file", None): a for a in all_adapters()}
    adapter = by_sample.get(sample)
    assert adapter is not None, f"no registered adapter names {sample} as its sample_file"
    return adapter


@pytest.mark.parametrize("sample", _expected_files())
def test_sample_matches_expected(sample: str, samples_dir: Path, expected: dict[str, Any], make_ctx: Any) -> None:
    truth = expected[sample]
    records: list[CanonicalRecord] = []
    report = import_file(samples_dir / sample, _adapter_for(sample), context=make_ctx(), sink=records.extend)
    assert report.rows == truth["rows"]
    assert {b.native_id for b in report.bad} == set(truth["bad_native_ids"])
    assert len(report.bad) == len(truth["bad_native_ids"])
    assert sorted(report.duplicates) == sorted(truth["duplicate_native_ids"])
    assert report.valid == truth["valid_unique"]
    assert report.valid == report.rows - len(report.bad) - len(report.duplicates)
    assert len(records) == report.valid
    assert len({r.record_id for r in records}) == report.valid
    text = report.to_text()
    for bad in report.bad:
        assert f"row {bad.row}" in text
        assert str(bad.native_id) in text
        assert bad.reason in text


def test_every_sample_has_an_adapter(expected: dict[str, Any]) -> None:
    for sample in expected:
        _adapter_for(sample)


def test_incident_duplicates_keep_the_first_occurrence(samples_dir: Path, make_ctx: Any) -> None:
    records: list[CanonicalRecord] = []
    import_file(
        samples_dir / "police/incidents_2025Q1.csv", "police.incidents", context=make_ctx(), sink=records.extend
    )
    first = next(r for r in records if r.source.native_id == "J0010022025000012")
    assert first.source.row == 14  # the later copy sits on line 102 of the file


def test_incident_bad_rows_name_the_id_column(samples_dir: Path, make_ctx: Any) -> None:
    report = import_file(samples_dir / "police/incidents_2025Q1.csv", "police.incidents", context=make_ctx())
    assert {b.field for b in report.bad} == {"涉事人员身份证号"}
    row48 = next(b for b in report.bad if b.native_id == "J0020032025000246")
    assert row48.row == 48
    assert "check character" in row48.reason


def test_sample_records_carry_community_codes(samples_dir: Path, make_ctx: Any) -> None:
    records: list[CanonicalRecord] = []
    import_file(samples_dir / "committee/residents.csv", "committee.residents", context=make_ctx(), sink=records.extend)
    assert {r.community_code for r in records} == {"330106001001", "330106001002", "330106002003"}
    resident = records[0]
    assert resident.subjects[0].role == "resident"
    assert resident.subjects[0].id_number == resident.source.native_id
