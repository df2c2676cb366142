"""Errors raised by :mod:`ledger_api.storage`.

Every one derives from :class:`StorageError`, itself a :class:`~ledger_api.errors.LedgerError`, so the
CLI and the HTTP API translate storage failures like any other ledger error.
"""

from __future__ import annotations

from ledger_api.errors import LedgerError


class StorageError(LedgerError):
    """Root of the blob-storage errors: the backend failed, refused a request, or a key is invalid."""


class InvalidBlobKey(StorageError, ValueError):
    """A key is not 64 lowercase hex digits (a SHA-256); refused before it reaches a path or URL."""

    def __init__(self, key: object) -> None:
        self.key = key
        shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
        super().__init__(f"invalid blob key {shown}: expected 64 lowercase hex digits (SHA-256)")


class BlobNotFound(StorageError, KeyError):
    """No blob is stored under this key."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"blob {key} not found")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0])


class BlobCorrupted(StorageError):
    """The bytes stored under a key no longer hash to that key: the blob was altered or damaged."""

    def __init__(self, key: str, actual: str) -> None:
        self.key = key
        self.actual = actual
        super().__init__(f"blob {key} is corrupted: its content hashes to {actual}")
