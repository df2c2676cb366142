"""Which record versions an organisation may see in listings: its own, and those an active grant
covers as the chain holds it now (scope: owner, record types, communities, or one record)."""

from __future__ import annotations

import time

from sqlalchemy import false, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import and_, col

from ledger_api.access.decision import AccessDecision, Moment, standing
from ledger_api.chain.follower import ChainFollower
from ledger_api.index.models import RecordVersion


def visible_records_filter(org_id: str, follower: ChainFollower | None = None) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = [col(RecordVersion.owner_org) == org_id]
    if follower is not None and follower.is_active(org_id):
        moment = Moment.at(int(time.time()))
        suspended = follower.suspended_organisations()
        for grant in follower.grants_for(org_id):
            if standing(grant.terms(), moment=moment, suspended=suspended) is not AccessDecision.ALLOWED:
                continue
            # The scope, as a query: the rule's scope_miss (ledger_api.access.decision) in SQL.
            spec = grant.spec
            scope: list[ColumnElement[bool]] = [col(RecordVersion.owner_org) == spec.owner_org]
            if spec.record_types:
                scope.append(col(RecordVersion.record_type).in_(spec.record_types))
            if spec.communities:
                scope.append(col(RecordVersion.community_code).in_(spec.communities))
            if spec.record_id:
                scope.append(col(RecordVersion.record_id) == spec.record_id)
            clauses.append(and_(*scope))
    elif follower is not None:
        return false()  # a suspended organisation sees nothing, not even its own records
    return or_(*clauses)
