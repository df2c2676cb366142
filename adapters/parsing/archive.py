"""Check a workbook's ZIP directory against :class:`~adapters.limits.InputLimits` before parsing.

Only the central directory is read (APPNOTE.TXT 4.3.16): no member is decompressed here, so a bomb
costs its directory's size and nothing more. See :mod:`adapters.limits` for why declared sizes bound
what ``zipfile`` will ever return.
"""

from __future__ import annotations

import zipfile
from typing import BinaryIO

from adapters.errors import InputTooLargeError, UnreadableFileError
from adapters.limits import InputLimits

__all__ = ["check_xlsx_archive"]

_SHARED_STRINGS = "sharedstrings"  # xl/sharedStrings.xml, whatever the writer's casing or folder


def check_xlsx_archive(stream: BinaryIO, *, file_name: str, limits: InputLimits) -> None:
    """Raise :class:`InputTooLargeError` when the archive would expand past ``limits``.

    ``stream`` must be seekable; it is left at offset 0.
    """
    try:
        with zipfile.ZipFile(stream) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableFileError(file_name, f"not a readable XLSX workbook: {exc}") from exc
    finally:
        stream.seek(0)
    if len(members) > limits.xlsx_max_members:
        raise InputTooLargeError(file_name, f"the workbook has {len(members)} parts; at most {limits.xlsx_max_members}")
    total = 0
    for member in members:
        _check_member(member, file_name=file_name, limits=limits)
        total += member.file_size
    if total > limits.xlsx_max_total_bytes:
        raise InputTooLargeError(
            file_name, f"the workbook expands to {total:,} bytes; at most {limits.xlsx_max_total_bytes:,}"
        )


def _check_member(member: zipfile.ZipInfo, *, file_name: str, limits: InputLimits) -> None:
    size = member.file_size
    shared = _SHARED_STRINGS in member.filename.lower()
    bound = limits.xlsx_max_shared_strings_bytes if shared else limits.xlsx_max_part_bytes
    if size > bound:
        raise InputTooLargeError(file_name, f"part {member.filename} expands to {size:,} bytes; at most {bound:,}")
    if size > limits.xlsx_ratio_floor_bytes and size > limits.xlsx_max_ratio * max(member.compress_size, 1):
        ratio = size // max(member.compress_size, 1)
        raise InputTooLargeError(
            file_name,
            f"part {member.filename} expands {ratio:,} times ({member.compress_size:,} to {size:,} bytes); "
            f"at most {limits.xlsx_max_ratio} times: a compression bomb, or a file to split",
        )
