"""Token buckets per organisation: a burst, then one call per refill interval, each key on its own."""

from __future__ import annotations

import pytest

from ledger_api.access.ratelimit import RateLimit, RateLimited, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_refill_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(name="look-ups", limit=RateLimit(per_minute=6, burst=3), clock=clock)
    for _ in range(3):
        limiter.take("PS-XIHU-01")
    with pytest.raises(
        RateLimited, match=r"PS-XIHU-01: more than 6 look-ups per minute \(bursts of 3\); retry in 10 s"
    ):
        limiter.take("PS-XIHU-01")
    limiter.take("CM-CUIYUAN-01")  # another organisation has its own bucket
    clock.now += 9.9
    with pytest.raises(RateLimited) as caught:
        limiter.take("PS-XIHU-01")
    assert caught.value.retry_after_s == pytest.approx(0.1)
    clock.now += 0.1
    limiter.take("PS-XIHU-01")


def test_an_idle_bucket_refills_to_its_burst_only() -> None:
    clock = Clock()
    limiter = RateLimiter(name="look-ups", limit=RateLimit(per_minute=60, burst=2), clock=clock)
    limiter.take("X")
    clock.now += 3600
    limiter.take("X")
    limiter.take("X")
    with pytest.raises(RateLimited):
        limiter.take("X")


def test_a_limit_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError, match="per_minute > 0 and burst >= 1"):
        RateLimit(per_minute=0, burst=1)


def test_a_call_timed_by_its_caller_replays_the_same() -> None:
    """``when`` makes the answer a function of the logged times: an auditor replaying them agrees."""
    limiter = RateLimiter(name="emergency reads", limit=RateLimit.per_hour(2), clock=lambda: 0.0)
    limiter.take("PS", when=1000.0)
    limiter.take("PS", when=1001.0)
    with pytest.raises(RateLimited, match="emergency reads"):
        limiter.take("PS", when=1002.0)
    limiter.take("PS", when=1002.0 + 1800.0)  # half an hour: one call's worth refilled
    with pytest.raises(RateLimited):
        limiter.take("PS", when=100.0)  # a moment before the last counts as the last one
