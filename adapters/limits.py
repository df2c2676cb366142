"""Bounds on what one uploaded export may cost to parse, whatever its bytes claim.

An XLSX file is a ZIP archive of XML parts. Deflate reaches ratios above 1000:1 on repetitive text, so
a few MiB upload can expand into gigabytes (a "zip bomb"): openpyxl reads the shared-strings part
whole into memory, and every other part is decompressed as it is parsed. The archive's directory is
therefore checked before anything is decompressed (:func:`adapters.parsing.archive.check_xlsx_archive`),
and rows, columns and cell sizes are capped while the sheet streams. The declared sizes can be
trusted as upper bounds: Python's ``zipfile`` never returns more than a member's declared
uncompressed size (it stops there and fails the CRC check; APPNOTE.TXT 4.4.9), so a member that lies
about its size only yields an unreadable file.

The defaults admit any workbook Excel itself can save for the exports this project reads (Excel's own
limits are 1,048,576 rows, 16,384 columns and 32,767 characters a cell) while keeping one parse below
a few hundred MiB of memory.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InputLimits"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class InputLimits:
    xlsx_max_members: int = 1_000
    """Parts in one workbook archive (a real export has about ten)."""
    xlsx_max_part_bytes: int = 256 * MiB
    """Uncompressed size of any one part (a sheet of a million rows is about 200 MiB of XML)."""
    xlsx_max_shared_strings_bytes: int = 64 * MiB
    """Uncompressed size of the shared-strings part, which the XLSX reader holds in memory whole."""
    xlsx_max_total_bytes: int = 512 * MiB
    """Uncompressed size of all parts together."""
    xlsx_max_ratio: int = 100
    """Uncompressed : compressed ratio of a part above :attr:`xlsx_ratio_floor_bytes` (XML spreadsheets
    compress 5-30:1; the crafted bombs seen here were 400-1000:1)."""
    xlsx_ratio_floor_bytes: int = 1 * MiB
    """Parts smaller than this are not held to the ratio (tiny repetitive parts compress very well)."""
    max_rows: int = 1_048_576
    """Rows of one sheet (Excel's own limit); a longer sheet is refused, not cut silently."""
    max_columns: int = 1_024
    """Cells read in one row; a row with cells beyond it is a bad row (its cells are not kept)."""
    max_cell_chars: int = 32_767
    """Characters in one cell (Excel's own limit); a row with a longer cell is a bad row."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 1:
                raise ValueError(f"InputLimits.{name} must be at least 1")
