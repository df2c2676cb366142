"""Shared machinery of the department adapters (written once, used by all six).

An adapter subclasses :class:`TabularAdapter` (CSV/XLSX) or :class:`JsonAdapter` (JSON array, object
holding an array, JSON Lines), declares its :class:`~adapters.parsing.fields.FieldSet`, and implements
:meth:`AdapterBase.build`, which reads one row through a :class:`RowReader` and returns the record
(or raises :class:`RowValidationError`). Iteration, header detection, bad-row reporting, extra columns
and the record envelope (id, source, owner, sensitivity) live here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, islice
from typing import BinaryIO, ClassVar, Literal

from pydantic import JsonValue, ValidationError

from adapters.canonical import (
    DEFAULT_SENSITIVITY,
    CanonicalRecord,
    Location,
    RecordType,
    Sensitivity,
    Subject,
    derive_record_id,
)
from adapters.errors import MissingColumnsError, RowValidationError
from adapters.parsing.encoding import has_undecodable
from adapters.parsing.fields import FieldSet, HeaderMatch, RowReader
from adapters.parsing.jsonstream import ARRAY_KEYS, JsonItem, iter_json_array, iter_jsonl
from adapters.parsing.tabular import (
    HEADER_SCAN_ROWS,
    LocatedHeader,
    SourceRow,
    is_blank_row,
    iter_csv_rows,
    locate_header,
    open_xlsx_sheets,
    require_header,
)
from adapters.parsing.text import nfkc
from adapters.protocol import BadRow, ImportContext, ParsedRow

__all__ = ["AdapterBase", "JsonAdapter", "RowMeta", "TabularAdapter"]

_JSON_PAIR = re.compile(r'"([^"\\]{1,100})"\s*:\s*"([^"\\]{1,200})"')


@dataclass(frozen=True, slots=True, kw_only=True)
class RowMeta:
    """Where a row sits: handed to :meth:`AdapterBase.build`."""

    row: int
    native_id: str
    file_name: str
    context: ImportContext


_NO_LOCATION = Location()


class AdapterBase:
    """Common part of every adapter; subclasses set the class attributes and implement ``build``."""

    name: ClassVar[str]
    record_type: ClassVar[RecordType]
    department: ClassVar[str]
    description: ClassVar[str]
    fields: ClassVar[FieldSet]
    native_id_key: ClassVar[str] = "native_id"
    # The reference export this adapter was built against, relative to shared/samples/. The shared
    # conformance suite runs every registered adapter on its sample, so a new adapter must name one.
    sample_file: ClassVar[str | None] = None
    # Sensitivity of this type's paths, on top of DEFAULT_SENSITIVITY.
    sensitivity: ClassVar[Mapping[str, Sensitivity]] = {}
    _merged_sensitivity: ClassVar[Mapping[str, Sensitivity] | None] = None  # per-class cache

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # ---- hooks -----------------------------------------------------------------------------

    def raw_native_id(self, row: RowReader) -> str | None:
        """The native id as written (reported on bad rows)."""
        value = row.code(self.native_id_key)
        return None if value is None or has_undecodable(value) else value

    def native_id(self, row: RowReader) -> str:
        """The native id records are keyed by (default: the NFKC-folded value as written)."""
        value = row.code(self.native_id_key, required=True)
        assert value is not None  # required=True raised otherwise
        return value

    def build(self, row: RowReader, meta: RowMeta) -> CanonicalRecord:
        raise NotImplementedError

    # ---- helpers for build() ---------------------------------------------------------------

    @staticmethod
    def community(*, code: str | None, name: str | None, context: ImportContext) -> str:
        """The row's community code: as written, else looked up by name, else the context default."""
        if code:
            return code
        if name:
            codes = context.community_codes
            found = codes.get(name) or codes.get(nfkc(name))
            if found:
                return found
        return context.community_code

    def make_record(
        self,
        meta: RowMeta,
        *,
        occurred_at: datetime,
        community_code: str,
        location: Location | None = None,
        subjects: Iterable[Subject] = (),
        attributes: Mapping[str, JsonValue] | None = None,
        extras: Mapping[str, JsonValue] | None = None,
    ) -> CanonicalRecord:
        """The record envelope: id, source, owner and sensitivity; ``None`` attributes are left out.

        ``extras`` (columns the adapter does not know) are kept under their own names and marked
        "personal" until someone reviews them.
        """
        attrs: dict[str, JsonValue] = {k: v for k, v in (attributes or {}).items() if v is not None}
        sensitivity = self._base_sensitivity()
        if extras:
            sensitivity = dict(sensitivity)
            for name, value in extras.items():
                key = name if name not in attrs else f"{name} (extra)"
                attrs[key] = value
                sensitivity[f"attributes.{key}"] = Sensitivity.PERSONAL
        owner = meta.context.owner_org
        record_id_key = meta.context.record_id_key
        # One validation pass over plain data is cheaper than building each sub-model separately.
        return CanonicalRecord.model_validate(
            {
                "record_id": derive_record_id(record_id_key, owner, self.record_type, meta.native_id)
                if record_id_key
                else None,
                "record_type": self.record_type,
                "community_code": community_code,
                "owner_org": owner,
                "source": {"system": self.name, "native_id": meta.native_id, "file": meta.file_name, "row": meta.row},
                "occurred_at": occurred_at,
                "location": location or _NO_LOCATION,
                "subjects": tuple(subjects),
                "attributes": attrs,
                "sensitivity": sensitivity,
            }
        )

    @classmethod
    def _base_sensitivity(cls) -> Mapping[str, Sensitivity]:
        merged = cls.__dict__.get("_merged_sensitivity")
        if merged is None:
            merged = {**DEFAULT_SENSITIVITY, **cls.sensitivity}
            cls._merged_sensitivity = merged
        return merged

    # ---- row → item ------------------------------------------------------------------------

    def _emit(
        self, number: int, reader: RowReader, *, file_name: str, context: ImportContext, problem: str | None
    ) -> ParsedRow | BadRow:
        raw: str | None = None
        try:
            raw = self.raw_native_id(reader)
            if problem is not None:
                return BadRow(row=number, native_id=raw, reason=problem)
            native = self.native_id(reader)
            record = self.build(reader, RowMeta(row=number, native_id=native, file_name=file_name, context=context))
        except RowValidationError as exc:
            return BadRow(row=number, native_id=raw, reason=exc.reason, field=exc.field)
        except ValidationError as exc:
            # build() validates values itself; this is the safety net, so the file never stops.
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return BadRow(row=number, native_id=raw, reason=f"invalid {where}: {first['msg']}", field=where)
        return ParsedRow(row=number, native_id=native, record=record)


