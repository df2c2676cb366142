"""Sealed segments: the access entries between two anchored tree heads, as one blob in shared storage.

Shared storage sees only ciphertext (DESIGN.md invariant 1): a segment is encrypted under a fresh
AES-256-GCM data key, and that key is wrapped with HPKE (RFC 9180) for every auditor organisation and
for the gateway's own key (so that it can rebuild). The cleartext header names the entry range and the
tree root at its end, so an auditor can match segments to anchored heads before decrypting anything;
the header is authenticated as AES-GCM associated data and bound into every wrap's HPKE ``info``.

Format v1 (big-endian integers; ``text`` = 1-byte length + 1..255 UTF-8 bytes)::

    magic        4   b"LDAS"  (records are b"LDGR", detached wraps b"LDGW", batch manifests JSON)
    format       1   0x01
    from_index   8   uint64   first entry (leaf index) in the segment
    to_index     8   uint64   one past the last entry: the size of the tree head it ends at
    root        32   RFC 9162 root of the log's first ``to_index`` entries (the anchored head's root)
    nonce       12   AES-GCM IV
    ct_length    4   uint32
    ciphertext       AES-256-GCM(data_key, nonce, payload, AD = "ledger/access-segment/v1" || magic..root)
    wrap_count   2   uint16 (at least 1)
    wrap_count × ( org_id text, key_index 4 uint32, wrapped_length 2 uint16,
                   wrapped = kem_id(2) || enc || HPKE ciphertext of the data key )

    payload = (to_index - from_index) × ( length 4 uint32, leaf data )

Leaf data is an entry's canonical JSON (:mod:`ledger_api.accesslog.entry`); its RFC 9162 leaf hash is
what the tree commits to. Wraps are sorted by ``(org_id UTF-8, key_index)`` and unique; HPKE ``info`` =
``"ledger/access-segment-wrap/v1" || magic..root || nonce || org_id text || key_index``, so a wrap opens
only for this very segment and this very recipient key. The parser is strict: unknown version,
truncation, trailing bytes, unsorted wraps and non-canonical entries are all refused.

The storage key of a segment is the SHA-256 of its bytes (as for every blob). See
:mod:`ledger_api.accesslog.audit` for how an auditor finds and checks segments.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger_api.accesslog.entry import Entry
from ledger_api.accesslog.errors import (
    InvalidEntry,
    MalformedSegment,
    NotASegmentRecipient,
    SegmentError,
    SegmentIntegrityError,
)
from ledger_api.crypto import hpke
from ledger_api.crypto._framing import Reader, lp8_text, uint
from ledger_api.crypto.errors import HpkeError
from ledger_api.merkle import HASH_SIZE

__all__ = [
    "SEGMENT_FORMAT_VERSION",
    "SEGMENT_MAGIC",
    "OpenedSegment",
    "SegmentHeader",
    "is_segment",
    "open_segment",
    "parse_segment",
    "seal_segment",
]

SEGMENT_MAGIC = b"LDAS"
SEGMENT_FORMAT_VERSION = 1
_NONCE_SIZE = 12
_AD_DOMAIN = b"ledger/access-segment/v1"
_WRAP_DOMAIN = b"ledger/access-segment-wrap/v1"
_MAX_CIPHERTEXT = 0xFFFFFFFF
_MAX_WRAPS = 0xFFFF
_LENGTH = struct.Struct(">I")

Recipients = Mapping[str, tuple[int, bytes]]
"""org id → (key index, encoded HPKE public key ``kem_id || pk`` as the chain registry publishes it)."""


def _malformed(message: str) -> MalformedSegment:
    return MalformedSegment(f"malformed access-log segment: {message}")


def _segment_error(message: str) -> SegmentError:
    return SegmentError(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentHeader:
    """The cleartext part of a segment: which entries it holds and which tree head it ends at."""

    from_index: int
    to_index: int
    root: bytes
    recipients: tuple[tuple[str, int], ...]
    """``(org_id, key_index)`` of every wrapped data key."""

    @property
    def count(self) -> int:
        return self.to_index - self.from_index


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedSegment:
    """A decrypted segment: entries ``[from_index, to_index)`` of the log, and their leaf data."""

    key: str
    """SHA-256 of the blob (its storage key)."""
    from_index: int
    to_index: int
    root: bytes
    leaf_data: tuple[bytes, ...] = field(repr=False)
    entries: tuple[Entry, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Wrap:
    org_id: str
    key_index: int
    wrapped: bytes

    @property
    def sort_key(self) -> tuple[bytes, int]:
        return self.org_id.encode("utf-8"), self.key_index


def _header_bytes(from_index: int, to_index: int, root: bytes) -> bytes:
    return (
        SEGMENT_MAGIC
        + bytes([SEGMENT_FORMAT_VERSION])
        + uint(from_index, 8, "from_index", _segment_error)
        + uint(to_index, 8, "to_index", _segment_error)
        + root
    )


def _wrap_info(header: bytes, nonce: bytes, org_id: str, key_index: int) -> bytes:
    return (
        _WRAP_DOMAIN
        + header
        + nonce
        + lp8_text(org_id, "org_id", _segment_error)
        + uint(key_index, 4, "key_index", _segment_error)
    )


def is_segment(blob: bytes) -> bool:
    """True when ``blob`` starts with the segment magic (cheap; :func:`parse_segment` checks the rest)."""
    return bytes(blob[: len(SEGMENT_MAGIC)]) == SEGMENT_MAGIC


def seal_segment(
    *,
    from_index: int,
    to_index: int,
    root: bytes,
    leaf_data: Sequence[bytes],
    recipients: Recipients,
) -> bytes:
    """Encrypt entries ``[from_index, to_index)`` (their leaf data, in order) for ``recipients``."""
    if not 0 <= from_index < to_index:
        raise SegmentError(f"a segment needs 0 <= from_index < to_index, got {from_index} and {to_index}")
    if len(leaf_data) != to_index - from_index:
        raise SegmentError(f"{len(leaf_data)} entries given for the range [{from_index}, {to_index})")
    root = bytes(root)
    if len(root) != HASH_SIZE:
        raise SegmentError(f"the root must be {HASH_SIZE} bytes, got {len(root)}")
    if not recipients:
        raise SegmentError("a segment needs at least one recipient (the auditors and the gateway itself)")
    if len(recipients) > _MAX_WRAPS:
        raise SegmentError(f"too many recipients ({len(recipients)})")
    payload = b"".join(_LENGTH.pack(len(data)) + bytes(data) for data in leaf_data)
    if len(payload) + 16 > _MAX_CIPHERTEXT:
        raise SegmentError(f"a segment of {len(payload)} bytes is too large: anchor more often")

    header = _header_bytes(from_index, to_index, root)
    data_key = secrets.token_bytes(hpke.DATA_KEY_SIZE)
    nonce = secrets.token_bytes(_NONCE_SIZE)  # one message per data key: the IV never repeats under a key
    ciphertext = AESGCM(data_key).encrypt(nonce, payload, _AD_DOMAIN + header)
    wraps: list[_Wrap] = []
    for org_id, (key_index, public_key) in recipients.items():
        info = _wrap_info(header, nonce, org_id, key_index)
        try:
            wrapped = hpke.wrap_key(data_key, bytes(public_key), info=info)
        except HpkeError as exc:
            raise SegmentError(f"public key {key_index} of {org_id!r}: {exc}") from None
        wraps.append(_Wrap(org_id, key_index, wrapped))
    wraps.sort(key=lambda w: w.sort_key)
    parts = [header, nonce, uint(len(ciphertext), 4, "ciphertext length", _segment_error), ciphertext]
    parts.append(uint(len(wraps), 2, "wrap count", _segment_error))
    for wrap in wraps:
        parts += [
            lp8_text(wrap.org_id, "org_id", _segment_error),
            uint(wrap.key_index, 4, "key_index", _segment_error),
            uint(len(wrap.wrapped), 2, "wrapped length", _segment_error),
            wrap.wrapped,
        ]
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _Parsed:
    from_index: int
    to_index: int
    root: bytes
    header: bytes
    nonce: bytes
    ciphertext: bytes
    wraps: tuple[_Wrap, ...]


def _parse(blob: bytes) -> _Parsed:
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise SegmentError(f"a segment must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    reader = Reader(blob, _malformed)
    if reader.take(len(SEGMENT_MAGIC), "magic") != SEGMENT_MAGIC:
        raise _malformed("not an access-log segment (bad magic)")
    version = reader.uint(1, "format version")
    if version != SEGMENT_FORMAT_VERSION:
        raise _malformed(f"unsupported format version {version} (this code reads {SEGMENT_FORMAT_VERSION})")
    from_index = reader.uint(8, "from_index")
    to_index = reader.uint(8, "to_index")
    if not from_index < to_index:
        raise _malformed(f"empty or reversed range [{from_index}, {to_index})")
    root = reader.take(HASH_SIZE, "root")
    header = blob[: reader.position]
    nonce = reader.take(_NONCE_SIZE, "nonce")
    ciphertext = reader.take(reader.uint(4, "ciphertext length"), "ciphertext")
    count = reader.uint(2, "wrap count")
    if count == 0:
        raise _malformed("no wrapped keys: nobody can open it")
    wraps = []
    for _ in range(count):
        org_id = reader.text("wrapped key org_id")
        key_index = reader.uint(4, "wrapped key index")
        wrapped = reader.take(reader.uint(2, "wrapped key length"), "wrapped key")
        wraps.append(_Wrap(org_id, key_index, wrapped))
    reader.finish("the wrapped keys")
    if any(a.sort_key >= b.sort_key for a, b in itertools.pairwise(wraps)):
        raise _malformed("wrapped keys are not sorted by (org_id, key_index) or hold a duplicate")
    return _Parsed(from_index, to_index, root, header, nonce, ciphertext, tuple(wraps))


def parse_segment(blob: bytes) -> SegmentHeader:
    """The cleartext header of a segment, without decrypting anything. Raises :class:`MalformedSegment`."""
    parsed = _parse(blob)
    return SegmentHeader(
        from_index=parsed.from_index,
        to_index=parsed.to_index,
        root=parsed.root,
        recipients=tuple((w.org_id, w.key_index) for w in parsed.wraps),
    )


def open_segment(
    blob: bytes, *, org_id: str, key_index: int, private_key: bytes, expected_key: str | None = None
) -> OpenedSegment:
    """Decrypt a segment with key ``key_index`` of ``org_id`` (an encoded HPKE private key).

    Raises :class:`NotASegmentRecipient` when the segment has no wrap for that key,
    :class:`SegmentIntegrityError` when the wrap does not open or the ciphertext or header was altered,
    and :class:`MalformedSegment` for bad framing or entries that are not canonical. AES-GCM covers
    header and entries; a change to *another* recipient's wrap is only seen against the storage key:
    pass ``expected_key`` (what the blob was stored under) to check the SHA-256 of the whole blob.
    """
    if expected_key is not None and hashlib.sha256(bytes(blob)).hexdigest() != expected_key.lower():
        raise SegmentIntegrityError(f"the segment's SHA-256 differs from its storage key {expected_key}")
    parsed = _parse(blob)
    wrap = next((w for w in parsed.wraps if w.org_id == org_id and w.key_index == key_index), None)
    if wrap is None:
        held = sorted(i for o, i in ((w.org_id, w.key_index) for w in parsed.wraps) if o == org_id)
        hint = f"; it holds key indexes {held} of that organisation" if held else ""
        raise NotASegmentRecipient(
            f"segment [{parsed.from_index}, {parsed.to_index}) has no wrapped key for {org_id!r} "
            f"key index {key_index}{hint}"
        )
    try:
        data_key = hpke.unwrap_key(
            wrap.wrapped, bytes(private_key), info=_wrap_info(parsed.header, parsed.nonce, org_id, key_index)
        )
    except HpkeError as exc:
        raise SegmentIntegrityError(
            f"the wrapped key of segment [{parsed.from_index}, {parsed.to_index}) for {org_id!r} key index "
            f"{key_index} does not open: wrong private key, or the segment was altered ({exc})"
        ) from None
    try:
        payload = AESGCM(data_key).decrypt(parsed.nonce, parsed.ciphertext, _AD_DOMAIN + parsed.header)
    except InvalidTag:
        raise SegmentIntegrityError(
            f"segment [{parsed.from_index}, {parsed.to_index}) failed authentication: header, nonce or "
            "ciphertext was altered"
        ) from None
    leaf_data = _split_payload(payload, parsed.to_index - parsed.from_index)
    try:
        entries = tuple(Entry.from_leaf_data(data) for data in leaf_data)
    except InvalidEntry as exc:
        raise _malformed(str(exc)) from None
    return OpenedSegment(
        key=hashlib.sha256(bytes(blob)).hexdigest(),
        from_index=parsed.from_index,
        to_index=parsed.to_index,
        root=parsed.root,
        leaf_data=leaf_data,
        entries=entries,
    )


def _split_payload(payload: bytes, count: int) -> tuple[bytes, ...]:
    reader = Reader(payload, _malformed)
    out = []
    for _ in range(count):
        out.append(reader.take(reader.uint(4, "entry length"), "entry"))
    reader.finish("the entries")
    return tuple(out)
