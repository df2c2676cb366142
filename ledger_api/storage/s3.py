"""Blobs as objects in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph RGW…): ``prefix + key``.

Each upload carries ``Content-MD5`` and, where the server supports it, ``x-amz-checksum-sha256``: the
server rejects a body damaged in transit instead of storing it. The SHA-256 checksum costs nothing (it
*is* the key). ``If-None-Match: *`` makes a repeated put a cheap no-op (HTTP 412) instead of a rewrite,
which also keeps versioned buckets from collecting identical versions.

Servers differ in what they accept. A server that answers "not implemented" or "invalid argument" to
one of these optional headers gets the upload retried without it, and the store remembers not to send
it again (SeaweedFS 4.x accepts all three). ``Content-MD5`` is never dropped.

Durability is the server's: ``put`` returns once the server has acknowledged the object.

Staged blobs (see :mod:`ledger_api.storage.base`) are objects under ``prefix + "staging/"``: a name
there is not a key, so ``iter_keys`` skips them. Promotion is a server-side ``CopyObject`` to the shared
name followed by a ``DeleteObject`` of the staged one; a crash in between leaves both (the same bytes),
which the recovery sweep resolves like any other staged blob.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ledger_api.storage.base import StagedBlob, blob_key, check_key, is_valid_key
from ledger_api.storage.errors import BlobCorrupted, BlobNotFound, StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

# Error codes with which S3-compatible servers refuse a header they do not implement.
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "InvalidArgument", "InvalidRequest", "UnsupportedHeader"})
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})

STAGING_PREFIX = "staging/"

_SESSION_LOCK = threading.Lock()
_session: boto3.session.Session | None = None


def _shared_session() -> boto3.session.Session:
    global _session  # a process-wide cache, guarded by _SESSION_LOCK
    if _session is None:
        _session = boto3.session.Session()
    return _session


class S3BlobStore:
    """Content-addressed blobs in one bucket under ``prefix``; thread-safe."""

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        prefix: str = "blobs/",
        max_workers: int = 8,
        timeout_s: float = 30.0,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if prefix.startswith("/"):
            raise ValueError(f"prefix must be relative (no leading '/'): {prefix!r}")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._endpoint_url = endpoint_url
        self._bucket = bucket
        self._prefix = prefix
        self._staging_prefix = prefix + STAGING_PREFIX
        self._region = region
        self._max_workers = max_workers
        config = Config(
            region_name=region,
            signature_version="s3v4",
            # Self-hosted servers rarely have wildcard DNS for virtual-host buckets; AWS prefers them.
            s3={"addressing_style": "path" if endpoint_url else "virtual"},
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            max_pool_connections=max(10, max_workers),
            # We send our own checksums (MD5 always, SHA-256 when supported). botocore's default CRC32
            # trailer uses aws-chunked uploads, which several S3-compatible servers still reject.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # boto3 sessions are not thread-safe, but a session caches the parsed service model, which makes
        # a client 20x cheaper to create (~4 ms instead of ~80 ms): share one, under a lock.
        with _SESSION_LOCK:
            self._client: S3Client = _shared_session().client(
                "s3",
                endpoint_url=endpoint_url,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config,
            )
        # Optional upload headers, switched off for good the first time the server refuses them.
        self._send_sha256 = True
        self._send_if_none_match = True
        self._capability_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore(endpoint_url={self._endpoint_url!r}, bucket={self._bucket!r}, prefix={self._prefix!r})"

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    def object_name(self, key: str) -> str:
        """The S3 object key of blob ``key``. Validates the key first."""
        return self._prefix + check_key(key)

    def staged_name(self, key: str) -> str:
        """The S3 object key of blob ``key`` while it is staged. Validates the key first."""
        return self._staging_prefix + check_key(key)

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (and is ours)."""
        try:
            self._client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if _code(exc) not in _NO_BUCKET_CODES:
                raise self._error(f"cannot access bucket {self._bucket}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"cannot access bucket {self._bucket}", exc) from exc
        try:
            if self._region == "us-east-1":
                self._client.create_bucket(Bucket=self._bucket)
            else:
                self._client.create_bucket(
                    Bucket=self._bucket,
                    CreateBucketConfiguration={"LocationConstraint": self._region},  # type: ignore[typeddict-item]
                )
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":  # a concurrent ensure_bucket won the race
                raise self._error(f"cannot create bucket {self._bucket}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"cannot create bucket {self._bucket}", exc) from exc

    # -- writing -------------------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        self._put(self.object_name(key), key, data)
        return key

    def put_many(self, blobs: Sequence[bytes]) -> list[str]:
        return self._put_many(blobs, self.object_name)

    def delete(self, key: str) -> None:
        self._delete(self.staged_name(key), key)
        self._delete(self.object_name(key), key)

    # -- staging -------------------------------------------------------------------------------------

    def stage_many(self, blobs: Sequence[bytes]) -> list[str]:
        return self._put_many(blobs, self.staged_name)

    def promote_many(self, keys: Sequence[str]) -> None:
        self._each(self._promote, dict.fromkeys(keys))

    def iter_staged(self) -> Iterator[StagedBlob]:
        for name, item in self._list(self._staging_prefix):
            modified = item.get("LastModified")
            if modified is not None:
                yield StagedBlob(key=name, staged_at=modified.astimezone(UTC))

    def get_staged(self, key: str) -> bytes:
        return self._get(self.staged_name(key), key, verify=True)

    def discard_staged(self, key: str) -> None:
        self._delete(self.staged_name(key), key)

    # -- reading -------------------------------------------------------------------------------------

    def get(self, key: str, *, verify: bool = True) -> bytes:
        try:
            return self._get(self.object_name(key), key, verify=verify)
        except BlobNotFound:
            return self._get(self.staged_name(key), key, verify=verify)

    def _get(self, name: str, key: str, *, verify: bool) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=name)
            data = response["Body"].read()
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND_CODES:
                raise BlobNotFound(key) from None
            raise self._error(f"cannot read blob {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"cannot read blob {key}", exc) from exc
        if verify:
            actual = blob_key(data)
            if actual != key:
                raise BlobCorrupted(key, actual)
        return data

    def exists(self, key: str) -> bool:
        name = self.object_name(key)
        try:
            self._client.head_object(Bucket=self._bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND_CODES:
                return False
            raise self._error(f"cannot check blob {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"cannot check blob {key}", exc) from exc
        return True

    def verify(self, key: str) -> bool:
        return blob_key(self.get(key, verify=False)) == key

    def iter_keys(self) -> Iterator[str]:
        for name, _ in self._list(self._prefix):
            yield name

    def _list(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """(key, listing entry) of every object directly under ``prefix`` whose rest is a key."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    name = item.get("Key", "")[len(prefix) :]
                    if is_valid_key(name):  # other objects (staged ones too) may share the prefix
                        yield name, item
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"cannot list bucket {self._bucket}", exc) from exc

    def close(self) -> None:
        self._client.close()

    # -- internals -----------------------------------------------------------------------------------

    def _put_many(self, blobs: Sequence[bytes], name_of: Callable[[str], str]) -> list[str]:
        keys = [blob_key(data) for data in blobs]
        pending = dict(zip(keys, blobs, strict=True))  # one upload per distinct content
        self._each(lambda key: self._put(name_of(key), key, pending[key]), pending)
        return keys

    def _each(self, action: Callable[[str], None], keys: Iterable[str]) -> None:
        """``action`` on every key; all have finished (or the first error is raised) on return."""
        keys = list(keys)
        if len(keys) <= 1 or self._max_workers == 1:
            for key in keys:
                action(key)
            return
        # Latency-bound, not CPU-bound: a few concurrent requests multiply the throughput.
        with ThreadPoolExecutor(max_workers=min(self._max_workers, len(keys))) as pool:
            for future in [pool.submit(action, key) for key in keys]:
                future.result()

    def _promote(self, key: str) -> None:
        staged, shared = self.staged_name(key), self.object_name(key)
        try:
            self._client.copy_object(
                Bucket=self._bucket, Key=shared, CopySource={"Bucket": self._bucket, "Key": staged}
            )
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND_CODES:
                raise self._error(f"cannot promote staged blob {key}", exc) from exc
            if not self.exists(key):  # else promoted already, by another process or a retry
                raise BlobNotFound(key) from None
            return
        except BotoCoreError as exc:
            raise self._error(f"cannot promote staged blob {key}", exc) from exc
        self._delete(staged, key)

    def _delete(self, name: str, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self._bucket, Key=name)  # S3 answers 204 for a missing key too
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"cannot delete blob {key}", exc) from exc

    def _put(self, name: str, key: str, data: bytes) -> None:
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        while True:
            send_sha256, send_if_none_match = self._send_sha256, self._send_if_none_match
            extra: dict[str, Any] = {}
            if send_sha256:
                extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(key)).decode()
            if send_if_none_match:
                extra["IfNoneMatch"] = "*"
            try:
                self._put_object(name, data, md5, extra)
                return
            except ClientError as exc:
                code = _code(exc)
                if send_if_none_match and (code == "PreconditionFailed" or _status(exc) == 412):
                    return  # already stored: the content is the key, so this is the idempotent no-op
                if send_if_none_match and (code == "ConditionalRequestConflict" or _status(exc) == 409):
                    # Another upload of the same key is in flight. The bytes are identical, so an
                    # unconditional put is harmless and does not depend on the other one succeeding.
                    del extra["IfNoneMatch"]
                    try:
                        self._put_object(name, data, md5, extra)
                    except (ClientError, BotoCoreError) as again:
                        raise self._error(f"cannot store blob {key}", again) from again
                    return
                if (code in _UNSUPPORTED_CODES or _status(exc) == 501) and self._drop_capability(
                    send_sha256, send_if_none_match, exc
                ):
                    continue
                raise self._error(f"cannot store blob {key}", exc) from exc
            except BotoCoreError as exc:
                raise self._error(f"cannot store blob {key}", exc) from exc

    def _put_object(self, name: str, data: bytes, md5: str, extra: dict[str, Any]) -> None:
        self._client.put_object(
            Bucket=self._bucket, Key=name, Body=data, ContentMD5=md5, ContentType="application/octet-stream", **extra
        )

    def _drop_capability(self, sent_sha256: bool, sent_if_none_match: bool, exc: ClientError) -> bool:
        """Stop sending one optional header after the server refused a request; false if none is left."""
        with self._capability_lock:
            if sent_sha256 and self._send_sha256:
                self._send_sha256 = False
                dropped = "x-amz-checksum-sha256"
            elif sent_if_none_match and self._send_if_none_match:
                self._send_if_none_match = False
                dropped = "If-None-Match"
            else:
                # True when another thread already dropped what this request sent: just retry.
                return (sent_sha256 and not self._send_sha256) or (sent_if_none_match and not self._send_if_none_match)
        log.warning("S3 server %s refused %s (%s); uploading without it", self._endpoint_url, dropped, _code(exc))
        return True

    def _error(self, what: str, exc: ClientError | BotoCoreError) -> StorageError:
        where = f"{self._endpoint_url or 'AWS S3'} bucket {self._bucket}"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', _status(exc))}: {error.get('Message', '')}".rstrip(": ")
        else:
            detail = str(exc)
        return StorageError(f"{what} ({where}): {detail}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


__all__ = ["STAGING_PREFIX", "S3BlobStore"]
