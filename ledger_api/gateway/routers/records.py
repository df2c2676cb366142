"""``/v1/records``: push canonical records; see what became of them."""

from __future__ import annotations

import math
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Path, Request
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from adapters.canonical import CanonicalRecord, record_json_schema
from ledger_api.gateway.deps import CurrentOrg, Services
from ledger_api.gateway.problems import Forbidden, InvalidRecord, NotFound, problem_responses
from ledger_api.gateway.schemas import PushedRecord, PushResponse, RecordStatus
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import AnchorBatch, RecordVersion
from ledger_api.records.ingest import PushOutcome

router = APIRouter(tags=["records"])

RecordId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="64 hex digits")]


PUSH_BODY_SCHEMA = {
    "oneOf": [
        {"$ref": "#/components/schemas/CanonicalRecord"},
        {"$ref": "#/components/schemas/PushBatch"},
    ]
}


def parse_json_body(raw: bytes) -> Any:
    """Strict JSON (RFC 8259): no NaN or Infinity, no lone surrogates, finite numbers, bounded nesting.

    Not ``json.loads``, whose failures schemathesis found: the gateway imports py_ecc, which raises the
    recursion limit to 100000, so a body of 100000 nested ``[`` overflowed the C stack and killed the whole
    process (segfault); and NaN, 1e999 or "\\ud800" were accepted, then failed canonical JSON with a 500.
    """
    try:
        document = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:  # pydantic-core stops at a nesting depth of a few hundred
        raise InvalidRecord(f"the body is not JSON: {exc}") from exc
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRecord("the body has a number out of the range of a double (e.g. 1e999)")
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return document


def parse_push_body(raw: bytes) -> list[CanonicalRecord]:
    """One canonical record, or ``{"records": [...]}``; every invalid record is named by index and field."""
    document = parse_json_body(raw)
    if isinstance(document, dict) and "records" in document and set(document) == {"records"}:
        items = document["records"]
        if not isinstance(items, list) or not items:
            raise InvalidRecord("'records' must be a non-empty list of canonical records")
    elif isinstance(document, dict):
        items = [document]
    else:
        raise InvalidRecord('the body must be a canonical record or an object {"records": [...]}')
    records: list[CanonicalRecord] = []
    errors: list[dict[str, object]] = []
    for index, item in enumerate(items):
        try:
            records.append(CanonicalRecord.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                field = ".".join(str(p) for p in error["loc"]) or "record"
                errors.append({"index": index, "field": field, "message": error["msg"]})
        except OverflowError as exc:
            # A time at the edge of the datetime range that leaves it when moved to +08:00 (schemathesis: a 500).
            errors.append({"index": index, "field": "record", "message": f"a date or time is out of range: {exc}"})
    if errors:
        bad = len({e["index"] for e in errors})
        raise InvalidRecord(f"{bad} of {len(items)} record(s) invalid; nothing was stored", errors=errors)
    return records


@router.post(
    "/records",
    status_code=202,
    response_model=PushResponse,
    summary="Push one record or a batch",
    description='The body is one canonical record (schema: `GET /v1/schema/record`) or `{"records": [...]}`. '
    "The answer comes once the ciphertext is durable and the record is queued for anchoring.",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": PUSH_BODY_SCHEMA}}}},
    responses=problem_responses(
        401, 403, 409, 413, 422, 503,
        descriptions={403: "The organisation is suspended on chain", 422: "A record is invalid; nothing was stored"},
    ),
)  # fmt: skip
async def push_records(request: Request, org_id: CurrentOrg, services: Services) -> PushResponse:
    records = parse_push_body(await request.body())
    return await run_in_threadpool(_push, services, org_id, records)


def refuse_if_suspended(services: GatewayServices, org_id: str) -> None:
    """403 for an organisation the chain holds suspended: its signer cannot anchor, so a push it made would be
    acknowledged and never anchored (DESIGN.md invariant 5), and it no longer shares in the consortium's keys.

    The follower's view as it stands (polled every 0.2 s), not a round trip to the chain: pushes must keep
    being acknowledged while the chain node is down (the outbox anchors them later)."""
    view = services.follower.organisation(org_id)
    if view is not None and view.suspended:
        raise Forbidden(f"organisation {org_id} is suspended on chain")


def ingest(services: GatewayServices, org_id: str, records: list[CanonicalRecord]) -> list[PushOutcome]:
    """Store records (shared with ``/v1/import``): a suspended organisation is refused before anything."""
    refuse_if_suspended(services, org_id)
    return services.ingest.push(org_id=org_id, records=records)


def _push(services: GatewayServices, org_id: str, records: list[CanonicalRecord]) -> PushResponse:
    if len(records) > services.settings.max_batch_records:
        raise InvalidRecord(f"at most {services.settings.max_batch_records} records per request, got {len(records)}")
    outcomes = ingest(services, org_id, records)
    return PushResponse(
        accepted=len(records),
        stored=sum(o.status != "unchanged" for o in outcomes),
        records=[PushedRecord(record_id=o.record_id, version=o.version, status=o.status) for o in outcomes],
    )


@router.get(
    "/records/{record_id}/status",
    response_model=RecordStatus,
    summary="Pending or anchored, with the transaction and block",
    responses=problem_responses(401, 404, 422, descriptions={404: "No such record visible to the caller"}),
)
def record_status(record_id: RecordId, org_id: CurrentOrg, services: Services) -> RecordStatus:
    with Session(services.engine) as session:
        row = session.exec(
            select(RecordVersion, AnchorBatch)
            .join(AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id), isouter=True)
            .where(col(RecordVersion.record_id) == record_id, col(RecordVersion.owner_org) == org_id)
            .order_by(col(RecordVersion.version).desc())
            .limit(1)
        ).first()
    if row is None:
        # Another organisation's record answers exactly like a missing one.
        raise NotFound(f"no record {record_id}")
    version, batch = row
    anchored = batch is not None and batch.state == "anchored"
    return RecordStatus(
        record_id=version.record_id,
        version=version.version,
        state="anchored" if anchored else "pending",
        ciphertext_hash=version.blob_key,
        commitment=version.commitment,
        batch_root=batch.root if batch else None,
        leaf_index=version.leaf_index,
        batch_size=batch.size if batch else None,
        transaction=batch.tx_hash if anchored and batch else None,
        block_number=batch.block_number if anchored and batch else None,
    )


@router.get("/schema/record", summary="The canonical record JSON Schema", tags=["schema"])
def canonical_schema() -> dict[str, object]:
    return record_json_schema()
