"""Field specifications and the per-row reader every adapter builds its records from.

An adapter declares its fields once (canonical key, the usual header label, synonyms, required or
not). The same :class:`FieldSet` then matches CSV/XLSX header rows and JSON object keys, whatever
their spelling, spacing (全角/半角) or order, and a :class:`RowReader` hands out typed, validated
values. A value that fails validation raises :class:`RowValidationError` naming the field as the
file spells it, which the adapter base turns into a bad row. Keys the field set does not know are
kept as extras (they end up in ``attributes``; nothing is dropped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import JsonValue

from adapters.errors import RowValidationError
from adapters.parsing.dates import parse_date, parse_datetime
from adapters.parsing.ids import normalise_id_number
from adapters.parsing.phones import normalise_phone
from adapters.parsing.text import clean_structured, clean_text, is_blank, normalise_header, to_json_scalar

__all__ = ["Field", "FieldSet", "HeaderMatch", "RowReader", "json_safe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One input field: ``key`` is what the code uses, ``label`` the header a person expects."""

    key: str
    label: str
    synonyms: tuple[str, ...] = ()
    required: bool = False


class FieldSet:
    """The fields of one export, with header/key matching by normalised name."""

    def __init__(self, fields: Iterable[Field]) -> None:
        self.fields: tuple[Field, ...] = tuple(fields)
        self._by_key = {f.key: f for f in self.fields}
        self._by_name: dict[str, str] = {}
        for f in self.fields:
            for name in (f.label, f.key, *f.synonyms):
                norm = normalise_header(name)
                owner = self._by_name.setdefault(norm, f.key)
                if owner != f.key:
                    raise ValueError(f"header synonym {name!r} is claimed by both {owner!r} and {f.key!r}")
        self._cache: dict[str, str | None] = {}
        self._layouts: dict[tuple[str, ...], tuple[tuple[tuple[str, str | None], ...], dict[str, str]]] = {}

    @property
    def required(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.required)

    def label(self, key: str) -> str:
        return self._by_key[key].label

    def resolve(self, name: object) -> str | None:
        """The field key a header or JSON key denotes, or ``None`` when unknown."""
        raw = name if isinstance(name, str) else str(name)
        try:
            return self._cache[raw]
        except KeyError:
            key = self._by_name.get(normalise_header(raw)) if raw else None
            if len(self._cache) < 4096:  # bound the memo: keys come from the file
                self._cache[raw] = key
            return key

    def match_header(self, cells: Sequence[object]) -> HeaderMatch:
        """Map a header row onto the fields; unknown and duplicate columns become extras."""
        index: dict[str, int] = {}
        names: dict[str, str] = {}
        extras: list[tuple[int, str]] = []
        for col, cell in enumerate(cells):
            name = clean_structured(cell) or ""
            key = self.resolve(name) if name else None
            if key is not None and key not in index:
                index[key] = col
                names[key] = name
            else:
                extras.append((col, clean_text(cell) or f"column {col + 1}"))
        return HeaderMatch(fields=self, index=index, names=names, extras=tuple(extras), width=len(cells))

    def read_object(self, obj: Mapping[str, Any], *, prefix: str = "") -> RowReader:
        """A reader over one JSON object; unknown keys become extras."""
        # Rows of one export share their key layout: resolve it once per layout, not once per row.
        layout_key = (prefix, *obj)
        layout = self._layouts.get(layout_key)
        if layout is None:
            layout = self._layout(tuple(obj), prefix)
            if len(self._layouts) < 256:
                self._layouts[layout_key] = layout
        claimed, names = layout
        values: dict[str, object] = {}
        extras: dict[str, object] = {}
        for (name, key), value in zip(claimed, obj.values(), strict=True):
            if key is None:
                extras[prefix + name] = value
            else:
                values[key] = value
        return RowReader(fields=self, values=values, names=names, extras=extras)

    def _layout(self, keys: tuple[str, ...], prefix: str) -> tuple[tuple[tuple[str, str | None], ...], dict[str, str]]:
        claimed: list[tuple[str, str | None]] = []
        names: dict[str, str] = {}
        for name in keys:
            key = self.resolve(name)
            if key is not None and key not in names:
                names[key] = prefix + name
                claimed.append((name, key))
            else:
                claimed.append((name, None))  # unknown, or a second key for a claimed field
        return tuple(claimed), names


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderMatch:
    """A header row matched against a field set."""

    fields: FieldSet
    index: dict[str, int]
    names: dict[str, str]
    extras: tuple[tuple[int, str], ...]
    width: int

    def missing(self) -> tuple[str, ...]:
        """Labels of the required fields this header lacks."""
        return tuple(f.label for f in self.fields.required if f.key not in self.index)

    def reader(self, cells: Sequence[object]) -> RowReader:
        n = len(cells)
        values = {key: cells[col] for key, col in self.index.items() if col < n}
        extras: dict[str, object] = {}
        for col, name in self.extras:
            if col < n and not is_blank(cells[col]):
                extras[name] = cells[col]
        for col in range(self.width, n):  # cells beyond the header: keep them too
            if not is_blank(cells[col]):
                extras[f"column {col + 1}"] = cells[col]
        return RowReader(fields=self.fields, values=values, names=self.names, extras=extras)


