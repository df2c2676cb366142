"""``ledger_api.audit.overlap``: exact counts on exports built to overlap, the small-cell rule, and nothing
per subject in any answer; then the same through ``ledger audit overlap`` and the report's section."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adapters.canonical import CanonicalRecord, blind_index, derive_record_id, normalise_address
from ledger_api.audit.html import render_html
from ledger_api.audit.model import AuditResult, VerifiedRecord
from ledger_api.audit.overlap import (
    ALL_COMMUNITIES,
    Link,
    count_overlap,
    department_overlap,
    links_of_records,
    overlap_report,
    suppress_line,
)
from ledger_api.audit.report import build_report
from ledger_api.cli import main
from ledger_api.cli.demo_data import COMMITTEE, POLICE, PROPERTY, overlap_exports, overlap_person
from ledger_api.provision import COMMUNITY_A, COMMUNITY_B
from ledger_api.records.ingest import subject_links
from tests.ledger_api.audit.report_samples import week_result
from tests.ledger_api.audit.test_report_html import CHROMIUM, Dom, run_chromium

KEY = bytes(range(32))


def exported_records() -> list[CanonicalRecord]:
    records: list[CanonicalRecord] = []
    for export in overlap_exports():
        report, parsed = export.read()
        assert report.valid == report.rows, report.bad
        # Ids as the owner's gateway assigns them (keyed, DESIGN.md Privacy): the export carries none.
        records.extend(
            r.model_copy(update={"record_id": derive_record_id(KEY, r.owner_org, r.record_type, r.source.native_id)})
            for r in parsed
        )
    return records


def links_of(records: list[CanonicalRecord]) -> list[Link]:
    """What the gateway's index holds for the records (ingest's own subject_links), as overlap links."""
    by_id = {r.record_id: r for r in records}
    return [
        (by_id[link["record_id"]].owner_org, by_id[link["record_id"]].community_code, link["kind"], link["blind_index"])
        for link in subject_links(KEY, records)
    ]


@pytest.fixture(scope="module")
def links() -> list[Link]:
    return links_of(exported_records())


def count(document: dict[str, Any]) -> int | None:
    value: int | None = document["count"]
    return value


def test_the_built_exports_write_the_same_person_and_flat_differently() -> None:
    """The police export names even residents by their 15-digit number, and every department writes a flat
    its own way: the links still agree, because both are normalised before they are blind-indexed."""
    id18, id15 = overlap_person(0)
    assert len(id15) == 15
    assert id15 in overlap_exports()[1].data.decode("gb18030")
    assert id18 in overlap_exports()[0].data.decode("utf-8-sig")
    records = exported_records()
    # Resident 20's flat: 楼栋/单元/房号 columns, "东湖社区1幢2单元301室", and the room code "1-2-301".
    resident = next(r for r in records if r.owner_org == COMMITTEE and r.subjects[0].id_number == overlap_person(20)[0])
    incident = next(r for r in records if r.owner_org == POLICE and r.location.text == "东湖社区1幢2单元301室")
    door = next(r for r in records if r.owner_org == PROPERTY and r.community_code == COMMUNITY_B
                and (r.location.building, r.location.unit, r.location.room) == ("1", "2", "301"))  # fmt: skip
    assert resident.location.text is None
    assert resident.location.building == "1"
    assert (
        normalise_address(resident.location) == normalise_address(incident.location) == normalise_address(door.location)
    )


def test_exact_counts_per_pair_kind_and_community(links: list[Link]) -> None:
    counts = count_overlap(links)
    assert counts.orgs == tuple(sorted((COMMITTEE, POLICE, PROPERTY)))
    assert counts.communities == (COMMUNITY_A, COMMUNITY_B)
    people, flats, everywhere = "id_number", "address", ALL_COMMUNITIES
    assert counts.holdings[(COMMITTEE, people, everywhere)] == 60
    assert counts.holdings[(POLICE, people, COMMUNITY_A)] == 14
    assert counts.holdings[(POLICE, people, COMMUNITY_B)] == 30
    assert counts.holdings[(POLICE, people, everywhere)] == 44
    assert (PROPERTY, people, everywhere) not in counts.holdings  # door events name no one
    # 15- and 18-digit forms of one number are one person; residents 50-55 met in A are still the committee's.
    assert counts.shared[(COMMITTEE, POLICE, people, COMMUNITY_B)] == 30
    assert counts.shared[(COMMITTEE, POLICE, people, everywhere)] == 36
    assert counts.holdings[(PROPERTY, flats, everywhere)] == 42
    assert counts.shared[(COMMITTEE, PROPERTY, flats, everywhere)] == 30
    assert counts.shared[(COMMITTEE, POLICE, flats, everywhere)] == 30
    assert counts.shared[(PROPERTY, POLICE, flats, COMMUNITY_A)] == 3
    assert counts.shared[(PROPERTY, POLICE, flats, COMMUNITY_B)] == 10
    assert counts.shared[(PROPERTY, POLICE, flats, everywhere)] == 13  # a flat is its address in its community


def test_a_flat_is_its_address_within_its_community_and_a_person_is_one_person_everywhere() -> None:
    links = [
        ("A", "c1", "address", "flat-1"), ("B", "c2", "address", "flat-1"),  # same 3-1-502, two communities
        ("A", "c1", "id_number", "p"), ("B", "c2", "id_number", "p"),  # one person, met in two communities
    ]  # fmt: skip
    counts = count_overlap(links)
    assert counts.shared.get(("A", "B", "address", ALL_COMMUNITIES), 0) == 0
    assert counts.shared[("A", "B", "id_number", ALL_COMMUNITIES)] == 1
    with pytest.raises(ValueError, match="unknown link kind 'phone'"):
        count_overlap([("A", "c1", "phone", "x")])


def test_the_report_shows_counts_and_shares_and_hides_the_small_cell_and_its_complement(links: list[Link]) -> None:
    shown = overlap_report(count_overlap(links), min_cell=5)
    both, share = shown.share(COMMITTEE, POLICE, "id_number")
    assert (both.value, share.pct) == (36, 60.0)
    assert shown.share(POLICE, COMMITTEE, "id_number")[1].pct == 81.8
    small = shown.pair(PROPERTY, POLICE, "address", COMMUNITY_A)
    assert (small.both.value, small.both.reason, small.both.text()) == (None, "small", "< 5")
    assert small.share_of_a.suppressed
    assert small.share_of_a.pct is None
    # 13 in all minus 10 in B would give back the 3 in A: the 10 is hidden too, and its share with it.
    beside = shown.pair(PROPERTY, POLICE, "address", COMMUNITY_B)
    assert (beside.both.value, beside.both.reason, beside.both.text()) == (None, "complementary", "hidden")
    assert beside.share_of_b.suppressed
    assert shown.pair(PROPERTY, POLICE, "address").both.value == 13
    rows = [
        p for p in shown.to_json_dict()["pairs"] if (p["org_a"], p["org_b"], p["kind"]) == (PROPERTY, POLICE, "address")
    ]
    assert [(r["community"], count(r["both"])) for r in rows] == [(None, 13), (COMMUNITY_A, None), (COMMUNITY_B, None)]
    assert all("3" not in json.dumps(r["both"]) for r in rows[1:])


@pytest.mark.parametrize(
    ("cells", "total", "hidden_cells", "total_hidden"),
    [
        ({"a": 20, "b": 2}, 22, {"a", "b"}, False),  # one small cell: its complement goes too
        ({"a": 4, "b": 4}, 8, {"a", "b"}, True),  # 8 = 4 + 4 would pin both: the total goes
        ({"a": 1, "b": 5, "c": 9}, 15, {"a", "b", "c"}, False),  # 6 - 5 would pin the 1: a third cell goes
        ({"a": 0, "b": 7}, 7, set(), False),  # zero names nobody
        ({"a": 0, "b": 3}, 3, {"b"}, True),  # a small total is itself a small cell
        ({"a": 6, "b": 9}, 15, set(), False),
    ],
)
def test_suppress_line_leaves_no_small_cell_recoverable_by_subtraction(
    cells: dict[str, int], total: int, hidden_cells: set[str], total_hidden: bool
) -> None:
    shown, total_cell = suppress_line(cells, total, min_cell=5)
    assert {name for name, cell in shown.items() if cell.suppressed} == hidden_cells
    assert total_cell.suppressed is total_hidden
    assert all(cell.value == cells[name] for name, cell in shown.items() if not cell.suppressed)


def test_the_threshold_is_a_setting_of_the_report(links: list[Link]) -> None:
    strict = overlap_report(count_overlap(links), min_cell=40)
    assert strict.pair(COMMITTEE, POLICE, "id_number").both.text() == "< 40"
    relaxed = overlap_report(count_overlap(links), min_cell=1)
    assert relaxed.pair(PROPERTY, POLICE, "address", COMMUNITY_A).both.value == 3
    with pytest.raises(ValueError, match="at least 1"):
        overlap_report(count_overlap(links), min_cell=0)


def test_a_department_sees_shares_and_grants_never_another_organisations_subjects(links: list[Link]) -> None:
    police_b = [(7, link) for link in links if link[0] == POLICE and link[1] == COMMUNITY_B]  # grant 7: police's B
    mine = department_overlap(links, org_id=COMMITTEE, covered=police_b, min_cell=5)
    assert mine.subjects == {"id_number": 60, "address": 60}
    police = next(o for o in mine.others if (o.org_id, o.kind) == (POLICE, "id_number"))
    assert (police.held.value, police.share.pct, police.covered.value, police.not_covered.value) == (36, 60.0, 30, 6)
    assert police.grants == (7,)
    assert police.communities_not_covered == (COMMUNITY_A,)
    prop = next(o for o in mine.others if (o.org_id, o.kind) == (PROPERTY, "address"))
    assert (prop.held.value, prop.covered.value, prop.grants) == (30, 0, ())
    ask = {entry["owner_org"]: entry for entry in mine.ask_for()}
    assert ask[PROPERTY] == {"owner_org": PROPERTY, "kinds": ["address"], "communities": [COMMUNITY_B]}
    assert ask[POLICE]["communities"] == [COMMUNITY_A]
    text = json.dumps(mine.to_json_dict())
    for _org, _community, _kind, index in links:
        assert index not in text  # no blind index, let alone a value: counts, codes and grant ids only
    for n in range(60):
        assert overlap_person(n)[0] not in text


def test_a_small_uncovered_share_is_hidden_with_its_complement(links: list[Link]) -> None:
    # Cover everything the police holds but two residents met in A: 34 covered, 2 not -> both hidden.
    kept = [link for link in links if link[0] == POLICE and link[3] not in _indexes_of_residents(50, 51)]
    mine = department_overlap(links, org_id=COMMITTEE, covered=[(1, link) for link in kept], min_cell=5)
    police = next(o for o in mine.others if (o.org_id, o.kind) == (POLICE, "id_number"))
    assert police.held.value == 36
    assert (police.covered.reason, police.not_covered.reason) == ("complementary", "small")
    assert police.share.pct == 60.0
    assert police.grants == (1,)


def _indexes_of_residents(*numbers: int) -> set[str]:
    return {blind_index(KEY, "id_number", overlap_person(n)[0]) for n in numbers}


# --- the auditor's side: records as the verifier gives them ---------------------------------------------------


def verified(records: list[CanonicalRecord]) -> tuple[VerifiedRecord, ...]:
    """The records as the verifier reports them from v3 manifests: blind indexes only."""
    links = subject_links(KEY, records)
    result = []
    for n, record in enumerate(records):
        mine = [link for link in links if link["record_id"] == record.record_id]
        result.append(
            VerifiedRecord(
                record_id=record.record_id, version=1, owner_org=record.owner_org, record_type=record.record_type,
                community_code=record.community_code, ciphertext_hash=f"{n:064x}", batch_root="cd" * 32, leaf_index=n,
                block_number=100, transaction="0x" + "ef" * 32, anchored_at=None,
                subjects=tuple(link["blind_index"] for link in mine if link["kind"] == "id_number"),
                addresses=tuple(link["blind_index"] for link in mine if link["kind"] == "address"),
            )
        )  # fmt: skip
    return tuple(result)


def test_the_auditor_counts_the_same_from_manifest_metadata_and_leaves_erased_records_out() -> None:
    records = exported_records()
    from_index = count_overlap(links_of(records))
    records_seen = verified(records)
    assert count_overlap(links_of_records(records_seen)) == from_index
    erased = tuple(replace(r, erased=True) if r.owner_org == PROPERTY else r for r in records_seen)
    assert (COMMITTEE, PROPERTY, "address", ALL_COMMUNITIES) not in count_overlap(links_of_records(erased)).shared


def overlap_result() -> AuditResult:
    return replace(week_result(discrepancies=()), records=verified(exported_records()))


def test_the_cli_prints_the_overlap_and_json_holds_no_small_number(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("ledger_api.cli.audit_source.obtain_result", lambda args: overlap_result())
    assert main(["audit", "overlap", "--bundle", "week.bundle"]) == 0
    text = capsys.readouterr().out
    assert "people (by ID number), all communities" in text
    line = next(row for row in text.splitlines() if COMMITTEE in row and POLICE in row)
    assert line.split()[2:] == ["60", "44", "36", "60.0", "%", "81.8", "%"]
    assert "< 5" in text
    assert "hidden" in text

    monkeypatch.setenv("LEDGER_OVERLAP_MIN_CELL", "40")
    assert main(["audit", "overlap", "--bundle", "week.bundle", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["min_cell"] == 40
    assert document["format"] == "ledger-overlap/1"
    pair = next(p for p in document["pairs"] if (p["org_a"], p["org_b"], p["kind"], p["community"]) ==
                (COMMITTEE, POLICE, "id_number", None))  # fmt: skip
    assert pair["both"] == {"count": None, "suppressed": True, "reason": "small", "shown_as": "< 40"}
    assert pair["share_of_a"] == {"pct": None, "suppressed": True}
    assert main(["audit", "overlap", "--bundle", "week.bundle", "--json", "--min-cell", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["min_cell"] == 5


def test_the_cli_refuses_a_threshold_under_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "overlap", "--bundle", "week.bundle", "--min-cell", "0"])
    assert exit_.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_the_report_carries_the_overlap_and_draws_it_as_a_heat_map(tmp_path: Path) -> None:
    report = build_report(overlap_result())
    assert report.to_json_dict()["overlap"]["pairs"]
    html = render_html(report)
    assert 'id="overlap"' in html
    assert 'data-pct="81.8" style="background: rgba(207, 34, 46, 0.818)' in html  # police's people the committee has
    assert 'data-pct="60.0" style="background: rgba(207, 34, 46, 0.6)' in html
    assert "&lt; 5" in html
    for n in range(60):
        assert overlap_person(n)[0] not in html


def test_the_bench_counts_what_it_synthesised_and_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    from ledger_api.audit.overlap_bench import main as bench_main
    from ledger_api.audit.overlap_bench import synthetic_links

    links = synthetic_links(links=2_000, orgs=2, communities=4, shared=1.0)
    counts = count_overlap(links)
    for kind in ("id_number", "address"):
        assert counts.shared[("ORG-00", "ORG-01", kind, ALL_COMMUNITIES)] == 500  # everyone held twice
    assert bench_main(["--links", "5000", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("overlap of 5,000 links (3 organisations, 20 communities): counted in ")
    assert json.loads(lines[1])["links"] == 5000


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (.ci/run installs it)")
def test_headless_chromium_draws_the_overlap_heat_map(tmp_path: Path) -> None:
    page = tmp_path / "audit-report.html"
    page.write_text(render_html(build_report(overlap_result())), encoding="utf-8")
    dumped = run_chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    dom = Dom(dumped)
    assert "people (by ID number), all communities" in dom.text_by_id["overlap"]
    # The committee's row of the people matrix: its 60, then the police's share of them, shaded.
    row = re.search(rf'<tr data-overlap-row="{COMMITTEE}"><th>{COMMITTEE}</th>(.*?)</tr>', dumped)
    assert row is not None
    assert re.sub(r"<[^>]+>", "|", row.group(1)).strip("|").split("||")[:2] == ["60", "60.0 %|36"]
    shaded = [cell for cell in dom.tags("td") if cell.get("data-pct")]
    assert max(float(cell["data-pct"] or 0) for cell in shaded) == 100.0  # property's B flats: all the committee's
    assert all(f"rgba(207, 34, 46, {float(c['data-pct'] or 0) / 100:g})" in (c.get("style") or "") for c in shaded)
