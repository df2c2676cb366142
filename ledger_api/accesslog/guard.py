"""No release the audit cannot see: refuse reads while nothing is anchoring the access log.

DESIGN.md invariant 4 lets a record leave once its access entry is durable *because* a durable entry is
guaranteed to be anchored. That guarantee needs a running anchorer with a log-writer key. Without one
(a gateway started with no log-writer key, its anchorer thread dead, or an anchorer elsewhere that has
stopped), entries pile up that no tree head will ever cover, and an auditor sees an empty log while
reads are served. So a release is refused, with the reason, when

* this gateway holds no log-writer key, or its anchorer thread was started and has died, or
* the oldest entry no anchored head covers is older than ``max_backlog_s`` (whatever the cause: the
  chain down, the anchorer stopped in another process, the writer's role revoked).

The backlog is looked up at most every ``refresh_s``: a read pays for a dictionary lookup, not a query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ledger_api.errors import LedgerError

__all__ = ["AccessLogNotAnchored", "AnchorerLiveness", "ReleaseGuard"]


class AccessLogNotAnchored(LedgerError):
    """Nothing is anchoring the access log now: a read released would be one the audit cannot see."""


class AnchorerLiveness:
    """Whether this gateway can anchor its log: it holds a log-writer key, and its anchorer thread (once
    started) is alive. A gateway whose anchorer was not started here relies on the backlog bound."""

    def __init__(self, *, has_writer: bool) -> None:
        self._has_writer = has_writer
        self._thread: threading.Thread | None = None

    def watch(self, thread: threading.Thread) -> None:
        self._thread = thread

    def forget(self) -> None:
        """The anchorer was stopped on purpose (the gateway is shutting down)."""
        self._thread = None

    def problem(self) -> str | None:
        if not self._has_writer:
            return "this gateway holds no access-log writer key, so nothing anchors its access log"
        if self._thread is not None and not self._thread.is_alive():
            return "the access-log anchorer of this gateway has stopped"
        return None


class ReleaseGuard:
    def __init__(
        self,
        *,
        anchorer_problem: Callable[[], str | None],
        oldest_unanchored_at: Callable[[], datetime | None],
        max_backlog_s: float,
        refresh_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``anchorer_problem`` names why no anchorer runs (None when one does)."""
        self._problem = anchorer_problem
        self._oldest = oldest_unanchored_at
        self._max_backlog_s = max_backlog_s
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._refusal: str | None = None

    def check(self) -> None:
        """Raise :class:`AccessLogNotAnchored` when a release now could escape the audit."""
        with self._lock:
            if time.monotonic() - self._checked_at >= self._refresh_s:
                self._refusal = self._find_refusal()
                self._checked_at = time.monotonic()
            refusal = self._refusal
        if refusal is not None:
            raise AccessLogNotAnchored(f"reads are refused: {refusal}")

    def _find_refusal(self) -> str | None:
        problem = self._problem()
        if problem is not None:
            return problem
        oldest = self._oldest()
        if oldest is None:
            return None
        age = (self._clock() - oldest).total_seconds()
        if age > self._max_backlog_s:
            return (
                f"the oldest access entry not yet anchored was written {age:.0f} s ago "
                f"(bound {self._max_backlog_s:g} s, LEDGER_ACCESS_LOG_MAX_BACKLOG_S)"
            )
        return None
