"""Throughput of the department adapters: ``python -m adapters.bench [--lines N]``.

Prints rows/s for every registered adapter on its reference sample (shared/samples), then rows/s and
peak RSS for a generated N-line door-access JSON Lines file imported as a dry run (sink=None). The
generated run goes first so that the peak RSS it reports is its own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from adapters.importing import import_file
from adapters.protocol import ImportContext
from adapters.registry import all_adapters

_CST = timezone(timedelta(hours=8))
_DEFAULT_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
_COMMUNITIES = {"清河社区": "330106001001", "柳岸社区": "330106001002", "东湖社区": "330106002003"}


def _context() -> ImportContext:
    return ImportContext(
        owner_org="bench-org",
        community_code="330106001001",
        community_codes=_COMMUNITIES,
        as_of=datetime(2025, 4, 1, tzinfo=_CST),
    )


def _peak_rss_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def _write_events(path: Path, lines: int) -> None:
    template = (
        '{{"event_id": "AC{n:011d}", "ts": "2025-03-{d:02d}T{h:02d}:{m:02d}:{s:02d}+08:00", '
        '"community_code": "33010600100{c}", "gate": "{b}号楼西门", "credential": "face", '
        '"person_ref": "card:{n:08d}", "room": "{b}-{u}-{r}01", "result": "pass"}}\n'
    )
    with path.open("w", encoding="utf-8") as out:
        chunk: list[str] = []
        for n in range(lines):
            chunk.append(
                template.format(
                    n=n,
                    d=1 + n % 28,
                    h=n % 24,
                    m=n % 60,
                    s=(n * 7) % 60,
                    c=1 + n % 2,
                    b=1 + n % 12,
                    u=1 + n % 3,
                    r=1 + n % 25,
                )
            )
            if len(chunk) == 10_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))


def bench_generated(lines: int) -> str:
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        path = Path(tmp) / "access_events.jsonl"
        # Warm up (lazy imports, validator builds) so the timing is of steady-state work.
        _write_events(path, 2_000)
        import_file(path, "property.access_events", context=_context())
        _write_events(path, lines)
        size = path.stat().st_size
        rss_before = _peak_rss_mib()
        started = time.perf_counter()
        report = import_file(path, "property.access_events", context=_context())
        elapsed = time.perf_counter() - started
    rss = _peak_rss_mib()
    rss_text = "n/a" if rss is None else f"{rss:.0f} MiB (before import: {rss_before:.0f} MiB)"
    return (
        f"generated access events: {report.rows:,} lines ({size / 1e6:.0f} MB), {report.valid:,} valid, "
        f"{elapsed:.1f} s, {report.rows / elapsed:,.0f} rows/s, peak RSS {rss_text}"
    )


def bench_samples(samples: Path, min_seconds: float) -> list[str]:
    lines = []
    for adapter in all_adapters():
        sample = getattr(adapter, "sample_file", None)
        if not sample or not (samples / sample).is_file():
            lines.append(f"  {adapter.name:<28} (no sample)")
            continue
        path = samples / sample
        rows = runs = 0
        started = time.perf_counter()
        while True:
            rows += import_file(path, adapter, context=_context()).rows
            runs += 1
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds and runs >= 3:
                break
        lines.append(f"  {adapter.name:<28} {rows / elapsed:>10,.0f} rows/s  ({sample}, {runs} runs)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the generated file (default 1,000,000)")
    parser.add_argument("--samples", type=Path, default=_DEFAULT_SAMPLES, help="shared samples directory")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="minimum time per sample (default 1 s)")
    args = parser.parse_args(argv)
    generated = bench_generated(args.lines) if args.lines > 0 else None
    out = [f"adapters on their samples ({args.samples}):", *bench_samples(args.samples, args.min_seconds)]
    if generated:
        out.append(generated)
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
