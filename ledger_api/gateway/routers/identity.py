"""``/v1/me``: which organisation the API key belongs to."""

from __future__ import annotations

from fastapi import APIRouter

from ledger_api.gateway.deps import CurrentOrg
from ledger_api.gateway.problems import problem_responses
from ledger_api.gateway.schemas import Identity

router = APIRouter(tags=["identity"])


@router.get(
    "/me",
    response_model=Identity,
    summary="The organisation this API key authenticates as",
    responses=problem_responses(401),
)
def me(org_id: CurrentOrg) -> Identity:
    return Identity(org_id=org_id)
