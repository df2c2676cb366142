"""JSON, JSON Lines and XLSX exports as they vary in the field, built in the tests."""

from __future__ import annotations

import io
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from adapters import (
    BadRow,
    CanonicalRecord,
    MissingColumnsError,
    ParsedRow,
    UnreadableFileError,
    get_adapter,
    import_file,
)


def parse(data: bytes, ctx: Any, adapter: str, name: str = "f") -> list[ParsedRow | BadRow]:
    return list(get_adapter(adapter).parse(io.BytesIO(data), file_name=name, context=ctx))


def records(items: list[ParsedRow | BadRow]) -> list[CanonicalRecord]:
    return [i.record for i in items if isinstance(i, ParsedRow)]


def event(n: int, **changes: Any) -> dict[str, Any]:
    base = {
        "event_id": f"AC{n:011d}",
        "ts": "2025-03-08T17:27:20+08:00",
        "community_code": "330106001001",
        "gate": "7号楼西门",
        "credential": "face",
        "person_ref": f"card:{n}",
        "room": "7-3-2101",
        "result": "pass",
    }
    base.update(changes)
    return base


# ---- JSON Lines ----------------------------------------------------------------------------


def test_torn_json_lines_are_one_bad_row_each(ctx: Any, tmp_path: Path) -> None:
    lines = [json.dumps(event(1)), json.dumps(event(2))[:60], "", json.dumps(event(3)), "[1, 2]", "  ", "NaN"]
    path = tmp_path / "torn.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    report = import_file(path, "property.access_events", context=ctx)
    assert (report.rows, report.valid, len(report.bad)) == (5, 2, 3)
    items = parse(path.read_bytes(), ctx, "property.access_events")
    assert [(i.row, type(i).__name__) for i in items] == [
        (1, "ParsedRow"),
        (2, "BadRow"),
        (4, "ParsedRow"),
        (5, "BadRow"),
        (7, "BadRow"),
    ]
    torn = items[1]
    assert isinstance(torn, BadRow)
    assert torn.native_id == "AC00000000002"  # salvaged from the surviving "event_id": "..." pair
    assert "torn" in torn.reason


def test_jsonl_synonym_keys_extra_keys_and_time_formats(ctx: Any) -> None:
    rows = [
        event(1),
        {"eventId": "AC1", "timestamp": 1741426040000, "communityCode": "330106001002", "temperature": 36.6},
        {"事件编号": "AC2", "通行时间": "2025/3/8 17:27", "房号": "7-3-2101", "扩展": {"a": [1, None]}},
    ]
    data = ("\ufeff" + "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n").encode()
    recs = records(parse(data, ctx, "property.access_events"))
    assert [r.source.native_id for r in recs] == ["AC00000000001", "AC1", "AC2"]
    assert recs[1].community_code == "330106001002"
    assert recs[1].attributes["temperature"] == 36.6
    assert recs[2].community_code == ctx.community_code  # none in the line: the context default
    assert recs[2].attributes["扩展"] == {"a": [1, None]}
    assert {r.to_json_dict()["occurred_at"] for r in recs[1:]} == {
        "2025-03-08T17:27:20+08:00",
        "2025-03-08T17:27:00+08:00",
    }
    assert (recs[0].location.building, recs[0].location.unit, recs[0].location.room) == ("7", "3", "2101")


def test_jsonl_missing_time_is_a_bad_row(ctx: Any) -> None:
    data = (json.dumps(event(1, ts=None)) + "\n" + json.dumps(event(2))).encode()
    items = parse(data, ctx, "property.access_events")
    assert isinstance(items[0], BadRow)
    assert items[0].field == "ts"
    assert items[0].native_id == "AC00000000001"
    assert isinstance(items[1], ParsedRow)


def test_jsonl_in_gb18030(ctx: Any) -> None:
    data = "\n".join(json.dumps(event(i), ensure_ascii=False) for i in range(3)).encode("gb18030")
    assert [r.location.text for r in records(parse(data, ctx, "property.access_events"))] == ["7号楼西门"] * 3


# ---- JSON documents --------------------------------------------------------------------------


def person(n: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "人员编号": f"ZD{n:09d}",
        "姓名": "沈静国",
        "身份证号": "320102197707023869",
        "类别": "刑满释放",
        "管控级别": "三级",
        "居住地址": {"社区": "柳岸社区", "社区代码": "330106001002", "楼栋": 11, "单元": 2, "房号": "304"},
        "责任民警": "周伟燕",
        "更新时间": "2025-02-05T04:15:21+08:00",
    }
    base.update(changes)
    return base


