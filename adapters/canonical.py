"""The canonical record every department export is turned into (schema version 1.0).

A record is a frozen pydantic model; its JSON form is published as JSON Schema (draft 2020-12) in
``adapters/schema/canonical-record-1.0.json`` and returned by :func:`record_json_schema`.

Identity and versions:

* ``record_id`` = :func:`derive_record_id` (key, owner, type, native id), an HMAC under a secret of the
  owner organisation (DESIGN.md, Privacy): pushing the same export twice yields the same ids, so it
  creates nothing new, and nobody without the owner's key can test a guessed native id (a resident's
  native id is an ID number) against an id seen in a blob header, manifest or listing. Only the owner's
  gateway holds the key, so it assigns the id on push: a record built without the key (``ledger import``
  on a department machine) carries ``record_id = None``. Records stored before keyed ids keep their
  unkeyed id (:func:`derive_legacy_record_id`, scheme "v1"); the gateway finds them by it.
* :meth:`CanonicalRecord.content_fingerprint` hashes the canonical JSON without ``source.file`` and
  ``source.row``: the same record re-exported in another file or at another row is not a new version;
  changed content is.

Sensitivity: ``sensitivity`` maps field paths ("subjects[].id_number", "attributes.category") to a
level. A path that is not listed is "internal". Extra columns an adapter does not know are listed as
"personal": nobody has reviewed what they hold.

Blind indexes (:func:`blind_index`) let the index find "same ID number" or "same address" across
organisations without storing either in clear; the key is passed in and never stored here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from adapters.parsing.ids import normalise_id_number as _normalise_id_number
from adapters.parsing.location import normalise_address_text

__all__ = [
    "CODE_MAX_LENGTH",
    "DEFAULT_SENSITIVITY",
    "RECORD_ID_KEY_SIZE",
    "SCHEMA_ID",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "CanonicalRecord",
    "Location",
    "RecordType",
    "Sensitivity",
    "Source",
    "Subject",
    "blind_index",
    "canonical_json",
    "derive_legacy_record_id",
    "derive_record_id",
    "normalise_address",
    "normalise_id_number",
    "record_json_schema",
    "write_json_schema",
]

SCHEMA_VERSION: Final = "1.0"
SCHEMA_ID = f"urn:community-safety-ledger:schema:canonical-record:{SCHEMA_VERSION}"
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / f"canonical-record-{SCHEMA_VERSION}.json"
#: Keyed record ids (scheme "v2"): HMAC-SHA256 under the owner's record-id key.
_RECORD_ID_DOMAIN = b"ledger/record-id/v2\x00"
#: Unkeyed record ids of records stored before keyed ids (scheme "v1"): SHA-256, guessable.
_LEGACY_RECORD_ID_DOMAIN = b"ledger/record-id/v1\x00"
#: Bytes of an organisation's record-id key (the HMAC-SHA256 block output size; RFC 2104 §3).
RECORD_ID_KEY_SIZE: Final = 32
_RECORD_ID_PATTERN: Final = r"^[0-9a-f]{64}$"
_BLIND_INDEX_DOMAIN = b"ledger/blind-index/v1\x00"
_CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

#: Codes (organisation id, community code) are at most 32 characters: VARCHAR(32) in the index, and a
#: bytes32 on chain (ledger_api.chain.encoding.code_to_bytes32).
CODE_MAX_LENGTH: Final = 32
# Printable ASCII without space (0x21-0x7E), what code_to_bytes32 accepts.
_PRINTABLE_ASCII: Final = r"^[\x21-\x7E]+$"
# No control character (Unicode Cc: C0, DEL, C1): no NUL for PostgreSQL text, no line breaks in logs.
_NO_CONTROL_CHARACTERS: Final = r"^[^\x00-\x1F\x7F-\x9F]+$"
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1F\x7F-\x9F]")


class RecordType(StrEnum):
    INCIDENT = "incident"
    KEY_PERSON = "key_person"
    ACCESS_EVENT = "access_event"
    FIRE_INSPECTION = "fire_inspection"
    RESIDENT = "resident"
    HAZARD_REPORT = "hazard_report"


class Sensitivity(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    PERSONAL = "personal"
    SENSITIVE = "sensitive"


# Paths every record type shares. ID numbers and phones are "sensitive": grants mask them unless the
# purpose needs them (DESIGN.md, Grants).
DEFAULT_SENSITIVITY: dict[str, Sensitivity] = {
    "subjects[].id_number": Sensitivity.SENSITIVE,
    "subjects[].phone": Sensitivity.SENSITIVE,
    "subjects[].name": Sensitivity.PERSONAL,
    "subjects[].birth_date": Sensitivity.PERSONAL,
    "subjects[].gender": Sensitivity.PERSONAL,
    "location.room": Sensitivity.PERSONAL,
    "location.text": Sensitivity.PERSONAL,
}

# Every field is always present in the JSON form, so the published schema lists them all as required.
_FROZEN = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)


class Source(BaseModel):
    """Where the record came from: the adapter, the native id, the file and row."""

    model_config = _FROZEN

    system: str = Field(min_length=1, description="Adapter name, e.g. police.incidents")
    native_id: str = Field(min_length=1, description="The record's id in the department system")
    file: str = Field(description="File name the record was read from")
    row: int = Field(ge=1, description="1-based row/line (or array element) in that file")


class Location(BaseModel):
    model_config = _FROZEN

    building: str | None = None
    unit: str | None = None
    room: str | None = None
    text: str | None = None


class Subject(BaseModel):
    """A person a record is about (reporter, resident, key person, inspector, ...)."""

    model_config = _FROZEN

    role: str = Field(min_length=1)
    name: str | None = None
    id_number: str | None = Field(
        default=None, pattern=r"^[0-9]{17}[0-9X]$", description="18-character GB 11643 ID number (ASCII digits)"
    )
    phone: str | None = None
    gender: Literal["male", "female"] | None = None
    birth_date: date | None = None


class CanonicalRecord(BaseModel):
    """One shared record, whatever department export it came from."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID},
        title="CanonicalRecord",
    )

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    record_id: Annotated[
        str | None,
        # One schema for "string of 64 hex digits, or null", with the pattern at the top where readers look.
        WithJsonSchema({"type": ["string", "null"], "pattern": _RECORD_ID_PATTERN}),
    ] = Field(
        default=None,
        pattern=_RECORD_ID_PATTERN,
        description="HMAC of (owner, type, native id) under the owner organisation's record-id key, assigned by "
        "the owner's gateway on push: null (or omitted) to have it assigned, else it must be the id the gateway "
        "assigns",
    )
    record_type: RecordType
    community_code: str = Field(
        min_length=1,
        max_length=CODE_MAX_LENGTH,
        pattern=_NO_CONTROL_CHARACTERS,
        description="Community code: at most 32 characters, no control characters (the index column is VARCHAR(32))",
    )
    owner_org: str = Field(
        min_length=1,
        max_length=CODE_MAX_LENGTH,
        pattern=_PRINTABLE_ASCII,
        description="Owning organisation id, from the import context: 1-32 printable ASCII characters without "
        "spaces (a bytes32 on chain)",
    )
    source: Source
    occurred_at: AwareDatetime = Field(description="ISO 8601 with offset; local time is Asia/Shanghai")
    location: Location = Field(default_factory=Location)
    subjects: tuple[Subject, ...] = ()
    attributes: dict[str, JsonValue] = Field(default_factory=dict)
    sensitivity: dict[str, Sensitivity] = Field(default_factory=dict)

    @field_validator("community_code", mode="before")
    @classmethod
    def _no_control_characters(cls, value: object) -> object:
        # The pattern enforces this too; this says which character, rather than quoting the pattern.
        if isinstance(value, str) and (found := _CONTROL_CHARACTER.search(value)):
            raise PydanticCustomError(
                "control_character",
                "must not contain control characters ({character} at position {position})",
                {"character": f"U+{ord(found.group()):04X}", "position": found.start() + 1},
            )
        return value

    @field_validator("occurred_at")
    @classmethod
    def _to_china_time(cls, value: datetime) -> datetime:
        return value.astimezone(_CHINA_TZ)

    @property
    def assigned_record_id(self) -> str:
        """The record id, for code that only handles records whose id the owner's gateway has assigned."""
        if self.record_id is None:
            raise ValueError(
                f"record {self.source.native_id!r} of {self.owner_org} has no record_id yet: "
                "the owner's gateway assigns it on push"
            )
        return self.record_id

    def to_json_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (datetimes as ISO 8601 strings with +08:00)."""
        return self.model_dump(mode="json")

    def content_fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON without source.file and source.row."""
        data = self.to_json_dict()
        source = dict(data["source"])
        source.pop("file", None)
        source.pop("row", None)
        data["source"] = source
        return hashlib.sha256(_dumps(data)).hexdigest()


