"""Row sources for tabular exports (CSV and XLSX) and header-row detection.

Row numbers are the numbers a person sees when opening the file: the physical line on which a CSV
record starts (line 1 is the first line of the file, blank lines and title rows count), and the
Excel row number for XLSX. Blank rows are skipped but still counted in the numbering.

The header row is found by matching known header names in the first :data:`HEADER_SCAN_ROWS`
non-blank rows, so a title row (merged or not) above the header, or none, both work.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from adapters.errors import InputTooLargeError, MissingColumnsError, UnreadableFileError
from adapters.limits import InputLimits
from adapters.parsing.archive import check_xlsx_archive
from adapters.parsing.encoding import has_undecodable, open_text
from adapters.parsing.fields import FieldSet, HeaderMatch
from adapters.parsing.text import is_blank

__all__ = [
    "HEADER_SCAN_ROWS",
    "CsvSource",
    "LocatedHeader",
    "SourceRow",
    "XlsxSheet",
    "is_blank_row",
    "iter_csv_rows",
    "locate_header",
    "open_xlsx_sheets",
    "require_header",
]

HEADER_SCAN_ROWS = 20
DEFAULT_LIMITS = InputLimits()
# A record spanning more lines than this means an unbalanced quote swallowed the rest of the file.
MAX_RECORD_LINES = 200
_DELIMITERS = (",", "\t", ";", "|")


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One physical row: its number in the file, its cells, and a read problem if any."""

    number: int
    cells: Sequence[object]
    problem: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvSource:
    """Rows of a CSV export and what was detected about it."""

    rows: Iterator[SourceRow]
    encoding: str
    delimiter: str


def is_blank_row(cells: Sequence[object]) -> bool:
    return all(is_blank(c) for c in cells)


def _sniff_delimiter(head: str) -> str:
    # The header line has the most separators; pick the candidate that occurs most on any early line.
    best, best_count = ",", 0
    for line in head.splitlines()[:HEADER_SCAN_ROWS]:
        for delimiter in _DELIMITERS:
            count = line.count(delimiter)
            if count > best_count:
                best, best_count = delimiter, count
    return best


def iter_csv_rows(stream: BinaryIO, *, file_name: str) -> CsvSource:
    """Stream the rows of a CSV file in constant memory (encoding and delimiter detected)."""
    decoded = open_text(stream, file_name=file_name)
    delimiter = _sniff_delimiter(decoded.head)

    def rows() -> Iterator[SourceRow]:
        reader = csv.reader(decoded.text, delimiter=delimiter)
        previous = 0
        while True:
            start = previous + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise UnreadableFileError(file_name, f"CSV syntax error at line {start}: {exc}") from exc
            previous = reader.line_num
            if previous - start >= MAX_RECORD_LINES:
                raise UnreadableFileError(
                    file_name, f"unbalanced quote: the record starting at line {start} never ends"
                )
            problem = None
            if has_undecodable("".join(cells)):
                problem = f"bytes that are not valid {decoded.encoding}"
            yield SourceRow(start, cells, problem)

    return CsvSource(rows=rows(), encoding=decoded.encoding, delimiter=delimiter)


@dataclass(frozen=True, slots=True, kw_only=True)
class XlsxSheet:
    title: str
    rows: Iterator[SourceRow]


@contextmanager
def open_xlsx_sheets(
    stream: BinaryIO, *, file_name: str, limits: InputLimits = DEFAULT_LIMITS
) -> Iterator[list[XlsxSheet]]:
    """The sheets of a workbook (active sheet first), each as a lazy row iterator.

    openpyxl's read-only mode streams the sheet XML, so memory does not grow with the row count; the
    archive is checked against ``limits`` first (see :mod:`adapters.limits`), and rows, columns and
    cells are capped as they stream.
    """
    import openpyxl  # imported lazily: only XLSX adapters pay for it
    from openpyxl.utils.exceptions import InvalidFileException

    with ExitStack() as stack:
        if not (hasattr(stream, "seekable") and stream.seekable()):
            # zipfile needs to seek; spool a pipe to disk beyond 16 MiB.
            spooled: Any = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024))
            shutil.copyfileobj(stream, spooled)
            spooled.seek(0)
            stream = spooled
        check_xlsx_archive(stream, file_name=file_name, limits=limits)
        try:
            workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
            raise UnreadableFileError(file_name, f"not a readable XLSX workbook: {exc}") from exc
        stack.callback(workbook.close)
        ordered = [workbook.active, *(ws for ws in workbook.worksheets if ws is not workbook.active)]
        sheets = []
        for ws in ordered:
            if ws is None or not hasattr(ws, "iter_rows"):
                continue  # chartsheets have no cells
            # Writers sometimes store a wrong <dimension>; read-only mode would then cut rows off.
            ws.reset_dimensions()
            rows = _sheet_rows(ws, file_name=file_name, limits=limits)
            sheets.append(XlsxSheet(title=str(ws.title), rows=rows))
        yield sheets


def _sheet_rows(ws: Any, *, file_name: str, limits: InputLimits) -> Iterator[SourceRow]:
    # read-only iter_rows fills gaps with empty rows, so enumerate() gives the Excel row number.
    for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
        if number > limits.max_rows:
            raise InputTooLargeError(
                file_name, f"sheet {ws.title!r} has more than {limits.max_rows:,} rows; split the file"
            )
        yield _capped_row(number, values, limits)


def _capped_row(number: int, values: Sequence[object], limits: InputLimits) -> SourceRow:
    """The row as read, or, past a cap, a bad row that keeps no more than the capped cells."""
    if len(values) > limits.max_columns:
        return SourceRow(
            number,
            values[: limits.max_columns],
            f"cells in {len(values):,} columns; at most {limits.max_columns:,} are read",
        )
    for column, value in enumerate(values, start=1):
        if isinstance(value, str) and len(value) > limits.max_cell_chars:
            cells = [*values[: column - 1], value[: limits.max_cell_chars], *values[column:]]
            return SourceRow(
                number,
                cells,
                f"a cell of {len(value):,} characters in column {column}; at most {limits.max_cell_chars:,}",
            )
    return SourceRow(number, values)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocatedHeader:
    row: int
    match: HeaderMatch


def locate_header(rows: Iterator[SourceRow], fields: FieldSet) -> LocatedHeader | tuple[str, ...]:
    """Consume rows up to the header; return it, or the labels missing from the best candidate.

    The header is the first of the first :data:`HEADER_SCAN_ROWS` non-blank rows that carries every
    required field; title rows above it are skipped (they are not data).
    """
    best: HeaderMatch | None = None
    scanned = 0
    for row in rows:
        if is_blank_row(row.cells):
            continue
        match = fields.match_header(row.cells)
        if not match.missing():
            return LocatedHeader(row=row.number, match=match)
        if best is None or len(match.index) > len(best.index):
            best = match
        scanned += 1
        if scanned >= HEADER_SCAN_ROWS:
            break
    if best is None:
        return tuple(f.label for f in fields.required)
    return best.missing()


def require_header(rows: Iterator[SourceRow], fields: FieldSet, *, file_name: str, adapter: str) -> LocatedHeader:
    """:func:`locate_header`, raising one :class:`MissingColumnsError` naming the missing columns."""
    located = locate_header(rows, fields)
    if isinstance(located, LocatedHeader):
        return located
    raise MissingColumnsError(file_name, located, adapter=adapter)
