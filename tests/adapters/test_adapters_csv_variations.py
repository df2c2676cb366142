"""CSV exports as they vary in the field, built in the tests (police incidents, resident registry)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from adapters import (
    BadRow,
    CanonicalRecord,
    ImportReport,
    MissingColumnsError,
    MissingContextError,
    ParsedRow,
    UnreadableFileError,
    get_adapter,
    import_file,
)

HEADER = [
    "警情编号",
    "报警时间",
    "警情类别",
    "警情细类",
    "所属社区",
    "发案地址",
    "简要警情",
    "处警单位",
    "处置结果",
    "报警人",
    "报警人电话",
    "涉事人员身份证号",
]
ROWS = [
    [
        "J0010012025000001",
        "2025-01-26 10:40:32",
        "诈骗",
        "电信诈骗",
        "清河社区",
        "清河社区10幢1单元1502室",
        "电信诈骗，已到场处置",
        "清河派出所",
        "已调解",
        "徐军艳",
        "19569363850",
        "510107195101243224",
    ],
    [
        "J0020032025000002",
        "2025-03-17 08:22:26",
        "治安",
        "噪音扰民",
        "东湖社区",
        "东湖社区7幢2单元1702室",
        "噪音扰民，已到场处置",
        "东湖派出所",
        "已调解",
        "任轩平",
        "17510582016",
        "",
    ],
    [
        "J0010022025000003",
        "2025-03-03 19:42:36",
        "交通",
        "占用消防通道",
        "柳岸社区",
        "柳岸社区7幢1单元602室",
        "占用消防通道",
        "柳岸派出所",
        "立案侦查",
        "韩英海",
        "0571-87654321",
        "330102194401135962",
    ],
]


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]], *, sep: str = ",", newline: str = "\r\n") -> str:
    def quote(cell: str) -> str:
        return f'"{cell.replace(chr(34), chr(34) * 2)}"' if any(c in cell for c in f'{sep}"\n\r') else cell

    return "".join(sep.join(quote(c) for c in line) + newline for line in [header, *rows])


def parse(data: bytes, ctx: Any, adapter: str = "police.incidents", name: str = "x.csv") -> list[ParsedRow | BadRow]:
    return list(get_adapter(adapter).parse(io.BytesIO(data), file_name=name, context=ctx))


def good(items: list[ParsedRow | BadRow]) -> list[CanonicalRecord]:
    bad = [i for i in items if isinstance(i, BadRow)]
    assert not bad, bad
    return [i.record for i in items if isinstance(i, ParsedRow)]


def fingerprints(items: list[ParsedRow | BadRow]) -> list[str]:
    return [r.content_fingerprint() for r in good(items)]


@pytest.fixture
def baseline(ctx: Any) -> list[str]:
    return fingerprints(parse(csv_text(HEADER, ROWS).encode("gb18030"), ctx))


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-8", "utf-8-sig", "utf-16"])
def test_encodings_give_the_same_records(encoding: str, ctx: Any, baseline: list[str], tmp_path: Path) -> None:
    path = tmp_path / f"incidents-{encoding}.csv"
    path.write_bytes(csv_text(HEADER, ROWS).encode(encoding))
    out: list[CanonicalRecord] = []
    report = import_file(path, "police.incidents", context=ctx, sink=out.extend)
    assert (report.rows, report.valid, report.bad) == (3, 3, ())
    assert [r.content_fingerprint() for r in out] == baseline
    assert {r.source.file for r in out} == {path.name}


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_line_endings(newline: str, ctx: Any, baseline: list[str]) -> None:
    assert fingerprints(parse(csv_text(HEADER, ROWS, newline=newline).encode("utf-8"), ctx)) == baseline


def test_tab_separated_export(ctx: Any, baseline: list[str]) -> None:
    assert fingerprints(parse(csv_text(HEADER, ROWS, sep="\t").encode("gb18030"), ctx)) == baseline


def test_reordered_headers(ctx: Any, baseline: list[str]) -> None:
    order = [11, 3, 0, 5, 1, 2, 4, 6, 10, 7, 8, 9]
    header = [HEADER[i] for i in order]
    rows = [[row[i] for i in order] for row in ROWS]
    assert fingerprints(parse(csv_text(header, rows).encode("gb18030"), ctx)) == baseline


def test_synonym_and_spaced_headers(ctx: Any, baseline: list[str]) -> None:
    header = list(HEADER)
    header[0] = " 警情号 "  # synonym with stray spaces
    header[1] = "接警\u3000时间"  # synonym with an ideographic (全角) space
    header[2] = "警情 类别："  # spaced, trailing full-width colon
    header[10] = "*报警人电话"  # required-field marker
    header[11] = "涉事人员身份证号码"
    assert fingerprints(parse(csv_text(header, ROWS).encode("gb18030"), ctx)) == baseline


def test_title_row_above_the_header_or_none(ctx: Any, baseline: list[str], tmp_path: Path) -> None:
    path = tmp_path / "titled.csv"
    path.write_bytes(
        ("清河派出所 警情导出 2025年第一季度,,,,,,,,,,,\r\n\r\n" + csv_text(HEADER, ROWS)).encode("gb18030")
    )
    out: list[CanonicalRecord] = []
    import_file(path, "police.incidents", context=ctx, sink=out.extend)
    assert [r.content_fingerprint() for r in out] == baseline
    assert [r.source.row for r in out] == [4, 5, 6]  # title on line 1, blank line 2, header line 3


def test_blank_lines_are_skipped_but_numbering_stays_true(ctx: Any) -> None:
    lines = csv_text(HEADER, ROWS).split("\r\n")
    text = "\r\n".join([lines[0], "", lines[1], ",,,,,,,,,,,", " \u3000 ", lines[2], "", lines[3], "", ""])
    items = parse(text.encode("gb18030"), ctx)
    assert len(good(items)) == 3
    assert [i.row for i in items] == [3, 6, 8]
    report = import_file(io.BytesIO(text.encode("gb18030")), "police.incidents", context=ctx)
    assert (report.rows, report.valid, report.bad) == (3, 3, ())


def test_every_date_format(ctx: Any) -> None:
    formats = [
        "2025-03-14T08:05:00+08:00",
        "2025-03-14T00:05:00Z",
        "2025-03-14T08:05:00",
        "2025-03-14 08:05:00",
        "2025/3/14 8:05",
        "2025年3月14日 8时5分",
        "20250314080500",
        "1741910700000",
        "1741910700",
        "２０２５－０３－１４　０８：０５：００",
        "2025.3.14 08:05",
    ]
    rows = [[f"J{i:016d}", f, "治安", "", "清河社区", "", "", "", "", "", "", ""] for i, f in enumerate(formats)]
    records = good(parse(csv_text(HEADER, rows).encode("utf-8"), ctx))
    assert {r.to_json_dict()["occurred_at"] for r in records} == {"2025-03-14T08:05:00+08:00"}
    date_only = [["J1", "20250314", "治安", *[""] * 9], ["J2", "2025-03-14", "治安", *[""] * 9]]
    records = good(parse(csv_text(HEADER, date_only).encode("utf-8"), ctx))
    assert {r.to_json_dict()["occurred_at"] for r in records} == {"2025-03-14T00:00:00+08:00"}


@pytest.mark.parametrize("when", ["2025-02-30 08:00:00", "2025-03-14 25:05:00", "2025/13/1 8:00", "昨天下午"])
def test_impossible_dates_make_one_bad_row(when: str, ctx: Any) -> None:
    rows = [ROWS[0], ["J9", when, "治安", *[""] * 9], ROWS[1]]
    items = parse(csv_text(HEADER, rows).encode("utf-8"), ctx)
    bad = [i for i in items if isinstance(i, BadRow)]
    assert len(items) == 3
    assert len(bad) == 1
    assert (bad[0].row, bad[0].native_id, bad[0].field) == (3, "J9", "报警时间")


def test_full_width_digits_are_folded(ctx: Any, baseline: list[str]) -> None:
    def wide(text: str) -> str:
        return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)

    rows = [list(r) for r in ROWS]
    for row in rows:
        row[0], row[1], row[10], row[11] = wide(row[0]), wide(row[1]), wide(row[10]), wide(row[11])
    records = good(parse(csv_text(HEADER, rows).encode("gb18030"), ctx))
    assert [r.content_fingerprint() for r in records] == baseline
    assert records[0].source.native_id == "J0010012025000001"
    assert records[0].subjects[0].phone == "19569363850"


def test_extra_columns_are_kept_in_attributes(ctx: Any) -> None:
    header = [*HEADER, "天气", "备注"]
    rows = [[*ROWS[0], "晴", "复核"], [*ROWS[1], "", "", "多出的一格"]]
    records = good(parse(csv_text(header, rows).encode("gb18030"), ctx))
    assert records[0].attributes["天气"] == "晴"
    assert records[0].attributes["备注"] == "复核"
    assert records[0].sensitivity["attributes.天气"] == "personal"  # unknown columns: not yet reviewed
    assert "天气" not in records[1].attributes  # blank cells are no data
    assert records[1].attributes["column 15"] == "多出的一格"  # a cell beyond the header is kept too


def test_missing_required_column_is_one_error_naming_it(make_ctx: Any) -> None:
    header = [h for h in HEADER if h != "报警时间"]
    rows = [[c for i, c in enumerate(r) if HEADER[i] != "报警时间"] for r in ROWS]
    data = csv_text(header, rows).encode("gb18030")
    with pytest.raises(MissingColumnsError) as caught:
        import_file(io.BytesIO(data), "police.incidents", context=make_ctx(file_name="q1.csv"))
    assert caught.value.missing == ("报警时间",)
    assert "报警时间" in str(caught.value)
    assert "q1.csv" in str(caught.value)


def test_file_without_any_header_names_all_required_columns(ctx: Any) -> None:
    with pytest.raises(MissingColumnsError) as caught:
        parse(b"a,b,c\r\n1,2,3\r\n", ctx)
    assert set(caught.value.missing) == {"警情编号", "报警时间", "警情类别"}


def test_bad_values_make_bad_rows_and_the_file_continues(make_ctx: Any) -> None:
    rows = [
        ROWS[0],
        ["J2", "2025-03-17 08:22:26", "治安", "", "", "", "", "", "", "任", "12345", ""],  # bad phone
        ["J3", "2025-03-17 08:22:26", "治安", "", "", "", "", "", "", "", "", "510107195101243225"],  # check digit
        ["J4", "2025-03-17 08:22:26"],  # short row: category missing
        ["", "2025-03-17 08:22:26", "治安"],  # no native id
        ROWS[1],
    ]
    data = csv_text(HEADER, rows).encode("utf-8")
    report = import_file(io.BytesIO(data), "police.incidents", context=make_ctx(file_name="q1.csv"))
    assert report.rows == 6
    assert report.valid == 2
    assert [(b.row, b.native_id, b.field) for b in report.bad] == [
        (3, "J2", "报警人电话"),
        (4, "J3", "涉事人员身份证号"),
        (5, "J4", "警情类别"),
        (6, None, "警情编号"),
    ]
    text = report.to_text()
    assert "q1.csv row 3, native id J2 [报警人电话]" in text
    for b in report.bad:
        assert f"row {b.row}" in text
        assert b.reason in text


def test_15_digit_ids_are_upgraded_not_dropped(ctx: Any) -> None:
    rows = [["J1", "2025-03-17 08:22:26", "治安", *[""] * 8, "510107510124322"]]
    (record,) = good(parse(csv_text(HEADER, rows).encode("utf-8"), ctx))
    involved = record.subjects[0]
    assert involved.id_number is not None
    assert len(involved.id_number) == 18
    assert involved.id_number.startswith("51010719510124322")
    assert str(involved.birth_date) == "1951-01-24"


def test_multi_line_cells_keep_row_numbers_true(ctx: Any) -> None:
    rows = [list(ROWS[0]), list(ROWS[1])]
    rows[0][6] = "第一行\n第二行\n第三行"
    items = parse(csv_text(HEADER, rows).encode("utf-8"), ctx)
    assert [i.row for i in items] == [2, 5]
    assert good(items)[0].attributes["summary"] == "第一行\n第二行\n第三行"


def test_undecodable_bytes_make_one_bad_row(ctx: Any) -> None:
    # Past the detection sample, one line carries a byte that is not UTF-8: only that row is bad.
    filler = [[f"J{i:08d}", "2025-03-17 08:22:26", "治安", "", "", "x" * 80] + [""] * 6 for i in range(3000)]
    head = csv_text(HEADER, filler).encode("utf-8")
    assert len(head) > 256 * 1024
    data = head + b"JBAD,2025-03-17 08:22:26,\xff\xfe,,,\r\n" + "J-LAST,2025-03-17 08:22:26,治安\r\n".encode()
    report = import_file(io.BytesIO(data), "police.incidents", context=ctx)
    assert report.valid == 3001
    assert [(b.native_id, b.row) for b in report.bad] == [("JBAD", 3002)]
    assert "utf-8" in report.bad[0].reason


def test_unbalanced_quote_is_an_unreadable_file(ctx: Any) -> None:
    text = csv_text(HEADER, ROWS) + 'J9,2025-03-17 08:22:26,"治安\r\n' + "x\r\n" * 300
    with pytest.raises(UnreadableFileError, match="unbalanced quote"):
        parse(text.encode("utf-8"), ctx)


def test_community_code_sources(make_ctx: Any) -> None:
    header = [*HEADER, "社区代码"]
    rows = [[*ROWS[0], ""], [*ROWS[1], "330106009999"], [*ROWS[2], ""]]
    rows[2][4] = "新建社区"  # not in the context's name → code map
    records = good(parse(csv_text(header, rows).encode("utf-8"), make_ctx(community_code="330106000000")))
    assert [r.community_code for r in records] == ["330106001001", "330106009999", "330106000000"]


# ---- resident registry -------------------------------------------------------------------

RES_HEADER = ["姓名", "性别", "身份证号", "联系电话", "社区", "楼栋", "单元", "房号", "人员类别", "重点关爱"]


def residents(rows: Sequence[Sequence[str]], header: Sequence[str] = RES_HEADER) -> bytes:
    return csv_text(header, rows).encode("utf-8-sig")


def test_resident_native_id_is_the_normalised_id_number(ctx: Any) -> None:
    rows = [
        ["甲", "男", "510107510124322", "13800138000", "清河社区", "5幢", "3单元", "501室", "户籍", ""],
        ["甲", "男", "51010719510124322" + "4", "138 0013 8000", "清河社区", "5", "3", "501", "户籍", ""],
        ["乙", "未说明", "330102194401135962", "+86 139-0013-9000", "东湖社区", "7", "2", "1702", "流动", "独居老人"],
    ]
    report_records: list[CanonicalRecord] = []
    report = import_file(io.BytesIO(residents(rows)), "committee.residents", context=ctx, sink=report_records.extend)
    first = report_records[0]
    assert first.source.native_id == "510107195101243224"  # 15 digits upgraded to 18
    assert report.duplicates == ("510107195101243224",)  # the same person written the new way
    assert (first.location.building, first.location.unit, first.location.room) == ("5", "3", "501")
    second = report_records[1]
    assert second.subjects[0].gender is None
    assert second.attributes["gender_as_written"] == "未说明"
    assert second.subjects[0].phone == "13900139000"
    assert second.sensitivity["attributes.care_category"] == "sensitive"


def test_resident_registry_needs_a_time(make_ctx: Any) -> None:
    rows = [["甲", "男", "510107195101243224", "", "清河社区", "5", "3", "501", "户籍", ""]]
    with pytest.raises(MissingContextError, match="as_of"):
        parse(residents(rows), make_ctx(as_of=None), adapter="committee.residents")
    dated = [[*rows[0], "2024-12-01"]]
    (record,) = good(parse(residents(dated, [*RES_HEADER, "登记日期"]), make_ctx(as_of=None), "committee.residents"))
    assert record.to_json_dict()["occurred_at"] == "2024-12-01T00:00:00+08:00"


def test_resident_bad_id_is_reported_as_written(ctx: Any) -> None:
    rows = [["甲", "男", "５１０１０７１９５１０１２４３２２５", "", "清河社区", "5", "3", "501", "户籍", ""]]
    (item,) = parse(residents(rows), ctx, adapter="committee.residents")
    assert isinstance(item, BadRow)
    assert (item.native_id, item.field, item.row) == ("510107195101243225", "身份证号", 2)


def test_import_report_json_and_text(ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "警情.csv"
    path.write_bytes(csv_text(HEADER, [*ROWS, ROWS[0], ["J9", "bad", "治安"]]).encode("gb18030"))
    report = import_file(path, "police.incidents", context=ctx)
    assert isinstance(report, ImportReport)
    data = report.to_json_dict()
    assert data == {
        "file": "警情.csv",
        "adapter": "police.incidents",
        "rows": 5,
        "valid": 3,
        "duplicates": ["J0010012025000001"],
        "bad": [{"row": 6, "native_id": "J9", "reason": data["bad"][0]["reason"], "field": "报警时间"}],
    }
    text = report.to_text()
    assert "警情.csv row 6, native id J9" in text
    assert "J0010012025000001" in text
    with pytest.raises(AttributeError):
        report.rows = 0  # type: ignore[misc]
