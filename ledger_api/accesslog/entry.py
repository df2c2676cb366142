"""One access entry: who read which record version, under which grant, checked at which block.

Leaf data (what the RFC 9162 leaf hash covers) is the canonical JSON of the entry with a format tag:
keys sorted, no whitespace, UTF-8 (not ASCII-escaped), integers as integers, booleans as booleans and
``time`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always UTC, always six fractional digits)::

    {"accessor_org":"PS-XIHU-01","checked_block":812,"emergency":false,"format":"ledger-access-entry/v1",
     "grant_id":3,"owner_org":"PM-LVCHENG-01","purpose":"investigation","record_id":"9f…","request_id":"r-1",
     "time":"2025-03-01T00:00:00.000000Z","version":1}

Format v2 (``ledger-access-entry/v2``, written since refusals and bounded break-glass reads are logged)
holds the v1 keys and always these, ``null`` where they do not apply:

* ``kind``: ``read`` (a release) or ``refusal`` (an attempt that was refused: who asked, for which
  record id *as requested* (which may name no record), the grant presented (0: none), the purpose, and
  ``refusal``, why: ``not_found``, ``no_grant``, a grant decision such as ``EXPIRED``,
  ``emergency_outside_communities``, …; ``owner_org`` is empty when no such record is known);
* ``revealed``: the identifier kinds a break-glass read gave in clear (sorted; else ``null``);
* ``reason_class``, ``reason``, ``incident_ref``: what a break-glass (emergency) read or attempt stated.

v1 entries stay valid and keep their v1 encoding (so logs written before verify as they did); a v1 entry
is always a read.

Every entry has exactly one encoding, and :meth:`Entry.from_leaf_data` refuses bytes that are not that
encoding, so a leaf hash names one entry and an auditor re-hashing the leaf data of a segment gets the
very leaf hashes the anchored roots commit to. Leaf hash = ``SHA-256(0x00 || leaf data)`` (RFC 9162 §2.1.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

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

__all__ = ["ENTRY_FORMAT", "ENTRY_FORMATS", "ENTRY_FORMAT_V1", "AppendedEntry", "Entry", "format_time"]

ENTRY_FORMAT = "ledger-access-entry/v2"
ENTRY_FORMAT_V1 = "ledger-access-entry/v1"
#: Format tag -> the entry's ``format_version``.
ENTRY_FORMATS = {ENTRY_FORMAT_V1: 1, ENTRY_FORMAT: 2}
_V2_KEYS = ("kind", "refusal", "revealed", "reason_class", "reason", "incident_ref")
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

    format_version: Literal[1, 2] = 2
    """1 for an entry written before refusals were logged (its leaf data keeps the v1 encoding)."""
    kind: Literal["read", "refusal"] = "read"
    accessor_org: _Org
    record_id: _Text
    """The record read; for a refusal, the record id as requested (it may name no record)."""
    version: _Count
    """The version read; for a refusal, the version requested (0: the newest)."""
    owner_org: Annotated[str, Field(max_length=32, pattern=r"^[\x21-\x7e]*$")]
    """The record's owner; empty only in a refusal of a record the gateway does not know."""
    grant_id: _Count
    """The grant the read relied on; 0 for an emergency read (which names no grant)."""
    purpose: Annotated[str, Field(min_length=1, max_length=64)]
    emergency: StrictBool
    checked_block: _Count
    """The chain block the grant check was evaluated at."""
    time: datetime
    """When the read was released (timezone-aware; kept in UTC)."""
    request_id: _Text
    refusal: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """Why the attempt was refused (refusals only)."""
    revealed: tuple[str, ...] | None = None
    """Identifier kinds a break-glass read showed in clear, sorted (an auditor holds one that does not
    state it to have shown everything); ``null`` for other reads (their purpose decides) and refusals."""
    reason_class: Annotated[str, Field(max_length=64)] | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None
    incident_ref: Annotated[str, Field(max_length=64)] | None = None
    """What a break-glass read (or attempt) stated; the auditor names one without them."""

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
        if not self.emergency and (self.reason_class, self.reason, self.incident_ref) != (None, None, None):
            raise ValueError("only an emergency read (or attempt) states a reason class, reason and incident")
        if self.format_version == 1 and (
            self.kind != "read" or any(getattr(self, k) is not None for k in _V2_KEYS[1:])
        ):
            raise ValueError(f"a {ENTRY_FORMAT_V1} entry is a read and has none of {', '.join(_V2_KEYS)}")
        if self.kind == "refusal":
            if self.refusal is None or self.revealed is not None:
                raise ValueError("a refusal says why it was refused (refusal) and reveals nothing (revealed null)")
            return self
        if self.refusal is not None or not self.owner_org:
            raise ValueError("a read names the record's owner and no refusal")
        if self.revealed is not None and list(self.revealed) != sorted(set(self.revealed)):
            raise ValueError("revealed lists identifier kinds sorted and unique")
        if not self.emergency and self.grant_id == 0 and self.accessor_org != self.owner_org:
            # The owner reading its own record needs no grant; anyone else names one or reads in an emergency.
            raise ValueError("a read that is not an emergency read must name its grant (grant_id > 0)")
        return self

    @property
    def is_refusal(self) -> bool:
        return self.kind == "refusal"

    @classmethod
    def create(cls, **fields: Any) -> Entry:
        """Build an entry, raising :class:`InvalidEntry` (one line) instead of pydantic's error."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise InvalidEntry(_one_line(exc)) from None

    def document(self) -> dict[str, Any]:
        """The JSON document of the leaf data (format tag included)."""
        document: dict[str, Any] = {
            "format": ENTRY_FORMAT if self.format_version == 2 else ENTRY_FORMAT_V1,
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
        if self.format_version == 2:
            document.update({key: getattr(self, key) for key in _V2_KEYS})
            if self.revealed is not None:
                document["revealed"] = list(self.revealed)
        return document

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
        entry = cls.from_document(document)
        if entry.leaf_data() != bytes(data):
            raise InvalidEntry("access entry leaf data is not in canonical form")
        return entry

    @classmethod
    def from_document(cls, document: object) -> Entry:
        """The entry of a parsed leaf-data document (a v1 one must hold none of the v2 keys)."""
        version = ENTRY_FORMATS.get(document.get("format")) if isinstance(document, dict) else None  # type: ignore[arg-type]
        if not isinstance(document, dict) or version is None:
            raise InvalidEntry(f"access entry leaf data does not carry a format tag of {sorted(ENTRY_FORMATS)}")
        fields = dict(document)
        del fields["format"]
        if "format_version" in fields:
            raise InvalidEntry("access entry leaf data names its format only in its format tag")
        if version == 1 and set(fields) & set(_V2_KEYS):
            raise InvalidEntry(f"a {ENTRY_FORMAT_V1} entry holds v2 keys {sorted(set(fields) & set(_V2_KEYS))}")
        if version == 2 and not set(_V2_KEYS) <= set(fields):
            raise InvalidEntry(f"a {ENTRY_FORMAT} entry lacks {sorted(set(_V2_KEYS) - set(fields))}")
        return cls.create(format_version=version, **fields)


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
