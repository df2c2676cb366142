"""Anomaly flags over the verified reads: patterns an auditor should look at, not proofs of misuse.

Three rules, each with thresholds in :class:`AnomalyRules` (defaults documented there). All windows are
in local time, Asia/Shanghai (DESIGN.md: "local time is Asia/Shanghai"):

- **rate spike**: an organisation's reads in one local clock hour exceed ``spike_factor`` × the median of
  its *other* active hours (hours with at least one read) and number at least ``spike_min_reads``. The
  median of the other hours (not the mean, not including the hour itself) keeps one burst from raising
  its own baseline; an organisation with fewer than ``spike_min_baseline_hours`` other active hours has
  no usual rate yet and is never flagged.
- **off hours**: reads outside working hours (``working_days`` from ``working_start`` inclusive to
  ``working_end`` exclusive; by default Monday–Friday 08:00–20:00). One flag per organisation per
  off-hours period (e.g. Friday 20:00 → Monday 08:00). Emergency reads are left out by default:
  emergencies happen at night, and every emergency read is listed for review anyway. Statutory holidays
  and make-up working days (调休) are not modelled.
- **emergency burst**: at least ``emergency_burst_reads`` emergency reads by one organisation within any
  ``emergency_window``. Overlapping windows merge into one flag covering the whole burst.

Every :class:`Anomaly` names the organisation, the window, the count and what it was compared with.
"""

from __future__ import annotations

import bisect
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from ledger_api.audit.model import VerifiedRead

__all__ = [
    "LOCAL_TIMEZONE",
    "Anomaly",
    "AnomalyKind",
    "AnomalyRules",
    "LocalRead",
    "find_anomalies",
    "find_anomalies_local",
    "local_time",
]

LOCAL_TIMEZONE = ZoneInfo("Asia/Shanghai")
_ONE_HOUR = timedelta(hours=1)


def local_time(moment: datetime) -> datetime:
    """``moment`` in Asia/Shanghai; a naive time is taken as UTC (block timestamps are Unix seconds)."""
    if moment.tzinfo is LOCAL_TIMEZONE:
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LOCAL_TIMEZONE)


class AnomalyKind(StrEnum):
    """Stable codes, matched by tests and scripts."""

    RATE_SPIKE = "rate-spike"
    OFF_HOURS = "off-hours"
    EMERGENCY_BURST = "emergency-burst"


