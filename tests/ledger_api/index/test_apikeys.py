"""Recently seen API keys: trusted for a bounded time, bounded in number, off when the TTL is 0."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from ledger_api.index.apikeys import RecentKeys, issue_key, organisation_for_token, replace_key, revoke_key
from ledger_api.index.database import make_engine
from ledger_api.settings import Settings


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


def test_a_revocation_in_this_process_is_forgotten_by_its_caches_at_once(tmp_path: Path) -> None:
    """Before: a revoked key stayed trusted for the whole TTL in the very process that revoked it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    kept, revoked = (issue_key(engine, org_id="PS-XIHU-01", label=label) for label in ("kept", "revoked"))
    recent = RecentKeys(ttl_s=60)
    for key in (kept, revoked):
        assert organisation_for_token(engine, key.token) == "PS-XIHU-01"
        recent.put(key.token, "PS-XIHU-01")
    assert revoke_key(engine, key_id=revoked.key_id)
    assert recent.get(revoked.token) is None
    assert organisation_for_token(engine, revoked.token) is None
    assert recent.get(kept.token) == "PS-XIHU-01"


def test_the_cache_setting_is_capped() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 5"):
        Settings(api_key_cache_s=60)


def test_replacing_a_labelled_key_leaves_one_live_key(tmp_path: Path) -> None:
    """Before: every `ledger run` start issued another demo key and left the earlier ones live."""
    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    other = issue_key(engine, org_id="PS-XIHU-01", label="operator")
    tokens = [replace_key(engine, org_id="PS-XIHU-01", label="provisioned").token for _ in range(11)]
    assert [organisation_for_token(engine, t) for t in tokens] == [None] * 10 + ["PS-XIHU-01"]
    assert organisation_for_token(engine, other.token) == "PS-XIHU-01"  # other labels are not touched
