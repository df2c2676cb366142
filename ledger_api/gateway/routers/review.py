"""``GET /v1/review/emergency-reads``: emergency reads (no grant named) listed for mandatory review.

Who sees what: an organisation of kind auditor or admin (as the chain holds it now) sees every emergency
read; any other organisation sees the emergency reads of the records it owns, and nothing else. Entries
come from the access log's table (committed entries only: each one is, or will be, anchored) in log
order, paginated by leaf index.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Text, cast, func
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from ledger_api.accesslog import Entry
from ledger_api.accesslog.entry import format_time
from ledger_api.chain.encoding import OrganisationKind
from ledger_api.gateway.deps import CurrentOrg, Services
from ledger_api.gateway.problems import InvalidRecord, problem_responses
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import AccessLogEntryRow, RecordVersion

router = APIRouter(tags=["review"])
_FROZEN = ConfigDict(frozen=True, extra="forbid")
#: Kinds that review every emergency read, not only those of their own records.
REVIEW_ALL_KINDS = frozenset({OrganisationKind.AUDITOR, OrganisationKind.ADMIN})
#: How an emergency entry's canonical JSON (sorted keys, compact) spells the flag: a prefilter in SQL; every
#: row it lets through is parsed and checked again. A string value cannot contain it unescaped.
_PARAMETERS = frozenset({"limit", "after"})
_EMERGENCY_MARK = '%"emergency":true%'


def _data_as_text(dialect: str) -> ColumnElement[str]:
    """The entry's UTF-8 leaf data as text (PostgreSQL's cast of bytea would give its hex escape)."""
    data = col(AccessLogEntryRow.data)
    if dialect == "postgresql":
        return func.convert_from(data, "UTF8")
    return cast(data, Text)


class EmergencyRead(BaseModel):
    model_config = _FROZEN

    entry_index: int
    """Leaf index of the access entry in the access log (prove it with the log's inclusion proofs)."""
    accessor_org: str
    record_id: str
    version: int
    owner_org: str
    purpose: str
    time: str
    request_id: str
    checked_block: int
    reason_class: str | None = None
    """What the reader stated (absent for reads logged before break-glass reads had to state it)."""
    reason: str | None = None
    incident_ref: str | None = None


class EmergencyReadPage(BaseModel):
    model_config = _FROZEN

    reads: list[EmergencyRead]
    next_after: int | None
    """Pass as `after` for the next page; absent on the last page."""
    scope: str
    """`all` (auditor or admin) or `own-records`."""


@router.get(
    "/review/emergency-reads",
    response_model=EmergencyReadPage,
    summary="Emergency reads for mandatory review: of the caller's own records, or all for auditors and admins",
    responses=problem_responses(401, 422),
)
async def emergency_reads(
    request: Request,
    org_id: CurrentOrg,
    services: Services,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="Cursor from the previous page")] = None,
) -> EmergencyReadPage:
    unknown = sorted(set(request.query_params) - _PARAMETERS)
    if unknown:
        raise InvalidRecord(f"unknown query parameter(s): {', '.join(repr(name) for name in unknown)}")
    return await run_in_threadpool(_page, services, org_id, limit, after)


def emergency_entries(
    services: GatewayServices, org_id: str, *, review_all: bool, after: int | None, limit: int, upto: int | None = None
) -> tuple[list[tuple[int, Entry]], int | None]:
    """Emergency reads (refusals aside) after leaf index ``after`` and up to ``upto``, of every record
    (``review_all``) or of those ``org_id`` owns, at most ``limit`` of them in log order; and the index of
    the last one when more may follow (else None)."""
    query = select(AccessLogEntryRow.seq, AccessLogEntryRow.data).where(
        _data_as_text(services.engine.dialect.name).like(_EMERGENCY_MARK)
    )
    if not review_all:
        owned = select(RecordVersion.record_id).where(col(RecordVersion.owner_org) == org_id).distinct()
        query = query.where(col(AccessLogEntryRow.record_id).in_(owned))
    if after is not None:
        query = query.where(col(AccessLogEntryRow.seq) > after)
    if upto is not None:
        query = query.where(col(AccessLogEntryRow.seq) <= upto)
    with Session(services.engine) as session:
        rows = session.exec(query.order_by(col(AccessLogEntryRow.seq)).limit(limit + 1)).all()
    page = rows[:limit]
    found = []
    for seq, data in page:
        entry = Entry.from_leaf_data(bytes(data))
        if entry.emergency and not entry.is_refusal and (review_all or entry.owner_org == org_id):
            found.append((seq, entry))
    return found, (page[-1][0] if len(rows) > limit and page else None)


def _page(services: GatewayServices, org_id: str, limit: int, after: int | None) -> EmergencyReadPage:
    view = services.follower.organisation(org_id)
    review_all = view is not None and not view.suspended and view.kind in REVIEW_ALL_KINDS
    found, next_after = emergency_entries(services, org_id, review_all=review_all, after=after, limit=limit)
    reads = [
        EmergencyRead(
            entry_index=seq,
            accessor_org=entry.accessor_org,
            record_id=entry.record_id,
            version=entry.version,
            owner_org=entry.owner_org,
            purpose=entry.purpose,
            time=format_time(entry.time),
            request_id=entry.request_id,
            checked_block=entry.checked_block,
            reason_class=entry.reason_class,
            reason=entry.reason,
            incident_ref=entry.incident_ref,
        )
        for seq, entry in found
    ]
    return EmergencyReadPage(reads=reads, next_after=next_after, scope="all" if review_all else "own-records")
