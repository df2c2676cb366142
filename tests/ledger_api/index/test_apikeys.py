"""Recently seen API keys: trusted for a bounded time, bounded in number, off when the TTL is 0."""

from __future__ import annotations

import time

from ledger_api.index.apikeys import RecentKeys


def test_a_key_is_trusted_for_its_ttl_only() -> None:
    recent = RecentKeys(ttl_s=0.2)
    assert recent.get("lk_a_secret") is None
    recent.put("lk_a_secret", "PS-XIHU-01")
    assert recent.get("lk_a_secret") == "PS-XIHU-01"
    assert recent.get("lk_a_other") is None
    time.sleep(0.25)
    assert recent.get("lk_a_secret") is None


def test_a_ttl_of_zero_remembers_nothing() -> None:
    recent = RecentKeys(ttl_s=0)
    recent.put("lk_a_secret", "PS-XIHU-01")
    assert recent.get("lk_a_secret") is None


def test_the_cache_stays_bounded() -> None:
    recent = RecentKeys(ttl_s=60, max_entries=3)
    for n in range(10):
        recent.put(f"lk_{n}_s", "PS-XIHU-01")
    assert sum(recent.get(f"lk_{n}_s") is not None for n in range(10)) <= 3
    assert recent.get("lk_9_s") == "PS-XIHU-01"
