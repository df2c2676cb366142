"""Field masking by purpose (DESIGN.md, Grants and Privacy; invariant 8: masked means unrecoverable).

ID numbers and phones are masked unless the purpose needs them; the owner reading its own records sees
everything. A masked value masks everything it can be rebuilt from, declared once per record type in
:data:`MASKED_FIELDS`: a GB 11643 ID number carries the birth date (digits 7-14) and the gender (the
parity of digit 17), so a subject's ``birth_date`` and ``gender`` are masked with ID numbers, and a
resident's ``source.native_id`` *is* the ID number. Beyond the declared fields, every other text of the
record (free text, location, extra columns kept in ``attributes``, at any depth) is searched for the
record's own masked values and for anything shaped like an ID number or a mobile number
(:func:`sensitive_fields`); what is found is masked with them.

The same fields are what the redactable commitment commits to one by one
(:mod:`ledger_api.records.commitment`), so a masked read still checks against the anchored commitment.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from adapters.canonical import RecordType
from adapters.parsing.ids import normalise_id_number
from ledger_api.chain.encoding import Purpose

__all__ = [
    "MASKABLE",
    "MASKED_FIELDS",
    "REVEALED_BY_PURPOSE",
    "Leaf",
    "MaskedField",
    "Rule",
    "Sensitive",
    "leaves",
    "mask_id_number",
    "mask_phone",
    "mask_record",
    "sensitive_fields",
]

#: The kinds of maskable value. A purpose reveals some of them; everything derived from a kind it does
#: not reveal is masked.
MASKABLE: Final = ("id_number", "phone")

#: What each purpose needs to see in clear. Anything not listed is masked.
REVEALED_BY_PURPOSE: dict[Purpose, frozenset[str]] = {
    Purpose.EMERGENCY_RESPONSE: frozenset({"id_number", "phone"}),
    Purpose.INVESTIGATION: frozenset({"id_number", "phone"}),
    Purpose.ELDERLY_CARE: frozenset({"phone"}),
    Purpose.FIRE_SAFETY: frozenset({"phone"}),
    Purpose.PROPERTY_MANAGEMENT: frozenset({"phone"}),
    Purpose.COMMUNITY_GOVERNANCE: frozenset(),
    Purpose.AUDIT: frozenset(),
}


class Rule(StrEnum):
    """How a masked field is shown."""

    ID_NUMBER = "id_number"
    """:func:`mask_id_number`."""
    PHONE = "phone"
    """:func:`mask_phone`."""
    WITHHOLD = "withhold"
    """Replaced by null. Used for the birth date: a purpose that may not see the ID number has no need
    of the exact date, and anything short of withholding leaks (a year, or an age band, with the region
    code still narrows the ID number; the day and month are the hidden digits themselves). The gender
    goes with it: it *is* the parity of the 17th digit."""
    SCRUB = "scrub"
    """Text in which a masked value (or something shaped like one) was found: each occurrence becomes
    asterisks, the rest of the text stays."""


@dataclass(frozen=True, slots=True)
class MaskedField:
    """A field masked whenever ``kind`` is: the maskable value itself, or one that equals or derives from
    it. ``pattern`` is a path with list positions left out (``subjects[].birth_date``)."""

    pattern: str
    kind: str
    rule: Rule


_EVERY_TYPE: Final = (
    MaskedField("subjects[].id_number", "id_number", Rule.ID_NUMBER),
    MaskedField("subjects[].phone", "phone", Rule.PHONE),
    MaskedField("subjects[].birth_date", "id_number", Rule.WITHHOLD),  # digits 7-14 of the ID number
    MaskedField("subjects[].gender", "id_number", Rule.WITHHOLD),  # parity of its 17th digit
)

#: The one declaration: per record type, every field masked with an ID number or a phone.
MASKED_FIELDS: Mapping[str, tuple[MaskedField, ...]] = {
    RecordType.INCIDENT: _EVERY_TYPE,
    RecordType.KEY_PERSON: _EVERY_TYPE,
    RecordType.ACCESS_EVENT: _EVERY_TYPE,
    RecordType.FIRE_INSPECTION: _EVERY_TYPE,
    RecordType.HAZARD_REPORT: _EVERY_TYPE,
    RecordType.RESIDENT: (
        *_EVERY_TYPE,
        # The registry is keyed by the resident's ID number (adapters/committee/residents_csv.py).
        MaskedField("source.native_id", "id_number", Rule.ID_NUMBER),
        # A declared gender the adapter did not recognise ("男性", "F."): still the gender.
        MaskedField("attributes.gender_as_written", "id_number", Rule.WITHHOLD),
    ),
}

#: Fields never searched for masked values: structure the gateway itself sets or checks (ids, codes,
#: times, the adapter's name, the sensitivity map's levels). Masking them would change what a grant's
#: scope is matched against, and none of them carries personal data.
_STRUCTURAL: Final = frozenset(
    {
        "schema_version", "record_id", "record_type", "community_code", "owner_org", "occurred_at",
        "source.system", "source.row",
    }
)  # fmt: skip
_ID_SHAPED = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9X]|[0-9]{15})(?![0-9A-Za-z])", re.IGNORECASE)
_MOBILE_SHAPED = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


def mask_id_number(value: str) -> str:
    """The region code (first 6 characters) and asterisks. Everything after it is the birth date, the
    sequence (whose last digit is the gender) and a check character computed from all of them (which
    narrows the rest eleven-fold): none of it may be shown when the birth date and gender are hidden."""
    return value[:6] + "*" * (len(value) - 6) if len(value) > 6 else "*" * len(value)


def mask_phone(value: str) -> str:
    return value[:3] + "****" + value[7:] if len(value) >= 11 else "*" * len(value)


@dataclass(frozen=True, slots=True)
class Leaf:
    """A scalar of a record: ``parent[key]``, at ``path`` (``subjects[0].id_number``)."""

    path: str
    pattern: str
    parent: dict[str, Any] | list[Any]
    key: str | int

    @property
    def value(self) -> Any:
        return self.parent[self.key]  # type: ignore[index]

    def replace(self, value: Any) -> None:
        self.parent[self.key] = value  # type: ignore[index]


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _step(prefix: str, key: str) -> str:
    # Identifiers as ".key"; any other key (extra columns keep their headers) as ["key"] in JSON, so that
    # no two leaves share a path ("a.b" the key vs "a" then "b").
    if _NAME.match(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{json.dumps(key, ensure_ascii=False)}]"


def leaves(record: dict[str, Any]) -> Iterator[Leaf]:
    """Every scalar of ``record`` (nulls included), depth first in key order as stored."""
    stack: list[tuple[str, str, dict[str, Any] | list[Any]]] = [("", "", record)]
    while stack:
        path, pattern, node = stack.pop()
        items: list[tuple[str | int, str, str]]
        if isinstance(node, dict):
            items = [(k, _step(path, k), _step(pattern, k)) for k in node]
        else:
            items = [(i, f"{path}[{i}]", f"{pattern}[]") for i in range(len(node))]
        nested = []
        for key, child_path, child_pattern in items:
            child = node[key]  # type: ignore[index]
            if isinstance(child, dict | list):
                nested.append((child_path, child_pattern, child))
            else:
                yield Leaf(child_path, child_pattern, node, key)
        stack.extend(reversed(nested))


@dataclass(frozen=True, slots=True)
class Sensitive:
    """A field masked unless every kind it holds is revealed."""

    kinds: frozenset[str]
    rule: Rule


def _id_forms(id_number: str) -> Iterator[tuple[re.Pattern[str], str]]:
    """An 18-character ID number and the forms it is rebuilt from in text."""
    yield re.compile(re.escape(id_number)), "id_number"
    # The birth date's digits, standing alone (inside a longer number they are a coincidence).
    yield re.compile(rf"(?<![0-9]){id_number[6:14]}(?![0-9])"), "id_number"
    # ... and written as a date (1986-07-21, 1986/7/21, 1986年7月21日).
    year, month, day = id_number[6:10], id_number[10:12].lstrip("0"), id_number[12:14].lstrip("0")
    yield re.compile(rf"(?<![0-9]){year}[-/.年]0?{month}[-/.月]0?{day}(?![0-9])"), "id_number"
    if id_number[6:8] == "19":  # its first-generation (15-digit) form
        yield re.compile(re.escape(id_number[:6] + id_number[8:17])), "id_number"


def _secrets(record: dict[str, Any]) -> list[tuple[re.Pattern[str], str]]:
    """(pattern, kind) of the record's maskable values: its subjects' ID numbers and phones, and any ID
    number quoted in its text, with the forms they are rebuilt from."""
    id_numbers: set[str] = set()
    found: list[tuple[re.Pattern[str], str]] = []
    subjects = record.get("subjects")
    for subject in subjects if isinstance(subjects, list) else ():
        if not isinstance(subject, dict):
            continue
        id_number, phone = subject.get("id_number"), subject.get("phone")
        if isinstance(id_number, str) and len(id_number) == 18:
            id_numbers.add(id_number)
        if isinstance(phone, str) and len(phone) >= 7:
            found.append((re.compile(re.escape(phone)), "phone"))
    for leaf in leaves(record):
        text = _fold(leaf.value) if leaf.pattern not in _STRUCTURAL else None
        id_numbers.update(number for _, number in _id_shaped(text or ""))
    for id_number in sorted(id_numbers):
        found.extend(_id_forms(id_number))
    return found


def _id_shaped(text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Each valid GB 11643 number in ``text`` (18 characters, or 15 digits) with its 18-character form."""
    for match in _ID_SHAPED.finditer(text):
        try:
            yield match, normalise_id_number(match.group())
        except ValueError:
            continue


