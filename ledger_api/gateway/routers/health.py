"""Liveness and readiness.

Both answer without an API key, so they say only *whether* each part is ready. What failed and why
(an exception's text can carry an RPC URL with its credentials, a database DSN, a path) goes to the
gateway's log, where its operator reads it, never into the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ledger_api.gateway.deps import Services
from ledger_api.gateway.schemas import Health
from ledger_api.gateway.services import GatewayServices

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


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
    checks = {
        "index": _check("index", lambda: _ping_index(services)),
        "blobs": _check("blobs", lambda: services.blobs.exists("0" * 64)),
        "chain": _check("chain", services.rpc.block_number),
        "anchoring": _check("anchoring", services.require_anchoring_healthy),
    }
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


def _ping_index(services: GatewayServices) -> None:
    with services.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _check(name: str, probe: Callable[[], object]) -> str:
    """ "ok" or "unavailable"; the reason is logged for the operator, not answered."""
    try:
        probe()
    except Exception as exc:  # any failure means "not ready": reported, not raised
        log.warning("readiness: %s unavailable: %s: %s", name, type(exc).__name__, exc)
        return "unavailable"
    return "ok"