class TabularAdapter(AdapterBase):
    """An adapter for CSV or XLSX exports with a header row."""

    source_format: ClassVar[Literal["csv", "xlsx"]]

    def check_header(self, match: HeaderMatch, *, file_name: str, context: ImportContext) -> None:
        """Hook: refuse a file whose header cannot work with this context (raise an AdapterError)."""

    def parse(self, stream: BinaryIO, *, file_name: str, context: ImportContext) -> Iterator[ParsedRow | BadRow]:
        if self.source_format == "csv":
            source = iter_csv_rows(stream, file_name=file_name)
            header = require_header(source.rows, self.fields, file_name=file_name, adapter=self.name)
            yield from self._rows(source.rows, header, file_name=file_name, context=context)
            return
        with open_xlsx_sheets(stream, file_name=file_name, limits=context.limits) as sheets:
            first_missing: tuple[str, ...] | None = None
            for sheet in sheets:
                located = locate_header(sheet.rows, self.fields)
                if isinstance(located, LocatedHeader):
                    yield from self._rows(sheet.rows, located, file_name=file_name, context=context)
                    return
                if first_missing is None:
                    first_missing = located
            raise MissingColumnsError(
                file_name,
                first_missing if first_missing is not None else tuple(f.label for f in self.fields.required),
                adapter=self.name,
                detail="no sheet has a header row with them",
            )

    def _rows(
        self, rows: Iterator[SourceRow], header: LocatedHeader, *, file_name: str, context: ImportContext
    ) -> Iterator[ParsedRow | BadRow]:
        self.check_header(header.match, file_name=file_name, context=context)
        match = header.match
        for row in rows:
            if is_blank_row(row.cells):
                continue
            yield self._emit(
                row.number, match.reader(row.cells), file_name=file_name, context=context, problem=row.problem
            )


class JsonAdapter(AdapterBase):
    """An adapter for JSON exports: ``layout`` "array" (array or object holding one) or "jsonl"."""

    layout: ClassVar[Literal["array", "jsonl"]]
    array_keys: ClassVar[tuple[str, ...]] = ARRAY_KEYS

    def parse(self, stream: BinaryIO, *, file_name: str, context: ImportContext) -> Iterator[ParsedRow | BadRow]:
        if self.layout == "jsonl":
            items = iter_jsonl(stream, file_name=file_name)
        else:
            items = iter_json_array(stream, file_name=file_name, array_keys=self.array_keys)
        head = list(islice(items, HEADER_SCAN_ROWS))
        self._check_keys(head, file_name=file_name)
        for item in chain(head, items):
            if item.problem is not None:
                yield BadRow(row=item.number, native_id=self._salvage_native_id(item.raw), reason=item.problem)
                continue
            if not isinstance(item.value, dict):
                kind = type(item.value).__name__ if item.value is not None else "null"
                yield BadRow(row=item.number, native_id=None, reason=f"expected a JSON object, got {kind}")
                continue
            reader = self.fields.read_object(item.value)
            yield self._emit(item.number, reader, file_name=file_name, context=context, problem=None)

    def _check_keys(self, head: Sequence[JsonItem], *, file_name: str) -> None:
        """One error for a file whose records lack a required key, as for a CSV header.

        JSON has no header row, so the first records stand in for it: a required key that none of
        them carries (under any synonym) is a missing column. A key missing from only some records
        is a bad row each, like an empty cell.
        """
        objects = [item.value for item in head if item.problem is None and isinstance(item.value, dict)]
        if not objects:
            return
        present = {self.fields.resolve(name) for obj in objects for name in obj}
        missing = [f.label for f in self.fields.required if f.key not in present]
        if missing:
            raise MissingColumnsError(
                file_name, missing, adapter=self.name, detail=f"none of the first {len(objects)} records has them"
            )

    def _salvage_native_id(self, raw: str | None) -> str | None:
        """The native id of a torn line, when its "key": "value" pair survived."""
        if not raw:
            return None
        for match in _JSON_PAIR.finditer(raw):
            if self.fields.resolve(match.group(1)) == self.native_id_key:
                return nfkc(match.group(2)) or None
        return None