def _hits(text: str, secrets: list[tuple[re.Pattern[str], str]]) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every masked value, or value shaped like one, in ``text`` (NFKC-folded)."""
    spans = [(m.start(), m.end(), kind) for pattern, kind in secrets for m in pattern.finditer(text)]
    spans += [(m.start(), m.end(), "id_number") for m, _ in _id_shaped(text)]
    spans += [(m.start(), m.end(), "phone") for m in _MOBILE_SHAPED.finditer(text)]
    return spans


def _fold(value: Any) -> str | None:
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value)  # full-width digits are digits
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # a phone kept as a JSON number in an extra column
    return None


def sensitive_fields(record: dict[str, Any]) -> dict[str, Sensitive]:
    """Path → :class:`Sensitive` for every field of ``record`` that holds, equals or derives from a
    maskable value: the declared fields of its type (when not null), and any other text in which a masked
    value or something shaped like one is found. A function of the record alone, so that sealing and
    every later read agree on it."""
    declared = {f.pattern: f for f in MASKED_FIELDS.get(str(record.get("record_type")), _EVERY_TYPE)}
    secrets = _secrets(record)
    found: dict[str, Sensitive] = {}
    for leaf in leaves(record):
        value = leaf.value
        if value is None or leaf.pattern in _STRUCTURAL or leaf.pattern.startswith("sensitivity"):
            continue
        text = _fold(value)
        kinds = frozenset(kind for _, _, kind in _hits(text, secrets)) if text is not None else frozenset()
        field = declared.get(leaf.pattern)
        if field is not None:
            found[leaf.path] = Sensitive(kinds | {field.kind}, field.rule)
        elif kinds:
            found[leaf.path] = Sensitive(kinds, Rule.SCRUB if isinstance(value, str) else Rule.WITHHOLD)
    return found


def _scrub(text: str, secrets: list[tuple[re.Pattern[str], str]], hidden: frozenset[str]) -> str:
    chars = list(text)
    for start, end, kind in _hits(text, secrets):
        if kind in hidden:
            chars[start:end] = "*" * (end - start)
    return "".join(chars)


def _masked_value(value: Any, rule: Rule, secrets: list[tuple[re.Pattern[str], str]], hidden: frozenset[str]) -> Any:
    if rule is Rule.ID_NUMBER:
        return mask_id_number(str(value))
    if rule is Rule.PHONE:
        return mask_phone(str(value))
    if rule is Rule.SCRUB:
        return _scrub(unicodedata.normalize("NFKC", str(value)), secrets, hidden)
    return None


def mask_record(
    record: dict[str, Any], purpose: Purpose | None, *, reveal: frozenset[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The record with fields masked for ``purpose`` (None: the owner, nothing masked) and the masked
    paths, in record order. ``reveal`` narrows what is shown: the maskable kinds revealed (None: those
    :data:`REVEALED_BY_PURPOSE` gives the purpose). ``record`` itself is left unchanged."""
    if purpose is None:
        return record, []
    revealed = REVEALED_BY_PURPOSE.get(purpose, frozenset()) if reveal is None else reveal
    hidden = frozenset(MASKABLE) - revealed
    fields = sensitive_fields(record)
    masked_record: dict[str, Any] = json.loads(json.dumps(record, ensure_ascii=False))
    secrets = _secrets(record)
    masked: list[str] = []
    for leaf in leaves(masked_record):
        field = fields.get(leaf.path)
        if field is not None and field.kinds & hidden:
            leaf.replace(_masked_value(leaf.value, field.rule, secrets, hidden))
            masked.append(leaf.path)
    return masked_record, masked
