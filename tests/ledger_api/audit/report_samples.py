"""A realistic synthetic audit result for the report, anomaly and subject tests.

One week of March 2026 (Monday 2 to Saturday 7), Asia/Shanghai local times, stored as UTC like block
timestamps. Every count the tests assert follows from the schedule below:

- CM-CUIYUAN-01 (committee) reads incidents: Mon–Wed at 09:05, 09:35, 10:05, 10:35, 14:05, 14:35
  (18 reads, its usual hour has 2), then 25 reads on Thursday 10:00–10:48 (a rate spike).
- PS-XIHU-01 (police) reads residents: Mon–Thu 11:00 (4), Tue 22:30 and Wed 07:10 (one off-hours night),
  and 5 emergency reads on Friday 01:00–05:00 (an emergency burst; not off-hours: they are emergencies).
- PM-LVCHENG-01 (property) makes 4 emergency incident reads Wed 15:00 → Thu 14:00 (below the burst size)
  and reads a resident record on Saturday 10:00 (off hours: weekend).
- AU-STREET-01 (auditor) reads a record of unknown type on Monday 16:00, covered by no grant.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

from ledger_api.audit.anomalies import LOCAL_TIMEZONE
from ledger_api.audit.model import (
    AuditResult,
    Discrepancy,
    DiscrepancyKind,
    GrantFact,
    OrganisationFact,
    TreeHeadFact,
    VerifiedRead,
    VerifiedRecord,
)

POLICE, PROPERTY, COMMITTEE, AUDITOR = "PS-XIHU-01", "PM-LVCHENG-01", "CM-CUIYUAN-01", "AU-STREET-01"
KINDS = {POLICE: "police", PROPERTY: "property", COMMITTEE: "committee", AUDITOR: "auditor"}
OWNERS = {"incident": POLICE, "resident": COMMITTEE, None: PROPERTY}


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """March ``day`` 2026 at the given Asia/Shanghai time, as the UTC datetime a verifier produces."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=LOCAL_TIMEZONE).astimezone(UTC)


def record_id(n: int) -> str:
    return f"{n:064x}"


def make_read(
    accessor: str,
    at: datetime,
    *,
    record_type: str | None = "incident",
    emergency: bool = False,
    covered: bool = True,
    record: int = 1,
    version: int = 1,
    entry_index: int = 0,
    subjects: tuple[str, ...] = (),
    anchored: bool = True,
) -> VerifiedRead:
    index = entry_index
    return VerifiedRead(
        entry_index=index,
        accessor_org=accessor,
        accessor_kind=KINDS.get(accessor),
        owner_org=OWNERS.get(record_type, POLICE),
        record_id=record_id(record),
        version=version,
        record_type=record_type,
        community_code="330102002",
        grant_id=0 if emergency else 3,
        purpose="emergency_response" if emergency else "elderly_care",
        emergency=emergency,
        time=at,
        checked_block=800 + index,
        request_id=f"req-{index}",
        anchored_by_head=0 if anchored else None,
        covered=covered,
        basis="grant 3 valid at block 812" if covered else "no grant for this purpose",
        subjects=subjects,
    )


def week_reads() -> tuple[VerifiedRead, ...]:
    reads: list[VerifiedRead] = []
    for day in (2, 3, 4):
        for hour, minute in itertools.product((9, 10, 14), (5, 35)):
            reads.append(make_read(COMMITTEE, local(day, hour, minute)))
    reads += [make_read(COMMITTEE, local(5, 10, 2 * i)) for i in range(25)]
    reads += [make_read(POLICE, local(day, 11), record_type="resident") for day in (2, 3, 4, 5)]
    reads += [make_read(POLICE, local(3, 22, 30), record_type="resident")]
    reads += [make_read(POLICE, local(4, 7, 10), record_type="resident")]
    reads += [make_read(POLICE, local(6, hour), record_type="resident", emergency=True) for hour in range(1, 6)]
    reads += [make_read(PROPERTY, at, emergency=True) for at in (local(4, 15), local(4, 18), local(5, 9), local(5, 14))]
    reads += [make_read(PROPERTY, local(7, 10), record_type="resident")]
    reads += [make_read(AUDITOR, local(2, 16), record_type=None, covered=False, anchored=False)]
    # Entry indexes in the order above (log order need not be time order; the report sorts by time).
    return tuple(
        replace(read, entry_index=i, request_id=f"req-{i}", checked_block=800 + i) for i, read in enumerate(reads)
    )


def week_result(
    *,
    reads: tuple[VerifiedRead, ...] | None = None,
    records: tuple[VerifiedRecord, ...] = (),
    discrepancies: tuple[Discrepancy, ...] | None = None,
    organisations: tuple[OrganisationFact, ...] | None = None,
) -> AuditResult:
    if discrepancies is None:
        discrepancies = (
            Discrepancy(
                kind=DiscrepancyKind.READ_NOT_COVERED,
                subject="access entry #59",
                detail="AU-STREET-01 read a record no grant covered",
                where="block 859",
            ),
            Discrepancy(
                kind=DiscrepancyKind.BLOB_MISSING,
                subject=f"record {record_id(7)[:8]}… v1",
                detail="the ciphertext blob is not in storage",
                where="blobs/ab/cd",
            ),
        )
    if organisations is None:
        organisations = tuple(
            OrganisationFact(org_id=org_id, kind=kind, suspended_now=org_id == PROPERTY)
            for org_id, kind in KINDS.items()
        )
    if not records:
        records = tuple(
            VerifiedRecord(
                record_id=record_id(n),
                version=1,
                owner_org=owner,
                record_type=record_type,
                community_code="330102002",
                ciphertext_hash="ab" * 32,
                batch_root="cd" * 32,
                leaf_index=n,
                block_number=100 + n,
                transaction="0x" + "ef" * 32,
                anchored_at=local(1, 12),
            )
            for n, (owner, record_type) in enumerate(
                [(POLICE, "incident"), (COMMITTEE, "resident"), (PROPERTY, "access_event"), (POLICE, "incident")]
            )
        )
    grants = (
        GrantFact(
            grant_id=3, owner_org=POLICE, grantee_org=COMMITTEE, purpose="elderly_care", record_types=("incident",),
            communities=("330102002",), record_id=None, valid_from=0, valid_until=2**40, created_block=10,
        ),
        GrantFact(
            grant_id=4, owner_org=COMMITTEE, grantee_org=POLICE, purpose="investigation", record_types=(),
            communities=(), record_id=None, valid_from=0, valid_until=2**40, created_block=11, revoked_block=700,
        ),
    )  # fmt: skip
    return AuditResult(
        source="bundle week.zip",
        chain_id=31337,
        checkpoint_block=900,
        records=records,
        reads=week_reads() if reads is None else reads,
        tree_heads=(TreeHeadFact(index=0, size=59, root="aa" * 32, block_number=860),),
        organisations=organisations,
        grants=grants,
        discrepancies=discrepancies,
    )
