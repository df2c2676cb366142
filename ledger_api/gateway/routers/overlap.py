"""``/v1/overlap``: people and flats several organisations hold, counted from the index's blind indexes.

* ``GET /v1/overlap`` (organisations of kind auditor or admin, as the chain holds them now; 403 for any
  other): for each pair of organisations and each kind of link, how many subjects each holds and how many
  both hold, per community and in total.
* ``GET /v1/overlap/mine`` (any organisation in good standing): of its own subjects, the share each other
  organisation already holds, and which of the grants in force today from that organisation cover them:
  the grants it could use, or ask for, instead of collecting the same people and flats again.

Both count with :mod:`ledger_api.audit.overlap` (the auditor's ``ledger audit overlap`` counts the same
way from the manifests): counts only, small cells suppressed (``LEDGER_OVERLAP_MIN_CELL``), nothing per
subject. Only anchored, not erased record versions count, as for the auditor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlmodel import Session, col
from starlette.concurrency import run_in_threadpool

from ledger_api.access.decision import AccessDecision, AccessRequest, Moment, scope_miss, standing
from ledger_api.audit.overlap import Link, count_overlap, department_overlap, overlap_report
from ledger_api.chain.encoding import OrganisationKind
from ledger_api.chain.follower import ChainFollower
from ledger_api.gateway.deps import CurrentFollower, CurrentOrg, Services
from ledger_api.gateway.problems import Forbidden, problem_responses
from ledger_api.gateway.routers.records import refuse_if_suspended
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import AnchorBatch, RecordVersion, SubjectLink

router = APIRouter(tags=["overlap"])
_FROZEN = ConfigDict(frozen=True, extra="forbid")
#: Kinds that see the whole matrix (every organisation's counts), not only their own share.
MATRIX_KINDS = frozenset({OrganisationKind.AUDITOR, OrganisationKind.ADMIN})


class CountCell(BaseModel):
    model_config = _FROZEN

    count: int | None
    """None when suppressed: the true number is never sent."""
    suppressed: bool
    reason: Literal["small", "complementary"] | None = None
    """``small``: under the threshold; ``complementary``: hidden so that a small one cannot be recovered."""
    shown_as: str | None = None


class ShareCell(BaseModel):
    model_config = _FROZEN

    pct: float | None
    suppressed: bool


class Holding(BaseModel):
    model_config = _FROZEN

    org_id: str
    kind: str
    community: str | None
    """None: all communities."""
    subjects: CountCell


class PairOverlap(BaseModel):
    model_config = _FROZEN

    org_a: str
    org_b: str
    kind: str
    community: str | None
    a_subjects: CountCell
    b_subjects: CountCell
    both: CountCell
    share_of_a: ShareCell
    share_of_b: ShareCell


class OverlapMatrix(BaseModel):
    model_config = _FROZEN

    format: str
    min_cell: int
    kinds: list[str]
    organisations: list[str]
    communities: list[str]
    holdings: list[Holding]
    pairs: list[PairOverlap]


class OtherHolder(BaseModel):
    model_config = _FROZEN

    org_id: str
    kind: str
    held: CountCell
    share_of_mine: ShareCell
    covered_by_grants: CountCell
    not_covered: CountCell
    grants: list[int]
    """Grants from this organisation to the caller, in force now, that cover any of them."""
    covered_today: bool


class GrantToAskFor(BaseModel):
    model_config = _FROZEN

    owner_org: str
    kinds: list[str]
    communities: list[str]


class MyOverlap(BaseModel):
    model_config = _FROZEN

    format: str
    org_id: str
    min_cell: int
    subjects: dict[str, int]
    """The caller's own distinct subjects per kind."""
    others: list[OtherHolder]
    ask_for: list[GrantToAskFor]


@router.get(
    "/overlap",
    response_model=OverlapMatrix,
    summary="People and flats several organisations hold (auditors and admins): counts, small cells suppressed",
    responses=problem_responses(
        401, 403, 422, descriptions={403: "Only auditor and admin organisations see the matrix"}
    ),
)
async def overlap_matrix(org_id: CurrentOrg, services: Services) -> OverlapMatrix:
    return await run_in_threadpool(_matrix, services, org_id)


@router.get(
    "/overlap/mine",
    response_model=MyOverlap,
    summary="Of the caller's people and flats, the share others hold, and the grants that cover them",
    responses=problem_responses(401, 403, 422, 503, descriptions={403: "The organisation is suspended on chain"}),
)
async def my_overlap(org_id: CurrentOrg, services: Services, follower: CurrentFollower) -> MyOverlap:
    return await run_in_threadpool(_mine, services, org_id, follower)


def _matrix(services: GatewayServices, org_id: str) -> OverlapMatrix:
    view = services.follower.organisation(org_id)
    if view is None or view.suspended or view.kind not in MATRIX_KINDS:
        raise Forbidden(f"organisation {org_id} may see its own overlap (GET /v1/overlap/mine), not the matrix")
    links = (link for link, _record, _type in _indexed_links(services))
    shown = overlap_report(count_overlap(links), min_cell=services.settings.overlap_min_cell)
    return OverlapMatrix.model_validate(shown.to_json_dict())


def _mine(services: GatewayServices, org_id: str, follower: ChainFollower) -> MyOverlap:
    refuse_if_suspended(services, org_id)
    rows = list(_indexed_links(services))
    moment = Moment.at(int(time.time()))
    suspended = follower.suspended_organisations()
    grants = [
        grant
        for grant in follower.grants_for(org_id)
        if standing(grant.terms(), moment=moment, suspended=suspended) is AccessDecision.ALLOWED
    ]
    covered: list[tuple[int, Link]] = []
    for link, record_id, record_type in rows:
        owner, community = link[0], link[1]
        for grant in grants:
            terms = grant.terms()
            if terms.owner_org != owner:
                continue
            request = AccessRequest(grantee_org=org_id, owner_org=owner, record_id=record_id, record_type=record_type,
                                    community_code=community, purpose=terms.purpose)  # fmt: skip
            if scope_miss(terms, request) is None:  # the one access rule's scope check
                covered.append((grant.grant_id, link))
    shown = department_overlap(
        (link for link, _r, _t in rows), org_id=org_id, covered=covered, min_cell=services.settings.overlap_min_cell
    )
    return MyOverlap.model_validate(shown.to_json_dict())


def _indexed_links(services: GatewayServices) -> Iterator[tuple[Link, str, str]]:
    """Every (link, record id, record type) of an anchored, not erased record version, once."""
    query = (
        select(
            col(RecordVersion.owner_org), col(RecordVersion.community_code), col(SubjectLink.kind),
            col(SubjectLink.blind_index), col(RecordVersion.record_id), col(RecordVersion.record_type),
        )
        .join(SubjectLink, col(SubjectLink.record_id) == col(RecordVersion.record_id))
        .join(AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id))
        .where(col(AnchorBatch.state) == "anchored", col(RecordVersion.shredded_at).is_(None))
        .distinct()
    )  # fmt: skip
    with Session(services.engine) as session:
        for owner, community, kind, index, record_id, record_type in session.execute(query):
            yield (owner, community, kind, index), record_id, record_type
