"""RFC 9457 problem details: the one place where errors become HTTP answers.

Domain errors carry no HTTP knowledge; :data:`PROBLEMS` maps each error family to a status, type, title
and detail once, at the boundary, and :func:`install_problem_handlers` answers every error with
``Content-Type: application/problem+json``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route, compile_path

from adapters.errors import AdapterError, UnknownAdapterError
from ledger_api.access.ratelimit import RateLimited
from ledger_api.accesslog.guard import AccessLogNotAnchored
from ledger_api.chain.errors import ChainViewBehind
from ledger_api.errors import LedgerError
from ledger_api.gateway.schemas import UPLOAD_FILE_NAME
from ledger_api.records.erasure import ErasureNotAllowed
from ledger_api.records.ingest import IngestError, OrganisationNotEnrolled, VersionConflict
from ledger_api.records.reading import EmergencyReasonMissing, ReadRefused, RecordErased, RecordNotVisible

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
    429: "Over the organisation's rate limit; retry after `Retry-After` seconds",
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
    """A refusal of the gateway's own (a request it cannot serve), answered as :data:`PROBLEMS` says."""

    def __init__(self, detail: str, *, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)


class Unauthenticated(GatewayError):
    """No or an unknown API key."""


class Forbidden(GatewayError):
    """The caller's organisation may not do this."""


class NotFound(GatewayError):
    """Nothing under that name the caller may see."""


class Gone(GatewayError):
    """It existed and was removed for good."""


class Conflict(GatewayError):
    """Not possible in the current state; retrying later may succeed."""


class InvalidRecord(GatewayError):
    """The request is well-formed HTTP but its content is invalid."""


class Unavailable(GatewayError):
    """A backend the answer needs is unavailable or inconsistent."""


def _message(exc: Exception, request: Request) -> str:
    return str(exc)


def _in_the_uploaded_file(exc: Exception, request: Request) -> str:
    # An adapter error is about the whole file: name it as the uploader did (the router's query parameter).
    return f"{request.query_params.get('file_name', UPLOAD_FILE_NAME)}: {exc}"


def _carried_errors(exc: Exception) -> list[dict[str, Any]]:
    return list(getattr(exc, "errors", ()))


def _missing_fields(exc: Exception) -> list[dict[str, Any]]:
    return [
        {"location": f"query/{name}", "message": "required for an emergency read without a grant", "type": "missing"}
        for name in getattr(exc, "missing", ())
    ]


def _no_errors(exc: Exception) -> list[dict[str, Any]]:
    return []


def _no_headers(exc: Exception) -> dict[str, str]:
    return {}


def _retry_after(exc: Exception) -> dict[str, str]:
    # RFC 9110 §10.2.3: whole seconds; RFC 6585 §4 pairs it with 429.
    return {"Retry-After": str(max(1, math.ceil(getattr(exc, "retry_after_s", 1.0))))}


@dataclass(frozen=True, kw_only=True)
class Problem:
    """How one family of errors is answered (RFC 9457 §3.1: ``type`` is :data:`PROBLEM_BASE` + ``slug``)."""

    status: int
    slug: str
    title: str
    detail: Callable[[Exception, Request], str] = _message
    errors: Callable[[Exception], list[dict[str, Any]]] = _no_errors
    """Per-item problems (``errors`` member, an RFC 9457 §3.2 extension) when the error carries them."""
    headers: Callable[[Exception], dict[str, str]] = _no_headers


_NOT_FOUND = Problem(status=404, slug="not-found", title="Not found")
_FORBIDDEN = Problem(status=403, slug="forbidden", title="Not allowed")
_GONE = Problem(status=410, slug="gone", title="Gone")
_CONFLICT = Problem(status=409, slug="conflict", title="Conflict")
_INVALID = Problem(status=422, slug="invalid-record", title="Invalid record", errors=_carried_errors)
_UNAVAILABLE = Problem(status=503, slug="unavailable", title="Service unavailable")

