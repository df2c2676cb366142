"""Reads gathered into one head check: fewer chain round trips, and never a check that began before a
reader asked (DESIGN.md invariant 6)."""

from __future__ import annotations

import threading
import time

import pytest

from ledger_api.chain.errors import ChainUnavailable
from ledger_api.records.headcheck import CoalescedHeadCheck


class FakeChain:
    """Counts checks and records when each began; the head is the number of checks begun so far."""

    def __init__(self, *, duration_s: float = 0.002, fail: bool = False) -> None:
        self.began: list[float] = []
        self._lock = threading.Lock()
        self._duration_s = duration_s
        self._fail = fail

    def ensure_current(self) -> int:
        with self._lock:
            self.began.append(time.monotonic())
            head = len(self.began)
        time.sleep(self._duration_s)
        if self._fail:
            raise ChainUnavailable("node down")
        return head


def test_concurrent_readers_share_checks_and_each_check_began_after_its_readers_asked() -> None:
    chain = FakeChain()
    check = CoalescedHeadCheck(ensure_current=chain.ensure_current, window_s=0.005)
    asked: list[tuple[float, int]] = []
    lock = threading.Lock()

    def reader() -> None:
        for _ in range(20):
            started = time.monotonic()
            head = check()
            with lock:
                asked.append((started, head))

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(asked) == 320
    assert check.checks == len(chain.began) < 320 / 4  # gathered: far fewer checks than reads
    for started, head in asked:
        # The check whose head the reader got (head n = the n-th check) began after the reader asked.
        assert chain.began[head - 1] >= started


def test_a_lone_reader_waits_at_most_the_window() -> None:
    chain = FakeChain(duration_s=0)
    check = CoalescedHeadCheck(ensure_current=chain.ensure_current, window_s=0.01)
    started = time.monotonic()
    assert check() == 1
    assert check() == 2  # a later call never reuses an earlier check
    assert 0.02 <= time.monotonic() - started < 0.5


def test_a_failed_check_fails_every_reader_of_its_round() -> None:
    chain = FakeChain(fail=True)
    check = CoalescedHeadCheck(ensure_current=chain.ensure_current, window_s=0.2)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            check()
        except ChainUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 4
    assert len(chain.began) == 1  # one round: they all asked within its window


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        CoalescedHeadCheck(ensure_current=lambda: 0, window_s=-1)
