"""The FastAPI application: routers under ``/v1``, problem details, body-size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ledger_api import __version__
from ledger_api.gateway.limits import BodySizeLimit
from ledger_api.gateway.problems import install_problem_handlers
from ledger_api.gateway.routers import health, identity, imports, records
from ledger_api.gateway.services import GatewayServices

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
        lifespan=lifespan,
    )
    app.state.services = services
    install_problem_handlers(app)
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(identity.router, prefix=API_PREFIX)
    app.include_router(records.router, prefix=API_PREFIX)
    app.include_router(imports.router, prefix=API_PREFIX)
    app.add_middleware(BodySizeLimit, max_bytes=services.settings.max_body_bytes)
    return app
