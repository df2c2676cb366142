"""Request dependencies: the services, and the organisation the caller authenticates as."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger_api.gateway.apikeys import organisation_for_token
from ledger_api.gateway.problems import Unauthenticated
from ledger_api.gateway.services import GatewayServices

_bearer = HTTPBearer(auto_error=False, description="An API key issued with `ledger apikey issue ORG`.")


def get_services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


Services = Annotated[GatewayServices, Depends(get_services)]


def current_org(
    services: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Every request is tied to exactly one registered organisation by its API key."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("send an API key as 'Authorization: Bearer <key>'")
    org_id = organisation_for_token(services.engine, credentials.credentials)
    if org_id is None:
        raise Unauthenticated("the API key is unknown or revoked")
    return org_id


CurrentOrg = Annotated[str, Depends(current_org)]
