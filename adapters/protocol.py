"""The adapter contract.

An adapter turns one department export format into canonical records. ``parse`` streams: it yields
one :class:`ParsedRow` or :class:`BadRow` per data row, in file order, without holding the file in
memory (CSV and JSON Lines in constant memory; XLSX through openpyxl's read-only mode; JSON arrays
through ijson).

Row numbers ("row") are what a person opening the file sees:

* CSV: the physical line on which the record starts (line 1 = first line of the file, so the header
  is usually line 1 and the first record line 2; title rows and blank lines are counted);
* XLSX: the Excel row number;
* JSON Lines: the physical line number;
* JSON array, or the array inside an object: the 1-based index of the element in the array.

Blank rows/lines are skipped: they are not data rows and yield nothing, but numbering stays true to
the file. Every other row yields exactly one item, so nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import BinaryIO, ClassVar, Protocol, runtime_checkable

from adapters.canonical import CanonicalRecord, RecordType
from adapters.limits import InputLimits

__all__ = ["Adapter", "BadRow", "ImportContext", "ParsedRow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportContext:
    """What the importer knows that the file does not.

    * ``owner_org`` — the owning organisation id (never read from the file);
    * ``community_code`` — the default community, used when a row names none;
    * ``community_codes`` — community name → code (e.g. {"清河社区": "330106001001"}), for exports
      that only carry the community's name;
    * ``file_name`` — the source file name recorded in ``source.file`` (default: the path's name);
    * ``as_of`` — the time a snapshot export (the resident registry) describes; used as
      ``occurred_at`` when the file has no time column. Without it such files are refused rather
      than stamped with the import time, which would make every re-import a new version;
    * ``limits`` — what one file may cost to parse (:class:`~adapters.limits.InputLimits`);
    * ``record_id_key`` — the owner's record-id key, when the importer holds it (the owner's gateway):
      records then carry their keyed id (:func:`~adapters.canonical.derive_record_id`). Without it
      (a department machine) ``record_id`` is ``None`` and the owner's gateway assigns it on push.
    """

    owner_org: str
    community_code: str
    community_codes: Mapping[str, str] = field(default_factory=dict, hash=False)
    file_name: str | None = None
    as_of: datetime | None = None
    limits: InputLimits = field(default_factory=InputLimits)
    record_id_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.owner_org:
            raise ValueError("owner_org must not be empty")
        if not self.community_code:
            raise ValueError("community_code must not be empty")
        if self.as_of is not None and self.as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        object.__setattr__(self, "community_codes", MappingProxyType(dict(self.community_codes)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedRow:
    """A valid row and the record built from it."""

    row: int
    native_id: str
    record: CanonicalRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class BadRow:
    """A row that could not become a record, and why. ``field`` names the offending column."""

    row: int
    native_id: str | None
    reason: str
    field: str | None = None

    def to_json_dict(self) -> dict[str, object]:
        return {"row": self.row, "native_id": self.native_id, "reason": self.reason, "field": self.field}


@runtime_checkable
class Adapter(Protocol):
    """One department export format. Register it in the ``ledger.adapters`` entry-point group."""

    name: ClassVar[str]
    record_type: ClassVar[RecordType]
    department: ClassVar[str]
    description: ClassVar[str]

    def parse(self, stream: BinaryIO, *, file_name: str, context: ImportContext) -> Iterator[ParsedRow | BadRow]:
        """Stream the file's rows as parsed records or bad rows (see the module docstring)."""
        ...