def json_safe(value: object) -> JsonValue:
    """A value from a file as a JSON value (cells become scalars, JSON stays JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return to_json_scalar(value)


class RowReader:
    """Typed access to one row's values; failures raise :class:`RowValidationError`."""

    __slots__ = ("_children", "_extras", "_fields", "_names", "_values")

    def __init__(
        self,
        *,
        fields: FieldSet,
        values: dict[str, object],
        names: Mapping[str, str],
        extras: dict[str, object],
    ) -> None:
        self._fields = fields
        self._values = values
        self._names = names
        self._extras = extras
        self._children: list[RowReader] | None = None

    def name(self, key: str) -> str:
        """The field's name as the file spells it (its label when the file lacks it)."""
        return self._names.get(key) or self._fields.label(key)

    def raw(self, key: str) -> object | None:
        value = self._values.get(key)
        return None if is_blank(value) else value

    def _missing(self, key: str) -> RowValidationError:
        return RowValidationError(f"missing {self.name(key)}", field=self.name(key))

    def text(self, key: str, *, required: bool = False) -> str | None:
        """Free text, stripped but otherwise as written."""
        value = clean_text(self._values.get(key))
        if value is None and required:
            raise self._missing(key)
        return value

    def code(self, key: str, *, required: bool = False) -> str | None:
        """A structured value (identifier, code, number) folded with NFKC."""
        value = clean_structured(self._values.get(key))
        if value is None and required:
            raise self._missing(key)
        return value

    def when(self, key: str, *, required: bool = False) -> datetime | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise self._missing(key)
            return None
        try:
            return parse_datetime(value)
        except ValueError as exc:
            raise RowValidationError(str(exc), field=self.name(key)) from exc

    def day(self, key: str, *, required: bool = False) -> date | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise self._missing(key)
            return None
        try:
            return parse_date(value)
        except ValueError as exc:
            raise RowValidationError(str(exc), field=self.name(key)) from exc

    def id_number(self, key: str, *, required: bool = False) -> str | None:
        value = self.code(key, required=required)
        if value is None:
            return None
        try:
            return normalise_id_number(value)
        except ValueError as exc:
            raise RowValidationError(f"invalid ID number {value!r}: {exc}", field=self.name(key)) from exc

    def phone(self, key: str, *, required: bool = False) -> str | None:
        value = self.code(key, required=required)
        if value is None:
            return None
        try:
            return normalise_phone(value)
        except ValueError as exc:
            raise RowValidationError(str(exc), field=self.name(key)) from exc

    def json(self, key: str) -> JsonValue:
        """The value kept as JSON (lists and objects from JSON exports, scalars from cells)."""
        return json_safe(self.raw(key))

    def nested(self, key: str, fields: FieldSet) -> RowReader:
        """A reader over a nested JSON object (e.g. 居住地址); its unknown keys are kept too."""
        value = self.raw(key)
        if value is None:
            child = RowReader(fields=fields, values={}, names={}, extras={})
        elif isinstance(value, Mapping):
            child = fields.read_object(value, prefix=self.name(key) + ".")
        else:
            raise RowValidationError("expected an object", field=self.name(key))
        if self._children is None:
            self._children = []
        self._children.append(child)
        return child

    def extras(self) -> dict[str, JsonValue]:
        """Values of columns/keys no field claimed, as JSON, including those of nested readers."""
        out: dict[str, JsonValue] = {}
        for name, value in self._extras.items():
            if value is not None and not is_blank(value):
                out[name] = json_safe(value)
        for child in self._children or ():
            out.update(child.extras())
        return out
