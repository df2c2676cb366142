"""Fixtures shared by the adapter tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from adapters import ImportContext

# The repository sits at <root>/main with the shared samples at <root>/shared (CI clones them side by side).
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
CST = timezone(timedelta(hours=8))
#: The owner's record-id key in these tests (a gateway holds the real one in its keystore).
RECORD_ID_KEY = bytes(range(32))
COMMUNITY_CODES = {"清河社区": "330106001001", "柳岸社区": "330106001002", "东湖社区": "330106002003"}


def make_context(**overrides: Any) -> ImportContext:
    values: dict[str, Any] = {
        "owner_org": "org-test-1",
        "community_code": "330106000000",
        "community_codes": COMMUNITY_CODES,
        "as_of": datetime(2025, 4, 1, tzinfo=CST),
        "record_id_key": RECORD_ID_KEY,
    }
    values.update(overrides)
    return ImportContext(**values)


@pytest.fixture
def ctx() -> ImportContext:
    return make_context()


@pytest.fixture(scope="session")
def make_ctx() -> Any:
    """ImportContext factory: make_ctx(owner_org="other", as_of=None, ...)."""
    return make_context


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.fail(f"shared samples not found at {SAMPLES} (clone shared/ beside the repository)")
    return SAMPLES


@pytest.fixture(scope="session")
def expected(samples_dir: Path) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((samples_dir / "EXPECTED.json").read_text(encoding="utf-8"))
    return data
