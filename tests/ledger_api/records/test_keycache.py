"""The data-key cache of the read path: bounded LRU, erased records dropped and kept out, and opening a
blob with a cached key checks everything but the HPKE unwrap."""

from __future__ import annotations

import threading

import pytest

from ledger_api.crypto import HpkeSuite
from ledger_api.crypto.envelope import open_record, open_record_with_data_key, shred
from ledger_api.crypto.errors import (
    BlobHashMismatchError,
    CommitmentMismatchError,
    RecordIntegrityError,
    RecordShreddedError,
)
from ledger_api.records.keycache import DataKeyCache
from tests.ledger_api.crypto.support import OWNER, keys_for, seal

KEY = b"k" * 32


def rid(n: int) -> str:
    return f"{n:064x}"


def put(cache: DataKeyCache, n: int, *, version: int = 1, data_key: bytes = KEY) -> bool:
    return cache.put(record_id=rid(n), version=version, blob_key=f"{n + 1_000:064x}", data_key=data_key)


def get(cache: DataKeyCache, n: int, *, version: int = 1) -> bytes | None:
    return cache.get(record_id=rid(n), version=version, blob_key=f"{n + 1_000:064x}")


def test_a_cached_key_comes_back_only_for_the_same_record_version_and_blob() -> None:
    cache = DataKeyCache(capacity=8)
    assert put(cache, 1, data_key=KEY)
    assert get(cache, 1) == KEY
    assert get(cache, 1, version=2) is None
    assert cache.get(record_id=rid(1), version=1, blob_key="ff" * 32) is None
    assert len(cache) == 1


def test_the_cache_is_bounded_and_evicts_the_least_recently_used_key() -> None:
    cache = DataKeyCache(capacity=3)
    for n in range(3):
        put(cache, n, data_key=bytes([n]) * 32)
    assert get(cache, 0) is not None  # 0 is now the most recently used
    put(cache, 3, data_key=KEY)
    assert len(cache) == 3
    assert get(cache, 1) is None  # the least recently used went
    assert [get(cache, n) is not None for n in (0, 2, 3)] == [True, True, True]
    for n in range(4, 100):
        put(cache, n, data_key=KEY)
    assert len(cache) == 3
    assert cache.forget(rid(1)) == 0  # an evicted key is also gone from the per-record index


def test_forgetting_an_erased_record_drops_every_version_and_refuses_its_keys_afterwards() -> None:
    cache = DataKeyCache(capacity=16)
    for version in (1, 2, 3):
        put(cache, 7, version=version, data_key=KEY)
    put(cache, 8, data_key=KEY)
    assert cache.forget(rid(7)) == 3
    assert all(get(cache, 7, version=v) is None for v in (1, 2, 3))
    # A read that unwrapped the key just before the erasure committed cannot put it back.
    assert not put(cache, 7, version=1, data_key=KEY)
    assert get(cache, 7, version=1) is None
    assert get(cache, 8) == KEY  # other records are untouched
    assert len(cache) == 1


def test_the_memory_of_erased_records_is_bounded_too() -> None:
    cache = DataKeyCache(capacity=4, erased_capacity=2)
    for n in (1, 2, 3):
        cache.forget(rid(n))
    assert put(cache, 1, data_key=KEY)  # the oldest erasure was let go
    assert not put(cache, 3, data_key=KEY)


def test_a_cache_of_no_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        DataKeyCache(capacity=0)


def test_concurrent_use_keeps_the_bound() -> None:
    cache = DataKeyCache(capacity=50)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for n in range(500):
                put(cache, t * 1000 + n % 80, data_key=KEY)
                get(cache, t * 1000 + (n * 7) % 80)
                if n % 50 == 0:
                    cache.forget(rid(t * 1000 + n % 80))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(cache) <= 50


# --- opening with a cached key ------------------------------------------------------------------------


def test_a_data_key_from_one_open_opens_the_same_blob_again_with_every_check() -> None:
    sealed = seal(b'{"a": 1}', suite=HpkeSuite.X25519)
    owner = keys_for(OWNER, HpkeSuite.X25519)
    first = open_record(
        sealed.blob, org_id=OWNER, key_index=0, private_key=owner.private_key,
        expected_hash=sealed.ciphertext_hash, expected_commitment=sealed.commitment,
    )  # fmt: skip
    assert len(first.data_key) == 32
    assert "data_key" not in repr(first)
    assert first.data_key.hex() not in repr(first)
    again = open_record_with_data_key(
        sealed.blob, data_key=first.data_key, org_id=OWNER, key_index=0,
        expected_hash=sealed.ciphertext_hash, expected_commitment=sealed.commitment,
    )  # fmt: skip
    assert again == first

    altered = bytearray(sealed.blob)
    altered[-1] ^= 1
    with pytest.raises(BlobHashMismatchError):
        open_record_with_data_key(
            bytes(altered), data_key=first.data_key, org_id=OWNER, key_index=0, expected_hash=sealed.ciphertext_hash
        )
    with pytest.raises(CommitmentMismatchError):
        open_record_with_data_key(
            sealed.blob, data_key=first.data_key, org_id=OWNER, key_index=0, expected_commitment="00" * 32
        )


def test_a_cached_key_does_not_open_a_shredded_blob_or_another_record() -> None:
    sealed = seal(b'{"a": 1}', suite=HpkeSuite.X25519)
    other = seal(b'{"b": 2}', suite=HpkeSuite.X25519, record_id="rec-0002")
    owner = keys_for(OWNER, HpkeSuite.X25519)
    data_key = open_record(sealed.blob, org_id=OWNER, key_index=0, private_key=owner.private_key).data_key
    with pytest.raises(RecordShreddedError):
        open_record_with_data_key(shred(sealed.blob), data_key=data_key, org_id=OWNER, key_index=0)
    with pytest.raises(RecordIntegrityError):
        open_record_with_data_key(other.blob, data_key=data_key, org_id=OWNER, key_index=0)
