"""Request dependencies: the services, and the organisation the caller authenticates as."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ledger_api.chain.errors import ChainError, ChainViewBehind
from ledger_api.chain.follower import ChainFollower
from ledger_api.gateway.problems import Unauthenticated
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.apikeys import RecentKeys, organisation_for_token

_bearer = HTTPBearer(auto_error=False, description="An API key issued with `ledger apikey issue ORG`.")


async def get_services(request: Request) -> GatewayServices:
    # async: FastAPI runs a plain-def dependency in the thread pool, a hop every request would pay for nothing.
    services: GatewayServices = request.app.state.services
    return services


Services = Annotated[GatewayServices, Depends(get_services)]


async def current_org(
    request: Request,
    services: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Every request is tied to exactly one registered organisation by its API key.

    async, with the lookup in a worker thread only when the key is not among the recently seen ones
    (:class:`~ledger_api.index.apikeys.RecentKeys`)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("send an API key as 'Authorization: Bearer <key>'")
    token = credentials.credentials
    recent: RecentKeys = request.app.state.recent_keys
    org_id = recent.get(token)
    if org_id is None:
        org_id = await run_in_threadpool(organisation_for_token, services.engine, token)
        if org_id is None:
            raise Unauthenticated("the API key is unknown or revoked")
        recent.put(token, org_id)
    reject_unknown_query_parameters(request)  # after authentication: an anonymous caller learns nothing
    return org_id


CurrentOrg = Annotated[str, Depends(current_org)]


def _confirmed_within_bound(services: GatewayServices) -> bool:
    age = services.follower.confirmed_age_s()
    return age is not None and age <= services.settings.follower_max_lag_s


def require_current_follower(services: GatewayServices) -> ChainFollower:
    """The chain follower, once it is known to be at most ``LEDGER_FOLLOWER_MAX_LAG_S`` behind the node.

    Listings, the feed, subject links and record proofs decide visibility from the follower's view of grants
    and organisations (DESIGN.md invariant 6): a view that stopped following (its polling thread stuck, its
    node unreachable) would keep showing what a revoked grant covered. A view confirmed at the node's head
    within the bound is used as it is (no chain round trip: the follower polls every 0.2 s); an older one is
    brought current with one check (:meth:`ChainFollower.ensure_current`), and if that fails the answer is
    503 naming how far behind the view is. Blocking (may call the node): call it in a worker thread."""
    follower = services.follower
    if _confirmed_within_bound(services):
        return follower
    bound = services.settings.follower_max_lag_s
    try:
        follower.ensure_current()
    except ChainError as exc:
        lag = follower.confirmed_age_s()
        head = follower.head()[0]
        when = "never" if lag is None else f"last {lag:.1f} s ago"
        raise ChainViewBehind(
            f"the chain follower's view (block {head}) was confirmed at the node's head {when}, over the bound "
            f"LEDGER_FOLLOWER_MAX_LAG_S={bound:g} s, and the node cannot be reached to catch up: {exc}",
            lag_s=lag, max_lag_s=bound, head=head,
        ) from exc  # fmt: skip
    return follower


async def current_follower(org_id: CurrentOrg, services: Services) -> ChainFollower:
    """:func:`require_current_follower` as a dependency, after authentication (an anonymous caller gets 401,
    never a hint about the chain); the common case (confirmed within the bound) costs no thread hop."""
    del org_id
    if _confirmed_within_bound(services):
        return services.follower
    return await run_in_threadpool(require_current_follower, services)


CurrentFollower = Annotated[ChainFollower, Depends(current_follower)]
"""The chain follower for an answer that reads its view, refused with 503 when it lags the node."""


_KNOWN_QUERY: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters an operation takes, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return frozenset(names)


def reject_unknown_query_parameters(request: Request) -> None:
    """422 for a query parameter the operation does not take: a misspelt filter (``?comunity=``) must not
    silently widen a listing to everything."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _KNOWN_QUERY.get(id(route))  # routes live as long as the app; APIRoute is not hashable
    if known is None:
        known = _KNOWN_QUERY[id(route)] = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise RequestValidationError(
            [{"loc": ("query", name), "msg": "unknown query parameter", "type": "extra_forbidden"} for name in unknown]
        )
