"""``ledger audit verify|export`` (and, from ``audit_report_commands``, ``report|subject|consortium-key``).

The auditor's tools never open the gateway's database (except ``--check-index``, which compares it):

- ``ledger audit verify [--rpc URL] [--storage URL]`` reads the chain (any JSON-RPC node; events and
  headers only) and the blob storage, checks everything :mod:`ledger_api.audit.verifier` lists, prints a
  summary and each discrepancy on its own line (``--json``: one object).
- ``ledger audit verify --bundle FILE`` checks an exported bundle with no network at all; with
  ``--rpc URL`` too, the bundle's chain facts are compared with that node's.
- ``ledger audit export --out FILE`` writes the bundle (:mod:`ledger_api.audit.bundle`).

Exit status: 0 clean, 1 on any discrepancy, 2 when the audit could not run (bad usage, unreachable node
or storage, unreadable bundle: one line on stderr, no traceback).

The deployment (contract addresses, first block) is the one recorded for the node's chain id under
``$LEDGER_HOME/deployments``, or ``--deployment FILE``. The auditor's HPKE private key (to open the sealed
access-log segments) is read from ``$LEDGER_AUDITOR_KEY`` (or ``--auditor-key-env VAR``) as hex of the
encoded key (KEM id then key, RFC 9180 §7.1), for the organisation ``--auditor`` (default
``AU-XIHU-01``) and key index ``--auditor-key-index``; on the devnet (chain 31337) with no key set, the
demo auditor's fixed key (``ledger_api.provision``) is used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_api.audit.model import AuditResult
from ledger_api.cli import audit_source
from ledger_api.cli.audit_report_commands import add_report_commands
from ledger_api.cli.audit_source import add_source_arguments, cannot_run
from ledger_api.errors import LedgerError

if TYPE_CHECKING:
    pass

__all__ = ["print_result", "register", "summary"]


def register(commands: Any) -> None:
    audit = commands.add_parser("audit", help="verify records and the access trail from chain and storage")
    actions = audit.add_subparsers(dest="audit_action", metavar="ACTION", required=True)

    verify = actions.add_parser(
        "verify", help="check every record, entry, tree head and read; exit 1 on any discrepancy"
    )
    add_source_arguments(verify)
    verify.add_argument(
        "--check-index", metavar="DB_URL", help="also name gateway index rows that disagree (the index is no evidence)"
    )
    verify.add_argument("--json", action="store_true", help="one JSON object: summary and discrepancies")
    verify.set_defaults(handler=run_verify)

    export = actions.add_parser("export", help="write one bundle file that `audit verify --bundle` checks offline")
    add_source_arguments(export, bundle=False)
    export.add_argument("--out", required=True, type=Path, metavar="FILE")
    export.set_defaults(handler=run_export)

    add_report_commands(actions)


# --- commands -----------------------------------------------------------------------------------------------


def summary(result: AuditResult) -> dict[str, Any]:
    covered = sum(1 for read in result.reads if read.covered)
    return {
        "source": result.source,
        "chain_id": result.chain_id,
        "checkpoint_block": result.checkpoint_block,
        "records_verified": len(result.records),
        "entries_verified": len(result.reads) + len(result.refusals),
        "tree_heads": len(result.tree_heads),
        "reads_covered": covered,
        "emergency_reads_for_review": len(result.emergency_reads),
        "refusals": len(result.refusals),
        "discrepancies": len(result.discrepancies),
        "ok": result.ok,
    }


def print_result(result: AuditResult, *, as_json: bool) -> None:
    facts = summary(result)
    if as_json:
        facts["discrepancy_list"] = [
            {"kind": d.kind.value, "subject": d.subject, "detail": d.detail, "where": d.where}
            for d in result.discrepancies
        ]
        facts["emergency_reads"] = [
            {"entry_index": r.entry_index, "accessor_org": r.accessor_org, "record_id": r.record_id,
             "version": r.version, "time": r.time.isoformat(), "basis": r.basis}
            for r in result.emergency_reads
        ]  # fmt: skip
        print(json.dumps(facts, ensure_ascii=False))
        return
    print(f"audit of {result.source} (chain {result.chain_id}, checkpoint block {result.checkpoint_block})")
    print(
        f"records verified: {facts['records_verified']:,}; access entries verified: {facts['entries_verified']:,}; "
        f"tree heads: {facts['tree_heads']:,}; reads covered: {facts['reads_covered']:,}; "
        f"emergency reads listed for review: {facts['emergency_reads_for_review']:,}; "
        f"refused attempts: {facts['refusals']:,}"
    )
    for read in result.emergency_reads:
        print(
            f"  review: emergency read, access entry #{read.entry_index} by {read.accessor_org} "
            f"at {read.time.isoformat()}"
        )
    for discrepancy in result.discrepancies:
        print(discrepancy.line())
    print("OK: no discrepancies" if result.ok else f"FAILED: {len(result.discrepancies):,} discrepancies")


def run_verify(args: argparse.Namespace) -> int:
    result = audit_source.obtain_result(args)
    print_result(result, as_json=args.json)
    return 0 if result.ok else 1


def run_export(args: argparse.Namespace) -> int:
    from ledger_api.audit.bundle import write_bundle

    try:
        evidence = audit_source.collect(args)
        size = write_bundle(evidence, args.out)
    except LedgerError as exc:
        raise cannot_run(str(exc)) from None
    except OSError as exc:
        raise cannot_run(f"cannot write {args.out}: {exc.strerror or exc}") from None
    chain = evidence.chain
    print(
        f"wrote {args.out} ({size:,} bytes): {len(chain.receipts):,} batches, {len(evidence.storage.blobs):,} blobs, "
        f"{len(evidence.storage.entries):,} access entries, {len(chain.heads):,} tree heads, "
        f"checkpoint block {chain.checkpoint_block}"
    )
    return 0
