"""One conformance suite, run for every adapter registered in the ``ledger.adapters`` group.

A new department adapter is tested here automatically once it is registered and names its
reference export (``sample_file``, relative to shared/samples/).
"""

from __future__ import annotations

import inspect
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from adapters import (
    Adapter,
    BadRow,
    CanonicalRecord,
    ImportContext,
    ParsedRow,
    RecordType,
    available_adapters,
    canonical_json,
    derive_record_id,
    get_adapter,
    import_file,
    record_json_schema,
)
from adapters.registry import ENTRY_POINT_GROUP
from tests.adapters.conftest import RECORD_ID_KEY

ADAPTERS = available_adapters()


def test_the_six_department_adapters_are_registered() -> None:
    assert set(ADAPTERS) >= {
        "police.incidents",
        "police.key_persons",
        "property.access_events",
        "property.fire_inspections",
        "committee.residents",
        "committee.hazard_reports",
    }, f"entry points in {ENTRY_POINT_GROUP!r}: {ADAPTERS} (run pip install -e . after editing pyproject.toml)"


@dataclass(frozen=True)
class Run:
    adapter: Adapter
    path: Path
    items: list[ParsedRow | BadRow]


@pytest.fixture(scope="module", params=ADAPTERS)
def run(request: pytest.FixtureRequest, samples_dir: Path, make_ctx: Any) -> Run:
    adapter = get_adapter(request.param)
    sample = getattr(adapter, "sample_file", None)
    assert sample, f"adapter {adapter.name} must name its reference export in sample_file"
    path = samples_dir / sample
    assert path.is_file(), f"{adapter.name}: sample {path} is missing"
    with path.open("rb") as stream:
        items = list(adapter.parse(stream, file_name=path.name, context=make_ctx()))
    return Run(adapter=adapter, path=path, items=items)


@pytest.fixture(scope="module")
def validator() -> Any:
    return jsonschema_rs.validator_for(record_json_schema())


def records(run: Run) -> list[CanonicalRecord]:
    return [item.record for item in run.items if isinstance(item, ParsedRow)]


def test_registered_under_its_name(run: Run) -> None:
    adapter = run.adapter
    assert isinstance(adapter, Adapter)
    assert get_adapter(adapter.name) is adapter
    assert isinstance(adapter.record_type, RecordType)
    assert adapter.department.strip()
    assert adapter.description.strip()


def test_parse_streams_parsed_and_bad_rows(run: Run, make_ctx: Any) -> None:
    with run.path.open("rb") as stream:
        result = run.adapter.parse(stream, file_name=run.path.name, context=make_ctx())
        # A generator (lazy), not a list built up front.
        assert inspect.isgenerator(result) or iter(result) is result
        first = next(iter(result))
        assert isinstance(first, ParsedRow | BadRow)
    assert run.items, "the sample yields rows"
    assert all(isinstance(item, ParsedRow | BadRow) for item in run.items)
    numbers = [item.row for item in run.items]
    assert numbers == sorted(numbers), "items come in file order"
    assert len(set(numbers)) == len(numbers), "one item per row"
    assert all(n >= 1 for n in numbers)
    for item in run.items:
        if isinstance(item, BadRow):
            assert item.reason
        else:
            assert item.native_id == item.record.source.native_id
            assert item.row == item.record.source.row


def test_every_record_validates_against_the_published_schema(run: Run, validator: Any) -> None:
    recs = records(run)
    assert recs
    for record in recs:
        errors = [e.message for e in validator.iter_errors(record.to_json_dict())]
        assert not errors, (record.source, errors)
        # The canonical JSON parses back to the same record (the schema and the model agree).
        assert CanonicalRecord.model_validate_json(canonical_json(record)) == record


def test_record_ids_are_derived_from_owner_type_and_native_id(run: Run) -> None:
    for record in records(run):
        native_id = record.source.native_id
        assert record.record_id == derive_record_id(RECORD_ID_KEY, record.owner_org, record.record_type, native_id)
        assert record.record_type == run.adapter.record_type
        assert record.source.system == run.adapter.name
        assert record.owner_org == "org-test-1"  # from the context, never from the file


