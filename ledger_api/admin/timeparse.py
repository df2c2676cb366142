"""Times in admin input: ISO 8601 (naive means Asia/Shanghai, the deployment's local time) or epoch seconds."""

from __future__ import annotations

import datetime as dt

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def parse_timestamp(value: object) -> int:
    """Epoch seconds from an int, an ISO 8601 string or a datetime (naive → +08:00)."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=SHANGHAI)
        return int(value.timestamp())
    raise ValueError(f"not a time: {value!r}")


def format_timestamp(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, SHANGHAI).isoformat(timespec="seconds")
