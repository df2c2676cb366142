"""Streaming readers for JSON exports: a JSON array, an object holding the array, and JSON Lines.

Row numbers: for JSON Lines the physical line number (blank lines skipped but counted); for a JSON
array, or the array inside an object (e.g. {"导出时间": ..., "数据": [...]}), the 1-based index of the
element in that array.

A JSON Lines line that does not parse is one bad row and the next lines continue. A JSON document
that breaks off mid-array (a torn file) yields one problem item at the element where the parse
failed and ends there: a JSON parser cannot resynchronise inside a broken document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import ijson
from ijson.common import ObjectBuilder

from adapters.errors import UnreadableFileError
from adapters.parsing.encoding import has_undecodable, open_text, open_utf8_bytes
from adapters.parsing.text import normalise_header

__all__ = ["ARRAY_KEYS", "JsonItem", "iter_json_array", "iter_jsonl"]

# Keys under which exports wrap their record array, compared after header normalisation.
ARRAY_KEYS = ("数据", "data", "records", "rows", "items", "list", "result", "results", "记录", "列表")


@dataclass(frozen=True, slots=True)
class JsonItem:
    """One element/line: its number, its value, and a problem when it could not be parsed."""

    number: int
    value: object
    problem: str | None = None
    raw: str | None = None  # the text of a line that did not parse (to salvage its native id)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for the whole file: json.loads(..., parse_constant=...) would build one per line.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def iter_jsonl(stream: BinaryIO, *, file_name: str) -> Iterator[JsonItem]:
    """Stream JSON Lines in constant memory: one item per non-blank line."""
    decoded = open_text(stream, file_name=file_name)
    for number, line in enumerate(decoded.text, start=1):
        if not line.strip():
            continue
        if has_undecodable(line):
            yield JsonItem(number, None, f"bytes that are not valid {decoded.encoding}")
            continue
        try:
            value = _DECODER.decode(line)
        except json.JSONDecodeError as exc:
            yield JsonItem(number, None, f"invalid JSON (torn line?): {exc.msg} at column {exc.colno}", line[:4096])
            continue
        except ValueError as exc:
            yield JsonItem(number, None, f"invalid JSON: {exc}", line[:4096])
            continue
        yield JsonItem(number, value)


def _skip_value(events: Iterator[tuple[str, str, Any]], first_event: str) -> None:
    if first_event not in ("start_map", "start_array"):
        return
    depth = 1
    for _, event, _ in events:
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                return


def _find_array(events: Iterator[tuple[str, str, Any]], keys: Iterable[str], file_name: str) -> None:
    """Advance ``events`` to just after the start of the record array."""
    first = next(events, None)
    if first is None:
        raise UnreadableFileError(file_name, "empty JSON document")
    _, event, _ = first
    if event == "start_array":
        return
    if event != "start_map":
        raise UnreadableFileError(file_name, "expected a JSON array, or an object holding one")
    wanted = {normalise_header(k) for k in keys}
    for _, event, value in events:
        if event == "end_map":
            break
        if event != "map_key":
            continue
        _, value_event, _ = next(events)
        if normalise_header(value) in wanted and value_event == "start_array":
            return
        _skip_value(events, value_event)
    raise UnreadableFileError(file_name, f"no record array found (looked for a top-level key among: {', '.join(keys)})")


def iter_json_array(stream: BinaryIO, *, file_name: str, array_keys: Iterable[str] = ARRAY_KEYS) -> Iterator[JsonItem]:
    """Stream the elements of the record array of a JSON document (ijson: constant memory)."""
    data, _encoding = open_utf8_bytes(stream, file_name=file_name)
    events = iter(ijson.parse(data, use_float=True))
    keys = tuple(array_keys)
    try:
        _find_array(events, keys, file_name)
    except ijson.JSONError as exc:
        raise UnreadableFileError(file_name, f"invalid JSON: {exc}") from exc
    index = 0
    builder: Any = None
    depth = 0
    try:
        for _, event, value in events:
            if builder is None:
                if event == "end_array":
                    return  # end of the record array; whatever follows is not records
                builder = ObjectBuilder()
                depth = 0
            builder.event(event, value)
            if event in ("start_map", "start_array"):
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
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
    yield JsonItem(index + 1, None, "the JSON document ends inside the record array (torn file?)")
