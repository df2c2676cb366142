"""``python -m ledger_api.audit.overlap_bench``: how long counting the overlap takes for ``--links`` links.

Synthesises ``--links`` links (half people by ID number, half flats by address) of ``--orgs`` organisations
over ``--communities`` communities, each subject held by one organisation and, with probability
``--shared``, by another too (the field study's 40-70 % collected twice); then times
:func:`~ledger_api.audit.overlap.count_overlap` and the small-cell rule over them, as ``ledger audit
overlap`` and ``GET /v1/overlap`` run them. Prints one line per phase and a JSON line (``--json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from dataclasses import dataclass

from ledger_api.audit.overlap import Link, count_overlap, overlap_report

__all__ = ["OverlapBench", "run_bench", "synthetic_links"]


def synthetic_links(
    *, links: int, orgs: int = 3, communities: int = 20, shared: float = 0.5, seed: int = 1
) -> list[Link]:
    """``links`` links; blind indexes are 64 hex digits like the real ones (SHA-256 of a counter)."""
    chooser = random.Random(seed)
    names = [f"ORG-{n:02d}" for n in range(orgs)]
    codes = [f"3301020{n:02d}" for n in range(communities)]
    out: list[Link] = []
    subject = 0
    while len(out) < links:
        kind = "id_number" if subject % 2 else "address"
        index = hashlib.sha256(subject.to_bytes(8, "big")).hexdigest()
        community = codes[subject % communities]
        holders = chooser.sample(names, 2 if chooser.random() < shared else 1)
        out.extend((org, community, kind, index) for org in holders)
        subject += 1
    return out[:links]


@dataclass(frozen=True, kw_only=True)
class OverlapBench:
    links: int
    orgs: int
    communities: int
    count_s: float
    report_s: float

    @property
    def links_per_s(self) -> float:
        return self.links / self.count_s if self.count_s else float("inf")

    def to_json(self) -> dict[str, object]:
        return {
            "links": self.links, "orgs": self.orgs, "communities": self.communities,
            "count_s": round(self.count_s, 3), "report_s": round(self.report_s, 4),
            "links_per_s": round(self.links_per_s),
        }  # fmt: skip


def run_bench(*, links: int, orgs: int = 3, communities: int = 20, shared: float = 0.5) -> OverlapBench:
    data = synthetic_links(links=links, orgs=orgs, communities=communities, shared=shared)
    started = time.perf_counter()
    counts = count_overlap(data)
    counted = time.perf_counter()
    overlap_report(counts)
    done = time.perf_counter()
    return OverlapBench(
        links=links, orgs=orgs, communities=communities, count_s=counted - started, report_s=done - counted
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger_api.audit.overlap_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--communities", type=int, default=20)
    parser.add_argument("--shared", type=float, default=0.5, help="share of subjects a second organisation holds")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args(argv)
    result = run_bench(links=args.links, orgs=args.orgs, communities=args.communities, shared=args.shared)
    print(
        f"overlap of {result.links:,} links ({result.orgs} organisations, {result.communities} communities): "
        f"counted in {result.count_s:.2f} s ({result.links_per_s:,.0f} links/s), "
        f"small-cell rule and report in {result.report_s * 1000:.1f} ms"
    )
    if args.json:
        print(json.dumps(result.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
