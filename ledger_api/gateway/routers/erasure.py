"""``DELETE /v1/records/{id}``: the owner erases a record by crypto-shredding (see ``ledger_api.records.erasure``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from ledger_api.gateway.deps import CurrentOrg, Services
from ledger_api.gateway.problems import problem_responses
from ledger_api.gateway.routers.records import refuse_if_suspended
from ledger_api.gateway.services import GatewayServices
from ledger_api.records.erasure import ErasureReceipt, ErasureService

router = APIRouter(tags=["records"])
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ErasedVersionOut(BaseModel):
    model_config = _FROZEN

    version: int
    ciphertext_hash: str
    """The anchored hash of the original blob; the blob itself is deleted, the anchor stays on chain."""
    shredded_blob_key: str
    """Storage key of what remains: the ciphertext with no wrapped key, which no one can open."""
    erased_at: str


class ErasureOut(BaseModel):
    model_config = _FROZEN

    record_id: str
    owner_org: str
    versions: list[ErasedVersionOut]
    newly_erased: int
    """Versions shredded by this call; 0 when the record had been erased before (the call is idempotent)."""


def erasure_service(request: Request, services: GatewayServices) -> ErasureService:
    """One service per application (its constructor makes sure the ``erasures`` table exists)."""
    existing = getattr(request.app.state, "erasures", None)
    if isinstance(existing, ErasureService):
        return existing
    created = ErasureService(
        engine=services.engine, blobs=services.blobs, staging_grace_s=services.settings.staging_grace_s
    )
    request.app.state.erasures = created
    return created


@router.delete(
    "/records/{record_id}",
    response_model=ErasureOut,
    summary="Erase a record (its owner only): every version's wrapped keys are destroyed; anchors stay",
    description="Crypto-shredding: each version's blob is replaced by the same ciphertext without any wrapped "
    "data key and the original blob is deleted, so no one can open it any more; reads answer 410. Status and "
    "proofs keep the anchored hashes; the chain is untouched. Idempotent: erasing again answers 200 with the "
    "same versions and `newly_erased` 0. Any organisation but the owner gets 404, as for a missing record. "
    "A suspended organisation erases nothing (403): suspension freezes what it holds, as evidence.",
    responses=problem_responses(
        401,
        403,
        404,
        422,
        descriptions={403: "The organisation is suspended on chain", 404: "No such record owned by the caller"},
    ),
)
async def erase_record(
    request: Request,
    record_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    org_id: CurrentOrg,
    services: Services,
) -> ErasureOut:
    def owner_in_good_standing() -> None:
        # At the chain head, not the follower's last poll: a suspension mined a moment ago must already hold.
        services.follower.ensure_current()
        refuse_if_suspended(services, org_id)

    service = erasure_service(request, services)
    receipt: ErasureReceipt = await run_in_threadpool(
        service.erase, caller=org_id, record_id=record_id, owner_may_erase=owner_in_good_standing
    )
    services.reader.forget_keys(record_id)  # no cached data key may outlive the shredded wraps
    return ErasureOut(
        record_id=receipt.record_id,
        owner_org=receipt.owner_org,
        versions=[
            ErasedVersionOut(
                version=v.version,
                ciphertext_hash=v.original_blob_key,
                shredded_blob_key=v.shredded_blob_key,
                erased_at=v.erased_at.isoformat(),
            )
            for v in receipt.versions
        ],
        newly_erased=receipt.newly_erased,
    )
