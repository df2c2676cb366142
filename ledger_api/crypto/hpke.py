"""HPKE (RFC 9180) wrapping of per-record data keys, on top of ``cryptography.hazmat.primitives.hpke``.

Nothing here re-implements HPKE: this module only fixes the suites, the key encodings and the framing
of a wrapped key, and turns library exceptions into :class:`~ledger_api.crypto.errors.HpkeError`.

Suites (mode Base, RFC 9180 §5.1.1; KDF HKDF-SHA256 = 0x0001; AEAD AES-256-GCM = 0x0002, §7.2/§7.3):

==================  ======  ===============================================  ====  ====  =====
suite               KEM id  KEM                                              pk    enc   secret
==================  ======  ===============================================  ====  ====  =====
``X25519``          0x0020  DHKEM(X25519, HKDF-SHA256), RFC 9180 §7.1          32    32     32
``MLKEM768_X25519`` 0x647A  MLKEM768-X25519 ("X-Wing"), draft-ietf-hpke-pq     1216  1120    32
==================  ======  ===============================================  ====  ====  =====

0x647A is the id ``cryptography`` uses for ``KEM.MLKEM768_X25519`` (pyca/cryptography PR #14695, "KEM ID
0x647A as specified in draft-connolly-cfrg-xwing-kem and draft-ietf-hpke-pq"); the test suite re-derives
the RFC 9180 key schedule with that id and decrypts the library's output, so a change upstream fails a test.
Its public key is ``pk_ML-KEM-768 (1184) || pk_X25519 (32)`` and its private key is the 32-byte X-Wing seed,
expanded with SHAKE256 to the ML-KEM-768 seed ``d || z`` (64) and the X25519 scalar (32) exactly as
draft-connolly-cfrg-xwing-kem §5.2 does (checked against the draft's test vector).

Encodings (all byte strings, the KEM id always first, big-endian, as the chain publishes public keys):

* public key  = ``kem_id (2) || pk``
* private key = ``kem_id (2) || secret`` (X25519 scalar, or X-Wing seed); the id stops a key of one suite
  being misread as the other (both secrets are 32 bytes)
* wrapped key = ``kem_id (2) || enc || HPKE ciphertext of the 32-byte data key (32 + 16-byte tag)``

``info`` binds the wrap to its context (RFC 9180 §8.1: single-shot applications put their auxiliary
authenticated data into ``info``); it enters the key schedule (§5.1), so a wrapped key opened with
another record's ``info`` fails authentication.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke as _hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from ledger_api.crypto.errors import HpkeError

__all__ = [
    "AEAD_ID_AES_256_GCM",
    "DATA_KEY_SIZE",
    "KDF_ID_HKDF_SHA256",
    "KEM_ID_MLKEM768_X25519",
    "KEM_ID_SIZE",
    "KEM_ID_X25519",
    "HpkeSuite",
    "decode_private_key",
    "decode_public_key",
    "encode_private_key",
    "encode_public_key",
    "generate_keypair",
    "public_key_from_private",
    "suite_of",
    "unwrap_key",
    "wrap_key",
    "wrapped_key_size",
]

#: RFC 9180 §7.1: DHKEM(X25519, HKDF-SHA256).
KEM_ID_X25519 = 0x0020
#: draft-ietf-hpke-pq: MLKEM768-X25519 (X-Wing), the id ``cryptography`` uses for ``KEM.MLKEM768_X25519``.
KEM_ID_MLKEM768_X25519 = 0x647A
#: RFC 9180 §7.2: HKDF-SHA256, the KDF of both suites.
KDF_ID_HKDF_SHA256 = 0x0001
#: RFC 9180 §7.3: AES-256-GCM, the AEAD of both suites.
AEAD_ID_AES_256_GCM = 0x0002

KEM_ID_SIZE = 2
#: Size of a per-record data key: an AES-256-GCM key (NIST SP 800-38D with a 256-bit AES key).
DATA_KEY_SIZE = 32
_TAG_SIZE = 16  # RFC 9180 §7.3: Nt = 16 for AES-256-GCM.

# draft-connolly-cfrg-xwing-kem §5.2: the 32-byte decapsulation key expands to 96 bytes with SHAKE256.
_XWING_SEED_SIZE = 32
_MLKEM_SEED_SIZE = 64
_MLKEM768_PUBLIC_SIZE = 1184
_X25519_SIZE = 32


class HpkeSuite(enum.Enum):
    """The two HPKE suites of the ledger. ``X25519`` is the default; the hybrid is for long-lived types."""

    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768-x25519"

    @property
    def kem_id(self) -> int:
        return _PARAMS[self].kem_id

    @property
    def kem_id_bytes(self) -> bytes:
        return self.kem_id.to_bytes(KEM_ID_SIZE, "big")

    @property
    def public_key_size(self) -> int:
        """Size of the raw public key, without the KEM id."""
        return _PARAMS[self].public_size

    @property
    def enc_size(self) -> int:
        """RFC 9180 ``Nenc``: size of the encapsulated key."""
        return _PARAMS[self].enc_size

    @classmethod
    def from_kem_id(cls, kem_id: int) -> HpkeSuite:
        for suite, params in _PARAMS.items():
            if params.kem_id == kem_id:
                return suite
        raise HpkeError(
            f"unsupported HPKE KEM id 0x{kem_id:04x} "
            f"(supported: 0x{KEM_ID_X25519:04x} X25519, 0x{KEM_ID_MLKEM768_X25519:04x} MLKEM768-X25519)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _SuiteParams:
    kem_id: int
    kem: _hpke.KEM
    public_size: int
    enc_size: int
    secret_size: int


_PARAMS: dict[HpkeSuite, _SuiteParams] = {
    HpkeSuite.X25519: _SuiteParams(
        kem_id=KEM_ID_X25519, kem=_hpke.KEM.X25519, public_size=32, enc_size=32, secret_size=32
    ),
    HpkeSuite.MLKEM768_X25519: _SuiteParams(
        kem_id=KEM_ID_MLKEM768_X25519,
        kem=_hpke.KEM.MLKEM768_X25519,
        public_size=_MLKEM768_PUBLIC_SIZE + _X25519_SIZE,
        enc_size=1088 + _X25519_SIZE,  # ML-KEM-768 ciphertext || X25519 ephemeral public key
        secret_size=_XWING_SEED_SIZE,
    ),
}

# One Suite object per KEM; both use HKDF-SHA256 and AES-256-GCM (a 256-bit key for a 256-bit data key).
_SUITES: dict[HpkeSuite, _hpke.Suite] = {
    suite: _hpke.Suite(params.kem, _hpke.KDF.HKDF_SHA256, _hpke.AEAD.AES_256_GCM) for suite, params in _PARAMS.items()
}

_PublicKey: TypeAlias = x25519.X25519PublicKey | _hpke.MLKEM768X25519PublicKey
_PrivateKey: TypeAlias = x25519.X25519PrivateKey | _hpke.MLKEM768X25519PrivateKey


def wrapped_key_size(suite: HpkeSuite) -> int:
    """Size of a wrapped data key: KEM id, ``enc`` and the sealed 32-byte key with its 16-byte tag."""
    return KEM_ID_SIZE + suite.enc_size + DATA_KEY_SIZE + _TAG_SIZE


def _split(encoded: bytes, what: str) -> tuple[HpkeSuite, bytes]:
    if not isinstance(encoded, bytes | bytearray | memoryview):
        raise HpkeError(f"{what} must be bytes, got {type(encoded).__name__}")
    encoded = bytes(encoded)
    if len(encoded) < KEM_ID_SIZE:
        raise HpkeError(f"{what} is {len(encoded)} bytes: too short to hold a KEM id")
    suite = HpkeSuite.from_kem_id(int.from_bytes(encoded[:KEM_ID_SIZE], "big"))
    return suite, encoded[KEM_ID_SIZE:]


def encode_public_key(suite: HpkeSuite, raw: bytes) -> bytes:
    """``kem_id || raw`` after checking that ``raw`` is a valid public key of ``suite``."""
    encoded = suite.kem_id_bytes + bytes(raw)
    _public_key_object(encoded)  # validates
    return encoded


def decode_public_key(encoded: bytes) -> tuple[HpkeSuite, bytes]:
    """Split and validate ``kem_id || raw``; returns the suite and the raw public key."""
    suite, raw = _split(encoded, "HPKE public key")
    _public_key_object(bytes(encoded))  # validates length and the key itself
    return suite, raw


def encode_private_key(suite: HpkeSuite, secret: bytes) -> bytes:
    """``kem_id || secret`` after checking that ``secret`` is a valid private key of ``suite``."""
    encoded = suite.kem_id_bytes + bytes(secret)
    _private_key_object(encoded)  # validates
    return encoded


def decode_private_key(encoded: bytes) -> tuple[HpkeSuite, bytes]:
    """Split and validate ``kem_id || secret``; returns the suite and the raw secret."""
    suite, secret = _split(encoded, "HPKE private key")
    _private_key_object(bytes(encoded))
    return suite, secret


def suite_of(encoded: bytes) -> HpkeSuite:
    """The suite named by the KEM id that prefixes an encoded key or a wrapped key."""
    return _split(encoded, "HPKE key")[0]


def _xwing_components(seed: bytes) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey]:
    # draft-connolly-cfrg-xwing-kem §5.2 expandDecapsulationKey: SHAKE256(sk, 96) = d || z || sk_X.
    expanded = hashlib.shake_256(seed).digest(_MLKEM_SEED_SIZE + _X25519_SIZE)
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:_MLKEM_SEED_SIZE]),
        x25519.X25519PrivateKey.from_private_bytes(expanded[_MLKEM_SEED_SIZE:]),
    )


# Parsing a hybrid key costs a SHAKE256 expansion and an ML-KEM key generation (tens of µs); the gateway
# uses a handful of keys for millions of records, so parsed key objects are memoised by their encoding.
@lru_cache(maxsize=1024)
def _public_key_object(encoded: bytes) -> _PublicKey:
    suite, raw = _split(encoded, "HPKE public key")
    if len(raw) != suite.public_key_size:
        raise HpkeError(
            f"HPKE {suite.value} public key must be {suite.public_key_size} bytes after the KEM id, got {len(raw)}"
        )
    try:
        if suite is HpkeSuite.X25519:
            return x25519.X25519PublicKey.from_public_bytes(raw)
        return _hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC_SIZE]),
            x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM768_PUBLIC_SIZE:]),
        )
    except ValueError as exc:
        raise HpkeError(f"invalid HPKE {suite.value} public key: {exc}") from None


@lru_cache(maxsize=256)
def _private_key_object(encoded: bytes) -> _PrivateKey:
    suite, secret = _split(encoded, "HPKE private key")
    if len(secret) != _PARAMS[suite].secret_size:
        raise HpkeError(
            f"HPKE {suite.value} private key must be {_PARAMS[suite].secret_size} bytes after the KEM id, "
            f"got {len(secret)}"
        )
    try:
        if suite is HpkeSuite.X25519:
            return x25519.X25519PrivateKey.from_private_bytes(secret)
        return _hpke.MLKEM768X25519PrivateKey(*_xwing_components(secret))
    except ValueError as exc:
        raise HpkeError(f"invalid HPKE {suite.value} private key: {exc}") from None


def _raw_public(private: _PrivateKey, secret: bytes) -> bytes:
    if isinstance(private, x25519.X25519PrivateKey):
        return private.public_key().public_bytes_raw()
    # The hybrid key object exposes no serialisation; rebuild pk_M || pk_X from the components.
    mlkem_key, x_key = _xwing_components(secret)
    return mlkem_key.public_key().public_bytes_raw() + x_key.public_key().public_bytes_raw()


def public_key_from_private(private_key: bytes) -> bytes:
    """The encoded public key (``kem_id || pk``) that belongs to an encoded private key."""
    suite, secret = _split(private_key, "HPKE private key")
    private = _private_key_object(bytes(private_key))
    return suite.kem_id_bytes + _raw_public(private, secret)


def generate_keypair(suite: HpkeSuite = HpkeSuite.X25519) -> tuple[bytes, bytes]:
    """A fresh key pair: ``(kem_id || secret, kem_id || public key)``."""
    if suite is HpkeSuite.X25519:
        secret = x25519.X25519PrivateKey.generate().private_bytes_raw()
    else:
        secret = secrets.token_bytes(_XWING_SEED_SIZE)
    private_key = suite.kem_id_bytes + secret
    return private_key, public_key_from_private(private_key)


def _require_info(info: bytes) -> bytes:
    if not isinstance(info, bytes | bytearray | memoryview):
        raise HpkeError(f"HPKE info must be bytes, got {type(info).__name__}")
    if not info:
        # An empty info would let a wrapped key open in every context: refuse it (RFC 9180 §8.1).
        raise HpkeError("HPKE info must not be empty: it binds the wrapped key to its record")
    return bytes(info)


def wrap_key(data_key: bytes, recipient_public: bytes, *, info: bytes) -> bytes:
    """Single-shot HPKE seal (RFC 9180 §6.1 ``SealBase``) of a 32-byte data key to ``recipient_public``.

    Returns ``kem_id || enc || ciphertext``. Every call uses a fresh ephemeral key (RFC 9180 §5.1.1), so
    wrapping the same key twice gives unrelated outputs.
    """
    if not isinstance(data_key, bytes | bytearray | memoryview) or len(data_key) != DATA_KEY_SIZE:
        raise HpkeError(f"the data key must be {DATA_KEY_SIZE} bytes")
    info = _require_info(info)
    suite, _ = _split(recipient_public, "HPKE public key")
    public = _public_key_object(bytes(recipient_public))
    sealed = _SUITES[suite].encrypt(bytes(data_key), public, info=info)
    return suite.kem_id_bytes + sealed


def unwrap_key(wrapped: bytes, private_key_bytes: bytes, *, info: bytes) -> bytes:
    """Single-shot HPKE open (RFC 9180 §6.1 ``OpenBase``) of a wrapped data key.

    Raises :class:`HpkeError` when the suites differ, the framing is wrong, or authentication fails
    (wrong private key, tampered bytes, or ``info`` of another context).
    """
    info = _require_info(info)
    suite, body = _split(wrapped, "wrapped key")
    key_suite, _ = _split(private_key_bytes, "HPKE private key")
    if key_suite is not suite:
        raise HpkeError(f"the key was wrapped for a {suite.value} key, but a {key_suite.value} private key was given")
    expected = wrapped_key_size(suite) - KEM_ID_SIZE
    if len(body) != expected:
        raise HpkeError(f"a {suite.value} wrapped key is {expected + KEM_ID_SIZE} bytes, got {len(body) + KEM_ID_SIZE}")
    private = _private_key_object(bytes(private_key_bytes))
    try:
        data_key = _SUITES[suite].decrypt(body, private, info=info)
    except (InvalidTag, ValueError):
        # RFC 9180 §5.2: OpenError — no detail on purpose (which check failed is not the caller's concern).
        raise HpkeError("the wrapped key does not open with this private key in this context") from None
    if len(data_key) != DATA_KEY_SIZE:  # pragma: no cover - only a sender that broke the format can cause it
        raise HpkeError(f"the unwrapped data key is {len(data_key)} bytes, expected {DATA_KEY_SIZE}")
    return data_key
