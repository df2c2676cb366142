"""Request and response bodies of the HTTP API (frozen pydantic models, published in OpenAPI)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from adapters.canonical import CanonicalRecord

_FROZEN = ConfigDict(frozen=True, extra="forbid")

#: The file name of an uploaded export when the request names none (``/v1/import?file_name=``).
UPLOAD_FILE_NAME = "upload"


class PushBatch(BaseModel):
    model_config = _FROZEN

    records: list[CanonicalRecord] = Field(min_length=1, description="Canonical records (schema 1.0)")


class PushedRecord(BaseModel):
    model_config = _FROZEN

    record_id: str
    version: int
    status: Literal["created", "new_version", "unchanged"]


class PushResponse(BaseModel):
    model_config = _FROZEN

    accepted: int = Field(description="Records in the request")
    stored: int = Field(description="New versions stored (created or changed)")
    records: list[PushedRecord]


class RecordStatus(BaseModel):
    model_config = _FROZEN

    record_id: str
    version: int
    state: Literal["pending", "anchored"]
    ciphertext_hash: str
    commitment: str
    batch_root: str | None = None
    leaf_index: int | None = None
    batch_size: int | None = None
    transaction: str | None = None
    block_number: int | None = None


class Health(BaseModel):
    model_config = _FROZEN

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


class Identity(BaseModel):
    model_config = _FROZEN

    org_id: str = Field(description="The organisation the API key belongs to")


class BadRowReport(BaseModel):
    model_config = _FROZEN

    row: int
    native_id: str | None
    reason: str
    field: str | None = None


class ImportReport(BaseModel):
    """What became of an uploaded export file (``adapters.ImportReport.to_json_dict``)."""

    model_config = _FROZEN

    file: str
    adapter: str
    rows: int
    valid: int
    duplicates: list[str] = Field(description="Native ids seen more than once in the file")
    bad: list[BadRowReport] = Field(description="Every row that did not become a record, and why")


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error answer (``application/problem+json``)."""

    model_config = _FROZEN

    type: str = Field(description="URI of the problem type")
    title: str
    status: int
    detail: str
    instance: str = Field(description="The request path")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="One entry per offending field (record index and field, or parameter location)"
    )


class RecordSummary(BaseModel):
    """Metadata of a record version the caller may see; never its content."""

    model_config = _FROZEN

    record_id: str
    version: int
    owner_org: str
    record_type: str
    community_code: str
    occurred_at: str
    state: Literal["pending", "anchored"]


class BlindIndexRequest(BaseModel):
    model_config = _FROZEN

    id_number: str | None = Field(default=None, description="An 18- or 15-digit GB 11643 ID number")
    address: str | None = Field(default=None, description="An address as free text")


class BlindIndexResponse(BaseModel):
    model_config = _FROZEN

    kind: Literal["id_number", "address"]
    blind_index: str


class SubjectRecords(BaseModel):
    model_config = _FROZEN

    blind_index: str
    records: list[RecordSummary]
