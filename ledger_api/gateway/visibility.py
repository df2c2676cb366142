"""Which record versions an organisation may see in listings.

For now an organisation sees its own records; grants (``GrantRegistry``, as the chain holds them)
extend this in the read path.
"""

from __future__ import annotations

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from ledger_api.index.models import RecordVersion


def visible_records_filter(org_id: str) -> ColumnElement[bool]:
    return col(RecordVersion.owner_org) == org_id
