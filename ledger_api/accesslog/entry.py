"""One access entry: who read which record version, under which grant, checked at which block.

Leaf data (what the RFC 9162 leaf hash covers) is the canonical JSON of the entry with a format tag:
keys sorted, no whitespace, UTF-8 (not ASCII-escaped), integers as integers, booleans as booleans and
``time`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always UTC, always six fractional digits)::

    {"accessor_org":"PS-XIHU-01","checked_block":812,"emergency":false,"format":"ledger-access-entry/v1",
     "grant_id":3,"owner_org":"PM-LVCHENG-01","purpose":"investigation","record_id":"9f…","request_id":"r-1",
     "time":"2025-03-01T00:00:00.000000Z","version":1}

Every entry has exactly one encoding, and :meth:`Entry.from_leaf_data` refuses bytes that are not that
encoding, so a leaf hash names one entry and an auditor re-hashing the leaf data of a segment gets the
very leaf hashes the anchored roots commit to. Leaf hash = ``SHA-256(0x00 || leaf data)`` (RFC 9162 §2.1.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from ledger_api.accesslog.errors import InvalidEntry
from ledger_api.merkle import leaf_hash

__all__ = ["ENTRY_FORMAT", "AppendedEntry", "Entry", "format_time"]

ENTRY_FORMAT = "ledger-access-entry/v1"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_Org = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[\x21-\x7e]+$")]
"""An organisation id as the chain holds it: printable ASCII, at most 32 bytes (a bytes32)."""
_Text = Annotated[str, Field(min_length=1, max_length=128)]
_Count = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]


def format_time(moment: datetime) -> str:
    """The canonical spelling of a timezone-aware instant: UTC, microseconds, ``Z``."""
    if moment.tzinfo is None:
        raise InvalidEntry("time must be timezone-aware")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


class Entry(BaseModel):
    """An access entry (frozen). ``grant_id`` is 0 for an emergency read and for an owner reading its own
    record; every other read names the grant it relied on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    accessor_org: _Org
    record_id: _Text
    version: _Count
    owner_org: _Org
    grant_id: _Count
    """The grant the read relied on; 0 for an emergency read (which names no grant)."""
    purpose: Annotated[str, Field(min_length=1, max_length=64)]
    emergency: StrictBool
    checked_block: _Count
    """The chain block the grant check was evaluated at."""
    time: datetime
    """When the read was released (timezone-aware; kept in UTC)."""
    request_id: _Text

    @field_validator("time", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> datetime:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"time {value!r} is not ISO 8601") from None
        if not isinstance(value, datetime):
            raise ValueError("time must be a datetime or an ISO 8601 string")
        if value.tzinfo is None:
            raise ValueError("time must carry an offset (timezone-aware)")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _grant_or_emergency(self) -> Entry:
        if self.emergency and self.grant_id != 0:
            raise ValueError("an emergency read names no grant: grant_id must be 0")
        if not self.emergency and self.grant_id == 0 and self.accessor_org != self.owner_org:
            # The owner reading its own record needs no grant; anyone else names one or reads in an emergency.
            raise ValueError("a read that is not an emergency read must name its grant (grant_id > 0)")
        return self

    @classmethod
    def create(cls, **fields: Any) -> Entry:
        """Build an entry, raising :class:`InvalidEntry` (one line) instead of pydantic's error."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise InvalidEntry(_one_line(exc)) from None

    def document(self) -> dict[str, Any]:
        """The JSON document of the leaf data (format tag included)."""
        return {
            "format": ENTRY_FORMAT,
            "accessor_org": self.accessor_org,
            "record_id": self.record_id,
            "version": self.version,
            "owner_org": self.owner_org,
            "grant_id": self.grant_id,
            "purpose": self.purpose,
            "emergency": self.emergency,
            "checked_block": self.checked_block,
            "time": format_time(self.time),
            "request_id": self.request_id,
        }

    def leaf_data(self) -> bytes:
        """Canonical JSON (sorted keys, compact, UTF-8): the bytes the leaf hash covers."""
        return json.dumps(
            self.document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")

    def leaf_hash(self) -> bytes:
        """RFC 9162 leaf hash of :meth:`leaf_data`."""
        return leaf_hash(self.leaf_data())

    @classmethod
    def from_leaf_data(cls, data: bytes) -> Entry:
        """Parse leaf data; raises :class:`InvalidEntry` unless it is exactly the canonical encoding."""
        try:
            document = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise InvalidEntry("access entry leaf data is not UTF-8 JSON") from None
        if not isinstance(document, dict) or document.get("format") != ENTRY_FORMAT:
            raise InvalidEntry(f"access entry leaf data does not carry the format tag {ENTRY_FORMAT!r}")
        document = dict(document)
        del document["format"]
        entry = cls.create(**document)
        if entry.leaf_data() != bytes(data):
            raise InvalidEntry("access entry leaf data is not in canonical form")
        return entry


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    """Where an entry landed: its leaf index (= sequence number) and its RFC 9162 leaf hash."""

    index: int
    leaf_hash: bytes


def _one_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "entry"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "invalid access entry: " + "; ".join(parts)
