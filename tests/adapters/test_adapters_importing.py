"""import_file: batching, progress, dedup, registry errors, and memory that does not grow with the file."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from adapters import (
    AdapterError,
    BadRow,
    CanonicalRecord,
    ParsedRow,
    UnknownAdapterError,
    available_adapters,
    get_adapter,
    import_file,
)
from adapters.importing import _SeenIds


def jsonl(n: int, *, duplicate_every: int = 0) -> bytes:
    lines = []
    for i in range(n):
        ident = i - 1 if duplicate_every and i % duplicate_every == 0 and i else i
        lines.append(
            json.dumps(
                {
                    "event_id": f"AC{ident:011d}",
                    "ts": 1741426040000 + i,
                    "community_code": "330106001001",
                    "gate": "东门",
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def test_sink_gets_batches_and_progress_counts_rows(ctx: Any) -> None:
    batches: list[int] = []
    seen: list[int] = []

    def sink(batch: list[CanonicalRecord]) -> None:
        assert all(isinstance(r, CanonicalRecord) for r in batch)
        batches.append(len(batch))

    report = import_file(
        io.BytesIO(jsonl(1234, duplicate_every=100)),
        "property.access_events",
        context=ctx,
        sink=sink,
        batch_size=100,
        progress=seen.append,
    )
    assert report.rows == 1234
    assert len(report.duplicates) == 12
    assert sum(batches) == report.valid == 1234 - 12
    assert all(size <= 100 for size in batches)
    assert batches[:-1] == [100] * (len(batches) - 1)
    assert seen == sorted(seen)
    assert seen[-1] == 1234
    assert seen[0] == 100


def test_dry_run_and_invalid_batch_size(ctx: Any) -> None:
    report = import_file(io.BytesIO(jsonl(10)), "property.access_events", context=ctx)
    assert report.valid == 10
    with pytest.raises(ValueError, match="batch_size"):
        import_file(io.BytesIO(jsonl(1)), "property.access_events", context=ctx, batch_size=0)


def test_a_bad_row_does_not_claim_its_native_id(ctx: Any) -> None:
    lines = [
        json.dumps({"event_id": "A", "ts": "2025-02-30 10:00"}),  # bad
        json.dumps({"event_id": "A", "ts": "2025-02-28 10:00"}),  # the corrected row: valid
        json.dumps({"event_id": "A", "ts": "2025-02-28 10:00"}),  # duplicate
    ]
    report = import_file(io.BytesIO("\n".join(lines).encode()), "property.access_events", context=ctx)
    assert (report.rows, report.valid, report.duplicates, len(report.bad)) == (3, 1, ("A",), 1)


def test_file_name_comes_from_path_stream_or_context(ctx: Any, make_ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl(2))
    assert import_file(path, "property.access_events", context=ctx).file == "events.jsonl"
    assert import_file(str(path), "property.access_events", context=ctx).file == "events.jsonl"
    with path.open("rb") as stream:
        assert import_file(stream, "property.access_events", context=ctx).file == "events.jsonl"
    assert import_file(io.BytesIO(jsonl(1)), "property.access_events", context=ctx).file == "<stream>"
    named = make_ctx(file_name="2025-03 门禁.jsonl")
    out: list[CanonicalRecord] = []
    import_file(path, "property.access_events", context=named, sink=out.extend)
    assert {r.source.file for r in out} == {"2025-03 门禁.jsonl"}


def test_unknown_adapter_lists_known_names(ctx: Any) -> None:
    with pytest.raises(UnknownAdapterError) as caught:
        get_adapter("police.nope")
    message = str(caught.value)
    for name in available_adapters():
        assert name in message
    assert isinstance(caught.value, AdapterError)
    with pytest.raises(UnknownAdapterError):
        import_file(io.BytesIO(b""), "police.nope", context=ctx)


def test_a_misbehaving_adapter_is_stopped(ctx: Any) -> None:
    real = get_adapter("property.access_events")

    class Liar:
        name = "test.liar"
        record_type = real.record_type
        department = "test"
        description = "claims records for another owner"

        def parse(self, stream: Any, *, file_name: str, context: Any) -> Any:
            yield from real.parse(
                stream, file_name=file_name, context=context.__class__(owner_org="x", community_code="c")
            )

    with pytest.raises(AdapterError, match="expected"):
        import_file(io.BytesIO(jsonl(1)), Liar(), context=ctx)  # type: ignore[arg-type]


def test_seen_ids_set() -> None:
    seen = _SeenIds(capacity=2)
    ids = [f"id-{i}" for i in range(5000)]
    assert all(seen.add(i) for i in ids)
    assert not any(seen.add(i) for i in ids)
    assert len(seen) == 5000
    assert seen.add("new")


@pytest.mark.slow  # ~20 s: tracemalloc slows every allocation several-fold
def test_streaming_import_memory_stays_bounded(ctx: Any, tmp_path: Path) -> None:
    """200,000 access events import with sink=None while the traced peak stays under 20 MB.

    Records are not kept; the only thing that grows is the 16-byte-per-id set of seen native ids
    (about 8 MB here), so the peak stays far below the ~400 MB the file's records would take.
    """
    path = tmp_path / "events.jsonl"
    template = (
        '{{"event_id": "AC{:011d}", "ts": "2025-03-08T17:27:20+08:00", "community_code": "330106001001", '
        '"gate": "7号楼西门", "credential": "face", "person_ref": "card:{}", "room": "7-3-2101", "result": "pass"}}\n'
    )
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, 200_000, 10_000):
            f.write("".join(template.format(i, i) for i in range(start, start + 10_000)))
    tracemalloc.start()
    try:
        report = import_file(path, "property.access_events", context=ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.rows, report.valid, report.bad) == (200_000, 200_000, ())
    print(f"traced peak for 200,000 events: {peak / 1e6:.1f} MB")  # visible with pytest -s
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_parse_is_lazy(ctx: Any) -> None:
    # Pulling one item reads only the head of the file: a huge stream is not loaded up front.
    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            Counting.read_bytes += len(data)
            return data

        def readinto(self, b: Any) -> int:
            n = super().readinto(b)
            Counting.read_bytes += n
            return n

    data = jsonl(50_000)
    stream = Counting(data)
    items = get_adapter("property.access_events").parse(stream, file_name="f", context=ctx)
    first = next(iter(items))
    assert isinstance(first, ParsedRow | BadRow)
    assert Counting.read_bytes < len(data) / 4


def test_seen_ids_stay_in_bounded_memory_and_spill_to_disk() -> None:
    from adapters.importing import _SeenIds

    seen = _SeenIds(memory_ids=1_000)
    assert all(seen.add(f"id-{n}") for n in range(5_000))
    table_bytes = len(seen._slots)
    assert not any(seen.add(f"id-{n}") for n in range(5_000))  # in memory and on disk alike
    assert all(seen.add(f"id-{n}") for n in range(5_000, 20_000))
    assert len(seen._slots) == table_bytes  # the in-memory table stopped growing at its bound
    assert not seen.add("id-19999")
    assert not seen.add("id-7")
