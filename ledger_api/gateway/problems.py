"""RFC 9457 problem details: the one place where errors become HTTP answers.

Domain errors carry no HTTP knowledge; :func:`install_problem_handlers` maps each error family to a
status once, at the boundary, and every error answer has ``Content-Type: application/problem+json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger_api.errors import LedgerError

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://ledger.example/problems/"

_PROBLEM_DESCRIPTIONS = {
    401: "No or invalid API key",
    403: "The API key's organisation may not do this",
    404: "Not found",
    409: "A concurrent push created the same record version; retry",
    410: "Gone: the record was erased",
    413: "Body over the size limit",
    422: "Invalid request",
    503: "A backend (keys, index, storage, chain) is unavailable",
}


def problem_responses(*statuses: int, descriptions: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error answers: ``application/problem+json`` with the ``Problem`` schema.

    Without this FastAPI documents its own 422 body (``HTTPValidationError``, ``application/json``) that the
    gateway never sends, and error statuses without any content, so clients (and schemathesis) could not
    check them. ``descriptions`` overrides the description of a status, e.g. ``{404: "Unknown adapter"}``.
    """
    return {
        status: {
            "description": (descriptions or {}).get(status, _PROBLEM_DESCRIPTIONS[status]),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


class GatewayError(LedgerError):
    """An error the gateway answers with a specific status and problem type."""

    status = 400
    problem = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)


class Unauthenticated(GatewayError):
    status, problem, title = 401, "unauthenticated", "Authentication required"


class Forbidden(GatewayError):
    status, problem, title = 403, "forbidden", "Not allowed"


class NotFound(GatewayError):
    status, problem, title = 404, "not-found", "Not found"


class Gone(GatewayError):
    status, problem, title = 410, "gone", "Gone"


class Conflict(GatewayError):
    status, problem, title = 409, "conflict", "Conflict"


class InvalidRecord(GatewayError):
    status, problem, title = 422, "invalid-record", "Invalid record"


class Unavailable(GatewayError):
    status, problem, title = 503, "unavailable", "Service unavailable"


def problem_response(
    *,
    status: int,
    problem: str,
    title: str,
    detail: str,
    instance: str,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if extra:
        body.update(extra)
    answer_headers = dict(headers or {})
    if status == 401:
        answer_headers["WWW-Authenticate"] = 'Bearer realm="ledger"'
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=answer_headers or None)


def install_problem_handlers(app: FastAPI) -> None:
    async def gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        extra = {"errors": exc.errors} if exc.errors else None
        return problem_response(
            status=exc.status, problem=exc.problem, title=exc.title, detail=exc.detail,
            instance=request.url.path, extra=extra,
        )  # fmt: skip

    async def ledger_error(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            status=503, problem="upstream-error", title="Ledger backend error", detail=str(exc),
            instance=request.url.path,
        )  # fmt: skip

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"location": "/".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"location": "body", "message": "invalid"}
        return problem_response(
            status=422, problem="invalid-request", title="Invalid request",
            detail=f"{len(errors)} problem(s); first at {first['location']}: {first['message']}",
            instance=request.url.path, extra={"errors": errors},
        )  # fmt: skip

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        # Keep the exception's headers: a 405 must carry `Allow` (RFC 9110 §15.5.6), found by schemathesis.
        return problem_response(
            status=exc.status_code, problem=f"http-{exc.status_code}", title=str(exc.detail),
            detail=str(exc.detail), instance=request.url.path, headers=exc.headers,
        )  # fmt: skip

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(LedgerError, ledger_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
