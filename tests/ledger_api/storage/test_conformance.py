"""One behaviour for every blob store: the local directory and S3 on a real SeaweedFS."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger_api.storage import (
    BlobCorrupted,
    BlobNotFound,
    BlobStore,
    InvalidBlobKey,
    LocalBlobStore,
    S3BlobStore,
    StorageError,
    blob_key,
)
from ledger_api.storage.local import Barrier
from tests.support.seaweedfs import SeaweedS3Server

BUCKET = "ledger-conformance"

BAD_KEYS = [
    "",
    "../../../../etc/passwd",
    "/" + "a" * 63,
    "a" * 63,
    "a" * 65,
    "A" * 64,  # one content, one spelling: uppercase hex is refused, not folded
    "g" * 64,
    "a" * 64 + "\n",  # a "$"-anchored regex would let this through
    "ab/cd" + "e" * 59,
    "..",
]


@dataclass
class Backend:
    store: BlobStore
    corrupt: Callable[[str], None]  # flip one byte of the stored blob, behind the store's back
    reopen: Callable[[], BlobStore]  # a second, independent instance on the same storage (the auditor)


def _flip(data: bytes) -> bytes:
    if not data:
        return b"\x00"
    return bytes([data[0] ^ 0x01]) + data[1:]


def _local_backend(root: Path, barrier: Barrier) -> Backend:
    store = LocalBlobStore(root=root, barrier=barrier)

    def corrupt(key: str) -> None:
        path = store.path_for(key)
        path.write_bytes(_flip(path.read_bytes()))

    return Backend(store=store, corrupt=corrupt, reopen=lambda: LocalBlobStore(root=root))


def _s3_backend(server: SeaweedS3Server) -> Iterator[Backend]:
    def make(prefix: str) -> S3BlobStore:
        return S3BlobStore(
            endpoint_url=server.endpoint_url,
            bucket=BUCKET,
            access_key=server.access_key,
            secret_key=server.secret_key,
            prefix=prefix,
        )

    prefix = f"t-{uuid.uuid4().hex[:12]}/"  # one bucket for the session, one prefix per test
    store = make(prefix)
    store.ensure_bucket()

    def corrupt(key: str) -> None:
        client = server.client()  # raw boto3, bypassing the store: what a tamperer with bucket access does
        name = store.object_name(key)
        data = client.get_object(Bucket=BUCKET, Key=name)["Body"].read()
        client.put_object(Bucket=BUCKET, Key=name, Body=_flip(data))

    yield Backend(store=store, corrupt=corrupt, reopen=lambda: make(prefix))
    store.close()


@pytest.fixture(
    params=[
        pytest.param("local-syncfs"),
        pytest.param("local-fsync"),
        pytest.param("s3", marks=[pytest.mark.s3, pytest.mark.xdist_group("seaweedfs")]),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local-syncfs":
        yield _local_backend(tmp_path / "blobs", "syncfs")
    elif request.param == "local-fsync":
        yield _local_backend(tmp_path / "blobs", "fsync")
    else:
        yield from _s3_backend(request.getfixturevalue("s3_server"))


def test_put_returns_sha256_and_get_returns_the_bytes(backend: Backend) -> None:
    data = b"ciphertext \x00\xff of one record"
    key = backend.store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert backend.store.exists(key)
    assert backend.store.get(key) == data
    assert backend.store.verify(key)


def test_put_is_idempotent(backend: Backend) -> None:
    data = os.urandom(2048)
    first = backend.store.put(data)
    second = backend.store.put(data)
    assert first == second
    assert backend.store.put_many([data, data]) == [first, first]
    assert list(backend.store.iter_keys()) == [first]
    assert backend.store.get(first) == data


def test_empty_and_multi_chunk_blobs(backend: Backend) -> None:
    # 5 MiB is above SeaweedFS's 4 MiB chunk size: the object is stored in several chunks.
    blobs = [b"", os.urandom(5 * 1024 * 1024 + 3)]
    keys = backend.store.put_many(blobs)
    for key, data in zip(keys, blobs, strict=True):
        assert backend.store.get(key) == data


def test_put_many_500_blobs(backend: Backend) -> None:
    blobs = [os.urandom(1024) for _ in range(500)]
    batch = [*blobs, blobs[0], blobs[250]]  # duplicates inside a batch are stored once
    keys = backend.store.put_many(batch)
    assert keys == [blob_key(b) for b in batch]
    assert list(backend.store.iter_keys()) == sorted({blob_key(b) for b in blobs})
    for key, data in zip(keys[:500:50], blobs[::50], strict=True):
        assert backend.store.get(key) == data


def test_put_many_of_nothing(backend: Backend) -> None:
    assert backend.store.put_many([]) == []
    assert list(backend.store.iter_keys()) == []


def test_another_instance_sees_the_same_blobs(backend: Backend) -> None:
    """The auditor reads the storage with its own store object, not the gateway's."""
    keys = backend.store.put_many([os.urandom(100) for _ in range(20)])
    auditor = backend.reopen()
    assert list(auditor.iter_keys()) == sorted(keys)
    assert all(auditor.verify(key) for key in keys)


def test_verify_detects_a_flipped_byte(backend: Backend) -> None:
    data = os.urandom(4096)
    key = backend.store.put(data)
    other = backend.store.put(os.urandom(4096))
    assert backend.store.verify(key)

    backend.corrupt(key)

    assert not backend.store.verify(key)
    assert backend.store.verify(other)
    with pytest.raises(BlobCorrupted) as raised:
        backend.store.get(key)
    assert raised.value.key == key
    assert raised.value.actual != key
    assert backend.store.get(key, verify=False) == _flip(data)  # forensics: the damaged bytes, on request
    assert key in set(backend.store.iter_keys())  # still listed: the auditor must see it to report it