#: The one translation of errors into problem details. Routers raise domain errors (or a
#: :class:`GatewayError` of their own) and let them propagate; the most specific class of an error that is
#: listed here decides the answer. Any other :class:`LedgerError` is a backend failure (503).
PROBLEMS: Mapping[type[Exception], Problem] = {
    # the gateway's own refusals
    GatewayError: Problem(status=400, slug="bad-request", title="Bad request", errors=_carried_errors),
    Unauthenticated: Problem(status=401, slug="unauthenticated", title="Authentication required"),
    Forbidden: _FORBIDDEN,
    NotFound: _NOT_FOUND,
    Gone: _GONE,
    Conflict: _CONFLICT,
    InvalidRecord: _INVALID,
    Unavailable: _UNAVAILABLE,
    # reads: an invisible record is indistinguishable from a missing one (DESIGN.md, Privacy)
    RecordNotVisible: _NOT_FOUND,
    ReadRefused: _FORBIDDEN,
    EmergencyReasonMissing: Problem(
        status=422,
        slug="emergency-reason-required",
        title="Emergency read without its reason",
        errors=_missing_fields,
    ),
    RecordErased: _GONE,
    ErasureNotAllowed: _NOT_FOUND,
    # pushes and imports
    OrganisationNotEnrolled: _UNAVAILABLE,
    VersionConflict: _CONFLICT,
    IngestError: _INVALID,
    UnknownAdapterError: _NOT_FOUND,
    AdapterError: dataclasses.replace(_INVALID, detail=_in_the_uploaded_file),
    # no release the audit cannot see (DESIGN.md invariant 4)
    AccessLogNotAnchored: Problem(status=503, slug="access-log-not-anchored", title="Access log not anchored"),
    # look-ups that would make an oracle of the gateway
    RateLimited: Problem(status=429, slug="rate-limited", title="Too many requests", headers=_retry_after),
    # the follower's view of grants is older than LEDGER_FOLLOWER_MAX_LAG_S allows (and the node is unreachable)
    ChainViewBehind: Problem(status=503, slug="chain-view-behind", title="Chain view behind the node"),
    # anything else the domain raises: the chain, storage, keys or index failed
    LedgerError: Problem(status=503, slug="upstream-error", title="Ledger backend error"),
}


def problem_for(exc: Exception) -> Problem:
    """The :data:`PROBLEMS` entry of the most specific listed class of ``exc``."""
    return next(PROBLEMS[cls] for cls in type(exc).__mro__ if cls in PROBLEMS)


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


def _allowed_methods(request: Request) -> str:
    """Every method the request's path has: Starlette's 405 names only the first matching route's, so
    ``/v1/records/{id}`` (a GET route and a DELETE route) answered ``Allow: GET`` (found by schemathesis).

    Read from the published document (included routers hide their routes from ``app.routes``), plus the
    plain routes outside it (the document itself, its UI)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "\x00"})  # matches no method: path-only
        if match is Match.PARTIAL and isinstance(route, Route) and route.methods:
            methods |= route.methods - {"HEAD"}
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


def install_problem_handlers(app: FastAPI) -> None:
    async def listed_error(request: Request, exc: Exception) -> JSONResponse:
        problem = problem_for(exc)
        errors = problem.errors(exc)
        return problem_response(
            status=problem.status, problem=problem.slug, title=problem.title, detail=problem.detail(exc, request),
            instance=request.url.path, extra={"errors": errors} if errors else None, headers=problem.headers(exc),
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
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem_response(
            status=exc.status_code, problem=f"http-{exc.status_code}", title=str(exc.detail),
            detail=str(exc.detail), instance=request.url.path, headers=headers,
        )  # fmt: skip

    for root in {cls for cls in PROBLEMS if not any(issubclass(cls, other) for other in PROBLEMS if other is not cls)}:
        app.add_exception_handler(root, listed_error)  # one handler; it looks the most specific class up
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
