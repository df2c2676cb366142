"""Helpers for the gateway's authorisation matrix: the operations an app serves, and the expected table.

``served_operations`` walks the application's routes (routers included under a prefix too) rather than
trusting a hand-written list, so a new endpoint without a row in the table fails the matrix test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: What a cell may expect. ``200+`` / ``200-``: answered 200, and the answer does (does not) show the
#: cell's subject (the target record, or the emergency read of it).
OUTCOMES = frozenset({"200", "200+", "200-", "202", "401", "403", "404"})


def served_operations(app: Any) -> set[str]:
    """``"METHOD /path"`` of every route the app serves (HEAD aside), walking included routers."""
    operations: set[str] = set()

    def walk(routes: Iterable[Any], prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:  # FastAPI >= 0.165 keeps an included router as one route
                walk(included.routes, prefix + route.include_context.prefix)
                continue
            methods = getattr(route, "methods", None)
            if methods is None:
                raise AssertionError(f"a route of unknown shape: {route!r}")
            operations.update(f"{method} {prefix}{route.path}" for method in methods if method != "HEAD")

    walk(app.routes, "")
    return operations


def published_operations(spec: dict[str, Any]) -> set[str]:
    """``"METHOD /path"`` of every operation in an OpenAPI document."""
    return {f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item}


def parse_table(table: str, callers: Sequence[str]) -> dict[str, dict[str, str]]:
    """``operation -> caller -> outcome`` from a ``|``-separated table whose header names the callers."""
    lines = [line for line in table.strip().splitlines() if line.strip()]
    header = [cell.strip() for cell in lines[0].split("|")]
    if tuple(header[1:]) != tuple(callers):
        raise AssertionError(f"table header {header[1:]} is not {list(callers)}")
    expected: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) != len(callers) + 1 or not set(cells[1:]) <= OUTCOMES:
            raise AssertionError(f"malformed table row: {line}")
        if cells[0] in expected:
            raise AssertionError(f"duplicate table row {cells[0]}")
        expected[cells[0]] = dict(zip(callers, cells[1:], strict=True))
    return expected


def allows(outcome: str) -> bool:
    return outcome.startswith("2")


def classify(expected: str, observed: str) -> str | None:
    """None when they agree; else "unexpected allow", "unexpected deny" or "wrong status"."""
    if expected == observed:
        return None
    if expected == "200-" and observed == "200+":
        return "unexpected allow"  # a visible subject where it must be hidden is a leak
    if expected == "200+" and observed == "200-":
        return "unexpected deny"
    if allows(observed) and not allows(expected):
        return "unexpected allow"
    if allows(expected) and not allows(observed):
        return "unexpected deny"
    return "wrong status"


def render(rows: dict[str, dict[str, str]], callers: Sequence[str]) -> str:
    """The observed matrix in the table's own format, for the failure message."""
    width = max(len(name) for name in rows)
    lines = [" | ".join([f"{'operation':<{width}}", *callers])]
    for name, cells in rows.items():
        lines.append(" | ".join([f"{name:<{width}}", *(f"{cells.get(c, '?'):<{len(c)}}" for c in callers)]))
    return "\n".join(lines)
