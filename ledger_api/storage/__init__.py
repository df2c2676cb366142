"""Content-addressed blob storage for encrypted record envelopes.

A blob's key is the SHA-256 of its bytes in lowercase hex (64 characters). Two backends implement
:class:`BlobStore`: :class:`LocalBlobStore` (a directory; the default) and :class:`S3BlobStore` (any
S3-compatible object store). Auditors read the same storage with the same classes, independently of
the gateway.

Choosing a backend with one setting: :func:`blob_store_from_settings` takes a URL.

``/var/lib/ledger/blobs``, ``relative/dir`` or ``file:///var/lib/ledger/blobs``
    Local directory (created if missing). Query options for ``file:`` URLs: ``fanout`` (directory
    levels of two hex characters, default 2) and ``barrier`` (``syncfs`` or ``fsync``; the default
    depends on the platform, see :mod:`ledger_api.storage.local`).
    Example: ``file:///srv/blobs?fanout=2&barrier=fsync``.

``s3://BUCKET/PREFIX?endpoint=URL&region=REGION``
    S3-compatible bucket. ``PREFIX`` defaults to ``blobs/`` when the URL has no path; ``endpoint``
    is the server's base URL (``http://127.0.0.1:8333`` for a local SeaweedFS) and defaults to AWS;
    ``region`` defaults to ``us-east-1``. Credentials never go in the URL: they come from the
    environment variables ``LEDGER_S3_ACCESS_KEY`` and ``LEDGER_S3_SECRET_KEY``. The bucket is not
    created here; call :meth:`S3BlobStore.ensure_bucket` where that is wanted.
    Example: ``s3://ledger/blobs/?endpoint=http://127.0.0.1:8333``.

This package must stay importable without web3 or FastAPI: auditors and tools use it on its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ledger_api.errors import ConfigurationError
from ledger_api.storage.base import BlobStore, blob_key, check_key, is_valid_key
from ledger_api.storage.errors import BlobCorrupted, BlobNotFound, InvalidBlobKey, StorageError
from ledger_api.storage.local import BARRIERS, LocalBlobStore
from ledger_api.storage.s3 import S3BlobStore

ACCESS_KEY_ENV = "LEDGER_S3_ACCESS_KEY"
SECRET_KEY_ENV = "LEDGER_S3_SECRET_KEY"  # noqa: S105 - the name of a variable, not a secret
DEFAULT_S3_PREFIX = "blobs/"


def blob_store_from_settings(url: str | Path, *, environ: Mapping[str, str] | None = None) -> BlobStore:
    """The blob store a settings URL describes (format in the module docstring).

    ``environ`` stands in for ``os.environ`` (where S3 credentials are read from). Raises
    :class:`~ledger_api.errors.ConfigurationError` for a malformed URL or missing credentials.
    """
    if isinstance(url, Path):
        return LocalBlobStore(root=url)
    text = url.strip()
    if not text:
        raise ConfigurationError("blob store URL is empty")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    # "C:\\…" would parse with scheme "c"; a scheme of one letter is a Windows drive, i.e. a path.
    if scheme == "" or len(scheme) == 1:
        return LocalBlobStore(root=Path(text).expanduser())
    query = _query(parts.query, text)
    if scheme == "file":
        return _local_from_url(parts.netloc, parts.path, query, text)
    if scheme == "s3":
        return _s3_from_url(parts.netloc, parts.path, query, text, os.environ if environ is None else environ)
    raise ConfigurationError(
        f"unsupported blob store URL scheme {parts.scheme!r} in {text!r}: use a path, file:// or s3://"
    )


def _query(raw: str, url: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, items in parse_qs(raw, keep_blank_values=True, strict_parsing=False).items():
        if len(items) != 1:
            raise ConfigurationError(f"blob store URL {url!r} repeats the option {name!r}")
        values[name] = items[0]
    return values


def _reject_unknown(query: Mapping[str, str], allowed: set[str], url: str) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ConfigurationError(
            f"blob store URL {url!r} has unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _local_from_url(netloc: str, path: str, query: Mapping[str, str], url: str) -> LocalBlobStore:
    if netloc not in ("", "localhost"):
        raise ConfigurationError(f"file URL {url!r} names a host; only local paths are supported (file:///path)")
    if not path:
        raise ConfigurationError(f"file URL {url!r} has no path")
    _reject_unknown(query, {"fanout", "barrier"}, url)
    try:
        fanout = int(query.get("fanout", "2"))
    except ValueError:
        raise ConfigurationError(f"fanout in {url!r} must be an integer") from None
    barrier = query.get("barrier")
    if barrier is not None and barrier not in BARRIERS:
        raise ConfigurationError(f"barrier in {url!r} must be one of {', '.join(BARRIERS)}")
    try:
        return LocalBlobStore(root=Path(unquote(path)), fanout=fanout, barrier=barrier)
    except ValueError as exc:
        raise ConfigurationError(f"blob store URL {url!r}: {exc}") from None


def _s3_from_url(netloc: str, path: str, query: Mapping[str, str], url: str, environ: Mapping[str, str]) -> S3BlobStore:
    if "@" in netloc:
        raise ConfigurationError(
            f"s3 URL must not carry credentials; set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} in the environment"
        )
    if not netloc:
        raise ConfigurationError(f"s3 URL {url!r} has no bucket (s3://BUCKET/PREFIX)")
    _reject_unknown(query, {"endpoint", "region"}, url)
    endpoint = query.get("endpoint") or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigurationError(f"endpoint in {url!r} must be an http:// or https:// URL")
    prefix = unquote(path).lstrip("/") or DEFAULT_S3_PREFIX
    access_key = environ.get(ACCESS_KEY_ENV, "")
    secret_key = environ.get(SECRET_KEY_ENV, "")
    if not access_key or not secret_key:
        raise ConfigurationError(f"the S3 blob store needs {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} in the environment")
    return S3BlobStore(
        endpoint_url=endpoint,
        bucket=netloc,
        access_key=access_key,
        secret_key=secret_key,
        region=query.get("region") or "us-east-1",
        prefix=prefix,
    )


__all__ = [
    "ACCESS_KEY_ENV",
    "SECRET_KEY_ENV",
    "BlobCorrupted",
    "BlobNotFound",
    "BlobStore",
    "InvalidBlobKey",
    "LocalBlobStore",
    "S3BlobStore",
    "StorageError",
    "blob_key",
    "blob_store_from_settings",
    "check_key",
    "is_valid_key",
]
