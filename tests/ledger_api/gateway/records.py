"""Canonical records for gateway tests, made by the real adapters from the shared samples."""

from __future__ import annotations

from pathlib import Path

from adapters import ImportContext, import_file
from adapters.canonical import CanonicalRecord
from ledger_api.crypto.keystore import demo_record_id_key
from tests.conftest import SHARED_DIR

SAMPLES = {
    "police.incidents": "police/incidents_2025Q1.csv",
    "property.access_events": "property/access_events.jsonl",
    "committee.hazard_reports": "committee/hazard_reports.json",
}


def sample_records(adapter: str, owner_org: str, *, limit: int | None = None) -> list[CanonicalRecord]:
    records: list[CanonicalRecord] = []
    path = Path(SHARED_DIR / "samples" / SAMPLES[adapter])
    # The provisioned organisations' record-id keys are the demo's published ones, so the ids the gateway
    # assigns are known here in advance (a department machine would leave them out and read them back).
    context = ImportContext(
        owner_org=owner_org, community_code="330102001", record_id_key=demo_record_id_key(owner_org)
    )
    import_file(path, adapter, context=context, sink=records.extend)
    return records[:limit] if limit else records


def payload(records: list[CanonicalRecord]) -> dict[str, object]:
    return {"records": [r.to_json_dict() for r in records]}


#: What a break-glass read (emergency, no grant) must state; this class shows ID numbers and phones in clear.
BREAK_GLASS = {
    "purpose": "emergency_response",
    "reason_class": "life_threat",
    "reason": "caller reports a person unconscious at this address",
    "incident_ref": "110-TEST-0001",
}


def in_community(records: list[CanonicalRecord], community_code: str = "330102001") -> list[CanonicalRecord]:
    """The records moved to ``community_code`` (the samples' hazard reports and access events lie in
    communities no demo police organisation serves, beyond the reach of its break-glass reads)."""
    return [r.model_copy(update={"community_code": community_code}) for r in records]
