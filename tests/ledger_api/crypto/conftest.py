"""Fixtures of the crypto tests."""

from __future__ import annotations

import pytest

from ledger_api.crypto import HpkeSuite


@pytest.fixture(params=list(HpkeSuite), ids=[suite.value for suite in HpkeSuite])
def suite(request: pytest.FixtureRequest) -> HpkeSuite:
    value: HpkeSuite = request.param
    return value
