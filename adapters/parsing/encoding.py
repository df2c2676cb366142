"""Encoding detection and streaming decode.

Department systems export UTF-8 (with or without BOM) or GB18030/GBK (Windows "ANSI" on a Chinese
system). Detection reads one bounded sample from the head of the stream and tries strict decoders in
a fixed order: BOM first, then UTF-8, then GB18030 (a superset of GBK and GB2312). A Chinese GB18030
text almost never decodes as UTF-8, so that order is safe; charset-normalizer is only a fallback for
anything else. The sample is then re-joined with the rest of the stream, so nothing is read twice and
memory stays bounded by the sample size.
"""

from __future__ import annotations

import codecs
import io
from typing import BinaryIO, TextIO

from adapters.errors import UnreadableFileError

__all__ = [
    "SAMPLE_SIZE",
    "DecodedText",
    "detect_encoding",
    "has_undecodable",
    "open_text",
    "open_utf8_bytes",
]

SAMPLE_SIZE = 256 * 1024
_HEAD_SIZE = 64 * 1024

_PREFERRED = ("utf-8", "gb18030")


def detect_encoding(sample: bytes, *, complete: bool, file_name: str = "<stream>") -> str:
    """The encoding of ``sample`` (the head of a file; ``complete`` when it is the whole file).

    Returns a Python codec name: ``utf-8-sig``, ``utf-16``, ``utf-8``, ``gb18030`` or what
    charset-normalizer proposes. Raises :class:`UnreadableFileError` when nothing decodes.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in _PREFERRED:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        try:
            # final=False: the sample may end in the middle of a multi-byte character.
            decoder.decode(sample, final=complete)
        except UnicodeDecodeError:
            continue
        return encoding
    from charset_normalizer import from_bytes  # fallback only: slower and heuristic

    best = from_bytes(sample).best()
    if best is None:
        raise UnreadableFileError(file_name, "cannot determine the text encoding (tried UTF-8 and GB18030)")
    return str(best.encoding)


class _PrefixedRaw(io.RawIOBase):
    """A raw stream that yields ``prefix`` and then the rest of ``rest``; never closes ``rest``."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._pos = 0
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._pos < len(self._prefix):
            n = min(len(view), len(self._prefix) - self._pos)
            view[:n] = self._prefix[self._pos : self._pos + n]
            self._pos += n
            return n
        data = self._rest.read(len(view))
        n = len(data)
        view[:n] = data
        return n


class _Utf8Recoder(io.RawIOBase):
    """Re-encodes a text stream to UTF-8 bytes on the fly (for parsers that only take UTF-8)."""

    def __init__(self, text: TextIO) -> None:
        super().__init__()
        self._text = text
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = self._text.read(16 * 1024)
            if not chunk:
                return 0
            self._pending = chunk.encode("utf-8", errors="surrogateescape")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class DecodedText:
    """A decoded text stream, the encoding it was decoded with, and the decoded head (for sniffing)."""

    __slots__ = ("encoding", "head", "text")

    def __init__(self, *, text: TextIO, encoding: str, head: str) -> None:
        self.text = text
        self.encoding = encoding
        self.head = head


def _sample(stream: BinaryIO) -> tuple[bytes, bool]:
    sample = stream.read(SAMPLE_SIZE)
    if not isinstance(sample, bytes | bytearray):
        raise TypeError("adapters read binary streams: open the file with mode 'rb'")
    return bytes(sample), len(sample) < SAMPLE_SIZE


def open_text(stream: BinaryIO, *, file_name: str) -> DecodedText:
    """Detect the encoding of ``stream`` and return a streaming text view of it.

    Undecodable bytes further down the file (past the sample) do not abort the read: they are kept
    as lone surrogates (``surrogateescape``) so the adapter can report that one row as bad. Line
    endings are left untranslated (``newline=""``), as the csv module requires.
    """
    sample, complete = _sample(stream)
    encoding = detect_encoding(sample, complete=complete, file_name=file_name)
    raw = _PrefixedRaw(sample, stream)
    text = io.TextIOWrapper(
        io.BufferedReader(raw, buffer_size=64 * 1024), encoding=encoding, errors="surrogateescape", newline=""
    )
    head = sample[:_HEAD_SIZE].decode(encoding, errors="ignore")
    return DecodedText(text=text, encoding=encoding, head=head)


def open_utf8_bytes(stream: BinaryIO, *, file_name: str) -> tuple[BinaryIO, str]:
    """A binary stream of UTF-8 without BOM (what ijson expects), and the detected source encoding."""
    sample, complete = _sample(stream)
    encoding = detect_encoding(sample, complete=complete, file_name=file_name)
    if encoding == "utf-8":
        return io.BufferedReader(_PrefixedRaw(sample, stream)), encoding
    if encoding == "utf-8-sig":
        return io.BufferedReader(_PrefixedRaw(sample[len(codecs.BOM_UTF8) :], stream)), encoding
    text = io.TextIOWrapper(
        io.BufferedReader(_PrefixedRaw(sample, stream)), encoding=encoding, errors="surrogateescape"
    )
    return io.BufferedReader(_Utf8Recoder(text)), encoding


def has_undecodable(value: str) -> bool:
    """True when ``value`` holds bytes that did not decode (lone surrogates from surrogateescape)."""
    try:
        value.encode("utf-8")  # C-speed check: lone surrogates cannot be encoded strictly
    except UnicodeEncodeError:
        return True
    return False
