"""Crafted workbooks for the input-limit tests: a real, valid XLSX whose shared strings expand hugely.

The bomb is a genuine deflate stream (nothing in its directory lies), so a reader without limits really
decompresses and holds it: the tests that measure memory measure the real cost.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl

_SST_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)
_SST_TYPE = (
    b'<Override PartName="/xl/sharedStrings.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
)
HEADER = ("巡检单号", "巡检时间", "设施类型", "备注")


def small_workbook(rows: list[tuple[object, ...]]) -> bytes:
    """An ordinary fire-inspection workbook: the header, then ``rows``."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def shared_strings_bomb(path: Path, *, expanded_bytes: int) -> Path:
    """A valid workbook of one data row whose shared-strings part expands to ``expanded_bytes``."""
    source = zipfile.ZipFile(io.BytesIO(small_workbook([("X-1", "2025-03-01 08:00", "灭火器", "")])))
    item = b"<si><t>" + b"A" * 1000 + b"</t></si>"
    chunk = item * 1000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", _SST_TYPE + b"</Types>")
            out.writestr(info, data)
        with out.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            part.write(_SST_HEAD)
            for _ in range(max(expanded_bytes // len(chunk), 1)):
                part.write(chunk)
            part.write(b"</sst>")
    return path
