"""XLSX uploads cost what their limits allow, whatever their bytes claim (issue: decompression bombs).

Before the limits, a 0.9 MB upload whose shared strings expanded to 400 MB took 38 s and 485 MB of
memory to parse (on this machine, under load) before it was read as one valid row.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from adapters import ImportContext, InputLimits, InputTooLargeError, import_file
from adapters.parsing.archive import check_xlsx_archive
from tests.adapters.conftest import SAMPLES, make_context
from tests.conftest import REPO_ROOT
from tests.support.xlsx_bombs import shared_strings_bomb, small_workbook

ADAPTER = "property.fire_inspections"
BOMB_BYTES = 400_000_000


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_strings_bomb(tmp_path_factory.mktemp("bomb") / "bomb.xlsx", expanded_bytes=BOMB_BYTES)


def _import(data: bytes | Path, context: ImportContext | None = None):  # type: ignore[no-untyped-def]
    stream = data.open("rb") if isinstance(data, Path) else io.BytesIO(data)
    with stream:
        return import_file(stream, ADAPTER, context=context or make_context(file_name="upload.xlsx"))


def test_a_shared_strings_bomb_is_refused_naming_the_part(bomb: Path) -> None:
    assert bomb.stat().st_size < 2_000_000  # a small upload ...
    with pytest.raises(InputTooLargeError) as caught:
        _import(bomb)
    assert re.fullmatch(
        r"upload\.xlsx: part xl/sharedStrings\.xml expands to 399,\d{3},\d{3} bytes; at most 67,108,864",
        str(caught.value),
    )


def test_refusing_the_bomb_costs_no_memory(bomb: Path) -> None:
    """Peak memory of a fresh interpreter that imports the bomb, against one that imports the sample."""
    script = (
        "import json, resource, sys\n"
        "from adapters import AdapterError, ImportContext, import_file\n"
        "context = ImportContext(owner_org='org-test-1', community_code='330106000000')\n"
        "try:\n"
        f"    import_file(sys.argv[1], {ADAPTER!r}, context=context)\n"
        "    outcome = 'parsed'\n"
        "except AdapterError as exc:\n"
        "    outcome = type(exc).__name__\n"
        "print(json.dumps([outcome, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))\n"
    )

    def peak_kib(path: Path) -> tuple[str, int]:
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
        outcome, peak = json.loads(done.stdout)
        return outcome, int(peak)

    baseline_outcome, baseline = peak_kib(SAMPLES / "property" / "fire_inspections.xlsx")
    bomb_outcome, peak = peak_kib(bomb)
    assert (baseline_outcome, bomb_outcome) == ("parsed", "InputTooLargeError")
    # Unbounded, the 400 MB of shared strings cost ~450 MB more than the sample; refused, nothing.
    assert peak - baseline < 32 * 1024, f"bomb peak {peak} KiB, sample peak {baseline} KiB"


def _zip(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_a_part_that_expands_past_the_ratio_is_refused() -> None:
    archive = _zip({"xl/worksheets/sheet1.xml": b"\0" * (8 * 1024 * 1024)})  # ~1000:1, under every size bound
    with pytest.raises(InputTooLargeError, match=r"part xl/worksheets/sheet1\.xml expands [\d,]+ times"):
        check_xlsx_archive(archive, file_name="f.xlsx", limits=InputLimits())
    assert archive.tell() == 0


def test_too_many_parts_and_too_large_a_total_are_refused() -> None:
    many = _zip({f"xl/media/image{i}.png": b"x" for i in range(11)})
    with pytest.raises(InputTooLargeError, match="the workbook has 11 parts; at most 10"):
        check_xlsx_archive(many, file_name="f.xlsx", limits=InputLimits(xlsx_max_members=10))
    total = _zip({"a.xml": b"a" * 600, "b.xml": b"b" * 600})
    with pytest.raises(InputTooLargeError, match="the workbook expands to 1,200 bytes; at most 1,000"):
        check_xlsx_archive(total, file_name="f.xlsx", limits=InputLimits(xlsx_max_total_bytes=1_000))


def test_the_sample_export_passes_the_default_limits() -> None:
    expected = json.loads((SAMPLES / "EXPECTED.json").read_text(encoding="utf-8"))
    report = _import(SAMPLES / "property" / "fire_inspections.xlsx")
    assert report.rows == expected["property/fire_inspections.xlsx"]["rows"]


def test_a_sheet_over_the_row_cap_is_refused_not_cut() -> None:
    data = small_workbook([(f"X-{i}", "2025-03-01 08:00", "灭火器", "") for i in range(10)])
    with pytest.raises(InputTooLargeError, match="sheet 'Sheet' has more than 5 rows; split the file"):
        _import(data, make_context(file_name="upload.xlsx", limits=InputLimits(max_rows=5)))


def test_a_row_wider_than_the_column_cap_is_a_bad_row_and_its_neighbours_stay() -> None:
    wide = ("X-2", "2025-03-01 09:00", "灭火器", "", *([None] * 40), "far away")
    data = small_workbook([("X-1", "2025-03-01 08:00", "灭火器", ""), wide, ("X-3", "2025-03-01 10:00", "烟感", "")])
    report = _import(data, make_context(file_name="upload.xlsx", limits=InputLimits(max_columns=20)))
    assert (report.rows, report.valid) == (3, 2)
    (bad,) = report.bad
    assert (bad.row, bad.native_id, bad.reason) == (3, "X-2", "cells in 45 columns; at most 20 are read")


def test_a_cell_over_the_size_cap_is_a_bad_row_and_its_neighbours_stay() -> None:
    # openpyxl itself stops a cell at Excel's 32,767 characters; the cap is tested below that.
    data = small_workbook(
        [("X-1", "2025-03-01 08:00", "灭火器", "备" * 4_000), ("X-2", "2025-03-01 09:00", "烟感", "ok")]
    )
    report = _import(data, make_context(file_name="upload.xlsx", limits=InputLimits(max_cell_chars=1_000)))
    assert (report.rows, report.valid) == (2, 1)
    (bad,) = report.bad
    assert (bad.row, bad.native_id) == (2, "X-1")
    assert bad.reason == "a cell of 4,000 characters in column 4; at most 1,000"


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match=r"InputLimits\.max_rows must be at least 1"):
        InputLimits(max_rows=0)
