"""Streaming readers for JSON exports: a JSON array, an object holding the array, and JSON Lines.

Row numbers: for JSON Lines the physical line number (blank lines skipped but counted); for a JSON
array, or the array inside an object (e.g. {"导出时间": ..., "数据": [...]}), the 1-based index of the
element in that array.

A JSON Lines line that does not parse is one bad row and the next lines continue. A JSON document
that breaks off mid-array (a torn file) yields one problem item at the element where the parse
failed and ends there: a JSON parser cannot resynchronise inside a broken document.

Nesting is bounded: no JSON document (one JSON Lines line, or a whole JSON file) may open more than
:data:`MAX_JSON_DEPTH` (64) objects/arrays inside one another. Department exports are shallow (a
record object is depth 1, the array holding it 2, an object wrapping that array 3), so the limit only
stops hostile or broken uploads, which would otherwise take the importing process down: ``json.loads``
recurses once per level in C (with the recursion limit raised to 100000, as py_ecc does in the
gateway, a 100000-deep line overflows the C stack and the process dies), and ijson's prefixed
``parse`` keeps a prefix string per open level (memory quadratic in the depth: 32000 levels took
2.5 GB). A JSON Lines line nested too deep is one bad row; a JSON file nested too deep anywhere up
to the end of its record array is refused with one :class:`UnreadableFileError` naming the element or
top-level key (elements before it have already been yielded). Either way the check costs constant
memory and runs before, or instead of, building the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import ijson
from ijson.common import ObjectBuilder

from adapters.errors import UnreadableFileError
from adapters.parsing.encoding import has_undecodable, open_text, open_utf8_bytes
from adapters.parsing.text import normalise_header

__all__ = ["ARRAY_KEYS", "MAX_JSON_DEPTH", "JsonItem", "iter_json_array", "iter_jsonl", "json_depth_exceeds"]

# Keys under which exports wrap their record array, compared after header normalisation.
ARRAY_KEYS = ("数据", "data", "records", "rows", "items", "list", "result", "results", "记录", "列表")

#: The most objects/arrays one JSON document (a JSON Lines line, a JSON file) may nest inside one
#: another. Department exports use 1-4; anything deeper is refused before it is parsed.
MAX_JSON_DEPTH: Final = 64

_OPEN: Final = frozenset(("start_map", "start_array"))
_CLOSE: Final = frozenset(("end_map", "end_array"))

# One JSON string (to the end of the text when unterminated), or an opening or a closing bracket.
# Possessive quantifiers: a long string is consumed without keeping backtracking state.
_DEPTH_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+"?|([\[{])|[\]}]', re.DOTALL)


@dataclass(frozen=True, slots=True)
class JsonItem:
    """One element/line: its number, its value, and a problem when it could not be parsed."""

    number: int
    value: object
    problem: str | None = None
    raw: str | None = None  # the text of a line that did not parse (to salvage its native id)


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text ``text`` nests objects/arrays more than ``limit`` deep.

    A scan, not a parse: brackets inside strings do not count, and the scan stops at the first level
    past ``limit``. Text with at most ``limit`` opening brackets cannot exceed it and is not scanned.
    For text that is not valid JSON the answer only covers the part a JSON parser would accept before
    failing, which is what matters: a parser cannot recurse deeper than that.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for token in _DEPTH_TOKENS.finditer(text):
        if token.lastindex == 1:
            depth += 1
            if depth > limit:
                return True
        elif token.lastindex is None and text[token.start()] != '"':
            depth -= 1
    return False


def _too_deep(where: str) -> str:
    return f"JSON nested deeper than {MAX_JSON_DEPTH} levels of objects/arrays {where}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for the whole file: json.loads(..., parse_constant=...) would build one per line.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)

# A \uD800-\uDFFF escape: half of a UTF-16 surrogate pair, which json.loads also accepts unpaired.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: object) -> bool:
    """True when a string (key or value) in ``value`` holds an unpaired surrogate (not encodable)."""
    pending = [value]
    while pending:  # iterative: the depth is already bounded, but this needs no recursion at all
        item = pending.pop()
        if isinstance(item, str):
            if has_undecodable(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def iter_jsonl(stream: BinaryIO, *, file_name: str) -> Iterator[JsonItem]:
    """Stream JSON Lines in constant memory: one item per non-blank line."""
    decoded = open_text(stream, file_name=file_name)
    for number, line in enumerate(decoded.text, start=1):
        if not line.strip():
            continue
        if has_undecodable(line):
            yield JsonItem(number, None, f"bytes that are not valid {decoded.encoding}")
            continue
        if json_depth_exceeds(line):
            # Checked before json.loads, which recurses in C once per level (see the module docstring).
            yield JsonItem(number, None, _too_deep("on this line; the line was not parsed"), line[:4096])
            continue
        try:
            value = _DECODER.decode(line)
        except json.JSONDecodeError as exc:
            yield JsonItem(number, None, f"invalid JSON (torn line?): {exc.msg} at column {exc.colno}", line[:4096])
            continue
        except ValueError as exc:
            yield JsonItem(number, None, f"invalid JSON: {exc}", line[:4096])
            continue
        if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(value):
            # Accepted by json.loads, but no UTF-8 text can hold it: the record could never be stored.
            reason = "invalid JSON: a \\u escape is half of a UTF-16 surrogate pair (unpaired surrogate)"
            yield JsonItem(number, None, reason, line[:4096])
            continue
        yield JsonItem(number, value)


# ---- JSON documents: ijson's basic_parse events (no prefixes), depth counted here --------------

_Events = Iterator[tuple[str, Any]]


def _skip_value(events: _Events, first_event: str, *, depth: int, where: str, file_name: str) -> None:
    """Consume the rest of a value that started with ``first_event`` at document depth ``depth``."""
    if first_event not in _OPEN:
        return
    level = 1
    for event, _ in events:
        if event in _OPEN:
            level += 1
            if depth + level > MAX_JSON_DEPTH:
                raise UnreadableFileError(file_name, _too_deep(where))
        elif event in _CLOSE:
            level -= 1
            if level == 0:
                return


def _find_array(events: _Events, keys: Iterable[str], file_name: str) -> int:
    """Advance ``events`` to just after the start of the record array; return the array's depth."""
    first = next(events, None)
    if first is None:
        raise UnreadableFileError(file_name, "empty JSON document")
    event, _ = first
    if event == "start_array":
        return 1
    if event != "start_map":
        raise UnreadableFileError(file_name, "expected a JSON array, or an object holding one")
    wanted = {normalise_header(k) for k in keys}
    for event, value in events:
        if event == "end_map":
            break
        if event != "map_key":
            continue
        value_event, _ = next(events)
        if normalise_header(value) in wanted and value_event == "start_array":
            return 2
        # The root object is level 1, so a value under one of its keys starts at level 2.
        _skip_value(events, value_event, depth=1, where=f"under the top-level key {value!r}", file_name=file_name)
    raise UnreadableFileError(file_name, f"no record array found (looked for a top-level key among: {', '.join(keys)})")


