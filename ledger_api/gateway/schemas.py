"""Request and response bodies of the HTTP API (frozen pydantic models, published in OpenAPI)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from adapters.canonical import CanonicalRecord

_FROZEN = ConfigDict(frozen=True, extra="forbid")


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
