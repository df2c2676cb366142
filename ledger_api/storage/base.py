"""The blob-store contract shared by every backend, and the key rules.

A blob is an opaque byte string (in practice an encrypted record envelope). Its key is the SHA-256 of
its bytes in lowercase hex, so a key names exactly one content: storing the same bytes twice stores
nothing new, and anyone holding a key, the gateway or an auditor reading the storage on its own, can
check what they read against it (and against the hash anchored on chain).

Staging. A push writes its ciphertexts *before* it commits the index rows that refer to them, so a
crash in between leaves blobs nobody refers to; the client's retry seals the record afresh (new data
key, new nonce, new key). Such a leftover in the shared area would be a ``blob-unanchored`` finding
for every auditor and, worse, a copy of the record that its erasure never destroys. So record blobs
are first written to a *staging area* beside the shared one (``stage_many``), which auditors do not
list, and moved into the shared area (``promote_many``) once the index commit refers to them. What a
crash leaves in staging is either referenced by the index (then promoted by the recovery sweep,
:mod:`ledger_api.records.staging`) or not (then discarded once older than a grace period, so that a
push still in flight elsewhere keeps its blobs).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True, kw_only=True)
class StagedBlob:
    """A blob in the staging area, and when it was written there (by the storage's own clock)."""

    key: str
    staged_at: datetime
    """Timezone-aware; the file's modification time, or the object's ``LastModified``."""


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
        """The bytes stored under ``key``, in the shared area or, until it is promoted, in staging (a row
        committed a moment ago, or by a gateway that died before promoting, is readable at once).

        Raises ``BlobNotFound`` when absent and, unless ``verify`` is false, ``BlobCorrupted`` when the
        content no longer hashes to the key.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` is in the shared area (a staged blob is not: see :meth:`iter_staged`)."""
        ...

    def delete(self, key: str) -> None:
        """Remove every copy of the blob, shared and staged (idempotent): erasure relies on it."""
        ...

    def iter_keys(self) -> Iterator[str]:
        """Every key in the shared area, in ascending order; for auditors walking the whole store.
        Staged blobs are not listed: they are not shared records (yet)."""
        ...

    def stage_many(self, blobs: Sequence[bytes]) -> list[str]:
        """Store a batch in the staging area, durably, as ``put_many`` does; return the keys in input order."""
        ...

    def promote_many(self, keys: Sequence[str]) -> None:
        """Move staged blobs into the shared area; all are durable there when this returns.

        Idempotent: a key already promoted (by this call's twin in another process) is fine. Raises
        ``BlobNotFound`` for a key neither staged nor shared.
        """
        ...

    def iter_staged(self) -> Iterator[StagedBlob]:
        """Every staged blob with its staging time, in ascending key order."""
        ...

    def get_staged(self, key: str) -> bytes:
        """The verified bytes of a staged blob; raises ``BlobNotFound`` when it is not staged."""
        ...

    def discard_staged(self, key: str) -> None:
        """Remove a staged blob if present (idempotent); the shared copy, if any, stays."""
        ...

    def verify(self, key: str) -> bool:
        """Re-hash the stored bytes: true if they still match ``key``. Raises ``BlobNotFound``."""
        ...


class BlobReader(Protocol):
    """The part of a :class:`BlobStore` an auditor reads storage through: walk the keys, read the bytes."""

    def iter_keys(self) -> Iterator[str]: ...

    def get(self, key: str, *, verify: bool = True) -> bytes: ...


__all__ = [
    "KEY_LENGTH",
    "BlobReader",
    "BlobStore",
    "BlobWriter",
    "StagedBlob",
    "blob_key",
    "check_key",
    "is_valid_key",
]