def iter_json_array(stream: BinaryIO, *, file_name: str, array_keys: Iterable[str] = ARRAY_KEYS) -> Iterator[JsonItem]:
    """Stream the elements of the record array of a JSON document (ijson: constant memory).

    Raises :class:`UnreadableFileError` when the document nests deeper than :data:`MAX_JSON_DEPTH`
    anywhere up to the end of the record array (naming the element or top-level key).
    """
    data, _encoding = open_utf8_bytes(stream, file_name=file_name)
    # basic_parse, not parse: parse's prefixes ("item.item.item...") cost memory quadratic in depth.
    events: _Events = iter(ijson.basic_parse(data, use_float=True))
    keys = tuple(array_keys)
    try:
        array_depth = _find_array(events, keys, file_name)
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise UnreadableFileError(file_name, f"invalid JSON: {exc}") from exc
    # An element may open this many levels of its own before the document passes MAX_JSON_DEPTH.
    element_limit = MAX_JSON_DEPTH - array_depth
    index = 0
    builder: Any = None
    depth = 0
    try:
        for event, value in events:
            if builder is None:
                if event == "end_array":
                    return  # end of the record array; whatever follows is not records
                builder = ObjectBuilder()
                depth = 0
            if event in _OPEN:
                depth += 1
                if depth > element_limit:
                    # Refused before the builder holds more than MAX_JSON_DEPTH containers.
                    where = f"in element {index + 1} of the record array"
                    raise UnreadableFileError(file_name, _too_deep(where))
            elif event in _CLOSE:
                depth -= 1
            builder.event(event, value)
            if depth == 0:
                index += 1
                yield JsonItem(index, builder.value)
                builder = None
    except ijson.JSONError as exc:
        yield JsonItem(
            index + 1,
            None,
            f"invalid JSON from element {index + 1} on (torn file?): {exc}; the rest of the file is unreadable",
        )
        return
    except UnicodeDecodeError as exc:
        # yajl decodes an unpaired \uDC00-\uDFFF escape to bytes that are not UTF-8.
        yield JsonItem(
            index + 1,
            None,
            f"invalid JSON in element {index + 1} (an unpaired UTF-16 surrogate \\u escape?): {exc}; "
            "the rest of the file is unreadable",
        )
        return
    yield JsonItem(index + 1, None, "the JSON document ends inside the record array (torn file?)")
