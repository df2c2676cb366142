"""Per-record envelope encryption: AES-256-GCM under a fresh data key, the key wrapped with HPKE per reader.

Sealing a record (:func:`seal_record`):

1. a fresh random 32-byte data key and a fresh random 96-bit nonce. NIST SP 800-38D §8.2.2 allows random
   96-bit IVs up to 2^32 invocations per key; each data key encrypts exactly one message, so the IV can
   never repeat under a key;
2. a fresh 32-byte salt; ``payload = salt || plaintext`` is encrypted, so only key holders learn the salt;
3. ``ciphertext = AES-256-GCM(data_key, nonce, payload, AD)`` where ``AD = "ledger/record/v1" || header``
   binds record id, owner, type and version (SP 800-38D §5.2.1: the AAD is authenticated, not encrypted);
4. for every recipient, ``HPKE.SealBase(pk, info, data_key)`` (RFC 9180 §6.1) with
   ``info = "ledger/wrap/v1" || header || nonce || org id || key index``, so a wrapped key opens only for
   this very blob (the nonce is unique per sealing) and this very recipient key;
5. ``commitment = SHA-256("ledger/commitment/v1" || salt || plaintext)`` (hex) and
   ``ciphertext_hash = SHA-256(blob)`` (hex): the chain anchors both; storage keys the blob by the hash.

Blob format v1 (big-endian integers; ``text`` = 1-byte length + 1..255 UTF-8 bytes)::

    magic        4   b"LDGR"
    format       1   0x01
    record_id    text
    owner_org    text
    record_type  text
    version      8   uint64
    nonce        12
    ct_length    4   uint32
    ciphertext   ct_length   AES-256-GCM(salt(32) || plaintext) || tag(16)
    key_state    1   0x00 live, 0x01 shredded (then no wrapped keys follow)
    wrap_count   2   uint16
    wrap_count × ( org_id text, key_index 4 uint32, wrapped_length 2 uint16,
                   wrapped = kem_id(2) || enc || HPKE ciphertext of the data key )

Wrapped keys are sorted by ``(org_id UTF-8, key_index)`` and unique, so every blob has exactly one
encoding. The parser is strict (unknown version, truncation, trailing bytes, unsorted wraps all fail).

**Grantee wraps and the anchor.** The anchored hash covers the whole blob, wrapped keys included, so a
new wrap inside the blob would change its bytes and hash. A reader added later gets a *detached* wrap
instead (:func:`wrap_for_recipient`, :meth:`WrappedKey.encode`), stored beside the blob (index or a side
object) and passed to :func:`open_record` via ``extra_wraps``. The detached wrap is bound to the blob by its
HPKE ``info`` (header and nonce), so it cannot be re-pointed at another record: "one record version = one
anchored hash" holds, and grants stay revocable without touching storage.

The authenticity of the header, nonce and ciphertext never depends on the wraps: AES-GCM authenticates
them. A flipped bit in *another* reader's wrap is invisible to this reader unless the caller passes the
anchored ``expected_hash``, which :func:`open_record` checks first — gateways should always pass it.

**Crypto-shredding** (:func:`shred`) writes the blob back with no wrapped keys and the shredded flag; the
ciphertext stays but no one can open it. It is only as effective as the deletion of every other copy of
the wraps (storage versions and backups, detached grant wraps): org private keys cannot be destroyed for
one record because they open all of that org's records.

**Key commitment.** AES-GCM is not key-committing: a malicious sealer could wrap different data keys for
different readers that decrypt one ciphertext to different plaintexts. The anchored plaintext commitment
closes that gap: a reader who checks the commitment (``expected_commitment``) knows it saw what the owner
anchored.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger_api.crypto import hpke
from ledger_api.crypto._framing import Reader, lp8_text, uint
from ledger_api.crypto.errors import (
    BlobHashMismatchError,
    CommitmentMismatchError,
    EnvelopeError,
    HpkeError,
    KeyUnwrapError,
    MalformedBlobError,
    NotARecipientError,
    RecordIntegrityError,
    RecordShreddedError,
)

__all__ = [
    "BLOB_MAGIC",
    "FORMAT_VERSION",
    "NONCE_SIZE",
    "PLAINTEXT_COMMITMENT",
    "SALT_SIZE",
    "CommitmentScheme",
    "OpenedRecord",
    "ParsedBlob",
    "PlaintextCommitment",
    "RecipientKey",
    "RecordHeader",
    "SealedRecord",
    "WrappedKey",
    "blob_hash",
    "compute_commitment",
    "open_record",
    "open_record_with_data_key",
    "parse_blob",
    "seal_record",
    "shred",
    "verify_commitment",
    "wrap_for_recipient",
    "wrap_info",
]

BLOB_MAGIC = b"LDGR"
FORMAT_VERSION = 1
#: SP 800-38D §8.2.2 / §5.2.1.1: 96-bit IVs are the recommended length for GCM.
NONCE_SIZE = 12
SALT_SIZE = 32
_TAG_SIZE = 16
_KEY_STATE_LIVE = 0
_KEY_STATE_SHREDDED = 1
_MAX_WRAPS = 0xFFFF
# SP 800-38D §5.2.1.1 bounds plaintexts at 2^39 - 256 bits; the uint32 length field bounds us lower.
_MAX_CIPHERTEXT = 0xFFFFFFFF

_AD_DOMAIN = b"ledger/record/v1"
_WRAP_DOMAIN = b"ledger/wrap/v1"
_COMMITMENT_DOMAIN = b"ledger/commitment/v1"
_WRAPPED_DOMAIN = b"LDGW"  # magic of a detached wrapped key (WrappedKey.encode)


def _envelope_error(message: str) -> EnvelopeError:
    return EnvelopeError(message)


def _malformed(message: str) -> MalformedBlobError:
    return MalformedBlobError(f"malformed record blob: {message}")


def _as_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise EnvelopeError(f"{what} must be bytes, got {type(value).__name__}")
    return bytes(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordHeader:
    """The cleartext, authenticated identity of a record version."""

    record_id: str
    owner_org: str
    record_type: str
    version: int

    def __post_init__(self) -> None:
        self.encode()  # validates every field

    def encode(self) -> bytes:
        """Canonical encoding: text fields length-prefixed, version as uint64."""
        return (
            lp8_text(self.record_id, "record_id", _envelope_error)
            + lp8_text(self.owner_org, "owner_org", _envelope_error)
            + lp8_text(self.record_type, "record_type", _envelope_error)
            + uint(self.version, 8, "version", _envelope_error)
        )

    def associated_data(self) -> bytes:
        """The AES-GCM additional authenticated data (SP 800-38D §5.2.1): domain tag and header."""
        return _AD_DOMAIN + self.encode()

    def describe(self) -> str:
        return f"record {self.record_id!r} v{self.version} ({self.record_type}, owner {self.owner_org})"


def wrap_info(header: RecordHeader, nonce: bytes, org_id: str, key_index: int) -> bytes:
    """HPKE ``info`` of a wrapped data key (RFC 9180 §8.1): binds record, blob instance and recipient key."""
    return (
        _WRAP_DOMAIN
        + header.encode()
        + nonce
        + lp8_text(org_id, "org_id", _envelope_error)
        + uint(key_index, 4, "key_index", _envelope_error)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientKey:
    """An organisation's HPKE public key (``kem_id || pk``, as published on chain) and its key index."""

    org_id: str
    key_index: int
    public_key: bytes

    def __post_init__(self) -> None:
        lp8_text(self.org_id, "org_id", _envelope_error)
        uint(self.key_index, 4, "key_index", _envelope_error)
        try:
            hpke.decode_public_key(_as_bytes(self.public_key, "public_key"))
        except HpkeError as exc:
            raise EnvelopeError(f"public key {self.key_index} of {self.org_id!r}: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class WrappedKey:
    """One HPKE-wrapped copy of a record's data key, for key ``key_index`` of ``org_id``."""

    org_id: str
    key_index: int
    wrapped: bytes = field(repr=False)

    def __post_init__(self) -> None:
        lp8_text(self.org_id, "org_id", _malformed)
        uint(self.key_index, 4, "key_index", _malformed)
        wrapped = _as_bytes(self.wrapped, "wrapped")
        try:
            suite = hpke.suite_of(wrapped)
        except HpkeError as exc:
            raise _malformed(f"wrapped key for {self.org_id!r}/{self.key_index}: {exc}") from None
        if len(wrapped) != hpke.wrapped_key_size(suite):
            raise _malformed(
                f"wrapped key for {self.org_id!r}/{self.key_index} is {len(wrapped)} bytes, "
                f"a {suite.value} wrap is {hpke.wrapped_key_size(suite)}"
            )

    @property
    def suite(self) -> hpke.HpkeSuite:
        return hpke.suite_of(self.wrapped)

    @property
    def sort_key(self) -> tuple[bytes, int]:
        return self.org_id.encode("utf-8"), self.key_index

    def _encode_fields(self) -> bytes:
        return (
            lp8_text(self.org_id, "org_id", _malformed)
            + uint(self.key_index, 4, "key_index", _malformed)
            + uint(len(self.wrapped), 2, "wrapped length", _malformed)
            + self.wrapped
        )

    def encode(self) -> bytes:
        """Standalone encoding of a detached wrap (``b"LDGW" || format || fields``), for grant storage."""
        return _WRAPPED_DOMAIN + bytes([FORMAT_VERSION]) + self._encode_fields()

    @classmethod
    def decode(cls, data: bytes) -> WrappedKey:
        data = _as_bytes(data, "wrapped key")
        reader = Reader(data, _malformed)
        if reader.take(len(_WRAPPED_DOMAIN), "magic") != _WRAPPED_DOMAIN:
            raise _malformed("not a detached wrapped key (bad magic)")
        if (fmt := reader.uint(1, "format")) != FORMAT_VERSION:
            raise _malformed(f"unsupported wrapped-key format {fmt}")
        wrap = _read_wrap(reader)
        reader.finish("the wrapped key")
        return wrap


def _read_wrap(reader: Reader) -> WrappedKey:
    org_id = reader.text("wrapped key org_id")
    key_index = reader.uint(4, "wrapped key index")
    size = reader.uint(2, "wrapped key length")
    return WrappedKey(org_id=org_id, key_index=key_index, wrapped=reader.take(size, "wrapped key"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedBlob:
    """A blob split into its fields. :meth:`encode` gives back exactly the parsed bytes."""

    format_version: int
    header: RecordHeader
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    wrapped_keys: tuple[WrappedKey, ...]
    shredded: bool

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise _malformed(f"unsupported format version {self.format_version}")
        if len(self.nonce) != NONCE_SIZE:
            raise _malformed(f"nonce is {len(self.nonce)} bytes, expected {NONCE_SIZE}")
        if not SALT_SIZE + _TAG_SIZE <= len(self.ciphertext) <= _MAX_CIPHERTEXT:
            raise _malformed(f"ciphertext of {len(self.ciphertext)} bytes is shorter than salt and tag")
        if self.shredded and self.wrapped_keys:
            raise _malformed("a shredded blob must hold no wrapped keys")
        if len(self.wrapped_keys) > _MAX_WRAPS:
            raise _malformed(f"{len(self.wrapped_keys)} wrapped keys; at most {_MAX_WRAPS}")
        keys = [wrap.sort_key for wrap in self.wrapped_keys]
        if any(a >= b for a, b in itertools.pairwise(keys)):
            raise _malformed("wrapped keys are not sorted by (org_id, key_index) or hold a duplicate")

    @property
    def recipients(self) -> tuple[tuple[str, int], ...]:
        """``(org_id, key_index)`` of every wrapped key in the blob."""
        return tuple((wrap.org_id, wrap.key_index) for wrap in self.wrapped_keys)

    def wrapped_key_for(self, org_id: str, key_index: int) -> WrappedKey | None:
        for wrap in self.wrapped_keys:
            if wrap.org_id == org_id and wrap.key_index == key_index:
                return wrap
        return None

    def encode(self) -> bytes:
        parts = [
            BLOB_MAGIC,
            bytes([self.format_version]),
            self.header.encode(),
            self.nonce,
            uint(len(self.ciphertext), 4, "ciphertext length", _envelope_error),
            self.ciphertext,
            bytes([_KEY_STATE_SHREDDED if self.shredded else _KEY_STATE_LIVE]),
            uint(len(self.wrapped_keys), 2, "wrap count", _envelope_error),
        ]
        parts.extend(wrap._encode_fields() for wrap in self.wrapped_keys)
        return b"".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedRecord:
    """What :func:`seal_record` returns: the blob to store and the two values to anchor."""

    blob: bytes = field(repr=False)
    header: RecordHeader
    ciphertext_hash: str
    """SHA-256 of the whole blob, hex: the storage key and the on-chain anchor."""
    commitment: str
    """The commitment scheme's value (by default ``SHA-256("ledger/commitment/v1" || salt || plaintext)``),
    hex: anchored beside the hash."""
    recipients: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedRecord:
    """A decrypted record. ``plaintext`` and ``salt`` are secret; they are kept out of ``repr``."""

    header: RecordHeader
    plaintext: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    commitment: str
    ciphertext_hash: str
    org_id: str
    key_index: int
    data_key: bytes = field(repr=False)
    """The record's AES-256 data key, unwrapped with ``org_id``'s key ``key_index``: secret. A gateway may
    keep it to open this very blob again (:func:`open_record_with_data_key`) without the HPKE unwrap."""

    @property
    def record_id(self) -> str:
        return self.header.record_id

    @property
    def owner_org(self) -> str:
        return self.header.owner_org

    @property
    def record_type(self) -> str:
        return self.header.record_type

    @property
    def version(self) -> int:
        return self.header.version


def blob_hash(blob: bytes) -> str:
    """SHA-256 of the whole blob, lower-case hex: the content address and the on-chain anchor."""
    return hashlib.sha256(blob).hexdigest()


def compute_commitment(plaintext: bytes, salt: bytes) -> str:
    """``SHA-256("ledger/commitment/v1" || salt || plaintext)`` hex; the salt is fixed-size, so unambiguous."""
    salt = _as_bytes(salt, "salt")
    if len(salt) != SALT_SIZE:
        raise EnvelopeError(f"the commitment salt must be {SALT_SIZE} bytes, got {len(salt)}")
    return hashlib.sha256(_COMMITMENT_DOMAIN + salt + _as_bytes(plaintext, "plaintext")).hexdigest()


class CommitmentScheme(Protocol):
    """How the anchored commitment is computed from what only key holders know. The envelope needs
    nothing of the plaintext's structure; a scheme may (e.g. one that commits to fields one by one so
    that a reader of a masked copy can still check it: ``ledger_api.records.commitment``)."""

    def commit(self, *, plaintext: bytes, salt: bytes, data_key: bytes) -> str: ...


@dataclass(frozen=True, slots=True)
class PlaintextCommitment:
    """``SHA-256("ledger/commitment/v1" || salt || plaintext)``: for readers of the whole plaintext."""

    def commit(self, *, plaintext: bytes, salt: bytes, data_key: bytes) -> str:
        return compute_commitment(plaintext, salt)


PLAINTEXT_COMMITMENT = PlaintextCommitment()


def verify_commitment(plaintext: bytes, salt: bytes, commitment: str) -> None:
    """Raise :class:`CommitmentMismatchError` unless ``plaintext`` and ``salt`` open ``commitment``."""
    if not _hex_equal(compute_commitment(plaintext, salt), commitment):
        raise CommitmentMismatchError("the plaintext does not match the anchored commitment")


def _hex_equal(computed: str, given: object) -> bool:
    """Constant-time comparison of a computed hex digest with a given one (any case, optional ``0x``)."""
    if not isinstance(given, str):
        return False
    normalised = given.strip().lower().removeprefix("0x")
    return hmac.compare_digest(computed.encode(), normalised.encode("ascii", "replace"))


def parse_blob(blob: bytes) -> ParsedBlob:
    """Split a blob into its fields without decrypting anything. Raises :class:`MalformedBlobError`."""
    reader = Reader(_as_bytes(blob, "blob"), _malformed)
    if reader.take(len(BLOB_MAGIC), "magic") != BLOB_MAGIC:
        raise _malformed("not a ledger record blob (bad magic)")
    format_version = reader.uint(1, "format version")
    if format_version != FORMAT_VERSION:
        raise _malformed(f"unsupported format version {format_version} (this code reads {FORMAT_VERSION})")
    try:
        header = RecordHeader(
            record_id=reader.text("record_id"),
            owner_org=reader.text("owner_org"),
            record_type=reader.text("record_type"),
            version=reader.uint(8, "version"),
        )
    except MalformedBlobError:
        raise
    except EnvelopeError as exc:
        raise _malformed(str(exc)) from None
    nonce = reader.take(NONCE_SIZE, "nonce")
    ciphertext = reader.take(reader.uint(4, "ciphertext length"), "ciphertext")
    key_state = reader.uint(1, "key state")
    if key_state not in (_KEY_STATE_LIVE, _KEY_STATE_SHREDDED):
        raise _malformed(f"unknown key state 0x{key_state:02x}")
    count = reader.uint(2, "wrap count")
    wraps = tuple(_read_wrap(reader) for _ in range(count))
    reader.finish("the wrapped keys")
    return ParsedBlob(
        format_version=format_version,
        header=header,
        nonce=nonce,
        ciphertext=ciphertext,
        wrapped_keys=wraps,
        shredded=key_state == _KEY_STATE_SHREDDED,
    )


def _wrap(header: RecordHeader, nonce: bytes, data_key: bytes, recipient: RecipientKey) -> WrappedKey:
    info = wrap_info(header, nonce, recipient.org_id, recipient.key_index)
    return WrappedKey(
        org_id=recipient.org_id,
        key_index=recipient.key_index,
        wrapped=hpke.wrap_key(data_key, recipient.public_key, info=info),
    )


def seal_record(
    *,
    plaintext: bytes,
    record_id: str,
    owner_org: str,
    record_type: str,
    version: int,
    recipients: Mapping[str, RecipientKey],
    commitment_scheme: CommitmentScheme = PLAINTEXT_COMMITMENT,
) -> SealedRecord:
    """Encrypt one record version for ``recipients`` (keyed by org id; must include ``owner_org``)."""
    plaintext = _as_bytes(plaintext, "plaintext")
    header = RecordHeader(record_id=record_id, owner_org=owner_org, record_type=record_type, version=version)
    if owner_org not in recipients:
        raise EnvelopeError(f"the owner {owner_org!r} must be among the recipients of {header.describe()}")
    for org_id, recipient in recipients.items():
        if not isinstance(recipient, RecipientKey):
            raise EnvelopeError(f"recipient {org_id!r} must be a RecipientKey, got {type(recipient).__name__}")
        if recipient.org_id != org_id:
            raise EnvelopeError(f"recipient mapping key {org_id!r} differs from its org_id {recipient.org_id!r}")
    if SALT_SIZE + len(plaintext) + _TAG_SIZE > _MAX_CIPHERTEXT:
        raise EnvelopeError(f"plaintext of {len(plaintext)} bytes is too large for one record")

    data_key = secrets.token_bytes(hpke.DATA_KEY_SIZE)
    nonce = secrets.token_bytes(NONCE_SIZE)  # SP 800-38D §8.2.2: RBG-based IV, one message per key
    salt = secrets.token_bytes(SALT_SIZE)
    ciphertext = AESGCM(data_key).encrypt(nonce, salt + plaintext, header.associated_data())
    wraps = sorted(
        (_wrap(header, nonce, data_key, recipient) for recipient in recipients.values()),
        key=lambda wrap: wrap.sort_key,
    )
    parsed = ParsedBlob(
        format_version=FORMAT_VERSION,
        header=header,
        nonce=nonce,
        ciphertext=ciphertext,
        wrapped_keys=tuple(wraps),
        shredded=False,
    )
    blob = parsed.encode()
    return SealedRecord(
        blob=blob,
        header=header,
        ciphertext_hash=blob_hash(blob),
        commitment=commitment_scheme.commit(plaintext=plaintext, salt=salt, data_key=data_key),
        recipients=parsed.recipients,
    )


def _find_wrap(parsed: ParsedBlob, org_id: str, key_index: int, extra_wraps: Iterable[WrappedKey]) -> WrappedKey:
    if parsed.shredded:
        raise RecordShreddedError(f"{parsed.header.describe()} was crypto-shredded: its data key is gone")
    wrap = parsed.wrapped_key_for(org_id, key_index)
    if wrap is not None:
        return wrap
    for extra in extra_wraps:
        if not isinstance(extra, WrappedKey):
            raise EnvelopeError(f"extra_wraps must hold WrappedKey objects, got {type(extra).__name__}")
        if extra.org_id == org_id and extra.key_index == key_index:
            return extra
    held = sorted(index for org, index in parsed.recipients if org == org_id)
    hint = f"; it holds key indexes {held} of that organisation" if held else ""
    raise NotARecipientError(
        f"{parsed.header.describe()} has no wrapped key for {org_id!r} key index {key_index}{hint}"
    )


def _unwrap(parsed: ParsedBlob, wrap: WrappedKey, private_key: bytes) -> bytes:
    info = wrap_info(parsed.header, parsed.nonce, wrap.org_id, wrap.key_index)
    try:
        return hpke.unwrap_key(wrap.wrapped, _as_bytes(private_key, "private_key"), info=info)
    except HpkeError as exc:
        raise KeyUnwrapError(
            f"the wrapped key of {parsed.header.describe()} for {wrap.org_id!r} key index {wrap.key_index} "
            f"does not open: wrong private key, tampered, or moved from another record ({exc})"
        ) from None


def _decrypt(parsed: ParsedBlob, data_key: bytes) -> tuple[bytes, bytes]:
    try:
        payload = AESGCM(data_key).decrypt(parsed.nonce, parsed.ciphertext, parsed.header.associated_data())
    except InvalidTag:
        # SP 800-38D §7.2 step 9: on a tag mismatch return FAIL and release nothing.
        raise RecordIntegrityError(
            f"{parsed.header.describe()} failed authentication: header, nonce or ciphertext was altered"
        ) from None
    return payload[:SALT_SIZE], payload[SALT_SIZE:]


def _check_hash(blob: bytes, expected_hash: str | None) -> None:
    if expected_hash is not None and not _hex_equal(blob_hash(blob), expected_hash):
        raise BlobHashMismatchError(
            f"blob SHA-256 {blob_hash(blob)} differs from the anchored hash {expected_hash}: "
            "the stored blob was altered or swapped"
        )


def open_record(
    blob: bytes,
    *,
    org_id: str,
    key_index: int,
    private_key: bytes,
    extra_wraps: Iterable[WrappedKey] = (),
    expected_hash: str | None = None,
    expected_commitment: str | None = None,
    commitment_scheme: CommitmentScheme = PLAINTEXT_COMMITMENT,
) -> OpenedRecord:
    """Decrypt ``blob`` with key ``key_index`` of ``org_id`` (an encoded HPKE private key).

    ``extra_wraps`` are detached wraps (see :func:`wrap_for_recipient`). Pass the anchored
    ``expected_hash`` and ``expected_commitment`` whenever known: the first detects *any* change to the
    blob, the second proves the plaintext is the one the owner anchored.
    """
    blob = _as_bytes(blob, "blob")
    _check_hash(blob, expected_hash)
    parsed = parse_blob(blob)
    wrap = _find_wrap(parsed, org_id, key_index, extra_wraps)
    data_key = _unwrap(parsed, wrap, private_key)
    return _open_parsed(
        blob, parsed, data_key, org_id=org_id, key_index=key_index, expected_commitment=expected_commitment,
        commitment_scheme=commitment_scheme,
    )  # fmt: skip


def open_record_with_data_key(
    blob: bytes,
    *,
    data_key: bytes,
    org_id: str,
    key_index: int,
    expected_hash: str | None = None,
    expected_commitment: str | None = None,
    commitment_scheme: CommitmentScheme = PLAINTEXT_COMMITMENT,
) -> OpenedRecord:
    """Decrypt ``blob`` with its data key as an earlier :func:`open_record` of the same blob returned it.

    Everything but the HPKE unwrap is checked as in :func:`open_record`: the anchored hash, the blob's
    format, that it was not shredded, AES-GCM authentication and the commitment. ``org_id`` and
    ``key_index`` name the wrap the key first came from; they are reported, not used.
    """
    blob = _as_bytes(blob, "blob")
    _check_hash(blob, expected_hash)
    parsed = parse_blob(blob)
    if parsed.shredded:
        raise RecordShreddedError(f"{parsed.header.describe()} was crypto-shredded: its data key is gone")
    return _open_parsed(
        blob, parsed, _as_bytes(data_key, "data_key"), org_id=org_id, key_index=key_index,
        expected_commitment=expected_commitment, commitment_scheme=commitment_scheme,
    )  # fmt: skip


def _open_parsed(
    blob: bytes,
    parsed: ParsedBlob,
    data_key: bytes,
    *,
    org_id: str,
    key_index: int,
    expected_commitment: str | None,
    commitment_scheme: CommitmentScheme,
) -> OpenedRecord:
    salt, plaintext = _decrypt(parsed, data_key)
    commitment = commitment_scheme.commit(plaintext=plaintext, salt=salt, data_key=data_key)
    if expected_commitment is not None and not _hex_equal(commitment, expected_commitment):
        raise CommitmentMismatchError(
            f"{parsed.header.describe()} decrypted to a plaintext that does not match the anchored commitment"
        )
    return OpenedRecord(
        header=parsed.header,
        plaintext=plaintext,
        salt=salt,
        commitment=commitment,
        ciphertext_hash=blob_hash(blob),
        org_id=org_id,
        key_index=key_index,
        data_key=data_key,
    )


def _recover_for_rewrap(
    blob: bytes, opener_org: str, opener_key_index: int, opener_private_key: bytes
) -> tuple[ParsedBlob, bytes]:
    parsed = parse_blob(_as_bytes(blob, "blob"))
    wrap = _find_wrap(parsed, opener_org, opener_key_index, ())
    data_key = _unwrap(parsed, wrap, opener_private_key)
    _decrypt(parsed, data_key)  # never hand out a key before proving it opens this ciphertext
    return parsed, data_key


def wrap_for_recipient(
    blob: bytes,
    *,
    opener_org: str,
    opener_key_index: int,
    opener_private_key: bytes,
    recipient: RecipientKey,
) -> WrappedKey:
    """A *detached* wrap of the blob's data key for ``recipient``; the blob (and its hash) stay unchanged."""
    parsed, data_key = _recover_for_rewrap(blob, opener_org, opener_key_index, opener_private_key)
    return _wrap(parsed.header, parsed.nonce, data_key, recipient)


def shred(blob: bytes) -> bytes:
    """Crypto-shredding: the blob with every wrapped data key destroyed and the shredded flag set.

    Opening the result raises :class:`RecordShreddedError`. Idempotent. Destroy every other copy of the
    original blob and of detached wraps too, or the shredding is only cosmetic.
    """
    parsed = parse_blob(_as_bytes(blob, "blob"))
    return ParsedBlob(
        format_version=parsed.format_version,
        header=parsed.header,
        nonce=parsed.nonce,
        ciphertext=parsed.ciphertext,
        wrapped_keys=(),
        shredded=True,
    ).encode()
