"""Mainland China phone numbers.

* Mobile: 11 digits, ``1[3-9]`` then 9 digits (MIIT numbering plan); returned as the 11 digits.
* Landline: trunk prefix 0, area code (3 digits with the 0 for 010 and 02x, 4 otherwise) and a 7-8 digit
  subscriber number; returned as the digits without separators, e.g. ``057187654321``. An extension
  is kept in RFC 3966 style: ``057187654321;ext=801``.

The country code (+86, 0086, 86) and spaces, dashes, dots and brackets are stripped; full-width
digits are folded by NFKC. Anything else is rejected with :class:`ValueError`.
"""

from __future__ import annotations

import re

from adapters.parsing.text import nfkc

__all__ = ["normalise_phone"]

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_EXTENSION = re.compile(r"(?:转|分机|ext\.?|x|#|,|;ext=)\s*(\d{1,6})$", re.IGNORECASE)
_NOISE = re.compile(r"[\s\-.()（）\[\]/]+")
# Area codes with 3 digits including the trunk 0: Beijing 010 and the 02x cities; all others have 4.
_LANDLINE = re.compile(r"^(0(?:10|2\d|[3-9]\d{2}))([2-9]\d{6,7})$")


def normalise_phone(raw: str) -> str:
    """The normalised phone number, or :class:`ValueError` with the reason."""
    text = nfkc(raw)
    extension = ""
    match = _EXTENSION.search(text)
    if match:
        extension = match.group(1)
        text = text[: match.start()]
    digits = _NOISE.sub("", text)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) in (13, 12, 11) and not _MOBILE.match(digits):
        digits = digits[2:]
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"phone number {raw!r} contains characters other than digits")
    if digits.startswith("0") and _MOBILE.match(digits[1:]):
        digits = digits[1:]  # "0" + mobile: the long-distance prefix some people still dial
    if _MOBILE.match(digits):
        if extension:
            raise ValueError(f"mobile number {raw!r} cannot have an extension")
        return digits
    if digits[0] != "0" and len(digits) >= 9:
        # Written internationally (+86 571 ...): the trunk 0 is omitted.
        digits = "0" + digits
    if _LANDLINE.match(digits):
        return f"{digits};ext={extension}" if extension else digits
    raise ValueError(f"not a mainland mobile (1[3-9] + 9 digits) or landline number: {raw!r}")
