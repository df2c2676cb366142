"""``/v1/import/{adapter}``: a department uploads its raw export; the gateway parses and stores it."""

from __future__ import annotations

import datetime as dt
import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from adapters import ImportContext, import_file
from adapters.canonical import CanonicalRecord
from ledger_api.gateway.deps import CurrentOrg, Services
from ledger_api.gateway.problems import problem_responses
from ledger_api.gateway.routers.records import ingest, refuse_if_suspended
from ledger_api.gateway.schemas import UPLOAD_FILE_NAME, ImportReport
from ledger_api.gateway.services import GatewayServices

router = APIRouter(tags=["import"])


@router.post(
    "/import/{adapter}",
    summary="Import a raw department export file through an adapter",
    description="The body is the file itself (any content type). Returns the import report: rows, valid, "
    "duplicates (native ids) and bad rows (row, native id, reason). Importing the same file twice creates "
    "nothing new.",
    response_model=ImportReport,
    # The body is read from the request stream, not declared as a parameter: document it by hand.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses=problem_responses(
        401,
        403,
        404,
        409,
        413,
        422,
        503,
        descriptions={
            403: "The organisation is suspended on chain",
            404: "Unknown adapter",
            422: "The file cannot be read",
        },
    ),
)
async def import_export(
    request: Request,
    org_id: CurrentOrg,
    services: Services,
    adapter: Annotated[str, Path(pattern=r"^[a-z_]+\.[a-z_]+$")],
    community: Annotated[str, Query(min_length=1, max_length=32, description="Community code for rows naming none")],
    file_name: Annotated[str, Query(min_length=1, max_length=200)] = UPLOAD_FILE_NAME,
    as_of: Annotated[dt.datetime | None, Query(description="Time a snapshot export describes")] = None,
) -> dict[str, Any]:
    # Spool the body (bounded by the size limit) so adapters can read it as a file, in constant memory.
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - closed below
    try:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)
        return await run_in_threadpool(_import, services, org_id, adapter, spool, file_name, community, as_of)
    finally:
        spool.close()


def _import(
    services: GatewayServices,
    org_id: str,
    adapter: str,
    stream: Any,
    file_name: str,
    community: str,
    as_of: dt.datetime | None,
) -> dict[str, Any]:
    refuse_if_suspended(services, org_id)  # before parsing: nothing of the file is stored
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
    context = ImportContext(owner_org=org_id, community_code=community, file_name=file_name, as_of=as_of)

    def sink(records: list[CanonicalRecord]) -> None:
        ingest(services, org_id, records)

    return import_file(stream, adapter, context=context, sink=sink).to_json_dict()
