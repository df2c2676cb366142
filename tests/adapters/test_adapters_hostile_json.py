"""Hostile JSON uploads: deep nesting, unpaired surrogates. A bad row or one clear error, never a crash.

The gateway runs the adapters in its own process, where py_ecc (imported through web3) raises the
recursion limit to 100000: there a 100000-deep line made ``json.loads`` overflow the C stack (a
segfault), and ijson's prefixed events took memory quadratic in the depth (an OOM kill). The tests
that feed such files run the import in a child process with that recursion limit and a 512 MB
address-space cap, and check that it exits normally.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters import BadRow, ParsedRow, UnreadableFileError, get_adapter, import_file
from adapters.parsing.jsonstream import MAX_JSON_DEPTH, iter_json_array, iter_jsonl, json_depth_exceeds

ROOT = Path(__file__).resolve().parents[2]
DEEP = 100_000
MEMORY_CAP = 512 * 1024 * 1024

# Run first in every child: the gateway's recursion limit, and a cap on the address space so that
# a parse whose memory grows with the depth fails here instead of eating the machine.
_PRELUDE = f"""
import json, resource, sys
sys.setrecursionlimit(100_000)  # what py_ecc does on import in the gateway process
resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP}))
from adapters import ImportContext, UnreadableFileError, import_file
context = ImportContext(owner_org="org-test-1", community_code="330106000000")
"""


def run_isolated(code: str, *args: str) -> Any:
    """Run ``code`` after the prelude in a child Python; it must exit 0 and print one JSON document."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # A C-stack overflow ends the child with a signal (returncode -11), a MemoryError with 1.
    assert done.returncode == 0, f"child exited with {done.returncode}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def event(n: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": f"AC{n:011d}",
        "ts": "2025-03-08T17:27:20+08:00",
        "community_code": "330106001001",
        "gate": "7号楼西门",
    }
    base.update(changes)
    return base


def hazard(n: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "reportNo": f"WG-003-{n:05d}",
        "reportedAt": "2025-03-11T08:12:34+08:00",
        "category": "消防通道堵塞",
    }
    base.update(changes)
    return base


# ---- the fuzzing findings, in a process like the gateway's ------------------------------------


def test_a_100000_deep_json_line_is_one_bad_row_among_good_ones(tmp_path: Path) -> None:
    deep = json.dumps(event(2))[:-1] + ', "extra": ' + nested(DEEP) + "}"
    lines = [json.dumps(event(1)), deep, json.dumps(event(3)), "[" * DEEP, json.dumps(event(5))]
    path = tmp_path / "deep.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = run_isolated(
        'print(json.dumps(import_file(sys.argv[1], "property.access_events", context=context).to_json_dict()))',
        str(path),
    )
    assert (report["rows"], report["valid"]) == (5, 3)
    assert [(b["row"], b["native_id"]) for b in report["bad"]] == [(2, "AC00000000002"), (4, None)]
    for bad in report["bad"]:
        assert f"nested deeper than {MAX_JSON_DEPTH} levels" in bad["reason"]