def test_importing_twice_gives_identical_ids_and_fingerprints(run: Run, make_ctx: Any) -> None:
    def once() -> list[tuple[str, str]]:
        out: list[CanonicalRecord] = []
        import_file(run.path, run.adapter, context=make_ctx(), sink=out.extend)
        return [(r.record_id, r.content_fingerprint()) for r in out]

    first = once()
    assert first
    assert first == once()
    assert len({rid for rid, _ in first}) == len(first), "no two records of one import share an id"


def test_same_content_in_another_file_is_not_a_new_version(run: Run, make_ctx: Any) -> None:
    data = run.path.read_bytes()
    a: list[CanonicalRecord] = []
    b: list[CanonicalRecord] = []
    import_file(io.BytesIO(data), run.adapter, context=make_ctx(file_name="export-a"), sink=a.extend)
    import_file(io.BytesIO(data), run.adapter, context=make_ctx(file_name="export-b"), sink=b.extend)
    assert [r.source.file for r in a[:1]] == ["export-a"]
    assert [r.content_fingerprint() for r in a] == [r.content_fingerprint() for r in b]
    assert [r.record_id for r in a] == [r.record_id for r in b]


def test_another_owner_gets_other_record_ids(run: Run, make_ctx: Any) -> None:
    mine = records(run)[0]
    with run.path.open("rb") as stream:
        other = next(
            item
            for item in run.adapter.parse(stream, file_name=run.path.name, context=make_ctx(owner_org="org-other"))
            if isinstance(item, ParsedRow)
        )
    assert other.record.owner_org == "org-other"
    assert other.record.record_id != mine.record_id


def _imported(run: Run, context: Any) -> list[CanonicalRecord]:
    out: list[CanonicalRecord] = []
    import_file(run.path, run.adapter, context=context, sink=out.extend)
    return out


def test_without_the_owners_key_records_carry_no_id(run: Run, make_ctx: Any) -> None:
    """A department machine holds no record-id key: the owner's gateway assigns the ids on push."""
    keyed, unkeyed = _imported(run, make_ctx()), _imported(run, make_ctx(record_id_key=None))
    assert unkeyed
    assert {r.record_id for r in unkeyed} == {None}
    assert [r.to_json_dict() for r in unkeyed] == [{**r.to_json_dict(), "record_id": None} for r in keyed]


def test_another_key_gives_other_record_ids(run: Run, make_ctx: Any) -> None:
    mine, other = _imported(run, make_ctx()), _imported(run, make_ctx(record_id_key=bytes(32)))
    assert len(mine) == len(other)
    assert not {r.record_id for r in mine} & {r.record_id for r in other}


def test_rows_add_up(run: Run, make_ctx: Any) -> None:
    report = import_file(run.path, run.adapter, context=make_ctx())
    assert report.rows == len(run.items)
    assert report.rows == report.valid + len(report.duplicates) + len(report.bad)
    assert report.adapter == run.adapter.name
    assert report.file == run.path.name


def test_occurred_at_is_iso_8601_with_china_offset(run: Run) -> None:
    for record in records(run):
        text = record.to_json_dict()["occurred_at"]
        assert text.endswith("+08:00"), text
        assert record.occurred_at.utcoffset() is not None
        assert record.occurred_at.utcoffset().total_seconds() == 8 * 3600  # type: ignore[union-attr]


def test_sensitive_paths_are_marked(run: Run) -> None:
    for record in records(run)[:20]:
        assert record.sensitivity["subjects[].id_number"] == "sensitive"
        assert record.sensitivity["subjects[].phone"] == "sensitive"
        for key in record.attributes:
            # every attribute is classified, explicitly or by the "internal" default
            assert record.sensitivity.get(f"attributes.{key}", "internal") in {
                "public",
                "internal",
                "personal",
                "sensitive",
            }


def test_no_adapter_imports_web3_or_fastapi() -> None:
    code = (
        "import json, sys\n"
        "import adapters\n"
        "for adapter in adapters.all_adapters(): pass\n"
        "print(json.dumps(sorted(m for m in ('web3', 'fastapi', 'eth_account', 'starlette') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == [], out.stdout
    loaded = "import sys, adapters; adapters.all_adapters(); print(len(adapters.available_adapters()))"
    count = subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True, check=True, timeout=60)
    assert int(count.stdout) == len(ADAPTERS)


def test_context_is_frozen_and_validated() -> None:
    context = ImportContext(owner_org="o", community_code="c")
    with pytest.raises(AttributeError):
        context.owner_org = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="owner_org"):
        ImportContext(owner_org="", community_code="c")
