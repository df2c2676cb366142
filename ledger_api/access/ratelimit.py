"""Per-organisation rate limits: a token bucket per key, refilled continuously.

An oracle answered without bound is a dictionary attack: the blind-index endpoint turns any ID number
into the keyed index the ledger links records by, so an unlimited caller can test every ID number of a
district (a region code, a birth date and a sequence number: about 10⁶ guesses a day of births). A
bucket of ``burst`` look-ups refilled at ``per_minute`` keeps honest use (a clerk checking a visitor, a
batch of a few dozen) and makes enumeration take years.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger_api.errors import LedgerError

__all__ = ["RateLimit", "RateLimited", "RateLimiter"]


class RateLimited(LedgerError):
    """Over the limit; ``retry_after_s`` says when one more call will be allowed."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs per_minute > 0 and burst >= 1")

    @classmethod
    def per_hour(cls, calls: int) -> RateLimit:
        """``calls`` an hour, all of them at once if need be (a bucket of ``calls`` refilled over the hour)."""
        return cls(per_minute=calls / 60.0, burst=calls)


class RateLimiter:
    """Thread-safe token buckets, one per key (an organisation id)."""

    def __init__(self, *, name: str, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self._limit = limit
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, *, when: float | None = None) -> None:
        """Use one call of ``key``'s allowance, or raise :class:`RateLimited`.

        ``when`` is the moment of the call on the limiter's clock (default: now). Passing it lets a call be
        timed once and that time be logged, so that an auditor replaying the logged times through the same
        buckets finds the very same answers; a moment before the bucket's last one counts as that one."""
        rate = self._limit.per_minute / 60.0
        with self._lock:
            now = self._clock() if when is None else when
            tokens, at = self._buckets.get(key, (float(self._limit.burst), now))
            now = max(now, at)
            tokens = min(float(self._limit.burst), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / rate
                raise RateLimited(
                    f"{key}: more than {self._limit.per_minute:g} {self._name} per minute "
                    f"(bursts of {self._limit.burst}); retry in {math.ceil(wait)} s",
                    retry_after_s=wait,
                )
            self._buckets[key] = (tokens - 1.0, now)
