"""``ledger import --adapter NAME FILE …``: parse department exports and push them through the gateway."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters import ImportContext, import_file
from adapters.errors import AdapterError
from adapters.registry import available_adapters
from ledger_api.errors import ConfigurationError, LedgerError


def register(commands: Any) -> None:
    imp = commands.add_parser("import", help="import department export files through the gateway")
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    imp.add_argument("--adapter", required=True, help="one of: " + ", ".join(available_adapters()))
    imp.add_argument("--community", required=True, metavar="CODE", help="community code for rows that name none")
    imp.add_argument(
        "--community-name",
        action="append",
        default=[],
        metavar="NAME=CODE",
        help="map a community name used in the file to its code (repeatable)",
    )
    imp.add_argument("--as-of", help="ISO 8601 time a snapshot export (resident registry) describes")
    imp.add_argument("--dry-run", action="store_true", help="parse and validate only; push nothing")
    imp.add_argument("--owner", help="owner organisation (default: the API key's organisation)")
    imp.add_argument("--gateway", default=os.environ.get("LEDGER_GATEWAY_URL", "http://127.0.0.1:8000"))
    imp.add_argument("--api-key-env", default="LEDGER_API_KEY", metavar="VAR")
    imp.add_argument("--json", action="store_true", help="print one JSON object (a list for several files)")
    imp.set_defaults(handler=run_import)


def _context(args: argparse.Namespace, owner: str, path: Path) -> ImportContext:
    names: dict[str, str] = {}
    for item in args.community_name:
        name, sep, code = item.partition("=")
        if not sep or not name or not code:
            raise ConfigurationError(f"--community-name expects NAME=CODE, got {item!r}")
        names[name.strip()] = code.strip()
    as_of = None
    if args.as_of:
        as_of = dt.datetime.fromisoformat(args.as_of)
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
    return ImportContext(
        owner_org=owner, community_code=args.community, community_codes=names, file_name=path.name, as_of=as_of
    )


def _progress(path: Path) -> tuple[Callable[[int], object] | None, Callable[[], None]]:
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import Progress, SpinnerColumn, TextColumn

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True)
    task = bar.add_task(f"{path.name}: 0 rows")
    bar.start()
    return (lambda rows: bar.update(task, description=f"{path.name}: {rows:,} rows")), bar.stop


class _PushOutcomes:
    """What the gateway answered for every record pushed: created, new version or unchanged."""

    STATUSES = ("created", "new_version", "unchanged")

    def __init__(self, push: Callable[[list[Any]], dict[str, Any]]) -> None:
        self._push = push
        self.counts = dict.fromkeys(self.STATUSES, 0)

    def __call__(self, records: list[Any]) -> None:
        for record in self._push(records)["records"]:
            self.counts[record["status"]] += 1

    def to_text(self) -> str:
        c = self.counts
        return f"pushed: {c['created']} created, {c['new_version']} new version(s), {c['unchanged']} unchanged"


def run_import(args: argparse.Namespace) -> int:
    from ledger_api.client import GatewayClient

    client = None
    owner = args.owner
    if not args.dry_run:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigurationError(f"set {args.api_key_env} to the organisation's API key (or use --dry-run)")
        client = GatewayClient(base_url=args.gateway, api_key=api_key)
        owner = owner or client.whoami()
    elif not owner:
        raise ConfigurationError("--dry-run needs --owner ORG (the organisation the records would belong to)")

    results = []
    try:
        for path in args.files:
            outcomes = _PushOutcomes(client.push) if client else None
            progress, done = _progress(path)
            try:
                report = import_file(
                    path, args.adapter, context=_context(args, owner, path), sink=outcomes, progress=progress
                )
            except AdapterError as exc:
                raise LedgerError(f"{path}: {exc}") from exc
            finally:
                done()
            results.append((report, outcomes))
    finally:
        if client:
            client.close()
    _print_results(results, as_json=args.json)
    return 0


def _print_results(results: list[tuple[Any, _PushOutcomes | None]], *, as_json: bool) -> None:
    """Each file's import report with the gateway's answers (``outcomes`` is null in a dry run)."""
    if as_json:
        documents = [{**r.to_json_dict(), "outcomes": o.counts if o else None} for r, o in results]
        print(json.dumps(documents[0] if len(documents) == 1 else documents, ensure_ascii=False, indent=2))
        return
    for report, outcomes in results:
        print(report.to_text())
        print(outcomes.to_text() if outcomes else "(dry run: nothing was pushed)")
