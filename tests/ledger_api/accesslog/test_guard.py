"""The release guard: reads refused while nothing anchors the access log (DESIGN.md invariant 4)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from ledger_api.accesslog.guard import AccessLogNotAnchored, AnchorerLiveness, ReleaseGuard

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def guard(*, liveness: AnchorerLiveness, oldest: datetime | None) -> ReleaseGuard:
    return ReleaseGuard(
        anchorer_problem=liveness.problem, oldest_unanchored_at=lambda: oldest, max_backlog_s=60,
        refresh_s=0, clock=lambda: NOW,
    )  # fmt: skip


def test_a_gateway_without_a_log_writer_key_releases_nothing() -> None:
    with pytest.raises(AccessLogNotAnchored, match="holds no access-log writer key"):
        guard(liveness=AnchorerLiveness(has_writer=False), oldest=None).check()


def test_a_dead_anchorer_thread_stops_releases() -> None:
    liveness = AnchorerLiveness(has_writer=True)
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    liveness.watch(thread)
    with pytest.raises(AccessLogNotAnchored, match="anchorer of this gateway has stopped"):
        guard(liveness=liveness, oldest=None).check()


def test_a_backlog_older_than_the_bound_stops_releases() -> None:
    liveness = AnchorerLiveness(has_writer=True)
    guard(liveness=liveness, oldest=None).check()
    guard(liveness=liveness, oldest=NOW - timedelta(seconds=59)).check()
    with pytest.raises(AccessLogNotAnchored, match=r"written 61 s ago \(bound 60 s, LEDGER_ACCESS_LOG_MAX_BACKLOG_S\)"):
        guard(liveness=liveness, oldest=NOW - timedelta(seconds=61)).check()


def test_the_verdict_is_reused_within_the_refresh_interval() -> None:
    calls: list[int] = []

    def oldest() -> datetime | None:
        calls.append(1)
        return None

    checked = ReleaseGuard(anchorer_problem=lambda: None, oldest_unanchored_at=oldest, max_backlog_s=60, refresh_s=3600)
    for _ in range(5):
        checked.check()
    assert len(calls) == 1
