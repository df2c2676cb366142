"""``ledger audit report|subject|overlap|consortium-key``: the auditor's report, subject access, data collected
twice, the blind-index key.

- ``ledger audit report --out DIR [--format json|html|both]`` writes ``audit-report.json`` and/or
  ``audit-report.html`` and prints their paths; exit status 1 (after writing) when the audit found any
  discrepancy (DESIGN.md: "exit status non-zero on any discrepancy").
- ``ledger audit subject --id-number N [--consortium-key-env VAR] [--json]`` lists every read of records
  about that person. The consortium key is read, as 64 hex digits, from ``$LEDGER_CONSORTIUM_KEY`` (or
  the variable named), never from the command line where ``ps`` and shell history would show it.
  Exit status 1 when the audit found discrepancies (the list may then be incomplete).
- ``ledger audit overlap [--json] [--min-cell N]`` prints, for each pair of organisations and each kind of
  link (person by ID number, flat by address), how many distinct subjects each holds and how many both
  hold, per community and in total: counted from the anchored manifests' blind indexes (no key needed,
  no plaintext), counts under ``N`` (default ``LEDGER_OVERLAP_MIN_CELL``, 5) shown as "< N"
  (:mod:`ledger_api.audit.overlap`). Exit status 1 when the audit found discrepancies.
- ``ledger audit consortium-key`` prints the consortium key of this machine's gateway keystore
  (``$LEDGER_HOME/keystore``, master secret ``$LEDGER_MASTER_SECRET``; the demo placeholder on the
  devnet) so an operator can hand it to the auditor::

      export LEDGER_CONSORTIUM_KEY=$(ledger audit consortium-key)

Both audit commands take the source options of ``ledger audit verify`` (a chain and storage, or a bundle)
and share its exit statuses: 0 clean, 1 on any discrepancy, 2 when they could not run (bad usage, a
missing key, unreachable sources): one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_api.cli import audit_source
from ledger_api.cli.audit_source import add_source_arguments, cannot_run
from ledger_api.errors import ConfigurationError, LedgerError

if TYPE_CHECKING:
    from ledger_api.audit.report import Report

__all__ = [
    "CONSORTIUM_KEY_ENV",
    "REPORT_FILE_STEM",
    "add_report_commands",
    "parse_consortium_key",
    "run_overlap",
    "write_report",
]

CONSORTIUM_KEY_ENV = "LEDGER_CONSORTIUM_KEY"
REPORT_FILE_STEM = "audit-report"
_CONSORTIUM_KEY_SIZE = 32


def add_report_commands(audit_commands: Any) -> None:
    """Add ``report``, ``subject`` and ``consortium-key`` to the ``ledger audit`` sub-commands."""
    report = audit_commands.add_parser(
        "report", help="write the audit report (JSON and/or HTML); exit 1 on any discrepancy"
    )
    add_source_arguments(report)
    report.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory for the report files")
    report.add_argument("--format", choices=("json", "html", "both"), default="both")
    report.set_defaults(handler=run_report)

    subject = audit_commands.add_parser("subject", help="every read of records about one person (by ID number)")
    add_source_arguments(subject)
    subject.add_argument("--id-number", required=True, metavar="N", help="18- or 15-digit ID number (GB 11643)")
    subject.add_argument(
        "--consortium-key-env",
        default=CONSORTIUM_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the consortium key as 64 hex digits (default {CONSORTIUM_KEY_ENV})",
    )
    subject.add_argument("--json", action="store_true", help="print one JSON object")
    subject.set_defaults(handler=run_subject)

    overlap = audit_commands.add_parser(
        "overlap", help="people and flats several organisations hold (counts from blind indexes, small cells hidden)"
    )
    add_source_arguments(overlap)
    overlap.add_argument("--json", action="store_true", help="print one JSON object")
    overlap.add_argument(
        "--min-cell", type=_positive, metavar="N", help="hide counts under N (default LEDGER_OVERLAP_MIN_CELL, 5)"
    )
    overlap.set_defaults(handler=run_overlap)
    report.add_argument(
        "--min-cell", type=_positive, metavar="N", help="overlap section: hide counts under N (default 5)"
    )

    export = audit_commands.add_parser(
        "consortium-key", help="print this gateway keystore's consortium key (hex) for an auditor"
    )
    export.add_argument(
        "--rpc-url", metavar="URL", help="JSON-RPC endpoint (default: LEDGER_RPC_URL or the local devnet)"
    )
    export.set_defaults(handler=run_consortium_key)


def write_report(report: Report, out: Path, *, formats: str = "both") -> list[Path]:
    """Write the report's JSON and/or HTML into ``out`` (created if missing); return the paths written."""
    from ledger_api.audit.html import render_html

    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        if formats in ("json", "both"):
            path = out / f"{REPORT_FILE_STEM}.json"
            path.write_text(report.to_json(), encoding="utf-8")
            written.append(path)
        if formats in ("html", "both"):
            path = out / f"{REPORT_FILE_STEM}.html"
            path.write_text(render_html(report), encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise LedgerError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    return written


def run_report(args: argparse.Namespace) -> int:
    from ledger_api.audit.report import build_report

    report = build_report(audit_source.obtain_result(args), overlap_min_cell=_min_cell(args))
    try:
        written = write_report(report, args.out, formats=args.format)
    except LedgerError as exc:
        raise cannot_run(str(exc)) from None
    for path in written:
        print(path)
    s = report.summary
    print(
        f"{s.reads:,} reads, {s.emergency_reads:,} emergency, {s.anomalies:,} anomaly flags, "
        f"{s.discrepancies:,} discrepancies",
        file=sys.stderr,
    )
    return 0 if report.ok else 1


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _min_cell(args: argparse.Namespace) -> int:
    from ledger_api.settings import Settings

    given: int | None = args.min_cell
    return given if given is not None else Settings().overlap_min_cell


def run_overlap(args: argparse.Namespace) -> int:
    from ledger_api.audit.overlap import count_overlap, links_of_records, overlap_report

    min_cell = _min_cell(args)
    result = audit_source.obtain_result(args)
    shown = overlap_report(count_overlap(links_of_records(result.records)), min_cell=min_cell)
    if args.json:
        print(json.dumps({"source": result.source, "checkpoint_block": result.checkpoint_block,
                          **shown.to_json_dict()}, ensure_ascii=False))  # fmt: skip
    else:
        print(f"audit of {result.source} (chain {result.chain_id}, checkpoint block {result.checkpoint_block})")
        print(shown.to_text())
    if not result.ok:
        print("ledger: the audit found discrepancies: these counts may be incomplete (see ledger audit report)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def parse_consortium_key(env_var: str) -> bytes:
    """The 32-byte consortium key from ``$env_var`` (hex), or one clear error that never echoes the value."""
    value = os.environ.get(env_var, "").strip()
    if not value:
        raise ConfigurationError(
            f"set {env_var} to the consortium key (64 hex digits; an operator exports it with "
            "`ledger audit consortium-key`)"
        )
    try:
        key = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise ConfigurationError(f"{env_var} is not hexadecimal") from None
    if len(key) != _CONSORTIUM_KEY_SIZE:
        raise ConfigurationError(f"{env_var} holds {len(key)} bytes, the consortium key has {_CONSORTIUM_KEY_SIZE}")
    return key


def run_subject(args: argparse.Namespace) -> int:
    from adapters.canonical import normalise_id_number
    from ledger_api.audit.subject import subject_access

    try:
        key = parse_consortium_key(args.consortium_key_env)
        normalise_id_number(args.id_number)  # before the audit, which can take a while: a typo fails at once
    except ConfigurationError as exc:
        raise cannot_run(str(exc)) from None
    except ValueError as exc:
        raise cannot_run(f"invalid --id-number: {exc}") from None
    report = subject_access(audit_source.obtain_result(args), id_number=args.id_number, consortium_key=key)
    print(report.to_json() if args.json else report.to_text(), end="" if args.json else "\n")
    if not report.audit_ok:
        print("ledger: the audit found discrepancies: this list may be incomplete (see ledger audit report)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def run_consortium_key(args: argparse.Namespace) -> int:
    from ledger_api.cli.context import CliContext
    from ledger_api.crypto.keystore import OrgKeystore
    from ledger_api.crypto.keystore_secret import master_secret

    ctx = CliContext.from_args(args)
    directory = ctx.settings.keystore_dir
    # Opening would create an empty keystore with a fresh key, which no record was ever indexed under.
    if not (directory / "keystore.json").is_file():
        raise cannot_run(f"no keystore at {directory}: run this where the gateway runs (LEDGER_HOME)")
    try:
        secret = master_secret(ctx.settings, chain_id=ctx.transactor.chain_id)
        key = OrgKeystore.open(directory, master_secret=secret, demo=True).consortium_key()
    except LedgerError as exc:
        raise cannot_run(str(exc)) from None
    print(key.hex())
    if sys.stdout.isatty():
        print("ledger: this is a secret: pass it to the auditor over a private channel", file=sys.stderr)
    return 0