@pytest.mark.parametrize("wrap", ["数据", "data", "records", None])
def test_key_person_array_wrappers(wrap: str | None, ctx: Any) -> None:
    people = [person(1), person(2)]
    doc: Any = people if wrap is None else {"导出时间": "2025-04-01T09:00:00+08:00", "meta": {"x": [1]}, wrap: people}
    recs = records(parse(json.dumps(doc, ensure_ascii=False).encode(), ctx, "police.key_persons"))
    assert [r.source.row for r in recs] == [1, 2]
    assert recs[0].location.model_dump() == {
        "building": "11",
        "unit": "2",
        "room": "304",
        "text": "柳岸社区11幢2单元304室",
    }
    assert recs[0].community_code == "330106001002"
    assert recs[0].sensitivity["attributes.category"] == "sensitive"


def test_key_person_nested_extras_and_string_address(ctx: Any) -> None:
    first = person(1)
    first["居住地址"]["小区"] = "柳岸花园"
    first["照片"] = None
    first["备注"] = "每月走访"
    second = person(2, 居住地址="东湖社区 ７栋２单元１７０２室", 更新时间="2025年2月5日 4时15分")
    doc = {"数据": [first, second]}
    recs = records(parse(json.dumps(doc, ensure_ascii=False).encode("utf-8-sig"), ctx, "police.key_persons"))
    assert recs[0].attributes["居住地址.小区"] == "柳岸花园"
    assert recs[0].attributes["备注"] == "每月走访"
    assert "照片" not in recs[0].attributes
    assert (recs[1].location.building, recs[1].location.unit, recs[1].location.room) == ("7", "2", "1702")
    assert recs[1].to_json_dict()["occurred_at"] == "2025-02-05T04:15:00+08:00"


def test_torn_json_array_reports_the_element_and_keeps_the_earlier_ones(ctx: Any) -> None:
    text = json.dumps({"数据": [person(1), person(2), person(3)]}, ensure_ascii=False)
    torn = text[: text.index("ZD000000003") + 20]
    items = parse(torn.encode(), ctx, "police.key_persons")
    assert [type(i).__name__ for i in items] == ["ParsedRow", "ParsedRow", "BadRow"]
    assert items[2].row == 3
    assert "torn" in items[2].reason
    report = import_file(io.BytesIO(torn.encode()), "police.key_persons", context=ctx)
    assert report.rows == report.valid + len(report.bad) == 3


def test_json_non_object_elements_are_bad_rows(ctx: Any) -> None:
    items = parse(json.dumps([person(1), 5, None, [1]]).encode(), ctx, "police.key_persons")
    assert [type(i).__name__ for i in items] == ["ParsedRow", "BadRow", "BadRow", "BadRow"]


def test_json_without_a_record_array_is_unreadable(ctx: Any) -> None:
    with pytest.raises(UnreadableFileError, match="no record array"):
        parse(b'{"a": 1, "b": {"c": []}}', ctx, "police.key_persons")
    with pytest.raises(UnreadableFileError):
        parse(b"", ctx, "police.key_persons")


def hazard(n: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "reportNo": f"WG-003-{n:05d}",
        "reportedAt": 1741651954000,
        "gridMember": {"name": "林海", "phone": "15635390121", "grid": "东湖社区第4网格"},
        "community": {"code": "330106002003", "name": "东湖社区"},
        "location": "6幢2单元 楼道",
        "category": "消防通道占用",
        "description": "需物业处理",
        "photos": ["photo/1.jpg"],
        "status": "处理中",
    }
    base.update(changes)
    return base


def test_hazard_report_time_forms_and_shapes(ctx: Any) -> None:
    doc = [
        hazard(1),
        hazard(2, reportedAt=1741651954),  # epoch seconds
        hazard(3, reportedAt="2025-03-11 08:12:34"),
        hazard(4, gridMember="王五", community="清河社区"),
        hazard(5, reportedAt=1741651954000, gridMember={"name": "林海", "phone": "110"}),  # bad phone
    ]
    items = parse(json.dumps(doc, ensure_ascii=False).encode(), ctx, "committee.hazard_reports")
    recs = records(items)
    assert {r.to_json_dict()["occurred_at"] for r in recs} == {"2025-03-11T08:12:34+08:00"}
    assert recs[3].subjects[0].name == "王五"
    assert recs[3].community_code == "330106001001"
    assert recs[0].attributes["photos"] == ["photo/1.jpg"]
    bad = items[4]
    assert isinstance(bad, BadRow)
    assert bad.field == "gridMember.phone"
    assert bad.native_id == "WG-003-00005"


# ---- XLSX -------------------------------------------------------------------------------------

XLSX_HEADER = [
    "巡检单号",
    "巡检时间",
    "社区",
    "楼栋",
    "位置",
    "设施类型",
    "设施编号",
    "状态",
    "有效期至",
    "巡检人",
    "备注",
]


def xlsx_rows() -> list[list[Any]]:
    return [
        [
            "XJ1",
            datetime(2025, 3, 13, 3, 28, 22),
            "柳岸社区",
            "6幢",
            "1楼楼道",
            "疏散指示",
            "疏散-06-0000",
            "缺失",
            date(2025, 3, 1),
            "许霞",
            None,
        ],
        [
            "XJ2",
            "2025/3/21 19:43",
            "东湖社区",
            9,
            "配电间",
            "灭火器",
            "灭火-09-0001",
            "正常",
            "2026-01-26",
            "马宇",
            "已更换",
        ],
        ["XJ3", 45737.82, "清河社区", "4幢", "1楼楼道", "消火栓", "消火-04-0002", "损坏", 46000, "苏丽子", None],
    ]


