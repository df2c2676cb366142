"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ledger_api.errors import LedgerError
from ledger_api.gateway.deps import Services
from ledger_api.gateway.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness: the process answers")
def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is unavailable"}},
    summary="Readiness: index, blob store and chain reachable",
)
def ready(services: Services) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["index"] = "ok"
    except Exception as exc:  # any failure means "not ready": reported, not raised
        checks["index"] = f"unavailable: {type(exc).__name__}"
    try:
        services.blobs.exists("0" * 64)
        checks["blobs"] = "ok"
    except Exception as exc:
        checks["blobs"] = f"unavailable: {type(exc).__name__}"
    try:
        checks["chain"] = f"ok (block {services.rpc.block_number()})"
    except LedgerError as exc:
        checks["chain"] = f"unavailable: {exc}"
    checks["anchoring"] = services.anchoring_health()
    ok = all(v.startswith("ok") for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
