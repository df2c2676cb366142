"""One chain head check for a group of reads that arrive together (DESIGN.md invariant 6).

Why. :meth:`ChainFollower.ensure_current` is single-flight, but a reader never adopts a check that began
before it arrived, so under a steady stream of reads the checks run back to back: about one
``eth_blockNumber`` per round trip to the node, each costing the gateway more CPU than the rest of a
read. :class:`CoalescedHeadCheck` puts a short gathering window in front: the first caller opens a
round and waits ``window_s``; every caller that arrives meanwhile joins the round; then the round
closes and makes one ``ensure_current()`` call, whose result all of them share.

Why it keeps the guarantee. Every member joined the round before its ``ensure_current()`` call began,
and that call reflects every transaction mined before it began (see ``ChainFollower.ensure_current``).
So each read is decided on a head at least as new as the chain's head when the read asked for it: a
revoke or expiry mined before the read began refuses it. A caller arriving after the round closed
opens or joins the next one, never adopts this one. The cost is at most ``window_s`` of latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger_api.chain.errors import ChainUnavailable

__all__ = ["CoalescedHeadCheck"]


@dataclass(slots=True)
class _Round:
    done: bool = False
    head: int | None = None
    error: BaseException | None = None


class CoalescedHeadCheck:
    """Calls ``ensure_current`` once per round of callers gathered over ``window_s``; thread-safe."""

    def __init__(self, *, ensure_current: Callable[[], int], window_s: float = 0.005) -> None:
        if window_s < 0:
            raise ValueError("the gathering window cannot be negative")
        self._ensure_current = ensure_current
        self._window_s = window_s
        self._cond = threading.Condition()
        self._open: _Round | None = None  # the round still taking members (its check has not begun)
        self.checks = 0
        """How many ``ensure_current`` calls the rounds made."""

    def __call__(self) -> int:
        """The head ``ensure_current`` returned in a call that began after this call did."""
        with self._cond:
            joined = self._open
            if joined is None:
                mine = self._open = _Round()
        if joined is not None:
            return self._wait(joined)
        if self._window_s:
            time.sleep(self._window_s)
        with self._cond:
            self._open = None  # closed: whoever comes now starts the next round
            self.checks += 1
        try:
            mine.head = self._ensure_current()
            return mine.head
        except BaseException as exc:
            mine.error = exc
            raise
        finally:
            with self._cond:
                mine.done = True
                self._cond.notify_all()

    def _wait(self, joined: _Round) -> int:
        with self._cond:
            while not joined.done:
                self._cond.wait()
        if joined.error is not None:
            raise ChainUnavailable(f"chain head check failed: {joined.error}") from joined.error
        assert joined.head is not None
        return joined.head
