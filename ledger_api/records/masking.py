"""Field masking by purpose (DESIGN.md, Grants): ID numbers and phones are masked unless the purpose
needs them. The owner reading its own records sees everything."""

from __future__ import annotations

from typing import Any

from ledger_api.chain.encoding import Purpose

#: What each purpose needs to see in clear. Anything not listed is masked.
REVEALED_BY_PURPOSE: dict[Purpose, frozenset[str]] = {
    Purpose.EMERGENCY_RESPONSE: frozenset({"id_number", "phone"}),
    Purpose.INVESTIGATION: frozenset({"id_number", "phone"}),
    Purpose.ELDERLY_CARE: frozenset({"phone"}),
    Purpose.FIRE_SAFETY: frozenset({"phone"}),
    Purpose.PROPERTY_MANAGEMENT: frozenset({"phone"}),
    Purpose.COMMUNITY_GOVERNANCE: frozenset(),
    Purpose.AUDIT: frozenset(),
}
MASKABLE = ("id_number", "phone")


def mask_id_number(value: str) -> str:
    # Region (first 6) and the last 4 stay: enough to tell two people apart on a call, not to identify.
    return value[:6] + "*" * (len(value) - 10) + value[-4:] if len(value) > 10 else "*" * len(value)


def mask_phone(value: str) -> str:
    return value[:3] + "****" + value[7:] if len(value) >= 11 else "*" * len(value)


def mask_record(
    record: dict[str, Any], purpose: Purpose | None, *, reveal: frozenset[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The record with fields masked for ``purpose`` (None: the owner, nothing masked) and the masked paths.
    ``reveal``, when given, replaces the purpose's set of kinds shown in clear."""
    if purpose is None:
        return record, []
    revealed = REVEALED_BY_PURPOSE.get(purpose, frozenset()) if reveal is None else reveal
    masked: list[str] = []
    subjects = []
    for index, subject in enumerate(record.get("subjects", [])):
        subject = dict(subject)
        if subject.get("id_number") and "id_number" not in revealed:
            subject["id_number"] = mask_id_number(str(subject["id_number"]))
            masked.append(f"subjects[{index}].id_number")
        if subject.get("phone") and "phone" not in revealed:
            subject["phone"] = mask_phone(str(subject["phone"]))
            masked.append(f"subjects[{index}].phone")
        subjects.append(subject)
    return {**record, "subjects": subjects}, masked
