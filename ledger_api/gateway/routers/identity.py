"""``/v1/me``: which organisation the API key belongs to."""

from __future__ import annotations

from fastapi import APIRouter

from ledger_api.gateway.deps import CurrentOrg

router = APIRouter(tags=["identity"])


@router.get("/me", summary="The organisation this API key authenticates as")
def me(org_id: CurrentOrg) -> dict[str, str]:
    return {"org_id": org_id}
