"""What only the local directory store has: its layout, temp files, barriers and self-repair."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ledger_api.storage import InvalidBlobKey, LocalBlobStore, blob_key
from ledger_api.storage.local import TEMP_PREFIX


def test_layout_is_two_hex_characters_per_fanout_level(tmp_path: Path) -> None:
    data = b"layout"
    key = blob_key(data)
    for fanout, expected in [
        (0, tmp_path / "f0" / key),
        (2, tmp_path / "f2" / key[:2] / key[2:4] / key),
        (3, tmp_path / "f3" / key[:2] / key[2:4] / key[4:6] / key),
    ]:
        store = LocalBlobStore(root=expected.parents[fanout], fanout=fanout)
        store.put(data)
        assert expected.read_bytes() == data
        assert store.path_for(key) == expected
        assert list(store.iter_keys()) == [key]


def test_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fanout"):
        LocalBlobStore(root=tmp_path, fanout=5)
    with pytest.raises(ValueError, match="barrier"):
        LocalBlobStore(root=tmp_path, barrier="fdatasync")  # type: ignore[arg-type]


def test_path_traversal_is_impossible(tmp_path: Path) -> None:
    store = LocalBlobStore(root=tmp_path / "blobs")
    secret = tmp_path / "secret"
    secret.write_bytes(b"not a blob")
    for bad in ["../secret", "../../secret", str(secret), "a" * 62 + "/.."]:
        with pytest.raises(InvalidBlobKey):
            store.path_for(bad)
        with pytest.raises(InvalidBlobKey):
            store.get(bad)
        with pytest.raises(InvalidBlobKey):
            store.delete(bad)
    assert secret.read_bytes() == b"not a blob"


@pytest.mark.parametrize("barrier", ["fsync", "syncfs"])
def test_put_many_with_each_barrier(tmp_path: Path, barrier: str) -> None:
    store = LocalBlobStore(root=tmp_path, barrier=barrier)  # type: ignore[arg-type]
    blobs = [os.urandom(1024) for _ in range(200)]
    keys = store.put_many(blobs)
    assert list(store.iter_keys()) == sorted(keys)
    assert all(store.get(k) == b for k, b in zip(keys, blobs, strict=True))
    assert list(store.iter_temp_files()) == []


def test_strays_are_ignored_and_stale_temp_files_cleaned(tmp_path: Path) -> None:
    store = LocalBlobStore(root=tmp_path)
    key = store.put(b"real")
    leaf = store.path_for(key).parent
    old_temp = leaf / f"{TEMP_PREFIX}{key[:16]}-1-deadbeef"
    old_temp.write_bytes(b"half a bl")
    an_hour_ago = time.time() - 3700
    os.utime(old_temp, (an_hour_ago, an_hour_ago))
    fresh_temp = leaf / f"{TEMP_PREFIX}{key[:16]}-2-cafebabe"  # a write in flight in another process
    fresh_temp.write_bytes(b"in progr")
    (tmp_path / "README").write_text("not a blob")
    (tmp_path / "zz").mkdir()  # not hex: ignored
    misplaced = blob_key(b"misplaced")
    (leaf / misplaced).write_bytes(b"misplaced")  # a key under the wrong directory: unreadable via get

    assert list(store.iter_keys()) == [key]
    assert set(store.iter_temp_files()) == {old_temp, fresh_temp}
    assert store.remove_stale_temp_files() == 1
    assert set(store.iter_temp_files()) == {fresh_temp}
    assert store.remove_stale_temp_files(older_than_s=0) == 1
    assert list(store.iter_temp_files()) == []
    assert store.get(key) == b"real"


def test_put_is_a_no_op_for_an_intact_blob_and_repairs_a_truncated_one(tmp_path: Path) -> None:
    store = LocalBlobStore(root=tmp_path)
    data = os.urandom(1000)
    key = store.put(data)
    path = store.path_for(key)
    inode = path.stat().st_ino
    store.put(data)
    assert path.stat().st_ino == inode  # not rewritten

    path.write_bytes(data[:500])  # damage that changes the size (a same-size flip needs verify())
    assert not store.verify(key)
    store.put_many([data])
    assert store.verify(key)
    assert path.stat().st_ino != inode


def test_files_are_readable_by_an_auditor_account(tmp_path: Path) -> None:
    store = LocalBlobStore(root=tmp_path)
    key = store.put(b"mode")
    old_umask = os.umask(0o022)
    os.umask(old_umask)
    assert store.path_for(key).stat().st_mode & 0o777 == 0o644 & ~old_umask


def test_a_directory_pruned_behind_the_stores_back_is_recreated(tmp_path: Path) -> None:
    store = LocalBlobStore(root=tmp_path)
    data = b"first"
    key = store.put(data)
    store.delete(key)
    leaf = store.path_for(key).parent
    leaf.rmdir()
    leaf.parent.rmdir()  # what a "prune empty directories" job would do
    assert store.put(data) == key
    store.delete(key)
    leaf.rmdir()
    assert store.put_many([data]) == [key]
    assert store.get(key) == data