def workbook(*, title: bool, rows: list[list[Any]] | None = None, header: list[str] | None = None) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "巡检记录"
    if title:
        ws.append(["清河物业 消防设施巡检记录表"])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(XLSX_HEADER))
    ws.append(header or XLSX_HEADER)
    for row in rows if rows is not None else xlsx_rows():
        ws.append(row)
    for cell in ws["B"][1:]:
        if isinstance(cell.value, datetime):
            cell.number_format = "yyyy-mm-dd hh:mm:ss"  # a real Excel date cell
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("title", [True, False])
def test_xlsx_with_and_without_merged_title_row(title: bool, ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "inspections.xlsx"
    path.write_bytes(workbook(title=title))
    recs: list[CanonicalRecord] = []
    report = import_file(path, "property.fire_inspections", context=ctx, sink=recs.extend)
    assert (report.rows, report.valid) == (3, 3)
    first_row = 3 if title else 2
    assert [r.source.row for r in recs] == [first_row, first_row + 1, first_row + 2]  # Excel row numbers
    assert [r.to_json_dict()["occurred_at"] for r in recs] == [
        "2025-03-13T03:28:22+08:00",
        "2025-03-21T19:43:00+08:00",
        "2025-03-21T19:40:48+08:00",  # Excel serial 45737.82
    ]
    assert [r.attributes["expires_on"] for r in recs] == ["2025-03-01", "2026-01-26", "2025-12-09"]
    assert [r.location.building for r in recs] == ["6", "9", "4"]
    assert [r.community_code for r in recs] == ["330106001002", "330106002003", "330106001001"]
    assert recs[1].attributes["remark"] == "已更换"


def test_xlsx_blank_rows_extra_columns_and_bad_dates(ctx: Any) -> None:
    rows = xlsx_rows()
    rows[0] = [*rows[0], "额外"]
    rows.insert(1, [None] * len(XLSX_HEADER))
    rows.insert(2, ["XJ9", "2025-02-30 10:00", "柳岸社区", "6幢", "", "灭火器"])
    items = parse(workbook(title=True, rows=rows), ctx, "property.fire_inspections")
    assert [(i.row, type(i).__name__) for i in items] == [
        (3, "ParsedRow"),
        (5, "BadRow"),
        (6, "ParsedRow"),
        (7, "ParsedRow"),
    ]
    assert items[0].record.attributes["column 12"] == "额外"  # type: ignore[union-attr]
    assert items[1].native_id == "XJ9"
    assert items[1].field == "巡检时间"


def test_xlsx_missing_required_column(ctx: Any) -> None:
    header = [h if h != "设施类型" else "设施" for h in XLSX_HEADER]
    with pytest.raises(MissingColumnsError) as caught:
        parse(workbook(title=True, header=header), ctx, "property.fire_inspections", name="巡检.xlsx")
    assert caught.value.missing == ("设施类型",)
    assert "巡检.xlsx" in str(caught.value)


def test_xlsx_data_on_a_later_sheet_and_a_non_seekable_stream(ctx: Any, tmp_path: Path) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(workbook(title=False)))
    cover = wb.create_sheet("说明", 0)
    cover.append(["本表由物业导出"])
    wb.active = 0
    path = tmp_path / "insp.xlsx"
    wb.save(path)

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b: Any) -> int:
            chunk = self._data.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    report = import_file(Pipe(path.read_bytes()), "property.fire_inspections", context=ctx)  # type: ignore[arg-type]
    assert (report.rows, report.valid) == (3, 3)


def test_not_a_workbook_is_unreadable(ctx: Any) -> None:
    with pytest.raises(UnreadableFileError, match="XLSX"):
        parse(b"not a zip file", ctx, "property.fire_inspections")


def test_json_records_without_a_required_key_are_one_error(ctx: Any) -> None:
    # No header in JSON: the first records stand in for it.
    lines = [json.dumps({"event_id": f"A{i}", "时间戳": "2025-03-08 10:00"}) for i in range(5)]
    with pytest.raises(MissingColumnsError) as caught:
        parse("\n".join(lines).encode(), ctx, "property.access_events", name="door.jsonl")
    assert caught.value.missing == ("ts",)
    assert "door.jsonl" in str(caught.value)
    # A key missing from one record only is a bad row, as an empty cell would be.
    lines[0] = json.dumps({"event_id": "A0", "ts": "2025-03-08 10:00"})
    items = parse("\n".join(lines).encode(), ctx, "property.access_events")
    assert [type(i).__name__ for i in items] == ["ParsedRow"] + ["BadRow"] * 4
