"""The blob-store contract shared by every backend, and the key rules.

A blob is an opaque byte string (in practice an encrypted record envelope). Its key is the SHA-256 of
its bytes in lowercase hex, so a key names exactly one content: storing the same bytes twice stores
nothing new, and anyone holding a key, the gateway or an auditor reading the storage on its own, can
check what they read against it (and against the hash anchored on chain).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from ledger_api.storage.errors import InvalidBlobKey

KEY_LENGTH = 64
# fullmatch with [0-9a-f]: no uppercase (one content, one spelling), no "/" or ".." (keys become paths
# and object names), and no trailing newline, which a "$" anchor would let through.
_KEY_RE = re.compile(r"[0-9a-f]{64}")


def blob_key(data: bytes) -> str:
    """The key of ``data``: its SHA-256 in lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def is_valid_key(key: object) -> bool:
    return isinstance(key, str) and _KEY_RE.fullmatch(key) is not None


def check_key(key: object) -> str:
    """Return ``key`` if it is a well-formed blob key, else raise :class:`InvalidBlobKey`."""
    if not is_valid_key(key):
        raise InvalidBlobKey(key)
    assert isinstance(key, str)
    return key


class BlobWriter(Protocol):
    """The one thing an outbox client needs of storage: a durable ``put`` (see :class:`BlobStore`)."""

    def put(self, data: bytes) -> str: ...


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blob storage.

    Guarantees every implementation gives:

    * ``put``/``put_many`` return only once the blobs are durable (they survive a crash of the process
      and, for the local store, of the machine);
    * a reader never sees a partial blob under a valid key;
    * ``get`` verifies the content against the key unless told not to, so silent damage surfaces as
      :class:`~ledger_api.storage.errors.BlobCorrupted` rather than as wrong bytes.
    """

    def put(self, data: bytes) -> str:
        """Store ``data``; return its key. Idempotent: storing bytes already present is a no-op."""
        ...

    def put_many(self, blobs: Sequence[bytes]) -> list[str]:
        """Store a batch; return the keys in input order. All are durable when this returns."""
        ...

    def get(self, key: str, *, verify: bool = True) -> bytes:
        """The bytes stored under ``key``.

        Raises ``BlobNotFound`` when absent and, unless ``verify`` is false, ``BlobCorrupted`` when the
        content no longer hashes to the key.
        """
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the blob if present (idempotent): used to replace or clean up crypto-shredded blobs."""
        ...

    def iter_keys(self) -> Iterator[str]:
        """Every stored key, in ascending order; for auditors walking the whole store."""
        ...

    def verify(self, key: str) -> bool:
        """Re-hash the stored bytes: true if they still match ``key``. Raises ``BlobNotFound``."""
        ...


class BlobReader(Protocol):
    """The part of a :class:`BlobStore` an auditor reads storage through: walk the keys, read the bytes."""

    def iter_keys(self) -> Iterator[str]: ...

    def get(self, key: str, *, verify: bool = True) -> bytes: ...


__all__ = ["KEY_LENGTH", "BlobReader", "BlobStore", "BlobWriter", "blob_key", "check_key", "is_valid_key"]
