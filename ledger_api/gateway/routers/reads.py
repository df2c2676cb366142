"""``GET /v1/records`` (metadata the caller may see) and ``GET /v1/records/{id}`` (a logged read)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from ledger_api.access.decision import EmergencyReason
from ledger_api.chain.encoding import Purpose
from ledger_api.gateway.deps import CurrentFollower, CurrentOrg, Services
from ledger_api.gateway.problems import InvalidRecord, problem_responses
from ledger_api.gateway.schemas import RecordSummary
from ledger_api.gateway.visibility import visible_records_filter
from ledger_api.index.models import AnchorBatch, RecordVersion
from ledger_api.records.reading import BreakGlass, ReadResult

router = APIRouter(tags=["records"])

#: The purpose vocabulary as the API publishes it (the contract's `Purpose`, without `None`).
PurposeName = Literal[
    "emergency_response",
    "investigation",
    "fire_safety",
    "elderly_care",
    "community_governance",
    "property_management",
    "audit",
]
if set(get_args(PurposeName)) != set(Purpose.names()):  # pragma: no cover - guards the copy above
    raise RuntimeError("PurposeName is out of step with ledger_api.chain.encoding.Purpose")
#: The reason classes of a break-glass read (``ledger_api.access.decision.EmergencyReason``).
EmergencyReasonName = Literal["life_threat", "missing_person", "fire_or_hazard", "public_order", "other"]
if set(get_args(EmergencyReasonName)) != set(EmergencyReason.names()):  # pragma: no cover - guards the copy above
    raise RuntimeError("EmergencyReasonName is out of step with ledger_api.access.decision.EmergencyReason")
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class RecordPage(BaseModel):
    model_config = _FROZEN

    records: list[RecordSummary]
    next_after: int | None
    """Pass as `after` for the next page; absent on the last page."""


class AccessReceipt(BaseModel):
    model_config = _FROZEN

    entry_index: int
    request_id: str
    grant_id: int
    purpose: str
    emergency: bool
    checked_block: int


class CommitmentOpeningModel(BaseModel):
    model_config = _FROZEN

    scheme: str
    salt: str
    revealed: dict[str, str]
    """Path of each maskable value received in clear → its field salt (hex)."""
    masked: dict[str, str]
    """Path of each masked value → its field digest (hex)."""


class AnchorInfo(BaseModel):
    model_config = _FROZEN

    ciphertext_hash: str
    commitment: str
    opening: CommitmentOpeningModel
    """Checks the received record, masked fields included, against ``commitment`` (see
    ``ledger_api.records.commitment``: ``verify_opening``)."""
    batch_root: str | None
    leaf_index: int | None
    block_number: int | None
    transaction: str | None


class RecordRead(BaseModel):
    model_config = _FROZEN

    record_id: str
    version: int
    owner_org: str
    record_type: str
    record: dict[str, object]
    masked_fields: list[str]
    access: AccessReceipt
    anchor: AnchorInfo


@router.get(
    "/records",
    response_model=RecordPage,
    summary="Metadata of the records the caller may see",
    responses=problem_responses(401, 422, 503),
)
def list_records(
    org_id: CurrentOrg,
    services: Services,
    follower: CurrentFollower,
    record_type: Annotated[str | None, Query(max_length=32)] = None,
    community: Annotated[str | None, Query(max_length=32)] = None,
    owner: Annotated[str | None, Query(max_length=32)] = None,
    occurred_from: Annotated[str | None, Query(json_schema_extra={"format": "date-time"})] = None,
    occurred_until: Annotated[str | None, Query(json_schema_extra={"format": "date-time"})] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="Cursor from the previous page")] = None,
) -> RecordPage:
    query = (
        select(RecordVersion, AnchorBatch)
        .join(AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id), isouter=True)
        .where(visible_records_filter(org_id, follower))
    )
    if record_type:
        query = query.where(col(RecordVersion.record_type) == record_type)
    if community:
        query = query.where(col(RecordVersion.community_code) == community)
    if owner:
        query = query.where(col(RecordVersion.owner_org) == owner)
    if occurred_from is not None:
        query = query.where(col(RecordVersion.occurred_at) >= _instant(occurred_from, "occurred_from"))
    if occurred_until is not None:
        query = query.where(col(RecordVersion.occurred_at) < _instant(occurred_until, "occurred_until"))
    if after is not None:
        query = query.where(col(RecordVersion.id) > after)
    with Session(services.engine) as session:
        rows = session.exec(query.order_by(col(RecordVersion.id)).limit(limit + 1)).all()
    page = rows[:limit]
    return RecordPage(
        records=[
            RecordSummary(
                record_id=v.record_id, version=v.version, owner_org=v.owner_org, record_type=v.record_type,
                community_code=v.community_code, occurred_at=v.occurred_at.isoformat(),
                state="anchored" if b is not None and b.state == "anchored" else "pending",
            )
            for v, b in page
        ],
        next_after=page[-1][0].id if len(rows) > limit and page else None,
    )  # fmt: skip


def _instant(text: str, name: str) -> datetime:
    """An ISO 8601 date-time with an offset; numbers are not silently read as Unix times."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRecord(f"{name} must be an ISO 8601 date-time, e.g. 2025-03-14T08:05:00+08:00") from None
    if moment.tzinfo is None:
        raise InvalidRecord(f"{name} needs a UTC offset, e.g. +08:00")
    return moment