def _dumps(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def canonical_json(record: CanonicalRecord) -> bytes:
    """The canonical JSON of a record: sorted keys, no whitespace, UTF-8, non-ASCII unescaped."""
    return _dumps(record.to_json_dict())


def _length_prefixed(*parts: str) -> bytes:
    # Each part as a 4-byte big-endian length and its UTF-8 bytes: unambiguous concatenation.
    chunks: list[bytes] = []
    for part in parts:
        encoded = part.encode("utf-8")
        chunks.append(len(encoded).to_bytes(4, "big"))
        chunks.append(encoded)
    return b"".join(chunks)


def _kind(record_type: RecordType | str) -> str:
    return record_type.value if isinstance(record_type, RecordType) else RecordType(record_type).value


def derive_record_id(key: bytes, owner_org: str, record_type: RecordType | str, native_id: str) -> str:
    """The record id (64 lowercase hex, a bytes32 on chain): HMAC-SHA256 under the owner's record-id key.

    Keyed (RFC 2104) because native ids can be guessed: a resident's native id is an ID number, and with a
    region code and a birth year an unkeyed hash gives it back in seconds. Domain tag and length-prefixed
    parts, so that no two different (owner, type, native id) triples share an encoding ("a|b" + "c" vs
    "a" + "b|c").
    """
    if len(key) < RECORD_ID_KEY_SIZE:
        raise ValueError(f"a record-id key has at least {RECORD_ID_KEY_SIZE} bytes, got {len(key)}")
    message = _RECORD_ID_DOMAIN + _length_prefixed(owner_org, _kind(record_type), native_id)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def derive_legacy_record_id(owner_org: str, record_type: RecordType | str, native_id: str) -> str:
    """The unkeyed id (scheme "v1") records stored before keyed ids carry: SHA-256 of the same parts.

    Anyone can compute it, so it is never assigned to a new record; the owner's gateway uses it only to find a
    record stored under it, so that re-importing an old export stays idempotent.
    """
    message = _LEGACY_RECORD_ID_DOMAIN + _length_prefixed(owner_org, _kind(record_type), native_id)
    return hashlib.sha256(message).hexdigest()


def record_json_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of the canonical record's JSON form."""
    schema = CanonicalRecord.model_json_schema(mode="serialization")
    ordered = {"$schema": schema.pop("$schema"), "$id": schema.pop("$id")}
    ordered.update(schema)
    return ordered


def write_json_schema(path: Path = SCHEMA_PATH) -> Path:
    """Write :func:`record_json_schema` to ``path`` (the committed copy by default)."""
    path.write_text(json.dumps(record_json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# ---- blind-index helpers (pure; the key is the caller's) ----


def normalise_id_number(value: str) -> str:
    """The canonical 18-character form of an ID number (GB 11643), for blind indexing.

    Raises :class:`ValueError` for invalid numbers. See :mod:`adapters.parsing.ids`.
    """
    return _normalise_id_number(value)


def normalise_address(location: Location | str) -> str:
    """A comparison form of an address.

    A location with a building and a room becomes "building-unit-room" (unit empty when unknown), so
    "10幢1单元1502室" in a police export and 楼栋 10 / 单元 1 / 房号 1502 in the registry agree.
    Otherwise the text is NFKC-folded (full-width → half-width), case-folded, with spaces and
    punctuation variants removed and building suffixes (栋, 号楼) unified.
    """
    if isinstance(location, Location):
        if location.building and location.room:
            parts = (location.building, location.unit or "", location.room)
            return "-".join(normalise_address_text(p) for p in parts)
        return normalise_address_text(location.text or "")
    return normalise_address_text(location)


def blind_index(key: bytes, kind: Literal["id_number", "address"] | str, normalised: str) -> str:
    """HMAC-SHA256 (hex) of a normalised value, domain-separated per kind ("id_number", "address")."""
    if not key:
        raise ValueError("blind index key must not be empty")
    message = _BLIND_INDEX_DOMAIN + _length_prefixed(kind, normalised)
    return hmac.new(key, message, hashlib.sha256).hexdigest()
