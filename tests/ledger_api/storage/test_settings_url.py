"""blob_store_from_settings: one URL setting picks and configures the backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledger_api.errors import ConfigurationError
from ledger_api.storage import LocalBlobStore, S3BlobStore, StorageError, blob_store_from_settings
from ledger_api.storage.local import DEFAULT_BARRIER
from tests.support.seaweedfs import SeaweedS3Server

CREDENTIALS = {"LEDGER_S3_ACCESS_KEY": "access", "LEDGER_S3_SECRET_KEY": "secret"}


def test_plain_paths_and_file_urls_are_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cases = {
        str(tmp_path / "a"): tmp_path / "a",
        "relative/dir": tmp_path / "relative" / "dir",
        f"file://{tmp_path}/b": tmp_path / "b",
        f"file://localhost{tmp_path}/c": tmp_path / "c",
        f"file://{tmp_path}/with%20space": tmp_path / "with space",
    }
    for url, root in cases.items():
        store = blob_store_from_settings(url)
        assert isinstance(store, LocalBlobStore), url
        assert store.root == root
        assert store.fanout == 2
        assert store.barrier == DEFAULT_BARRIER
        assert root.is_dir()
    assert isinstance(blob_store_from_settings(tmp_path / "p"), LocalBlobStore)


def test_file_url_options(tmp_path: Path) -> None:
    store = blob_store_from_settings(f"file://{tmp_path}?fanout=3&barrier=syncfs")
    assert isinstance(store, LocalBlobStore)
    assert (store.fanout, store.barrier) == (3, "syncfs")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("file://example.org/x", "names a host"),
        ("file:///tmp/x?fanout=two", "fanout"),
        ("file:///tmp/x?fanout=9", "fanout"),
        ("file:///tmp/x?barrier=none", "barrier"),
        ("file:///tmp/x?colour=blue", "unknown option"),
        ("file:///tmp/x?fanout=1&fanout=2", "repeats"),
        ("ftp://host/x", "unsupported"),
        ("s3:///prefix", "no bucket"),
        ("s3://user:pw@bucket/x", "must not carry credentials"),
        ("s3://bucket/x?endpoint=127.0.0.1:8333", "endpoint"),
        ("s3://bucket/x?acl=public", "unknown option"),
    ],
)
def test_malformed_urls_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        blob_store_from_settings(url, environ=CREDENTIALS)


def test_s3_url() -> None:
    store = blob_store_from_settings(
        "s3://ledger/records/v1?endpoint=http://127.0.0.1:8333&region=cn-east-1", environ=CREDENTIALS
    )
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("ledger", "records/v1/")
    assert repr(store) == "S3BlobStore(endpoint_url='http://127.0.0.1:8333', bucket='ledger', prefix='records/v1/')"
    default = blob_store_from_settings("s3://ledger", environ=CREDENTIALS)
    assert isinstance(default, S3BlobStore)
    assert default.prefix == "blobs/"


def test_s3_credentials_come_from_the_environment_only() -> None:
    with pytest.raises(ConfigurationError, match="LEDGER_S3_ACCESS_KEY"):
        blob_store_from_settings("s3://ledger?endpoint=http://127.0.0.1:8333", environ={})
    with pytest.raises(ConfigurationError, match="LEDGER_S3_SECRET_KEY"):
        blob_store_from_settings(
            "s3://ledger?endpoint=http://127.0.0.1:8333", environ={"LEDGER_S3_ACCESS_KEY": "access"}
        )


@pytest.mark.s3
@pytest.mark.xdist_group("seaweedfs")
def test_s3_url_against_seaweedfs(s3_server: SeaweedS3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("LEDGER_S3_SECRET_KEY", s3_server.secret_key)
    store = blob_store_from_settings(f"s3://ledger-settings/from-url?endpoint={s3_server.endpoint_url}")
    assert isinstance(store, S3BlobStore)
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    key = store.put(b"via settings")
    assert store.get(key) == b"via settings"
    listed = s3_server.client().list_objects_v2(Bucket="ledger-settings")["Contents"]
    assert [item["Key"] for item in listed] == [f"from-url/{key}"]


@pytest.mark.s3
@pytest.mark.xdist_group("seaweedfs")
def test_s3_wrong_credentials_are_a_storage_error(s3_server: SeaweedS3Server) -> None:
    store = S3BlobStore(
        endpoint_url=s3_server.endpoint_url,
        bucket="ledger-conformance",
        access_key=s3_server.access_key,
        secret_key="not-the-secret",
    )
    with pytest.raises(StorageError, match=r"SignatureDoesNotMatch|AccessDenied"):
        store.put(os.urandom(16))
