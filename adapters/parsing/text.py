"""Text clean-up shared by every adapter.

Structured values (identifiers, codes, numbers, dates, phones, header names) are normalised with
Unicode NFKC, which folds full-width digits, letters and punctuation (Ｊ００１, ２０２５／３／１４,
U+3000 ideographic space) to their ASCII forms. Free text (summaries, descriptions, names) is only
stripped: NFKC would rewrite Chinese punctuation such as "，" to ",", which changes what the
department wrote.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime, time

__all__ = [
    "clean_structured",
    "clean_text",
    "is_blank",
    "nfkc",
    "normalise_header",
    "to_json_scalar",
]

# Zero-width characters and BOMs that spreadsheet tools leave inside cells.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
# Characters ignored when comparing header names: whitespace of every width, required-field markers,
# brackets and separators that vary between exports ("报警 时间", "*报警时间", "报警时间：").
_HEADER_NOISE = re.compile(r"[\s*:：_\-/\\()（）\[\]【】<>《》'\"`.。、,，;；]+")


def nfkc(value: str) -> str:
    """NFKC-normalise and strip (including U+3000 and zero-width characters)."""
    if value.isascii():
        return value.strip()  # ASCII is NFKC-stable and holds none of the invisible characters
    return unicodedata.normalize("NFKC", value.translate(_INVISIBLE)).strip()


def clean_text(value: object) -> str | None:
    """A free-text cell: stripped, invisible characters removed, ``None`` when blank."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip() if value.isascii() else value.translate(_INVISIBLE).strip()
        return text or None
    return clean_structured(value)


def clean_structured(value: object) -> str | None:
    """A structured cell (id, code, number, building...) as NFKC text, ``None`` when blank.

    Integral floats (Excel stores 11 as 11.0) are written without the ".0".
    """
    if value is None:
        return None
    if type(value) is str:  # the common case first
        return nfkc(value) or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    text = nfkc(str(value))
    return text or None


def is_blank(value: object) -> bool:
    """True for ``None`` and strings that hold only whitespace / invisible characters."""
    if value is None:
        return True
    if isinstance(value, str):
        if value.isascii():
            return not value.strip()
        return not value.translate(_INVISIBLE).strip()
    return False


def normalise_header(value: object) -> str:
    """The comparison key of a header name: NFKC, case-folded, noise characters removed."""
    if value is None:
        return ""
    return _HEADER_NOISE.sub("", nfkc(str(value))).casefold()


def to_json_scalar(value: object) -> str | int | float | bool | None:
    """A spreadsheet/CSV cell kept verbatim in ``attributes`` as a JSON value."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str):
        return clean_text(value)
    return clean_text(str(value))
