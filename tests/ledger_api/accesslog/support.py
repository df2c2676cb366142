"""Helpers shared by the access-log tests: entries, engines, keys."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from ledger_api.accesslog import Entry
from ledger_api.index.database import make_engine, sqlite_url

ORGS = ("PS-XIHU-01", "PM-LVCHENG-01", "CM-CUIYUAN-01")
PURPOSES = ("investigation", "emergency_response", "fire_safety", "elderly_care")
BASE_TIME = datetime(2025, 3, 1, tzinfo=UTC)


def make_entry(n: int, *, tag: str = "t", rng: random.Random | None = None) -> Entry:
    """A valid entry, deterministic in ``n`` (and ``rng`` when given)."""
    rng = rng or random.Random(n)
    emergency = rng.random() < 0.1
    accessor, owner = rng.sample(ORGS, 2)
    return Entry(
        accessor_org=accessor,
        record_id=f"{rng.getrandbits(256):064x}",
        version=rng.randrange(1, 5),
        owner_org=owner,
        grant_id=0 if emergency else rng.randrange(1, 1000),
        purpose="emergency_response" if emergency else rng.choice(PURPOSES),
        emergency=emergency,
        checked_block=rng.randrange(1, 10**6),
        time=BASE_TIME + timedelta(microseconds=rng.randrange(10**12)),
        request_id=f"{tag}-{n}",
    )


def sqlite_engine(path: Path) -> Engine:
    return make_engine(sqlite_url(path))
