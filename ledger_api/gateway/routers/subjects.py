"""``/v1/subjects``: find records about the same person or flat across organisations, without plaintext.

The index keeps only keyed blind indexes (HMAC-SHA256 under the consortium key) of normalised ID
numbers and addresses. A department asks the gateway for the blind index of a value it already
holds, then lists the records linked to it that it may see.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from adapters.canonical import blind_index, normalise_address, normalise_id_number
from ledger_api.access.ratelimit import RateLimited
from ledger_api.gateway.deps import CurrentFollower, CurrentOrg, Services
from ledger_api.gateway.problems import InvalidRecord, problem_responses
from ledger_api.gateway.routers.records import refuse_if_suspended
from ledger_api.gateway.schemas import BlindIndexRequest, BlindIndexResponse, RecordSummary, SubjectRecords
from ledger_api.gateway.services import GatewayServices
from ledger_api.gateway.visibility import visible_records_filter
from ledger_api.index.models import AnchorBatch, RecordVersion, SubjectLink

router = APIRouter(tags=["subjects"])
log = logging.getLogger(__name__)


@router.post(
    "/subjects/blind-index",
    response_model=BlindIndexResponse,
    summary="Blind index of an ID or address",
    # The body is parsed in the handler, after the API key is checked (see below): document it by hand.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BlindIndexRequest"}}},
        }
    },
    # Error answers are problem details (found undocumented by tests/ledger_api/gateway/test_schemathesis_devnet.py).
    responses=problem_responses(401, 403, 422, 429, descriptions={403: "The organisation is suspended on chain"}),
)
async def compute_blind_index(request: Request, org_id: CurrentOrg, services: Services) -> BlindIndexResponse:
    # Not a body parameter: FastAPI decodes a declared JSON body before any dependency runs, so a caller
    # without a key sending malformed JSON got 422 instead of 401 (found by schemathesis).
    try:
        body = BlindIndexRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc
    return await run_in_threadpool(_blind_index, services, org_id, body)


def _blind_index(services: GatewayServices, org_id: str, request: BlindIndexRequest) -> BlindIndexResponse:
    refuse_if_suspended(services, org_id)  # the consortium's key is for members in good standing
    if (request.id_number is None) == (request.address is None):
        raise InvalidRecord("give exactly one of id_number and address")
    kind = "id_number" if request.id_number is not None else "address"
    try:
        services.blind_index_limiter.take(org_id)
    except RateLimited:
        log.warning("blind index: %s refused a %s look-up: over its rate limit", org_id, kind.replace("_", " "))
        raise
    # Who asked, and for what kind, never the value or its index: the operator sees the oracle's use.
    log.info("blind index: %s looked up a %s", org_id, kind.replace("_", " "))
    key = services.keystore.consortium_key()
    if request.id_number is not None:
        try:
            normalised = normalise_id_number(request.id_number)
        except ValueError as exc:
            raise InvalidRecord(f"id_number: {exc}") from exc
        return BlindIndexResponse(kind="id_number", blind_index=blind_index(key, "id_number", normalised))
    normalised = normalise_address(request.address or "")
    if not normalised:
        raise InvalidRecord("address: nothing left after normalisation")
    return BlindIndexResponse(kind="address", blind_index=blind_index(key, "address", normalised))


@router.get(
    "/subjects/{blind_index}/records",
    response_model=SubjectRecords,
    summary="Records linked to a blind index that the caller may see",
    responses=problem_responses(401, 422, 503),
)
def subject_records(
    blind_index: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    org_id: CurrentOrg,
    services: Services,
    follower: CurrentFollower,
) -> SubjectRecords:
    with Session(services.engine) as session:
        rows = session.exec(
            select(RecordVersion, AnchorBatch)
            .join(SubjectLink, col(SubjectLink.record_id) == col(RecordVersion.record_id))
            .join(AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id), isouter=True)
            .where(col(SubjectLink.blind_index) == blind_index, visible_records_filter(org_id, follower))
            .order_by(col(RecordVersion.occurred_at), col(RecordVersion.record_id), col(RecordVersion.version))
        ).all()
    latest: dict[str, RecordSummary] = {}
    for version, batch in rows:
        latest[version.record_id] = RecordSummary(
            record_id=version.record_id,
            version=version.version,
            owner_org=version.owner_org,
            record_type=version.record_type,
            community_code=version.community_code,
            occurred_at=version.occurred_at.isoformat(),
            state="anchored" if batch is not None and batch.state == "anchored" else "pending",
        )
    return SubjectRecords(blind_index=blind_index, records=list(latest.values()))
