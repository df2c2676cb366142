"""Resident identity card numbers (公民身份号码), GB 11643-1999.

An 18-character number is: 6-digit administrative division code (GB/T 2260), 8-digit birth date
(YYYYMMDD), 3-digit sequence (odd = male, even = female) and 1 check character computed with
ISO 7064:1983 MOD 11-2 over the first 17 digits (weight of position i = 1..17 is 2^(18-i) mod 11;
the check value 10 is written "X").

First-generation cards carry a 15-digit number (2-digit birth year, no check character). GB 11643
upgrades it by inserting "19" before the year and appending the MOD 11-2 check character. A
15-digit number is therefore upgraded, never dropped.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Literal

from adapters.parsing.text import nfkc

__all__ = [
    "birth_date_from_id",
    "gender_from_id",
    "id_check_character",
    "normalise_id_number",
]

# ISO 7064 MOD 11-2 weights for positions i = 1..17: 2^(18-i) mod 11 (7, 9, 10, 5, 8, 4, 2, 1, ...).
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
# Check character for (sum mod 11) = 0..10: the value c with (sum + c) ≡ 1 (mod 11), 10 written "X".
_CHECK = "10X98765432"
_SEPARATORS = re.compile(r"[\s\-_.·]+")
# [0-9], not \d: \d also matches other scripts' digits (e.g. Arabic-Indic), which int() would accept.
_ID18 = re.compile(r"^[0-9]{17}[0-9X]$")
_ID15 = re.compile(r"^[0-9]{15}$")
_CHINA_TZ = timezone(timedelta(hours=8))


def id_check_character(first17: str) -> str:
    """The GB 11643 / ISO 7064 MOD 11-2 check character for 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("expected 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def _birth_date(yyyymmdd: str) -> date:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError as exc:
        raise ValueError(f"impossible birth date {yyyymmdd} in ID number") from exc
    today = datetime.now(_CHINA_TZ).date()
    if born.year < 1890 or born > today:
        raise ValueError(f"impossible birth date {born.isoformat()} in ID number")
    return born


def normalise_id_number(raw: str) -> str:
    """The canonical 18-character ID number, or :class:`ValueError` explaining why it is invalid.

    Accepts full-width digits, spaces and dashes, lower-case "x", and 15-digit first-generation numbers
    (upgraded to 18 digits per GB 11643). Checks the birth date and the MOD 11-2 check character.
    """
    text = _SEPARATORS.sub("", nfkc(raw)).upper()
    if _ID15.match(text):
        _birth_date("19" + text[6:12])
        first17 = text[:6] + "19" + text[6:]
        return first17 + id_check_character(first17)
    if not _ID18.match(text):
        raise ValueError(
            f"ID number must be 17 digits 0-9 and a check digit or X (or 15 digits 0-9), got {len(text)} characters"
        )
    _birth_date(text[6:14])
    expected = id_check_character(text[:17])
    if text[17] != expected:
        raise ValueError(f"ID number check character is {text[17]}, GB 11643 MOD 11-2 gives {expected}")
    return text


def birth_date_from_id(id18: str) -> date:
    """Birth date encoded in a normalised 18-character ID number."""
    return date(int(id18[6:10]), int(id18[10:12]), int(id18[12:14]))


def gender_from_id(id18: str) -> Literal["male", "female"]:
    """``"male"`` or ``"female"`` from the sequence code's parity (GB 11643: odd = male)."""
    return "male" if int(id18[16]) % 2 else "female"
