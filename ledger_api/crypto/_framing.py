"""Tiny length-prefixed binary framing shared by the blob and keystore formats.

Integers are unsigned big-endian. Text is UTF-8 behind a one-byte length (1-255 bytes, never empty), so
that concatenated fields can never be re-split differently: every encoding here is injective.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_TEXT_BYTES = 255


def text_bytes(value: str, what: str, error: Callable[[str], Exception]) -> bytes:
    if not isinstance(value, str):
        raise error(f"{what} must be a string, got {type(value).__name__}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{what} is not encodable as UTF-8") from None
    if not raw:
        raise error(f"{what} must not be empty")
    if len(raw) > MAX_TEXT_BYTES:
        raise error(f"{what} is {len(raw)} bytes in UTF-8; at most {MAX_TEXT_BYTES} are allowed")
    return raw


def lp8_text(value: str, what: str, error: Callable[[str], Exception]) -> bytes:
    raw = text_bytes(value, what, error)
    return len(raw).to_bytes(1, "big") + raw


def uint(value: int, size: int, what: str, error: Callable[[str], Exception]) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an integer, got {type(value).__name__}")
    if not 0 <= value < 1 << (8 * size):
        raise error(f"{what} must be between 0 and {(1 << (8 * size)) - 1}, got {value}")
    return value.to_bytes(size, "big")


class Reader:
    """Reads fields in order; any shortfall or bad field raises ``error(message)``."""

    __slots__ = ("_data", "_error", "_pos")

    def __init__(self, data: bytes, error: Callable[[str], Exception]) -> None:
        self._data = data
        self._pos = 0
        self._error = error

    @property
    def position(self) -> int:
        return self._pos

    def take(self, size: int, what: str) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise self._error(f"truncated: {what} needs {size} bytes at offset {self._pos}, {self.remaining} left")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def text(self, what: str) -> str:
        size = self.uint(1, f"length of {what}")
        if size == 0:
            raise self._error(f"{what} is empty")
        raw = self.take(size, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error(f"{what} is not valid UTF-8") from None

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def finish(self, what: str) -> None:
        if self.remaining:
            raise self._error(f"{self.remaining} unexpected trailing bytes after {what}")