@dataclass(frozen=True, kw_only=True)
class AnomalyRules:
    """Thresholds of the anomaly flags. The defaults suit a community with a few dozen reads a day."""

    spike_factor: float = 5.0
    """An hour is a spike when its reads exceed this multiple of the organisation's usual (median) hour."""
    spike_min_reads: int = 20
    """…and number at least this many: 6 reads against a usual 1 is noise, not a spike."""
    spike_min_baseline_hours: int = 3
    """Other active hours needed before an organisation has a usual rate at all."""
    working_days: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Working weekdays, ``date.weekday()`` numbering (0 = Monday)."""
    working_start: time = time(8, 0)
    """Working hours start (inclusive), local time."""
    working_end: time = time(20, 0)
    """Working hours end (exclusive), local time."""
    off_hours_include_emergency: bool = False
    """Count emergency reads as off-hours reads too (by default they are reviewed as emergencies)."""
    emergency_burst_reads: int = 5
    """This many emergency reads by one organisation within ``emergency_window`` is a burst."""
    emergency_window: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.spike_factor <= 0 or self.spike_min_reads < 1 or self.spike_min_baseline_hours < 1:
            raise ValueError("spike thresholds must be positive")
        if not self.working_days or not set(self.working_days) <= set(range(7)):
            raise ValueError("working_days must name at least one weekday, 0 (Monday) to 6 (Sunday)")
        if not self.working_start < self.working_end:
            raise ValueError("working_start must be before working_end")
        if self.emergency_burst_reads < 2 or self.emergency_window <= timedelta(0):
            raise ValueError("an emergency burst needs at least 2 reads in a positive window")

    def is_working_time(self, moment: datetime) -> bool:
        local = local_time(moment)
        return local.weekday() in self.working_days and self.working_start <= local.time() < self.working_end

    def to_json_dict(self) -> dict[str, object]:
        return {
            "spike_factor": self.spike_factor,
            "spike_min_reads": self.spike_min_reads,
            "spike_min_baseline_hours": self.spike_min_baseline_hours,
            "working_days": list(self.working_days),
            "working_start": self.working_start.isoformat("minutes"),
            "working_end": self.working_end.isoformat("minutes"),
            "off_hours_include_emergency": self.off_hours_include_emergency,
            "emergency_burst_reads": self.emergency_burst_reads,
            "emergency_window_s": int(self.emergency_window.total_seconds()),
        }


@dataclass(frozen=True, kw_only=True)
class Anomaly:
    kind: AnomalyKind
    org_id: str
    window_start: datetime
    """Start of the window (local time): the hour, the off-hours period, or the first read of a burst."""
    window_end: datetime
    """End of the window (local time; exclusive for hours and periods, the last read of a burst)."""
    count: int
    """Reads in the window that the rule counted."""
    threshold: float
    """What ``count`` had to reach or exceed: the spike limit, 1 read off hours, the burst size."""
    baseline: float | None
    """Rate spikes: the organisation's median reads in its other active hours."""
    entries: tuple[int, ...]
    """Access-log entry indexes of the reads counted."""

    @property
    def detail(self) -> str:
        span = f"{self.window_start.isoformat()} to {self.window_end.isoformat()}"
        reads = f"{self.count} read{'' if self.count == 1 else 's'}"
        if self.kind is AnomalyKind.RATE_SPIKE:
            return (
                f"{self.org_id} made {reads} in the hour from {self.window_start.isoformat()}, "
                f"more than {self.threshold:g} ({self.baseline:g} in its usual hour)"
            )
        if self.kind is AnomalyKind.OFF_HOURS:
            return f"{self.org_id} made {reads} outside working hours, {span}"
        return f"{self.org_id} made {self.count} emergency reads, {span} (a burst is {self.threshold:g} in one window)"

    def to_json_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "org_id": self.org_id,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "count": self.count,
            "threshold": self.threshold,
            "baseline": self.baseline,
            "entries": list(self.entries),
            "detail": self.detail,
        }


LocalRead = tuple[datetime, VerifiedRead]
"""A read paired with its time in Asia/Shanghai (:func:`local_time`)."""


def find_anomalies(reads: Sequence[VerifiedRead], rules: AnomalyRules | None = None) -> tuple[Anomaly, ...]:
    """Every flag the rules raise over ``reads``, ordered by window start, then organisation, then kind."""
    return find_anomalies_local([(local_time(read.time), read) for read in reads], rules)


def find_anomalies_local(reads: Iterable[LocalRead], rules: AnomalyRules | None = None) -> tuple[Anomaly, ...]:
    """:func:`find_anomalies` for reads whose local times a caller has already computed (once per read)."""
    rules = rules or AnomalyRules()
    by_org: dict[str, list[LocalRead]] = defaultdict(list)
    for moment, read in reads:
        by_org[read.accessor_org].append((moment, read))
    flags: list[Anomaly] = []
    for org_id, org_reads in by_org.items():
        ordered = sorted(org_reads, key=lambda pair: (pair[0], pair[1].entry_index))
        flags.extend(_rate_spikes(org_id, ordered, rules))
        flags.extend(_off_hours(org_id, ordered, rules))
        flags.extend(_emergency_bursts(org_id, [(t, r) for t, r in ordered if r.emergency], rules))
    order = list(AnomalyKind)
    return tuple(sorted(flags, key=lambda a: (a.window_start, a.org_id, order.index(a.kind))))


def _median_without(ordered: Sequence[int], value: int) -> float:
    """Median of the sorted ``ordered`` with one occurrence of ``value`` left out, in O(log n)."""
    skip = bisect.bisect_left(ordered, value)
    size = len(ordered) - 1

    def at(i: int) -> int:
        return ordered[i if i < skip else i + 1]

    middle = size // 2
    return float(at(middle)) if size % 2 else (at(middle - 1) + at(middle)) / 2


