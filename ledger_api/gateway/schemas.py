"""Request and response bodies of the HTTP API (frozen pydantic models, published in OpenAPI)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

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


#: At least one character that address normalisation (``adapters.canonical.normalise_address``: NFKC, case
#: folding, spaces and punctuation removed) keeps: an ASCII or full-width letter or digit, or a CJK ideograph. An
#: address of punctuation and spaces alone has no blind index; the schema says so instead of a 422 from the handler.
ADDRESS_PATTERN = r"[0-9A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]"


def _exactly_one_of(*names: str) -> Callable[[dict[str, Any]], None]:
    """JSON Schema for "exactly one of these optional, non-null properties": ``oneOf`` of their ``required``,
    without the ``default: null`` pydantic writes, which the (non-null) property types would contradict."""

    def extra(schema: dict[str, Any]) -> None:
        schema["oneOf"] = [{"required": [name]} for name in names]
        for name in names:
            schema["properties"][name].pop("default", None)

    return extra


class BlindIndexRequest(BaseModel):
    """Exactly one of ``id_number`` and ``address`` (``oneOf`` in the published schema); neither may be null."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra=_exactly_one_of("id_number", "address"),
    )

    # `str | None` for Python, `string` for the document: an explicit null is refused (below), so a client that
    # follows the schema and the server agree on what is accepted (schemathesis found `null` accepted).
    id_number: Annotated[str | None, WithJsonSchema({"type": "string", "minLength": 1})] = Field(
        default=None, description="An 18- or 15-digit GB 11643 ID number"
    )
    address: Annotated[str | None, WithJsonSchema({"type": "string", "minLength": 1, "pattern": ADDRESS_PATTERN})] = (
        Field(default=None, description="An address as free text, with at least one letter, digit or ideograph")
    )

    @field_validator("id_number", "address", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("give a string or leave the field out, not null")
        return value

    @field_validator("address")
    @classmethod
    def _something_to_index(cls, value: str | None) -> str | None:
        if value is not None and not re.search(ADDRESS_PATTERN, value):
            raise ValueError("an address needs at least one letter, digit or ideograph")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> BlindIndexRequest:
        if (self.id_number is None) == (self.address is None):
            raise ValueError("give exactly one of id_number and address")
        return self


class BlindIndexResponse(BaseModel):
    model_config = _FROZEN

    kind: Literal["id_number", "address"]
    blind_index: str


class SubjectRecords(BaseModel):
    model_config = _FROZEN

    blind_index: str
    records: list[RecordSummary]
