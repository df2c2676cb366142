"""The FastAPI application: routers under ``/v1``, problem details, body-size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from adapters.canonical import CanonicalRecord
from ledger_api import __version__
from ledger_api.gateway.limits import BodySizeLimit
from ledger_api.gateway.problems import install_problem_handlers
from ledger_api.gateway.routers import (
    erasure,
    feed,
    health,
    identity,
    imports,
    overlap,
    proofs,
    reads,
    records,
    review,
    subjects,
)
from ledger_api.gateway.schemas import BlindIndexRequest, Problem, PushBatch
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.apikeys import RecentKeys

API_PREFIX = "/v1"


def create_app(services: GatewayServices, *, run_worker: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_worker:
            services.start()
        try:
            yield
        finally:
            services.stop()

    app = FastAPI(
        title="Cross-community safety ledger gateway",
        version=__version__,
        description="Department systems push records (encrypted, indexed, anchored on chain) and read "
        "what other organisations granted them. Errors are RFC 9457 problem details.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        # No OAuth2 here: FastAPI's default would add an unversioned public page, /docs/oauth2-redirect.
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.recent_keys = RecentKeys(ttl_s=services.settings.api_key_cache_s)
    install_problem_handlers(app)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(identity.router, prefix=API_PREFIX)
    app.include_router(records.router, prefix=API_PREFIX)
    app.include_router(reads.router, prefix=API_PREFIX)
    app.include_router(imports.router, prefix=API_PREFIX)
    app.include_router(subjects.router, prefix=API_PREFIX)
    app.include_router(proofs.router, prefix=API_PREFIX)
    app.include_router(feed.router, prefix=API_PREFIX)
    app.include_router(erasure.router, prefix=API_PREFIX)
    app.include_router(review.router, prefix=API_PREFIX)
    app.include_router(overlap.router, prefix=API_PREFIX)
    app.add_middleware(BodySizeLimit, max_bytes=services.settings.max_body_bytes)
    _publish_body_schemas(app)
    return app


def _publish_body_schemas(app: FastAPI) -> None:
    """Put the models that request bodies and error answers reference by hand into the OpenAPI components."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = default_openapi()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in (CanonicalRecord, PushBatch, BlindIndexRequest, Problem):
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(definition.pop("$defs", {}))
            definition.pop("$schema", None)
            definition.pop("$id", None)
            schemas[model.__name__] = definition
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
