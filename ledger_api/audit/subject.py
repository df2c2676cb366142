"""Subject access report: every logged read of records about one person, from an audit result.

The chain and the log never hold ID numbers, only keyed blind indexes of them (HMAC-SHA256 under the
consortium key, see :func:`adapters.canonical.blind_index`). Given the plaintext ID number and that key,
the auditor computes the same index the write path stored, with the same normalisation (GB 11643: full
width digits, separators, lower-case ``x``, 15-digit numbers upgraded to 18), and selects the record
versions and reads that carry it.

Neither the report nor its errors ever show the blind index: next to the plaintext it would let anyone
holding the log link the person to every record without the key. The ID number itself is shown masked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.canonical import blind_index, normalise_id_number
from ledger_api.audit.anomalies import local_time
from ledger_api.audit.errors import AuditError
from ledger_api.audit.model import AuditResult, VerifiedRead

__all__ = [
    "InvalidIdNumberError",
    "SubjectAccessReport",
    "SubjectRead",
    "SubjectRecord",
    "mask_id_number",
    "subject_access",
]


class InvalidIdNumberError(AuditError):
    """The ID number given for a subject access report is not a valid GB 11643 number."""


def mask_id_number(normalised: str) -> str:
    """Region code and check character kept, birth date and sequence hidden: ``330102**********1X``."""
    return normalised[:6] + "*" * (len(normalised) - 8) + normalised[-2:]


@dataclass(frozen=True, kw_only=True)
class SubjectRecord:
    record_id: str
    version: int
    owner_org: str
    record_type: str | None
    community_code: str | None
    anchored_at: datetime | None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "version": self.version,
            "owner_org": self.owner_org,
            "record_type": self.record_type,
            "community_code": self.community_code,
            "anchored_at": local_time(self.anchored_at).isoformat() if self.anchored_at else None,
        }


@dataclass(frozen=True, kw_only=True)
class SubjectRead:
    entry_index: int
    time: datetime
    """Local time (Asia/Shanghai)."""
    accessor_org: str
    accessor_kind: str | None
    purpose: str
    grant_id: int
    emergency: bool
    record_id: str
    version: int
    record_type: str | None
    owner_org: str
    covered: bool
    basis: str
    request_id: str

    @classmethod
    def of(cls, read: VerifiedRead) -> SubjectRead:
        return cls(
            entry_index=read.entry_index, time=local_time(read.time), accessor_org=read.accessor_org,
            accessor_kind=read.accessor_kind, purpose=read.purpose, grant_id=read.grant_id,
            emergency=read.emergency, record_id=read.record_id, version=read.version,
            record_type=read.record_type, owner_org=read.owner_org, covered=read.covered, basis=read.basis,
            request_id=read.request_id,
        )  # fmt: skip

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "entry_index": self.entry_index,
            "time": self.time.isoformat(),
            "accessor_org": self.accessor_org,
            "accessor_kind": self.accessor_kind,
            "purpose": self.purpose,
            "grant_id": self.grant_id,
            "emergency": self.emergency,
            "record_id": self.record_id,
            "version": self.version,
            "record_type": self.record_type,
            "owner_org": self.owner_org,
            "covered": self.covered,
            "basis": self.basis,
            "request_id": self.request_id,
        }


@dataclass(frozen=True, kw_only=True)
class SubjectAccessReport:
    id_number_masked: str
    source: str
    chain_id: int
    checkpoint_block: int
    audit_ok: bool
    """False when the audit found discrepancies: the list below may then be incomplete."""
    records: tuple[SubjectRecord, ...]
    reads: tuple[SubjectRead, ...]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": "ledger-subject-access/1",
            "id_number": self.id_number_masked,
            "source": self.source,
            "chain_id": self.chain_id,
            "checkpoint_block": self.checkpoint_block,
            "audit_ok": self.audit_ok,
            "records": [record.to_json_dict() for record in self.records],
            "reads": [read.to_json_dict() for read in self.reads],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), ensure_ascii=False, indent=2) + "\n"

    def to_text(self) -> str:
        lines = [
            f"Subject {self.id_number_masked}: {len(self.records)} record versions, {len(self.reads)} reads "
            f"(chain {self.chain_id}, block {self.checkpoint_block}; times Asia/Shanghai)"
        ]
        for read in self.reads:
            flags = (" EMERGENCY" if read.emergency else "") + ("" if read.covered else " NOT COVERED")
            lines.append(
                f"  {read.time:%Y-%m-%d %H:%M:%S}  {read.accessor_org} read {read.record_type or 'record'} "
                f"{read.record_id} v{read.version} of {read.owner_org} for {read.purpose} under grant "
                f"{read.grant_id}{flags} (log entry #{read.entry_index})"
            )
        if not self.reads:
            lines.append("  no read of a record about this person is logged")
        return "\n".join(lines)


def subject_access(result: AuditResult, *, id_number: str, consortium_key: bytes) -> SubjectAccessReport:
    """Every read in ``result`` of a record version about the person with ``id_number``, by time."""
    try:
        normalised = normalise_id_number(id_number)
    except ValueError as exc:
        # The message explains the shape or check digit; it never repeats the number itself.
        raise InvalidIdNumberError(f"invalid ID number: {exc}") from exc
    if not consortium_key:
        raise AuditError("the consortium key is empty")
    index = blind_index(consortium_key, "id_number", normalised)
    versions = {(r.record_id, r.version) for r in result.records if index in r.subjects}
    records = sorted(
        (r for r in result.records if (r.record_id, r.version) in versions), key=lambda r: (r.record_id, r.version)
    )
    reads = sorted(
        (read for read in result.reads if index in read.subjects or (read.record_id, read.version) in versions),
        key=lambda read: (local_time(read.time), read.entry_index),
    )
    return SubjectAccessReport(
        id_number_masked=mask_id_number(normalised),
        source=result.source,
        chain_id=result.chain_id,
        checkpoint_block=result.checkpoint_block,
        audit_ok=result.ok,
        records=tuple(
            SubjectRecord(
                record_id=r.record_id,
                version=r.version,
                owner_org=r.owner_org,
                record_type=r.record_type,
                community_code=r.community_code,
                anchored_at=r.anchored_at,
            )
            for r in records
        ),
        reads=tuple(SubjectRead.of(read) for read in reads),
    )