def test_missing_blob(backend: Backend) -> None:
    key = blob_key(b"never stored")
    assert not backend.store.exists(key)
    with pytest.raises(BlobNotFound) as raised:
        backend.store.get(key)
    assert raised.value.key == key
    assert isinstance(raised.value, StorageError)
    assert str(raised.value) == f"blob {key} not found"
    with pytest.raises(BlobNotFound):
        backend.store.verify(key)
    backend.store.delete(key)  # deleting what is not there is not an error


def test_delete_then_put_again(backend: Backend) -> None:
    data = os.urandom(512)
    key = backend.store.put(data)
    backend.store.delete(key)
    assert not backend.store.exists(key)
    with pytest.raises(BlobNotFound):
        backend.store.get(key)
    assert list(backend.store.iter_keys()) == []
    assert backend.store.put(data) == key
    assert backend.store.get(key) == data


def test_invalid_keys_are_rejected_before_touching_storage(backend: Backend) -> None:
    for bad in BAD_KEYS:
        for operation in (backend.store.get, backend.store.exists, backend.store.delete, backend.store.verify):
            with pytest.raises(InvalidBlobKey):
                operation(bad)
    with pytest.raises(InvalidBlobKey):
        backend.store.get(None)  # type: ignore[arg-type]


def test_concurrent_puts_of_the_same_and_different_blobs(backend: Backend) -> None:
    shared = os.urandom(10_000)
    errors: list[BaseException] = []
    keys: list[str] = []

    def writer() -> None:
        try:
            keys.append(backend.store.put(shared))
            keys.extend(backend.store.put_many([shared, os.urandom(64)]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert backend.store.get(blob_key(shared)) == shared
    assert set(backend.store.iter_keys()) == set(keys)


# --- staging: blobs written before the index commit that refers to them ---------------------------------


def test_a_staged_blob_is_readable_but_neither_shared_nor_listed(backend: Backend) -> None:
    data = os.urandom(700)
    before = datetime.now(UTC)
    (key,) = backend.store.stage_many([data])
    after = datetime.now(UTC)
    assert key == blob_key(data)
    assert list(backend.store.iter_keys()) == []  # the auditor's walk does not see it
    assert not backend.store.exists(key)
    assert backend.store.get(key) == data  # a row committed before the promotion can be read already
    assert backend.store.get_staged(key) == data
    (staged,) = backend.store.iter_staged()
    assert staged.key == key
    assert staged.staged_at.tzinfo is not None
    # The storage's clock (SeaweedFS's, for S3) against ours: the same machine, so within minutes.
    assert before - timedelta(minutes=5) <= staged.staged_at <= after + timedelta(minutes=5)
    assert [s.key for s in backend.reopen().iter_staged()] == [key]  # a recovery sweep in another process


def test_promote_moves_staged_blobs_into_the_shared_area_once(backend: Backend) -> None:
    blobs = [os.urandom(300) for _ in range(30)]
    keys = backend.store.stage_many([*blobs, blobs[0]])
    assert keys == [blob_key(b) for b in [*blobs, blobs[0]]]
    assert sorted(s.key for s in backend.store.iter_staged()) == sorted(set(keys))

    backend.store.promote_many(keys)

    assert list(backend.store.iter_keys()) == sorted(set(keys))
    assert list(backend.store.iter_staged()) == []
    assert all(backend.reopen().get(key) == data for key, data in zip(keys, blobs, strict=False))
    backend.store.promote_many(keys)  # promoted already (a twin in another process, a retry): a no-op
    assert list(backend.store.iter_keys()) == sorted(set(keys))
    backend.store.promote_many([])
    with pytest.raises(BlobNotFound) as raised:
        backend.store.promote_many([blob_key(b"never staged")])
    assert raised.value.key == blob_key(b"never staged")


def test_discarding_a_staged_blob_never_touches_the_shared_copy(backend: Backend) -> None:
    shared = os.urandom(400)
    key = backend.store.put(shared)
    assert backend.store.stage_many([shared]) == [key]  # the same bytes staged again
    leftover = backend.store.stage_many([os.urandom(400)])[0]

    backend.store.discard_staged(key)
    backend.store.discard_staged(leftover)
    backend.store.discard_staged(leftover)  # idempotent

    assert list(backend.store.iter_staged()) == []
    assert backend.store.get(key) == shared
    assert list(backend.store.iter_keys()) == [key]
    with pytest.raises(BlobNotFound):
        backend.store.get(leftover)
    with pytest.raises(BlobNotFound):
        backend.store.get_staged(leftover)


def test_delete_removes_the_staged_and_the_shared_copy(backend: Backend) -> None:
    data = os.urandom(256)
    key = backend.store.put(data)
    backend.store.stage_many([data])
    other = backend.store.stage_many([os.urandom(256)])[0]

    backend.store.delete(key)
    backend.store.delete(other)

    assert list(backend.store.iter_keys()) == []
    assert list(backend.store.iter_staged()) == []
    for gone in (key, other):
        with pytest.raises(BlobNotFound):
            backend.store.get(gone)


def test_invalid_keys_are_rejected_by_the_staging_operations(backend: Backend) -> None:
    for bad in BAD_KEYS:
        for operation in (backend.store.get_staged, backend.store.discard_staged):
            with pytest.raises(InvalidBlobKey):
                operation(bad)
        with pytest.raises(InvalidBlobKey):
            backend.store.promote_many([bad])
