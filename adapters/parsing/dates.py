"""Dates and times as exported by department systems, normalised to Asia/Shanghai (+08:00).

Accepted forms (after NFKC, so full-width digits and separators are fine):

* ISO 8601 with or without an offset (``2025-03-14T08:05:00+08:00``, ``...Z``, ``2025-03-14 08:05:00``);
  a naive value is local time, Asia/Shanghai;
* slashes, dots and Chinese units (``2025/3/14 8:05``, ``2025.3.14``, ``2025年3月14日 8时5分``);
* compact digits (``20250314080500``, ``202503140805``, ``20250314``);
* epoch seconds (10 digits / 1e8..1e11) and epoch milliseconds (13 digits / 1e11..1e14);
* Excel serial day numbers (1900 date system: days since 1899-12-30) and datetime cells.

Impossible dates (2025-02-30, hour 25) are rejected with :class:`ValueError`, never rolled over.

Asia/Shanghai is used as the fixed offset +08:00: China has observed no daylight saving time since
1991, and a fixed offset needs no tz database (absent on Windows without the tzdata package).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone

from adapters.parsing.text import nfkc

__all__ = ["CHINA_TZ", "parse_date", "parse_datetime"]

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Excel's 1900 date system counts from 1899-12-30 once its fictitious 1900-02-29 is accounted for.
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=CHINA_TZ)
_MIN_YEAR, _MAX_YEAR = 1900, 2100

_GENERAL = re.compile(
    r"""^(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?
    (?:\s*T?\s*
        (?P<H>\d{1,2})\s*[:时點点]\s*
        (?:(?P<M>\d{1,2})\s*(?:[:分]\s*)?
            (?:(?P<S>\d{1,2})(?P<f>\.\d{1,9})?\s*秒?)?
        )?
    )?
    \s*(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?$""",
    re.VERBOSE | re.IGNORECASE,
)
_SERIAL = re.compile(r"^\d{1,5}(?:\.\d+)?$")


def _check_year(dt: datetime, raw: object) -> datetime:
    if not _MIN_YEAR <= dt.year <= _MAX_YEAR:
        raise ValueError(f"implausible year {dt.year} in {raw!r}")
    return dt


def _localise(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        return dt.replace(tzinfo=CHINA_TZ)
    return dt.astimezone(CHINA_TZ)


def _from_epoch_ms(ms: int) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(CHINA_TZ)


def _from_number(value: float, raw: object) -> datetime:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"not a date/time: {raw!r}")
    if value < 1e6:
        # Excel serial day number; rounded to the millisecond, Excel's own resolution.
        return _EXCEL_EPOCH + timedelta(milliseconds=round(value * 86_400_000))
    if 1e8 <= value < 1e11:
        if isinstance(value, int):
            return _from_epoch_ms(value * 1000)
        return _from_epoch_ms(round(value * 1000))
    if 1e11 <= value < 1e14:
        return _from_epoch_ms(int(value) if isinstance(value, int) else round(value))
    raise ValueError(f"number {raw!r} is neither an Excel serial date nor epoch seconds/milliseconds")


def _offset(text: str) -> timezone:
    if text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _from_digits(text: str, raw: object) -> datetime:
    n = len(text)
    if n == 8:
        return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), tzinfo=CHINA_TZ)
    if n in (12, 14):
        return datetime(
            int(text[:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14] or 0),
            tzinfo=CHINA_TZ,
        )
    if n == 10:
        return _from_epoch_ms(int(text) * 1000)
    if n == 13:
        return _from_epoch_ms(int(text))
    if n <= 5:
        return _from_number(int(text), raw)
    raise ValueError(f"unrecognised date/time {raw!r}")


def _from_string(text: str, raw: object) -> datetime:
    if text.isdigit():
        return _from_digits(text, raw)
    try:
        # Fast path for ISO 8601, by far the most common form.
        return _localise(datetime.fromisoformat(text))
    except ValueError:
        pass
    match = _GENERAL.match(text)
    if match is None:
        if _SERIAL.match(text):
            return _from_number(float(text), raw)
        raise ValueError(f"unrecognised date/time format {raw!r}")
    g = match.groupdict()
    fraction = g["f"]
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    tz = _offset(g["tz"]) if g["tz"] else CHINA_TZ
    dt = datetime(
        int(g["y"]),
        int(g["m"]),
        int(g["d"]),
        int(g["H"] or 0),
        int(g["M"] or 0),
        int(g["S"] or 0),
        micro,
        tzinfo=tz,
    )
    return dt.astimezone(CHINA_TZ)


def parse_datetime(value: object) -> datetime:
    """A timezone-aware datetime in +08:00, or :class:`ValueError` with a readable reason.

    ``datetime`` objects (Excel cells) are taken as local time when naive; ``date`` objects are
    midnight; ``int``/``float`` are Excel serials (< 1e6), epoch seconds or epoch milliseconds.
    """
    if isinstance(value, datetime):
        return _check_year(_localise(value), value)
    if isinstance(value, date):
        return _check_year(datetime(value.year, value.month, value.day, tzinfo=CHINA_TZ), value)
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a date/time: {value!r}")
    if isinstance(value, int | float):
        try:
            return _check_year(_from_number(value, value), value)
        except OverflowError as exc:
            raise ValueError(f"date/time out of range: {value!r}") from exc
    if not isinstance(value, str):
        raise ValueError(f"not a date/time: {value!r}")
    text = nfkc(value)
    if not text:
        raise ValueError("empty date/time")
    try:
        return _check_year(_from_string(text, value), value)
    except OverflowError as exc:
        raise ValueError(f"date/time out of range: {value!r}") from exc
    except ValueError as exc:
        message = str(exc)
        if "range" in message or "must be in" in message:
            # datetime() refuses 2025-02-30 and 25:00: report it as impossible, not as a format issue.
            raise ValueError(f"impossible date/time {value!r}: {message}") from exc
        raise


def parse_date(value: object) -> date:
    """A calendar date (local, Asia/Shanghai); accepts every form :func:`parse_datetime` does."""
    if isinstance(value, date) and not isinstance(value, datetime):
        if not _MIN_YEAR <= value.year <= _MAX_YEAR:
            raise ValueError(f"implausible year {value.year} in {value!r}")
        return value
    return parse_datetime(value).date()
