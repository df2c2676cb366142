"""Errors of the record-encryption layer: one root, :class:`CryptoError`, under :class:`LedgerError`.

Every message is one line that says what failed and, where it helps, what to check. Messages never
contain key material, plaintext or data keys: they name records, organisations and key indexes only.
"""

from __future__ import annotations

from ledger_api.errors import ConfigurationError, LedgerError

__all__ = [
    "BlobHashMismatchError",
    "CommitmentMismatchError",
    "CryptoError",
    "EnvelopeError",
    "HpkeError",
    "InsecureSecretError",
    "KeyUnwrapError",
    "KeystoreError",
    "MalformedBlobError",
    "NotARecipientError",
    "RecordIntegrityError",
    "RecordShreddedError",
    "WrongMasterSecretError",
]


class CryptoError(LedgerError):
    """Root of every error raised on purpose by :mod:`ledger_api.crypto`."""


class HpkeError(CryptoError):
    """An HPKE key or wrapped key is malformed, of an unsupported KEM, or does not open."""


class EnvelopeError(CryptoError):
    """A record blob could not be sealed, parsed or opened; subclasses say which check failed."""


class MalformedBlobError(EnvelopeError):
    """The bytes are not a well-formed record blob (bad magic, unknown version, truncated, trailing bytes…)."""


class BlobHashMismatchError(EnvelopeError):
    """SHA-256 of the blob differs from the hash anchored on chain: the stored blob was changed or swapped."""


class NotARecipientError(EnvelopeError):
    """The blob holds no wrapped data key for the requested organisation and key index."""


class KeyUnwrapError(EnvelopeError):
    """The wrapped data key does not open: wrong private key, tampered, or moved from another record."""


class RecordIntegrityError(EnvelopeError):
    """AES-GCM authentication failed: the header, nonce or ciphertext was altered (NIST SP 800-38D §7.2)."""


class CommitmentMismatchError(EnvelopeError):
    """The decrypted plaintext does not match the salted commitment anchored on chain."""


class RecordShreddedError(EnvelopeError):
    """The record was crypto-shredded: every wrapped data key was destroyed, so it can never be opened."""


class KeystoreError(CryptoError):
    """The organisation keystore is unreadable, inconsistent, or asked for a key it does not hold."""


class WrongMasterSecretError(KeystoreError):
    """The master secret does not open this keystore."""


class InsecureSecretError(KeystoreError, ConfigurationError):
    """A master secret is empty, too short, or the published demo placeholder outside demo mode."""