def test_a_100000_deep_json_document_is_one_clear_error_in_bounded_memory(tmp_path: Path) -> None:
    good = json.dumps(hazard(1))
    files = {
        "bare.json": nested(DEEP),  # the record array itself holds the deep value
        "second.json": '{"data": [' + good + ", " + nested(DEEP) + "]}",
        "meta.json": '{"meta": ' + nested(DEEP) + ', "data": [' + good + "]}",
        "torn.json": "[" * DEEP,  # never closed either
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    code = """
errors = {}
for path in sys.argv[1:]:
    try:
        import_file(path, "committee.hazard_reports", context=context)
    except UnreadableFileError as exc:
        errors[exc.file] = str(exc)
    else:
        errors[path] = "imported"
print(json.dumps(errors, ensure_ascii=False))
"""
    errors = run_isolated(code, *(str(tmp_path / name) for name in files))
    assert errors == {
        "bare.json": f"bare.json: JSON nested deeper than {MAX_JSON_DEPTH} levels of objects/arrays "
        "in element 1 of the record array",
        "second.json": f"second.json: JSON nested deeper than {MAX_JSON_DEPTH} levels of objects/arrays "
        "in element 2 of the record array",
        "meta.json": f"meta.json: JSON nested deeper than {MAX_JSON_DEPTH} levels of objects/arrays "
        "under the top-level key 'meta'",
        "torn.json": f"torn.json: JSON nested deeper than {MAX_JSON_DEPTH} levels of objects/arrays "
        "in element 1 of the record array",
    }


# ---- the limit, in process ----------------------------------------------------------------------


def test_jsonl_nesting_up_to_the_limit_imports_and_one_more_level_is_a_bad_row(ctx: Any) -> None:
    # The record object is level 1, so its "extra" value may open MAX_JSON_DEPTH - 1 levels.
    at_limit = json.dumps(event(1))[:-1] + ', "extra": ' + nested(MAX_JSON_DEPTH - 1) + "}"
    past_limit = json.dumps(event(2))[:-1] + ', "extra": ' + nested(MAX_JSON_DEPTH) + "}"
    data = (at_limit + "\n" + past_limit + "\n").encode()
    items = list(get_adapter("property.access_events").parse(io.BytesIO(data), file_name="f", context=ctx))
    assert isinstance(items[0], ParsedRow)
    assert isinstance(items[1], BadRow)
    assert (items[1].row, items[1].native_id) == (2, "AC00000000002")
    assert items[1].reason == (
        f"JSON nested deeper than {MAX_JSON_DEPTH} levels of objects/arrays on this line; the line was not parsed"
    )


@pytest.mark.parametrize("wrapped", [False, True])
def test_json_document_nesting_limit_counts_from_the_document_root(wrapped: bool) -> None:
    # Bare array: the array is level 1, an element may nest 63. Wrapped in {"data": [...]}: 62.
    room = MAX_JSON_DEPTH - (2 if wrapped else 1)

    def document(element_depth: int) -> bytes:
        array = "[" + nested(element_depth) + "]"
        return ('{"data": ' + array + "}" if wrapped else array).encode()

    items = list(iter_json_array(io.BytesIO(document(room)), file_name="ok.json"))
    assert [(i.number, i.problem) for i in items] == [(1, None)]
    with pytest.raises(UnreadableFileError, match=rf"^deep\.json: JSON nested deeper than {MAX_JSON_DEPTH} "):
        list(iter_json_array(io.BytesIO(document(room + 1)), file_name="deep.json"))


def test_deep_values_outside_the_record_array() -> None:
    before = f'{{"meta": {{"a": {nested(MAX_JSON_DEPTH)}}}, "data": [1]}}'.encode()
    with pytest.raises(UnreadableFileError, match="under the top-level key 'meta'"):
        list(iter_json_array(io.BytesIO(before), file_name="f.json"))
    # Whatever follows the record array is never read, however deep.
    after = f'{{"data": [1, 2], "trailer": {nested(DEEP)}}}'.encode()
    assert [i.value for i in iter_json_array(io.BytesIO(after), file_name="f.json")] == [1, 2]


@pytest.mark.parametrize(
    ("text", "deeper_than_64"),
    [
        (nested(64), False),
        (nested(65), True),
        ('{"a": ' * 65 + "1" + "}" * 65, True),
        ('["' + "[" * 100 + '"]', False),  # brackets inside a string do not count
        ('["\\"' + "[" * 100 + '"]', False),  # nor after an escaped quote inside it
        ('["\\\\", ' + "[" * 100, True),  # an escaped backslash ends nothing: the string closed
        ('"' + "[" * 100, False),  # unterminated string: a parser fails before any bracket
        ("[" + "[1], " * 1000 + "[]]", False),  # many brackets, shallow
    ],
)
def test_json_depth_scan(text: str, deeper_than_64: bool) -> None:
    assert json_depth_exceeds(text, 64) is deeper_than_64
    if deeper_than_64:  # iter_jsonl uses the scan, with the same limit
        (item,) = iter_jsonl(io.BytesIO(text.encode()), file_name="f")
        assert item.problem is not None
        assert "nested deeper than 64 levels" in item.problem


# ---- unpaired surrogates: json.loads accepts them, UTF-8 cannot hold them --------------------------


def test_jsonl_unpaired_surrogate_escape_is_a_bad_row_and_pairs_are_kept(ctx: Any) -> None:
    lines = [
        json.dumps(event(1, gate="\U00020000号门")),  # ensure_ascii: a surrogate pair escape, a real character
        json.dumps(event(2))[:-1] + ', "note": "\\ud800"}',
        json.dumps(event(3))[:-1] + ', "\\udfff": 1}',  # in a key
        json.dumps(event(4))[:-1] + ', "note": "\\\\ud800"}',  # an escaped backslash: plain text
    ]
    assert "\\ud840\\udc00" in lines[0]
    report = import_file(io.BytesIO("\n".join(lines).encode()), "property.access_events", context=ctx)
    assert [(b.row, b.native_id) for b in report.bad] == [(2, "AC00000000002"), (3, "AC00000000003")]
    assert all("surrogate" in b.reason for b in report.bad)
    assert report.valid == 2


def test_json_array_unpaired_low_surrogate_is_a_bad_row_not_a_crash(ctx: Any) -> None:
    data = ("[" + json.dumps(hazard(1)) + ", " + json.dumps(hazard(2))[:-1] + ', "note": "\\udc00x"}]').encode()
    report = import_file(io.BytesIO(data), "committee.hazard_reports", context=ctx)
    assert report.valid == 1
    assert [b.row for b in report.bad] == [2]
    assert "surrogate" in report.bad[0].reason
