"""Masking: a masked value leaves no trace in the answer, nor anything it can be rebuilt from (DESIGN.md
invariant 8). Records are built by the real adapters from generated export files, every purpose is tried,
and the answer is searched whole (every field, every depth) as an attacker holding it would."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from adapters import ImportContext
from adapters.canonical import RecordType
from adapters.parsing.ids import id_check_character
from adapters.protocol import ParsedRow
from adapters.registry import all_adapters, get_adapter
from ledger_api.chain.encoding import Purpose
from ledger_api.records.commitment import commitment_of, open_commitment, verify_opening
from ledger_api.records.masking import MASKABLE, MASKED_FIELDS, REVEALED_BY_PURPOSE, mask_record

CST = timezone(timedelta(hours=8))
CONTEXT = ImportContext(owner_org="org-test-1", community_code="330106001001", as_of=datetime(2025, 4, 1, tzinfo=CST))
PURPOSES = [p for p in Purpose if p is not Purpose.NONE]
# Every purpose's own reveal set, and the narrower sets a caller (break-glass) may pass.
REVEALS: list[tuple[Purpose, frozenset[str] | None]] = [(p, None) for p in PURPOSES] + [
    (Purpose.EMERGENCY_RESPONSE, frozenset({"phone"})),
    (Purpose.EMERGENCY_RESPONSE, frozenset({"id_number"})),
    (Purpose.INVESTIGATION, frozenset()),
]


def with_check(first17: str) -> str:
    return first17 + id_check_character(first17)


@dataclass
class Person:
    id18: str
    phone: str
    id_as_written: str
    """The ID number as the export writes it: 18 characters, or the 15-digit first-generation number."""

    @property
    def birth(self) -> date:
        return date(int(self.id18[6:10]), int(self.id18[10:12]), int(self.id18[12:14]))


@st.composite
def people(draw: st.DrawFn) -> Person:
    region = draw(st.from_regex(r"[1-6][0-9]{5}", fullmatch=True))
    # Born before 2020: no birth date can coincide with the 2025 event times of the generated exports.
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2019, 12, 31)))
    sequence = draw(st.integers(min_value=0, max_value=999))
    id18 = with_check(f"{region}{born:%Y%m%d}{sequence:03d}")
    fifteen = born.year < 2000 and draw(st.booleans())
    written = f"{region}{born:%y%m%d}{sequence:03d}" if fifteen else id18
    phone = draw(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
    return Person(id18=id18, phone=phone, id_as_written=written)


NAMES = st.text(alphabet="张王李赵刘陈杨黄周吴林何郭罗", min_size=2, max_size=3)


@dataclass
class Planted:
    """What the generated export holds that a masked answer must not show, by kind."""

    values: dict[str, set[str]] = field(default_factory=lambda: {"id_number": set(), "phone": set()})
    births: set[date] = field(default_factory=set)

    def person(self, person: Person) -> None:
        self.values["id_number"] |= {person.id18, person.id_as_written, person.id18[6:14]}
        self.values["phone"] |= {person.phone, full_width(person.phone)}
        self.births.add(person.birth)


def full_width(digits: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in digits)


@st.composite
def free_text(draw: st.DrawFn, person: Person, other: Person, planted: Planted) -> str:
    """Text that may quote the person's (or someone else's) ID number, phone or birth digits. The birth
    digits alone are quoted only of a person whose ID number the record holds somewhere (the row's
    person: its subject, or quoted in its text by the row's other fields)."""
    choice = draw(st.sampled_from(["plain", "phone", "id", "birth", "other_id", "other_phone", "full_width"]))
    if choice in {"other_id", "other_phone"}:
        planted.person(other)
    return {
        "plain": "已到场处置",
        "phone": f"联系电话{person.phone}，请回电",
        "id": f"当事人身份证{person.id_as_written}已核实",
        "birth": f"出生日期{person.id18[6:14]}，证件{person.id_as_written}",
        "other_id": f"同行人{other.id18}",
        "other_phone": f"紧急联系人 {other.phone}",
        "full_width": "电话" + full_width(person.phone),
    }[choice]


def other_contact(draw: st.DrawFn, other: Person, planted: Planted) -> str:
    value = draw(st.sampled_from(["", other.phone, other.id18]))
    if value:
        planted.person(other)
    return value


def csv_bytes(rows: list[dict[str, Any]], *, encoding: str) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[dict[str, Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["消防设施巡检记录"])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(rows[0]))
    sheet.append(list(rows[0]))
    for row in rows:
        sheet.append(list(row.values()))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


RowMaker = Callable[[st.DrawFn, int, Person, Person, Planted], dict[str, Any]]


def incident(draw: st.DrawFn, n: int, p: Person, other: Person, planted: Planted) -> dict[str, Any]:
    return {
        "警情编号": f"J{n:06d}", "报警时间": "2025-03-01 10:00:00", "警情类别": "求助", "所属社区": "清河社区",
        "发案地址": "清河社区10幢1单元1502室", "简要警情": draw(free_text(p, other, planted)),
        "报警人": draw(NAMES), "报警人电话": p.phone, "涉事人员身份证号": p.id_as_written,
        "备用联系": other_contact(draw, other, planted),
        "出生日期": draw(st.sampled_from(["", p.id18[6:14], p.birth.isoformat()])),
    }  # fmt: skip


def key_person(draw: st.DrawFn, n: int, p: Person, other: Person, planted: Planted) -> dict[str, Any]:
    return {
        "人员编号": f"ZD{n:06d}", "姓名": draw(NAMES), "身份证号": p.id_as_written, "类别": "刑满释放",
        "居住地址": {
            "社区": "柳岸社区", "楼栋": 11, "单元": 2, "房号": "304", "详细地址": draw(free_text(p, other, planted)),
        },
        "更新时间": "2025-02-05T04:15:21+08:00",
        "联系方式": {"手机": p.phone, "备注": draw(free_text(p, other, planted))},
    }  # fmt: skip


def access_event(draw: st.DrawFn, n: int, p: Person, other: Person, planted: Planted) -> dict[str, Any]:
    return {
        "event_id": f"AC{n:06d}", "ts": "2025-03-08T17:27:20+08:00", "gate": "7号楼西门", "credential": "face",
        "person_ref": draw(st.sampled_from([f"card:{n:08d}", f"tel:{p.phone}", f"id:{p.id_as_written}"])),
        "room": "7-3-2101", "result": "pass", "visitor_phone": draw(st.sampled_from([p.phone, int(p.phone)])),
    }  # fmt: skip


def fire_inspection(draw: st.DrawFn, n: int, p: Person, other: Person, planted: Planted) -> dict[str, Any]:
    return {
        "巡检单号": f"XJ{n:06d}", "巡检时间": "2025-03-02 09:30", "设施类型": "灭火器", "巡检人": draw(NAMES),
        "备注": draw(free_text(p, other, planted)), "巡检人电话": p.phone,
    }  # fmt: skip


def resident(draw: st.DrawFn, n: int, p: Person, other: Person, planted: Planted) -> dict[str, Any]:
    return {
        "姓名": draw(NAMES), "性别": draw(st.sampled_from(["男", "女", "男性", "F", ""])), "身份证号": p.id_as_written,
        "联系电话": p.phone, "社区": "柳岸社区", "楼栋": "5", "单元": "3", "房号": f"{500 + n}",
        "人员类别": "户籍", "重点关爱": "", "紧急联系人": draw(free_text(p, other, planted)),
    }  # fmt: skip


def hazard_report(draw: st.DrawFn, n: int, p: Person, other: Person, planted: Planted) -> dict[str, Any]:
    return {
        "reportNo": f"WG-{n:05d}", "reportedAt": 1741651954000,
        "gridMember": {"name": draw(NAMES), "phone": p.phone, "grid": "第4网格"},
        "community": {"code": "330106002003", "name": "东湖社区"}, "location": draw(free_text(p, other, planted)),
        "category": "消防通道占用", "description": draw(free_text(p, other, planted)),
        "photos": [f"photo/{n}_0.jpg"],
    }  # fmt: skip


EXPORTS: dict[str, tuple[RowMaker, Callable[[list[dict[str, Any]]], bytes]]] = {
    "police.incidents": (incident, lambda rows: csv_bytes(rows, encoding="gb18030")),
    "police.key_persons": (key_person, lambda rows: json.dumps({"数据": rows}, ensure_ascii=False).encode()),
    "property.access_events": (access_event, lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
    "property.fire_inspections": (fire_inspection, xlsx_bytes),
    "committee.residents": (resident, lambda rows: csv_bytes(rows, encoding="utf-8-sig")),
    "committee.hazard_reports": (hazard_report, lambda rows: json.dumps(rows, ensure_ascii=False).encode()),
}
# Which people each export names as record subjects (the rest of what it plants is only in text).
SUBJECT_KINDS = {
    "police.incidents": {"id_number", "phone"},
    "police.key_persons": {"id_number"},
    "property.access_events": set(),
    "property.fire_inspections": set(),
    "committee.residents": {"id_number", "phone"},
    "committee.hazard_reports": {"phone"},
}


@st.composite
def exports(draw: st.DrawFn, adapter: str) -> tuple[list[dict[str, Any]], Planted]:
    """Records the real adapter builds from a generated export file, and what that file planted."""
    make_row, encode = EXPORTS[adapter]
    planted = Planted()
    rows = []
    for n in range(draw(st.integers(min_value=1, max_value=3))):
        person, other = draw(people()), draw(people())
        planted.person(person)
        rows.append(make_row(draw, n, person, other, planted))
    parsed = list(get_adapter(adapter).parse(io.BytesIO(encode(rows)), file_name="export", context=CONTEXT))
    assert all(isinstance(item, ParsedRow) for item in parsed), parsed
    return [item.record.to_json_dict() for item in parsed if isinstance(item, ParsedRow)], planted


def strings(value: Any) -> Iterator[str]:
    """Every key and scalar of a JSON value, as text."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield str(key)
            yield from strings(child)
    elif isinstance(value, list):
        for child in value:
            yield from strings(child)
    elif value is not None:
        yield str(value)


# Birth dates an attacker must try when none of the birth digits is shown: 1890 (the adapters' floor) to now.
BIRTHS_HIDDEN = (date(2025, 12, 31) - date(1890, 1, 1)).days + 1


def candidates(masked_id: str, birth_date: object, gender: object) -> int:
    """How many GB 11643 numbers agree with what the answer shows of one person (a lower bound on an
    attacker's work): birth dates and sequences consistent with the shown characters, then the check."""
    shown = {i: c for i, c in enumerate(masked_id) if c != "*"}
    if birth_date is not None:
        births = 1
    elif not set(shown) & set(range(6, 14)):
        births = BIRTHS_HIDDEN
    else:
        births, day = 0, date(1890, 1, 1)
        while day <= date(2025, 12, 31):
            digits = f"{day:%Y%m%d}"
            births += all(shown.get(6 + i, d) == d for i, d in enumerate(digits))
            day += timedelta(days=1)
    sequences = sum(
        all(shown.get(14 + i, d) == d for i, d in enumerate(f"{n:03d}"))
        and (gender is None or (n % 2 == 1) == (gender == "male"))
        for n in range(1000)
    )
    return births * sequences // (11 if 17 in shown else 1)


def assert_unrecoverable(answer: dict[str, Any], paths: list[str], planted: Planted, hidden: frozenset[str]) -> None:
    text = "\n".join(strings(answer))
    for kind in hidden:
        for value in planted.values[kind]:
            assert value not in text, (
                f"masked {kind} {value} is in the answer: {json.dumps(answer, ensure_ascii=False)}"
            )
    if "id_number" in hidden:
        for born in planted.births:
            assert born.isoformat() not in text
        for index, subject in enumerate(answer["subjects"]):
            assert subject["birth_date"] is None, subject
            assert subject["gender"] is None, subject
            if subject["id_number"]:
                assert f"subjects[{index}].id_number" in paths
                shown = sum(c != "*" for c in subject["id_number"])
                assert shown <= 6  # the region code at most
                assert candidates(subject["id_number"], subject["birth_date"], subject["gender"]) >= 10**7
        assert answer["attributes"].get("gender_as_written") is None


@pytest.mark.parametrize("adapter", sorted(EXPORTS))
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_masked_answer_holds_or_rebuilds_a_masked_value(adapter: str, data: st.DataObject) -> None:
    records, planted = data.draw(exports(adapter))
    # Not vacuous: the values the subjects carry are really in the adapters' records.
    for kind in SUBJECT_KINDS[adapter]:
        assert any(value in "\n".join(strings(records)) for value in planted.values[kind]), kind
    salt, data_key = bytes(range(32)), bytes(range(32, 64))
    for record in records:
        original = json.dumps(record, sort_keys=True)
        anchored = commitment_of(record, salt=salt, data_key=data_key)
        for purpose, reveal in REVEALS:
            answer, paths = mask_record(record, purpose, reveal=reveal)
            revealed = REVEALED_BY_PURPOSE[purpose] if reveal is None else reveal
            assert_unrecoverable(answer, paths, planted, frozenset(MASKABLE) - revealed)
            # What was masked still checks against the anchored (v3) commitment, and nothing else does.
            opening = open_commitment(record, salt=salt, data_key=data_key, masked_paths=paths)
            assert verify_opening(answer, opening, anchored)
            assert set(opening.masked) == set(paths)
        assert json.dumps(record, sort_keys=True) == original  # the stored record itself is untouched
        assert mask_record(record, None) == (record, [])


def test_every_record_type_an_adapter_produces_declares_its_masked_fields() -> None:
    assert set(MASKED_FIELDS) == set(RecordType)
    assert {a.record_type for a in all_adapters()} <= set(MASKED_FIELDS)
    assert {a.name for a in all_adapters()} == set(EXPORTS)
    resident_fields = {f.pattern for f in MASKED_FIELDS[RecordType.RESIDENT]}
    assert {"source.native_id", "subjects[].birth_date", "subjects[].gender"} <= resident_fields


# ---- the reported case (issue 11): a committee's elderly-care read rebuilt the full ID number ----

INVOLVED = with_check("33010219860721308")  # born 1986-07-21


def one_record(adapter: str, content: bytes) -> dict[str, Any]:
    (item,) = get_adapter(adapter).parse(io.BytesIO(content), file_name="export", context=CONTEXT)
    assert isinstance(item, ParsedRow), item
    return item.record.to_json_dict()


def test_an_elderly_care_read_of_an_incident_hides_the_birth_date_and_gender() -> None:
    record = one_record(
        "police.incidents",
        "警情编号,报警时间,警情类别,报警人,报警人电话,涉事人员身份证号\r\n"
        f"J0010012025000132,2025-01-26 10:40:32,求助,徐军艳,19569363850,{INVOLVED}\r\n".encode("gb18030"),
    )
    assert record["subjects"][1]["birth_date"] == "1986-07-21"  # the stored record keeps it
    answer, paths = mask_record(record, Purpose.ELDERLY_CARE)
    involved = answer["subjects"][1]
    assert involved["birth_date"] is None
    assert involved["gender"] is None
    assert involved["id_number"] == "330102************"  # not even the gender digit of the last four
    assert {"subjects[1].id_number", "subjects[1].birth_date", "subjects[1].gender"} <= set(paths)
    text = json.dumps(answer, ensure_ascii=False)
    for hidden in ("19860721", "1986-07-21", INVOLVED):
        assert hidden not in text
    assert answer["subjects"][0]["phone"] == "19569363850"  # elderly care needs the phone


def test_an_elderly_care_read_of_a_resident_hides_the_id_number_that_is_its_native_id() -> None:
    resident_id = with_check("33010619750224896")
    record = one_record(
        "committee.residents",
        f"姓名,性别,身份证号,联系电话\n谢勇,男,{resident_id},13777926390\n".encode("utf-8-sig"),
    )
    assert record["source"]["native_id"] == resident_id
    answer, paths = mask_record(record, Purpose.ELDERLY_CARE)
    assert answer["source"]["native_id"] == "330106************"
    assert "source.native_id" in paths
    assert resident_id not in json.dumps(answer, ensure_ascii=False)
    assert answer["subjects"][0]["gender"] is None
    assert answer["subjects"][0]["birth_date"] is None


def test_reveal_narrows_what_the_purpose_shows() -> None:
    record = one_record(
        "committee.residents",
        f"姓名,身份证号,联系电话\n谢勇,{with_check('33010619750224896')},13777926390\n".encode("utf-8-sig"),
    )
    full, masked = mask_record(record, Purpose.EMERGENCY_RESPONSE)
    assert masked == []
    assert full == record
    answer, paths = mask_record(record, Purpose.EMERGENCY_RESPONSE, reveal=frozenset({"id_number"}))
    assert paths == ["subjects[0].phone"]
    assert answer["subjects"][0]["phone"] == "137****6390"
    assert answer["subjects"][0]["id_number"] == record["subjects"][0]["id_number"]
    _, paths = mask_record(record, Purpose.EMERGENCY_RESPONSE, reveal=frozenset())
    assert set(paths) == {
        "source.native_id", "subjects[0].id_number", "subjects[0].phone", "subjects[0].birth_date",
        "subjects[0].gender",
    }  # fmt: skip
