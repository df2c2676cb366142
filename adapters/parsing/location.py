"""Buildings, units and rooms as Chinese community exports write them.

"10幢1单元1502室", "10栋1单元1502", "10号楼1单元1502室", "7-3-2101" and separate 楼栋/单元/房号 columns
(sometimes numbers, sometimes "6幢") all reduce to building "10", unit "1", room "1502".
"""

from __future__ import annotations

import re

from adapters.parsing.text import nfkc

__all__ = ["clean_building", "clean_room", "clean_unit", "normalise_address_text", "split_address", "split_room_code"]

_BUILDING_SUFFIX = re.compile(r"(?:号楼|幢|栋|棟|座|#楼|#|号|楼)$")
_UNIT_SUFFIX = re.compile(r"(?:单元|單元|门|号)$")
_ROOM_SUFFIX = re.compile(r"(?:室|号|房)$")
_ADDRESS = re.compile(
    r"(?P<b>[0-9A-Za-z]+)\s*(?:号楼|幢|栋|棟|座|#)\s*"
    r"(?:(?P<u>[0-9A-Za-z]+)\s*(?:单元|單元)\s*)?"
    # A number followed by 楼/层/F is a floor ("1楼楼道"), not a room.
    r"(?:(?P<r>\d+)\s*(?:室|号|房)?(?![\d楼层Ff]))?"
)
_ROOM_CODE = re.compile(r"^\s*([0-9A-Za-z]+)\s*-\s*([0-9A-Za-z]+)\s*-\s*([0-9A-Za-z]+)\s*$")
_ADDRESS_NOISE = re.compile(r"[\s,，.。、;；:：\-_/\\()（）\[\]【】#]+")


def _strip_number(text: str) -> str:
    # "06" and "6" are the same building; keep non-numeric labels (A, B2) as written.
    return str(int(text)) if text.isdigit() else text


def clean_building(value: str | None) -> str | None:
    """Building label without its suffix ("6幢" → "6")."""
    if value is None:
        return None
    text = _BUILDING_SUFFIX.sub("", nfkc(value)).strip()
    return _strip_number(text) if text else None


def clean_unit(value: str | None) -> str | None:
    """Unit label without its suffix ("2单元" → "2")."""
    if value is None:
        return None
    text = _UNIT_SUFFIX.sub("", nfkc(value)).strip()
    return _strip_number(text) if text else None


def clean_room(value: str | None) -> str | None:
    """Room label without its suffix ("1502室" → "1502")."""
    if value is None:
        return None
    text = _ROOM_SUFFIX.sub("", nfkc(value)).strip()
    return _strip_number(text) if text else None


def split_address(text: str) -> tuple[str | None, str | None, str | None]:
    """(building, unit, room) found in a free-text address, each ``None`` when absent."""
    match = _ADDRESS.search(nfkc(text))
    if match is None:
        return None, None, None
    building, unit, room = match.group("b", "u", "r")
    return _strip_number(building), unit and _strip_number(unit), room and _strip_number(room)


def split_room_code(text: str) -> tuple[str | None, str | None, str | None]:
    """(building, unit, room) from the "7-3-2101" form door-access platforms use."""
    match = _ROOM_CODE.match(nfkc(text))
    if match is None:
        return None, None, clean_room(text)
    building, unit, room = match.groups()
    return _strip_number(building), _strip_number(unit), _strip_number(room)


def normalise_address_text(text: str) -> str:
    """Free-text address reduced for comparison: NFKC (full-width → half-width), case-folded,
    spaces and punctuation variants removed, building suffixes unified to 幢."""
    folded = nfkc(text).casefold()
    folded = re.sub(r"号楼|栋|棟", "幢", folded)
    return _ADDRESS_NOISE.sub("", folded)
