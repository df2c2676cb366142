"""Anomaly flags: each rule fires above its threshold and stays quiet at it, in Asia/Shanghai time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from ledger_api.audit.anomalies import Anomaly, AnomalyKind, AnomalyRules, find_anomalies
from ledger_api.audit.model import VerifiedRead
from tests.ledger_api.audit.report_samples import COMMITTEE, POLICE, PROPERTY, local, make_read, week_reads

# 2026-03-02 is a Monday, 2026-03-07 a Saturday.


def numbered(*reads: VerifiedRead) -> tuple[VerifiedRead, ...]:
    return tuple(replace(read, entry_index=i) for i, read in enumerate(reads))


def of_kind(anomalies: tuple[Anomaly, ...], kind: AnomalyKind) -> list[Anomaly]:
    return [anomaly for anomaly in anomalies if anomaly.kind is kind]


def test_the_sample_week_raises_exactly_the_four_flags_its_schedule_describes() -> None:
    flags = find_anomalies(week_reads())
    summary = [(a.kind, a.org_id, a.window_start.isoformat(), a.window_end.isoformat(), a.count) for a in flags]
    assert summary == [
        (AnomalyKind.OFF_HOURS, POLICE, "2026-03-03T20:00:00+08:00", "2026-03-04T08:00:00+08:00", 2),
        (AnomalyKind.RATE_SPIKE, COMMITTEE, "2026-03-05T10:00:00+08:00", "2026-03-05T11:00:00+08:00", 25),
        (AnomalyKind.EMERGENCY_BURST, POLICE, "2026-03-06T01:00:00+08:00", "2026-03-06T05:00:00+08:00", 5),
        (AnomalyKind.OFF_HOURS, PROPERTY, "2026-03-06T20:00:00+08:00", "2026-03-09T08:00:00+08:00", 1),
    ]
    spike = flags[1]
    assert spike.baseline == 2
    assert spike.threshold == 10
    assert "CM-CUIYUAN-01 made 25 reads" in spike.detail
    assert spike.to_json_dict()["entries"] == list(range(18, 43))


# ---- rate spikes ------------------------------------------------------------------------------------


def spike_reads(usual_hours: int, peak: int) -> tuple[VerifiedRead, ...]:
    """``usual_hours`` hours with 2 reads each (Monday onwards, 09:00–11:59 and 14:00–16:59), then one peak hour."""
    slots = [(2 + i // 6, (9, 10, 11, 14, 15, 16)[i % 6]) for i in range(usual_hours)]
    reads = [make_read(COMMITTEE, local(day, hour, minute)) for day, hour in slots for minute in (1, 31)]
    reads += [make_read(COMMITTEE, local(6, 10, minute)) for minute in range(peak)]
    return numbered(*reads)


RULES = AnomalyRules(spike_factor=5, spike_min_reads=10, spike_min_baseline_hours=3)


def test_an_hour_at_exactly_k_times_the_usual_rate_is_not_a_spike_one_more_read_is() -> None:
    assert not of_kind(find_anomalies(spike_reads(3, 10), RULES), AnomalyKind.RATE_SPIKE)
    [spike] = of_kind(find_anomalies(spike_reads(3, 11), RULES), AnomalyKind.RATE_SPIKE)
    assert (spike.org_id, spike.count, spike.baseline, spike.threshold) == (COMMITTEE, 11, 2, 10)
    assert spike.window_start == local(6, 10)
    assert spike.window_end - spike.window_start == timedelta(hours=1)


def test_a_spike_below_the_floor_is_not_flagged() -> None:
    rules = AnomalyRules(spike_factor=5, spike_min_reads=12, spike_min_baseline_hours=3)
    assert not of_kind(find_anomalies(spike_reads(3, 11), rules), AnomalyKind.RATE_SPIKE)
    assert of_kind(find_anomalies(spike_reads(3, 12), rules), AnomalyKind.RATE_SPIKE)


def test_an_organisation_without_enough_history_has_no_usual_rate() -> None:
    assert not of_kind(find_anomalies(spike_reads(2, 40), RULES), AnomalyKind.RATE_SPIKE)


def test_the_default_floor_keeps_small_numbers_quiet() -> None:
    # 19 reads against a usual 2 is more than 5×, but below the default floor of 20 reads.
    assert not of_kind(find_anomalies(spike_reads(6, 19)), AnomalyKind.RATE_SPIKE)
    assert of_kind(find_anomalies(spike_reads(6, 20)), AnomalyKind.RATE_SPIKE)


# ---- off hours --------------------------------------------------------------------------------------


def test_working_hours_start_inclusive_and_end_exclusive_in_shanghai_time() -> None:
    reads = numbered(
        make_read(POLICE, local(3, 7, 59, 59)),  # Tuesday, before 08:00: off hours
        make_read(POLICE, local(3, 8, 0, 0)),
        make_read(POLICE, local(3, 19, 59, 59)),
        make_read(POLICE, local(3, 20, 0, 0)),  # Tuesday 20:00: off hours
    )
    flags = of_kind(find_anomalies(reads), AnomalyKind.OFF_HOURS)
    assert [(a.window_start, a.window_end, a.entries) for a in flags] == [
        (local(2, 20), local(3, 8), (0,)),
        (local(3, 20), local(4, 8), (3,)),
    ]


def test_a_weekend_is_one_off_hours_period_from_friday_evening_to_monday_morning() -> None:
    reads = numbered(
        make_read(PROPERTY, local(6, 21)), make_read(PROPERTY, local(7, 12)), make_read(PROPERTY, local(8, 23))
    )
    [flag] = of_kind(find_anomalies(reads), AnomalyKind.OFF_HOURS)
    assert (flag.org_id, flag.count, flag.window_start, flag.window_end) == (PROPERTY, 3, local(6, 20), local(9, 8))
    assert "PM-LVCHENG-01 made 3 reads outside working hours" in flag.detail


def test_emergency_reads_at_night_are_reviewed_as_emergencies_unless_the_rules_say_otherwise() -> None:
    reads = numbered(make_read(POLICE, local(3, 23), emergency=True))
    assert not find_anomalies(reads)
    flags = find_anomalies(reads, AnomalyRules(off_hours_include_emergency=True))
    assert [a.kind for a in flags] == [AnomalyKind.OFF_HOURS]


def test_working_days_and_hours_are_configurable() -> None:
    rules = AnomalyRules(working_days=(0, 1, 2, 3, 4, 5), working_start=time(7), working_end=time(22))
    reads = numbered(make_read(POLICE, local(7, 7, 30)), make_read(POLICE, local(3, 21, 59)))
    assert not find_anomalies(reads, rules)
    [flag] = find_anomalies(numbered(make_read(POLICE, local(8, 12))), rules)  # Sunday
    assert (flag.window_start, flag.window_end) == (local(7, 22), local(9, 7))


def test_utc_times_near_midnight_are_judged_in_local_time() -> None:
    # 2026-03-03 00:30 UTC is 08:30 in Shanghai: working time, although 00:30 would not be.
    read = make_read(POLICE, datetime(2026, 3, 3, 0, 30, tzinfo=UTC))
    assert not find_anomalies((read,))
    assert AnomalyRules().is_working_time(datetime(2026, 3, 3, 0, 30))  # naive: UTC, as block timestamps are


# ---- emergency bursts -------------------------------------------------------------------------------


def emergency(org: str, *times: tuple[int, int, int]) -> tuple[VerifiedRead, ...]:
    return numbered(*(make_read(org, local(day, hour, minute), emergency=True) for day, hour, minute in times))


def test_five_emergency_reads_within_24_hours_are_a_burst_four_are_not() -> None:
    four = emergency(PROPERTY, (2, 9, 0), (2, 15, 0), (2, 21, 0), (3, 8, 59))
    assert not of_kind(find_anomalies(four), AnomalyKind.EMERGENCY_BURST)
    five = emergency(PROPERTY, (2, 9, 0), (2, 15, 0), (2, 21, 0), (3, 3, 0), (3, 8, 59))
    [burst] = of_kind(find_anomalies(five), AnomalyKind.EMERGENCY_BURST)
    assert (burst.org_id, burst.count, burst.window_start, burst.window_end) == (
        PROPERTY, 5, local(2, 9), local(3, 8, 59)
    )  # fmt: skip
    assert burst.entries == (0, 1, 2, 3, 4)


def test_five_emergency_reads_spanning_exactly_the_window_are_not_a_burst() -> None:
    spread = emergency(PROPERTY, (2, 9, 0), (2, 15, 0), (2, 21, 0), (3, 3, 0), (3, 9, 0))
    assert not of_kind(find_anomalies(spread), AnomalyKind.EMERGENCY_BURST)


def test_overlapping_windows_merge_and_distant_bursts_stay_apart() -> None:
    rules = AnomalyRules(emergency_burst_reads=3, emergency_window=timedelta(hours=2))
    reads = emergency(POLICE, (2, 1, 0), (2, 1, 30), (2, 2, 10), (2, 3, 0), (2, 9, 0), (2, 9, 5), (2, 9, 10))
    bursts = of_kind(find_anomalies(reads, rules), AnomalyKind.EMERGENCY_BURST)
    assert [(b.count, b.window_start, b.window_end) for b in bursts] == [
        (4, local(2, 1), local(2, 3)),
        (3, local(2, 9), local(2, 9, 10)),
    ]


def test_bursts_are_counted_per_organisation() -> None:
    mixed = numbered(
        *(make_read(POLICE if i % 2 else PROPERTY, local(2, 1 + i), emergency=True) for i in range(8))
    )  # 4 each within 8 hours: neither organisation reaches 5
    assert not of_kind(find_anomalies(mixed), AnomalyKind.EMERGENCY_BURST)


@pytest.mark.parametrize(
    "bad",
    [
        {"spike_factor": 0},
        {"spike_min_reads": 0},
        {"working_days": ()},
        {"working_days": (7,)},
        {"working_start": time(20), "working_end": time(8)},
        {"emergency_burst_reads": 1},
        {"emergency_window": timedelta(0)},
    ],
)
def test_nonsensical_rules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must|needs"):
        AnomalyRules(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("peak", "flagged"), [(10, False), (11, True)])
def test_the_usual_rate_is_the_median_of_the_other_hours(peak: int, flagged: bool) -> None:
    # Usual hours with 1, 1, 3 and 3 reads: median 2 (the mean of the two middle hours), limit 5 × 2 = 10.
    counts = {(2, 9): 1, (2, 10): 1, (2, 14): 3, (2, 15): 3}
    reads = [make_read(COMMITTEE, local(day, hour, minute)) for (day, hour), n in counts.items() for minute in range(n)]
    reads += [make_read(COMMITTEE, local(3, 10, minute)) for minute in range(peak)]
    spikes = of_kind(find_anomalies(numbered(*reads), RULES), AnomalyKind.RATE_SPIKE)
    assert [(a.count, a.baseline) for a in spikes] == ([(peak, 2.0)] if flagged else [])
