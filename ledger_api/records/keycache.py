"""A bounded, thread-safe LRU of unwrapped record data keys, so a repeated read skips the HPKE unwrap.

Why it is safe. The gateway holds every owner's HPKE private key in memory already, so a data key it
unwrapped once adds nothing an attacker of the process could not unwrap again. A cached key is only
ever used on the blob it came from: entries are keyed by ``(record_id, version, blob_key)``, where the
blob key is the anchored SHA-256 of the whole blob, and the read still checks the blob's hash, opens it
with AES-GCM (which authenticates header, nonce and ciphertext) and checks the anchored commitment.

Crypto-shredding (``ledger_api.records.erasure``) must leave no way to open the remaining ciphertext,
so :meth:`DataKeyCache.forget` drops every cached key of an erased record and remembers its id, and a
later :meth:`DataKeyCache.put` for that id is refused: a read that unwrapped the key just before the
erasure committed cannot put it back afterwards. The remembered ids are bounded too; erasures are rare
and the race they guard is a few milliseconds wide.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["DataKeyCache"]

_Key = tuple[str, int, str]


class DataKeyCache:
    """Data keys by ``(record_id, version, blob_key)``, least recently used evicted first."""

    def __init__(self, *, capacity: int = 16_384, erased_capacity: int = 16_384) -> None:
        if capacity < 1 or erased_capacity < 1:
            raise ValueError("the key cache needs a capacity of at least 1")
        self._capacity = capacity
        self._erased_capacity = erased_capacity
        self._keys: OrderedDict[_Key, bytes] = OrderedDict()
        self._by_record: dict[str, set[_Key]] = {}
        self._erased: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    @property
    def capacity(self) -> int:
        return self._capacity

    def get(self, *, record_id: str, version: int, blob_key: str) -> bytes | None:
        """The cached data key of this blob, or None."""
        entry = (record_id, version, blob_key)
        with self._lock:
            data_key = self._keys.get(entry)
            if data_key is not None:
                self._keys.move_to_end(entry)
            return data_key

    def put(self, *, record_id: str, version: int, blob_key: str, data_key: bytes) -> bool:
        """Cache ``data_key``; false (and nothing cached) when the record was erased."""
        entry = (record_id, version, blob_key)
        with self._lock:
            if record_id in self._erased:
                return False
            self._keys[entry] = bytes(data_key)
            self._keys.move_to_end(entry)
            self._by_record.setdefault(record_id, set()).add(entry)
            while len(self._keys) > self._capacity:
                evicted, _ = self._keys.popitem(last=False)
                self._unlink(evicted)
            return True

    def forget(self, record_id: str) -> int:
        """Drop every cached key of ``record_id`` and refuse new ones (it was erased); how many were dropped."""
        with self._lock:
            entries = self._by_record.pop(record_id, set())
            for entry in entries:
                self._keys.pop(entry, None)
            self._erased[record_id] = None
            self._erased.move_to_end(record_id)
            while len(self._erased) > self._erased_capacity:
                self._erased.popitem(last=False)
            return len(entries)

    def _unlink(self, entry: _Key) -> None:
        siblings = self._by_record.get(entry[0])
        if siblings is not None:
            siblings.discard(entry)
            if not siblings:
                del self._by_record[entry[0]]