@router.get(
    "/records/{record_id}",
    response_model=RecordRead,
    summary="Read a record for a stated purpose, under a grant valid now; every read is logged",
    responses=problem_responses(401, 403, 404, 410, 422, 429, descriptions={
        403: "The grant presented covers this record but not this read now (expired, revoked, purpose, "
             "suspension), or the caller is not active on chain",
        404: "No such record visible to the caller: the same answer whether it exists or not",
        410: "The record was erased (crypto-shredded)",
        422: "Invalid request, or an emergency read without a grant that does not state reason_class, reason and "
             "incident_ref",
        429: "Over the organisation's emergency reads per hour (LEDGER_EMERGENCY_PER_HOUR)",
    }),
)  # fmt: skip
async def read_record(
    record_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    org_id: CurrentOrg,
    services: Services,
    purpose: Annotated[PurposeName, Query(description="Why the record is read")],
    grant: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="The grant the read relies on")] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    reason_class: Annotated[
        EmergencyReasonName | None, Query(description="Emergency reads without a grant: why (its class)")
    ] = None,
    reason: Annotated[
        str | None, Query(min_length=1, max_length=500, description="Emergency reads without a grant: why")
    ] = None,
    incident_ref: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="Emergency reads without a grant: the incident it serves"),
    ] = None,
) -> Response:
    try:
        stated = Purpose.parse(purpose)
    except ValueError as exc:
        raise InvalidRecord(str(exc)) from exc
    statement = BreakGlass(
        reason_class=None if reason_class is None else EmergencyReason.parse(reason_class),
        reason=reason,
        incident_ref=incident_ref,
    )
    result: ReadResult = await run_in_threadpool(
        services.reader.read, caller=org_id, record_id=record_id, purpose=stated, grant_id=grant, version=version,
        statement=statement,
    )  # fmt: skip
    # The hot path of the gateway: the body is `RecordRead` (as published), built from plain values the read
    # path produced, so it is serialised once here instead of being revalidated through the model
    # (tests/ledger_api/gateway/test_read_response.py holds it to the model).
    return Response(content=record_read_json(result), media_type="application/json")


def record_read_json(result: ReadResult) -> bytes:
    """The `RecordRead` document of a read, as compact UTF-8 JSON."""
    body: dict[str, Any] = {
        "record_id": result.record_id, "version": result.version, "owner_org": result.owner_org,
        "record_type": result.record_type, "record": result.record, "masked_fields": list(result.masked_fields),
        "access": {"entry_index": result.entry_index, "request_id": result.request_id, "grant_id": result.grant_id,
                   "purpose": result.purpose.label, "emergency": result.emergency,
                   "checked_block": result.checked_block},
        "anchor": {"ciphertext_hash": result.ciphertext_hash, "commitment": result.commitment,
                   "opening": result.opening.to_json(),
                   "batch_root": result.batch_root, "leaf_index": result.leaf_index,
                   "block_number": result.block_number, "transaction": result.transaction},
    }  # fmt: skip
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
