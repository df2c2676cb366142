"""The auditor's report: what an :class:`~ledger_api.audit.model.AuditResult` shows, summarised.

:func:`build_report` turns a result into a frozen :class:`Report`; :meth:`Report.to_json` gives the
machine-readable form, :func:`ledger_api.audit.html.render_html` the human one. Times are local,
Asia/Shanghai, ISO 8601 with the offset.

JSON keys (``format`` ``ledger-audit-report/1``; keys are only ever added, never renamed):

``summary``
    ``source``, ``chain_id``, ``checkpoint_block``, ``generated_at``, ``ok`` (no discrepancy),
    ``records`` (anchored record versions), ``distinct_records``, ``reads``, ``emergency_reads``,
    ``uncovered_reads`` (no grant covered them), ``unanchored_reads`` (no anchored tree head covers them
    yet), ``organisations``, ``grants``, ``tree_heads``, ``discrepancies``, ``discrepancies_by_kind``
    {kind: n}, ``anomalies``, ``first_read`` / ``last_read`` (null without reads), ``admin_grant_actions``,
    ``signer_change_steps``, ``admin_granted_reads``, ``admin_events_known`` (false for evidence that
    does not carry admin actions, a ``v1`` bundle: the admin lists are then empty unlooked-at),
    ``refusals`` (refused attempts logged), ``emergency_refusals``.
``organisations``
    One entry per organisation known to the chain or seen in a read, sorted by id: ``org_id``, ``kind``
    (null when unknown), ``suspended``, ``records_owned`` (distinct record ids), ``reads_made``,
    ``reads_of_its_records`` (by others), ``emergency_reads``, ``uncovered_reads``, ``grants_given``,
    ``grants_received``, ``anomalies``, ``first_read``, ``last_read``, ``refusals`` (attempts of its own
    that were refused), ``refusals_of_its_records`` (others' refused attempts at its records).
``matrix``
    Reads by accessing organisation × record type: ``record_types`` (column order; ``unknown`` for reads
    whose type the log does not state), ``rows`` [{``org_id``, ``counts`` {type: n, every column},
    ``total``}], ``totals`` {type: n}, ``total``.
``timeline``
    ``granularity`` (``hour`` or ``day``), ``timezone``, ``buckets`` [{``start``, ``end``, ``reads``,
    ``emergency``, ``by_organisation`` {org: n, only non-zero}}], consecutive from the first read's bucket
    to the last one's, empty buckets included.
``emergency_reads``
    Every emergency read, awaiting review, by time: ``entry_index``, ``time``, ``accessor_org``,
    ``accessor_kind``, ``owner_org``, ``record_id``, ``version``, ``record_type``, ``community_code``,
    ``purpose``, ``grant_id``, ``covered``, ``basis``, ``request_id``, ``anchored_by_head``, ``reason_class``,
    ``reason``, ``incident_ref``, ``revealed`` (what a break-glass read stated and showed).
``refusals``
    Every refused attempt, by time: ``entry_index``, ``time``, ``accessor_org``, ``accessor_kind``,
    ``record_id`` (as requested), ``version`` (0: the newest), ``owner_org`` (empty: no such record),
    ``grant_id`` (0: none presented), ``purpose``, ``emergency``, ``refusal`` (why), ``reason_class``,
    ``reason``, ``incident_ref``, ``request_id``, ``anchored_by_head``.
``admin_granted_reads``
    Every read under a grant an organisation admin created for the owner, flagged for review (not a
    discrepancy), by time: the fields of ``emergency_reads``.
``admin_grants``
    Every grant an admin created or revoked on an owner's behalf, in chain order: ``grant_id``, ``action``
    (``created`` / ``revoked``), ``owner_org``, ``grantee_org``, ``by`` (the admin's address), ``time``,
    ``block``, ``transaction``.
``signer_changes``
    Every step of every organisation signer change, in chain order: ``org_id``, ``step`` (``proposed``,
    ``accepted``, ``cancelled``, ``changed`` = took effect), ``by``, ``new_signer``, ``previous_signer``,
    ``effective_at`` (proposed: when it takes effect unless accepted or cancelled first), ``time``,
    ``block``, ``transaction``.
``discrepancies``
    [{``kind``, ``subject``, ``detail``, ``where``}] in the verifier's order.
``anomalies`` / ``anomaly_rules``
    The flags of :mod:`ledger_api.audit.anomalies` and the thresholds that produced them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ledger_api.audit.anomalies import LOCAL_TIMEZONE, Anomaly, AnomalyRules, find_anomalies_local, local_time
from ledger_api.audit.model import (
    AdminGrantAction,
    AuditResult,
    Discrepancy,
    SignerChangeStep,
    VerifiedRead,
    VerifiedRefusal,
)

__all__ = [
    "REPORT_FORMAT",
    "UNKNOWN_RECORD_TYPE",
    "EmergencyRead",
    "Granularity",
    "OrganisationSummary",
    "ReadMatrix",
    "Report",
    "ReportSummary",
    "Timeline",
    "TimelineBucket",
    "build_report",
]

REPORT_FORMAT = "ledger-audit-report/1"
UNKNOWN_RECORD_TYPE = "unknown"
#: With ``granularity="auto"`` reads spanning at most this long are shown per hour, longer spans per day.
HOURLY_SPAN_LIMIT = timedelta(hours=48)

Granularity = Literal["hour", "day"]


def _iso(moment: datetime | None) -> str | None:
    return local_time(moment).isoformat() if moment is not None else None


def block_time(timestamp: int | None) -> datetime | None:
    """A block timestamp (Unix seconds) in Asia/Shanghai."""
    return None if timestamp is None else local_time(datetime.fromtimestamp(timestamp, UTC))


def admin_grant_json(action: AdminGrantAction) -> dict[str, Any]:
    return {
        "grant_id": action.grant_id,
        "action": action.action,
        "owner_org": action.owner_org,
        "grantee_org": action.grantee_org,
        "by": action.by,
        "time": _iso(block_time(action.timestamp)),
        "block": action.block_number,
        "transaction": action.transaction,
    }


def signer_change_json(step: SignerChangeStep) -> dict[str, Any]:
    return {
        "org_id": step.org_id,
        "step": step.step,
        "by": step.by,
        "new_signer": step.new_signer or None,
        "previous_signer": step.previous_signer or None,
        "effective_at": _iso(block_time(step.effective_at)),
        "time": _iso(block_time(step.timestamp)),
        "block": step.block_number,
        "transaction": step.transaction,
    }


@dataclass(frozen=True, kw_only=True)
class ReportSummary:
    source: str
    chain_id: int
    checkpoint_block: int
    generated_at: datetime
    ok: bool
    records: int
    distinct_records: int
    reads: int
    emergency_reads: int
    uncovered_reads: int
    unanchored_reads: int
    organisations: int
    grants: int
    tree_heads: int
    discrepancies: int
    discrepancies_by_kind: tuple[tuple[str, int], ...]
    anomalies: int
    first_read: datetime | None
    last_read: datetime | None
    admin_grant_actions: int = 0
    signer_change_steps: int = 0
    admin_granted_reads: int = 0
    admin_events_known: bool = True
    refusals: int = 0
    emergency_refusals: int = 0

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "chain_id": self.chain_id,
            "checkpoint_block": self.checkpoint_block,
            "generated_at": _iso(self.generated_at),
            "ok": self.ok,
            "records": self.records,
            "distinct_records": self.distinct_records,
            "reads": self.reads,
            "emergency_reads": self.emergency_reads,
            "uncovered_reads": self.uncovered_reads,
            "unanchored_reads": self.unanchored_reads,
            "organisations": self.organisations,
            "grants": self.grants,
            "tree_heads": self.tree_heads,
            "discrepancies": self.discrepancies,
            "discrepancies_by_kind": dict(self.discrepancies_by_kind),
            "anomalies": self.anomalies,
            "first_read": _iso(self.first_read),
            "last_read": _iso(self.last_read),
            "admin_grant_actions": self.admin_grant_actions,
            "signer_change_steps": self.signer_change_steps,
            "admin_granted_reads": self.admin_granted_reads,
            "admin_events_known": self.admin_events_known,
            "refusals": self.refusals,
            "emergency_refusals": self.emergency_refusals,
        }


@dataclass(frozen=True, kw_only=True)
class OrganisationSummary:
    org_id: str
    kind: str | None
    suspended: bool
    records_owned: int
    reads_made: int
    reads_of_its_records: int
    emergency_reads: int
    uncovered_reads: int
    grants_given: int
    grants_received: int
    anomalies: int
    first_read: datetime | None
    last_read: datetime | None
    refusals: int = 0
    refusals_of_its_records: int = 0

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "kind": self.kind,
            "suspended": self.suspended,
            "records_owned": self.records_owned,
            "reads_made": self.reads_made,
            "reads_of_its_records": self.reads_of_its_records,
            "emergency_reads": self.emergency_reads,
            "uncovered_reads": self.uncovered_reads,
            "grants_given": self.grants_given,
            "grants_received": self.grants_received,
            "anomalies": self.anomalies,
            "first_read": _iso(self.first_read),
            "last_read": _iso(self.last_read),
            "refusals": self.refusals,
            "refusals_of_its_records": self.refusals_of_its_records,
        }


@dataclass(frozen=True, kw_only=True)
class ReadMatrix:
    record_types: tuple[str, ...]
    org_ids: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    """``counts[row][column]``: reads by ``org_ids[row]`` of records of type ``record_types[column]``."""

    def count(self, org_id: str, record_type: str) -> int:
        return self.counts[self.org_ids.index(org_id)][self.record_types.index(record_type)]

    def column_total(self, record_type: str) -> int:
        column = self.record_types.index(record_type)
        return sum(row[column] for row in self.counts)

    @property
    def total(self) -> int:
        return sum(sum(row) for row in self.counts)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "record_types": list(self.record_types),
            "rows": [
                {"org_id": org_id, "counts": dict(zip(self.record_types, row, strict=True)), "total": sum(row)}
                for org_id, row in zip(self.org_ids, self.counts, strict=True)
            ],
            "totals": {record_type: self.column_total(record_type) for record_type in self.record_types},
            "total": self.total,
        }


@dataclass(frozen=True, kw_only=True)
class TimelineBucket:
    start: datetime
    end: datetime
    reads: int
    emergency: int
    by_organisation: tuple[tuple[str, int], ...]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "reads": self.reads,
            "emergency": self.emergency,
            "by_organisation": dict(self.by_organisation),
        }


@dataclass(frozen=True, kw_only=True)
class Timeline:
    granularity: Granularity
    buckets: tuple[TimelineBucket, ...]

    @property
    def peak(self) -> int:
        return max((bucket.reads for bucket in self.buckets), default=0)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "granularity": self.granularity,
            "timezone": str(LOCAL_TIMEZONE),
            "buckets": [bucket.to_json_dict() for bucket in self.buckets],
        }


@dataclass(frozen=True, kw_only=True)
class EmergencyRead:
    """A read listed for review: an emergency read, or a read under a grant an admin made."""

    entry_index: int
    time: datetime
    accessor_org: str
    accessor_kind: str | None
    owner_org: str
    record_id: str
    version: int
    record_type: str | None
    community_code: str | None
    purpose: str
    grant_id: int
    covered: bool
    basis: str
    request_id: str
    anchored_by_head: int | None
    reason_class: str | None = None
    reason: str | None = None
    incident_ref: str | None = None
    revealed: tuple[str, ...] | None = None

    @classmethod
    def of(cls, read: VerifiedRead) -> EmergencyRead:
        return cls(
            entry_index=read.entry_index, time=local_time(read.time), accessor_org=read.accessor_org,
            accessor_kind=read.accessor_kind, owner_org=read.owner_org, record_id=read.record_id,
            version=read.version, record_type=read.record_type, community_code=read.community_code,
            purpose=read.purpose, grant_id=read.grant_id, covered=read.covered, basis=read.basis,
            request_id=read.request_id, anchored_by_head=read.anchored_by_head, reason_class=read.reason_class,
            reason=read.reason, incident_ref=read.incident_ref, revealed=read.revealed,
        )  # fmt: skip

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "entry_index": self.entry_index,
            "time": _iso(self.time),
            "accessor_org": self.accessor_org,
            "accessor_kind": self.accessor_kind,
            "owner_org": self.owner_org,
            "record_id": self.record_id,
            "version": self.version,
            "record_type": self.record_type,
            "community_code": self.community_code,
            "purpose": self.purpose,
            "grant_id": self.grant_id,
            "covered": self.covered,
            "basis": self.basis,
            "request_id": self.request_id,
            "anchored_by_head": self.anchored_by_head,
            "reason_class": self.reason_class,
            "reason": self.reason,
            "incident_ref": self.incident_ref,
            "revealed": None if self.revealed is None else list(self.revealed),
        }


def refusal_json(refusal: VerifiedRefusal) -> dict[str, Any]:
    return {
        "entry_index": refusal.entry_index,
        "time": _iso(local_time(refusal.time)),
        "accessor_org": refusal.accessor_org,
        "accessor_kind": refusal.accessor_kind,
        "record_id": refusal.record_id,
        "version": refusal.version,
        "owner_org": refusal.owner_org,
        "grant_id": refusal.grant_id,
        "purpose": refusal.purpose,
        "emergency": refusal.emergency,
        "refusal": refusal.refusal,
        "reason_class": refusal.reason_class,
        "reason": refusal.reason,
        "incident_ref": refusal.incident_ref,
        "request_id": refusal.request_id,
        "anchored_by_head": refusal.anchored_by_head,
    }


@dataclass(frozen=True, kw_only=True)
class Report:
    summary: ReportSummary
    organisations: tuple[OrganisationSummary, ...]
    matrix: ReadMatrix
    timeline: Timeline
    emergency_reads: tuple[EmergencyRead, ...]
    discrepancies: tuple[Discrepancy, ...]
    anomalies: tuple[Anomaly, ...]
    anomaly_rules: AnomalyRules
    admin_granted_reads: tuple[EmergencyRead, ...] = ()
    admin_grants: tuple[AdminGrantAction, ...] = ()
    signer_changes: tuple[SignerChangeStep, ...] = ()
    refusals: tuple[VerifiedRefusal, ...] = ()
    """Refused attempts, by time."""

    @property
    def ok(self) -> bool:
        return self.summary.ok

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "summary": self.summary.to_json_dict(),
            "organisations": [org.to_json_dict() for org in self.organisations],
            "matrix": self.matrix.to_json_dict(),
            "timeline": self.timeline.to_json_dict(),
            "emergency_reads": [read.to_json_dict() for read in self.emergency_reads],
            "discrepancies": [
                {"kind": d.kind.value, "subject": d.subject, "detail": d.detail, "where": d.where}
                for d in self.discrepancies
            ],
            "anomalies": [anomaly.to_json_dict() for anomaly in self.anomalies],
            "anomaly_rules": self.anomaly_rules.to_json_dict(),
            "admin_granted_reads": [read.to_json_dict() for read in self.admin_granted_reads],
            "admin_grants": [admin_grant_json(action) for action in self.admin_grants],
            "signer_changes": [signer_change_json(step) for step in self.signer_changes],
            "refusals": [refusal_json(refusal) for refusal in self.refusals],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), ensure_ascii=False, indent=2) + "\n"


def build_report(
    result: AuditResult,
    *,
    anomaly_rules: AnomalyRules | None = None,
    granularity: Granularity | Literal["auto"] = "auto",
    generated_at: datetime | None = None,
) -> Report:
    """Summarise ``result``. Pure: the same result, rules and ``generated_at`` give the same report."""
    rules = anomaly_rules or AnomalyRules()
    stamped = sorted(((local_time(r.time), r) for r in result.reads), key=lambda p: (p[0], p[1].entry_index))
    times = tuple(moment for moment, _ in stamped)  # local, converted once per read
    reads = tuple(read for _, read in stamped)
    anomalies = find_anomalies_local(stamped, rules)
    discrepancy_kinds = Counter(d.kind.value for d in result.discrepancies)
    by_admin = {read.entry_index for read in result.admin_granted_reads}
    summary = ReportSummary(
        source=result.source,
        chain_id=result.chain_id,
        checkpoint_block=result.checkpoint_block,
        generated_at=generated_at or datetime.now(UTC),
        ok=result.ok,
        records=len(result.records),
        distinct_records=len({record.record_id for record in result.records}),
        reads=len(reads),
        emergency_reads=sum(read.emergency for read in reads),
        uncovered_reads=sum(not read.covered for read in reads),
        unanchored_reads=sum(read.anchored_by_head is None for read in reads),
        organisations=len(result.organisations),
        grants=len(result.grants),
        tree_heads=len(result.tree_heads),
        discrepancies=len(result.discrepancies),
        discrepancies_by_kind=tuple(sorted(discrepancy_kinds.items())),
        anomalies=len(anomalies),
        first_read=local_time(reads[0].time) if reads else None,
        last_read=local_time(reads[-1].time) if reads else None,
        admin_grant_actions=len(result.admin_grant_actions),
        signer_change_steps=len(result.signer_changes),
        admin_granted_reads=len(by_admin),
        admin_events_known=result.admin_events_known,
        refusals=len(result.refusals),
        emergency_refusals=sum(refusal.emergency for refusal in result.refusals),
    )
    return Report(
        summary=summary,
        organisations=_organisations(result, reads, anomalies),
        matrix=_matrix(reads),
        timeline=_timeline(times, reads, granularity),
        emergency_reads=tuple(EmergencyRead.of(read) for read in reads if read.emergency),
        discrepancies=result.discrepancies,
        anomalies=anomalies,
        anomaly_rules=rules,
        admin_granted_reads=tuple(EmergencyRead.of(read) for read in reads if read.entry_index in by_admin),
        admin_grants=result.admin_grant_actions,
        signer_changes=result.signer_changes,
        refusals=tuple(sorted(result.refusals, key=lambda r: (r.time, r.entry_index))),
    )


def _organisations(
    result: AuditResult, reads: tuple[VerifiedRead, ...], anomalies: tuple[Anomaly, ...]
) -> tuple[OrganisationSummary, ...]:
    facts = {org.org_id: org for org in result.organisations}
    made: dict[str, list[VerifiedRead]] = defaultdict(list)
    for read in reads:
        made[read.accessor_org].append(read)
    owned: dict[str, set[str]] = defaultdict(set)
    for record in result.records:
        owned[record.owner_org].add(record.record_id)
    read_by_others = Counter(read.owner_org for read in reads if read.owner_org != read.accessor_org)
    given = Counter(grant.owner_org for grant in result.grants)
    received = Counter(grant.grantee_org for grant in result.grants)
    flagged = Counter(anomaly.org_id for anomaly in anomalies)
    refused = Counter(refusal.accessor_org for refusal in result.refusals)
    refused_at = Counter(r.owner_org for r in result.refusals if r.owner_org and r.owner_org != r.accessor_org)
    summaries = []
    for org_id in sorted(set(facts) | set(made) | set(refused)):
        own_reads = made.get(org_id, [])  # in time order, as ``reads`` is
        fact = facts.get(org_id)
        seen_kind = next((read.accessor_kind for read in own_reads if read.accessor_kind), None)
        summaries.append(
            OrganisationSummary(
                org_id=org_id,
                kind=fact.kind if fact else seen_kind,
                suspended=fact.suspended_now if fact else False,
                records_owned=len(owned.get(org_id, ())),
                reads_made=len(own_reads),
                reads_of_its_records=read_by_others[org_id],
                emergency_reads=sum(read.emergency for read in own_reads),
                uncovered_reads=sum(not read.covered for read in own_reads),
                grants_given=given[org_id],
                grants_received=received[org_id],
                anomalies=flagged[org_id],
                first_read=local_time(own_reads[0].time) if own_reads else None,
                last_read=local_time(own_reads[-1].time) if own_reads else None,
                refusals=refused[org_id],
                refusals_of_its_records=refused_at[org_id],
            )
        )
    return tuple(summaries)


def _matrix(reads: tuple[VerifiedRead, ...]) -> ReadMatrix:
    cells = Counter((read.accessor_org, read.record_type or UNKNOWN_RECORD_TYPE) for read in reads)
    types = sorted({record_type for _, record_type in cells}, key=lambda t: (t == UNKNOWN_RECORD_TYPE, t))
    org_ids = tuple(sorted({org_id for org_id, _ in cells}))
    return ReadMatrix(
        record_types=tuple(types),
        org_ids=org_ids,
        counts=tuple(tuple(cells[(org_id, record_type)] for record_type in types) for org_id in org_ids),
    )


def _bucket_start(local: datetime, granularity: Granularity) -> datetime:
    hour = local.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if granularity == "day" else hour


def _timeline(
    times: tuple[datetime, ...], reads: tuple[VerifiedRead, ...], granularity: Granularity | Literal["auto"]
) -> Timeline:
    if granularity == "auto":
        span = times[-1] - times[0] if times else timedelta(0)
        granularity = "hour" if span <= HOURLY_SPAN_LIMIT else "day"
    step = timedelta(days=1) if granularity == "day" else timedelta(hours=1)
    grouped: dict[datetime, list[VerifiedRead]] = {}
    for moment, read in zip(times, reads, strict=True):
        grouped.setdefault(_bucket_start(moment, granularity), []).append(read)
    buckets = []
    if reads:
        # Asia/Shanghai has had no daylight-saving time since 1991, so fixed steps land on bucket starts.
        start, last = min(grouped), max(grouped)
        while start <= last:
            members = grouped.get(start, [])
            by_org = Counter(read.accessor_org for read in members)
            buckets.append(
                TimelineBucket(
                    start=start,
                    end=start + step,
                    reads=len(members),
                    emergency=sum(r.emergency for r in members),
                    by_organisation=tuple(sorted(by_org.items())),
                )
            )
            start += step
    return Timeline(granularity=granularity, buckets=tuple(buckets))