def _rate_spikes(org_id: str, reads: Iterable[LocalRead], rules: AnomalyRules) -> Iterable[Anomaly]:
    hours: dict[datetime, list[int]] = defaultdict(list)
    for moment, read in reads:
        hours[moment.replace(minute=0, second=0, microsecond=0)].append(read.entry_index)
    if len(hours) - 1 < rules.spike_min_baseline_hours:
        return
    ordered = sorted(len(entries) for entries in hours.values())
    for hour, entries in hours.items():
        baseline = _median_without(ordered, len(entries))
        limit = rules.spike_factor * baseline
        if len(entries) > limit and len(entries) >= rules.spike_min_reads:
            yield Anomaly(
                kind=AnomalyKind.RATE_SPIKE, org_id=org_id, window_start=hour, window_end=hour + _ONE_HOUR,
                count=len(entries), threshold=limit, baseline=baseline, entries=tuple(entries),
            )  # fmt: skip


def _off_hours(org_id: str, reads: Iterable[LocalRead], rules: AnomalyRules) -> Iterable[Anomaly]:
    periods: dict[tuple[datetime, datetime], list[int]] = defaultdict(list)
    for moment, read in reads:
        if rules.is_working_time(moment) or (read.emergency and not rules.off_hours_include_emergency):
            continue
        # The period depends only on the day and on which side of the working hours the read falls.
        before_start = moment.weekday() in rules.working_days and moment.time() < rules.working_start
        periods[_off_hours_period(moment.date(), before_start, rules)].append(read.entry_index)
    for (start, end), entries in periods.items():
        yield Anomaly(
            kind=AnomalyKind.OFF_HOURS, org_id=org_id, window_start=start, window_end=end,
            count=len(entries), threshold=1, baseline=None, entries=tuple(entries),
        )  # fmt: skip


def _working_interval(day: date, rules: AnomalyRules) -> tuple[datetime, datetime] | None:
    if day.weekday() not in rules.working_days:
        return None
    return (
        datetime.combine(day, rules.working_start, tzinfo=LOCAL_TIMEZONE),
        datetime.combine(day, rules.working_end, tzinfo=LOCAL_TIMEZONE),
    )


@functools.lru_cache(maxsize=4096)
def _off_hours_period(day: date, before_start: bool, rules: AnomalyRules) -> tuple[datetime, datetime]:
    """The off-hours period that holds a moment of ``day`` outside working hours.

    ``before_start``: the moment is on a working day before its start; otherwise it is after the end of a
    working day, or on a day off. The period runs from the end of the last working interval before the
    moment to the start of the next one; as ``working_days`` is not empty, 8 days either way hold both.
    """
    moment = datetime.combine(day, rules.working_start if before_start else time.max, tzinfo=LOCAL_TIMEZONE)
    if before_start:
        moment -= timedelta(microseconds=1)
    start = end = None
    for back in range(8):
        interval = _working_interval(day - timedelta(days=back), rules)
        if interval and interval[1] <= moment:
            start = interval[1]
            break
    for ahead in range(8):
        interval = _working_interval(day + timedelta(days=ahead), rules)
        if interval and interval[0] > moment:
            end = interval[0]
            break
    assert start is not None
    assert end is not None
    return start, end


def _emergency_bursts(org_id: str, stamped: Sequence[LocalRead], rules: AnomalyRules) -> Iterable[Anomaly]:
    times = [moment for moment, _ in stamped]
    reads = [read for _, read in stamped]
    need = rules.emergency_burst_reads
    # Mark every read that belongs to some window of `need` reads spanning less than the window length,
    # then report each run of marked reads (windows that overlap or touch) as one burst.
    in_burst = [False] * len(reads)
    for first in range(len(reads) - need + 1):
        if times[first + need - 1] - times[first] < rules.emergency_window:
            for i in range(first, first + need):
                in_burst[i] = True
    run: list[int] = []
    for i in range(len(reads) + 1):
        if i < len(reads) and in_burst[i] and (not run or _overlaps(run, i, times, rules)):
            run.append(i)
            continue
        if run:
            yield Anomaly(
                kind=AnomalyKind.EMERGENCY_BURST, org_id=org_id, window_start=times[run[0]],
                window_end=times[run[-1]], count=len(run), threshold=need, baseline=None,
                entries=tuple(reads[j].entry_index for j in run),
            )  # fmt: skip
        run = [i] if i < len(reads) and in_burst[i] else []


def _overlaps(run: list[int], candidate: int, times: Sequence[datetime], rules: AnomalyRules) -> bool:
    """A marked read joins the current burst unless a full window separates it from the burst's last read."""
    return times[candidate] - times[run[-1]] < rules.emergency_window
