"""What only the S3 store has, checked on the real SeaweedFS: object names, checksums, buckets."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest

from ledger_api.storage import S3BlobStore, blob_key
from tests.support.seaweedfs import SeaweedS3Server

pytestmark = [pytest.mark.s3, pytest.mark.xdist_group("seaweedfs")]


def _store(server: SeaweedS3Server, bucket: str, prefix: str) -> S3BlobStore:
    return S3BlobStore(
        endpoint_url=server.endpoint_url,
        bucket=bucket,
        access_key=server.access_key,
        secret_key=server.secret_key,
        prefix=prefix,
    )


def test_ensure_bucket_creates_it_once(s3_server: SeaweedS3Server) -> None:
    bucket = f"ledger-new-{uuid.uuid4().hex[:8]}"
    store = _store(s3_server, bucket, "blobs")
    assert store.prefix == "blobs/"
    store.ensure_bucket()
    store.ensure_bucket()
    assert bucket in {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}


def test_objects_carry_the_sha256_checksum_and_foreign_objects_are_ignored(s3_server: SeaweedS3Server) -> None:
    store = _store(s3_server, "ledger-conformance", f"s3-{uuid.uuid4().hex[:8]}/")
    store.ensure_bucket()
    data = b"checked in transit"
    key = store.put(data)
    client = s3_server.client()
    head = client.head_object(Bucket=store.bucket, Key=store.object_name(key), ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()

    for foreign in ["README.txt", f"nested/{blob_key(b'x')}", key.upper()]:
        client.put_object(Bucket=store.bucket, Key=store.prefix + foreign, Body=b"not a blob")
    client.put_object(Bucket=store.bucket, Key=blob_key(b"outside the prefix"), Body=b"outside the prefix")
    assert list(store.iter_keys()) == [key]
