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
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_api.audit.model import AuditResult, Discrepancy
from ledger_api.errors import LedgerError

if TYPE_CHECKING:
    from ledger_api.audit.collect import AuditorKey
    from ledger_api.audit.evidence import Evidence
    from ledger_api.chain.deploy import Deployment
    from ledger_api.settings import Settings

__all__ = ["AUDITOR_KEY_ENV", "add_source_arguments", "obtain_result", "register"]

AUDITOR_KEY_ENV = "LEDGER_AUDITOR_KEY"
DEFAULT_AUDITOR = "AU-XIHU-01"
_DEVNET_CHAIN_ID = 31337
USAGE_EXIT = 2


def add_source_arguments(parser: argparse.ArgumentParser, *, bundle: bool = True) -> None:
    """The options that say where an audit's evidence comes from (shared by every ``ledger audit`` command)."""
    if bundle:
        parser.add_argument(
            "--bundle", type=Path, metavar="FILE", help="check an exported bundle (no network unless --rpc is given)"
        )
    parser.add_argument(
        "--rpc",
        "--rpc-url",
        dest="rpc",
        metavar="URL",
        help="JSON-RPC endpoint (default LEDGER_RPC_URL or the local devnet; with --bundle: cross-check it)",
    )
    parser.add_argument("--storage", metavar="URL", help="blob storage: a path, file:///dir or s3://bucket/prefix?…")
    parser.add_argument("--deployment", type=Path, metavar="FILE", help="deployment record (JSON) of the contracts")
    parser.add_argument("--auditor", default=DEFAULT_AUDITOR, metavar="ORG_ID", help="the auditor organisation")
    parser.add_argument(
        "--auditor-key-env",
        default=AUDITOR_KEY_ENV,
        metavar="VAR",
        help=f"variable holding the auditor's HPKE private key as hex (default {AUDITOR_KEY_ENV})",
    )
    parser.add_argument("--auditor-key-index", type=int, default=0, metavar="N")
    parser.add_argument(
        "--emergency-kinds",
        default="police",
        metavar="KINDS",
        help="organisation kinds allowed emergency reads, comma-separated (the gateway's setting; default police)",
    )


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

    from ledger_api.cli.audit_report_commands import add_report_commands

    add_report_commands(actions)


# --- gathering ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Audited:
    result: AuditResult
    evidence: Evidence


def _fail(message: str) -> SystemExit:
    # The audit could not run: one line, exit status 2 (distinct from 1, "discrepancies found").
    print(f"ledger: error: {message}", file=sys.stderr)
    return SystemExit(USAGE_EXIT)


def _auditor_key(args: argparse.Namespace, chain_id: int) -> AuditorKey:
    from ledger_api.audit.collect import AuditorKey

    value = os.environ.get(args.auditor_key_env, "").strip()
    if value:
        try:
            private = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise _fail(f"{args.auditor_key_env} is not hexadecimal") from None
    elif chain_id == _DEVNET_CHAIN_ID:
        from ledger_api.provision import demo_private_key  # the devnet demo's fixed keys only

        private = demo_private_key(args.auditor)
    else:
        raise _fail(f"set {args.auditor_key_env} to the auditor's HPKE private key (hex) to open the access log")
    return AuditorKey(org_id=args.auditor, key_index=args.auditor_key_index, private_key=private)


def _deployment(args: argparse.Namespace, chain_id: int, settings: Settings) -> Deployment:
    from ledger_api.chain.deploy import Deployment, DeploymentStore

    if args.deployment is not None:
        try:
            return Deployment(**json.loads(args.deployment.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise _fail(f"cannot read the deployment record {args.deployment}: {exc}") from None
    return DeploymentStore(directory=settings.deployments_dir).require(chain_id)


def _collect(args: argparse.Namespace) -> Evidence:
    from ledger_api.audit.collect import collect_evidence
    from ledger_api.chain.errors import ChainError
    from ledger_api.chain.rpc import JsonRpc
    from ledger_api.settings import Settings
    from ledger_api.storage import blob_store_from_settings

    settings = Settings()
    url = args.rpc or settings.rpc_url
    rpc = JsonRpc(url=url)
    try:
        try:
            chain_id = rpc.chain_id()
        except ChainError as exc:
            raise _fail(f"cannot reach the chain at {url}: {exc}") from None
        storage_url = args.storage or settings.blob_store_url
        store = blob_store_from_settings(storage_url)
        return collect_evidence(
            rpc=rpc,
            deployment=_deployment(args, chain_id, settings),
            store=store,
            auditor=_auditor_key(args, chain_id),
            storage_label=f"storage {storage_url}",
        )
    finally:
        rpc.close()


def _cross_check(args: argparse.Namespace, evidence: Evidence) -> list[Discrepancy]:
    from ledger_api.audit.bundle import cross_check
    from ledger_api.audit.collect import collect_chain
    from ledger_api.chain.deploy import Deployment
    from ledger_api.chain.errors import ChainError
    from ledger_api.chain.rpc import JsonRpc

    chain = evidence.chain
    deployment = Deployment(
        chain_id=chain.chain_id,
        block_number=chain.deployment_block,
        addresses=chain.addresses,
        source_hash="",
        admin="",
    )
    rpc = JsonRpc(url=args.rpc)
    try:
        node = collect_chain(rpc=rpc, deployment=deployment)
        header = rpc.block(chain.checkpoint_block)
    except ChainError as exc:
        raise _fail(f"cannot reach the chain at {args.rpc}: {exc}") from None
    finally:
        rpc.close()
    return cross_check(evidence, node, url=args.rpc, node_checkpoint_hash=str(header["hash"]) if header else None)


def _audit(args: argparse.Namespace) -> _Audited:
    from ledger_api.audit.verifier import VerifyOptions, verify

    kinds = frozenset(k.strip().lower() for k in str(args.emergency_kinds).split(",") if k.strip())
    options = VerifyOptions(emergency_kinds=kinds)
    try:
        found: list[Discrepancy] = []
        if getattr(args, "bundle", None) is not None:
            from ledger_api.audit.bundle import read_bundle

            evidence, found = read_bundle(args.bundle)
            if args.rpc:
                found += _cross_check(args, evidence)
        else:
            evidence = _collect(args)
        result = verify(evidence, options=options, found=found)
        check_index = getattr(args, "check_index", None)
        if check_index:
            import dataclasses

            from ledger_api.audit.index_check import check_index as compare_index

            extra = compare_index(check_index, result, evidence)
            result = dataclasses.replace(result, discrepancies=result.discrepancies + tuple(extra))
    except LedgerError as exc:
        raise _fail(str(exc)) from None
    return _Audited(result=result, evidence=evidence)


def obtain_result(args: argparse.Namespace) -> AuditResult:
    """The audit the source options in ``args`` describe (see :func:`add_source_arguments`).

    When the audit cannot run at all it prints one line on stderr and raises ``SystemExit(2)``.
    """
    return _audit(args).result


# --- commands -----------------------------------------------------------------------------------------------


def summary(result: AuditResult) -> dict[str, Any]:
    covered = sum(1 for read in result.reads if read.covered)
    return {
        "source": result.source,
        "chain_id": result.chain_id,
        "checkpoint_block": result.checkpoint_block,
        "records_verified": len(result.records),
        "entries_verified": len(result.reads),
        "tree_heads": len(result.tree_heads),
        "reads_covered": covered,
        "emergency_reads_for_review": len(result.emergency_reads),
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
        f"emergency reads listed for review: {facts['emergency_reads_for_review']:,}"
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
    result = obtain_result(args)
    print_result(result, as_json=args.json)
    return 0 if result.ok else 1


def run_export(args: argparse.Namespace) -> int:
    from ledger_api.audit.bundle import write_bundle

    try:
        evidence = _collect(args)
        size = write_bundle(evidence, args.out)
    except LedgerError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write {args.out}: {exc.strerror or exc}") from None
    chain = evidence.chain
    print(
        f"wrote {args.out} ({size:,} bytes): {len(chain.receipts):,} batches, {len(evidence.storage.blobs):,} blobs, "
        f"{len(evidence.storage.entries):,} access entries, {len(chain.heads):,} tree heads, "
        f"checkpoint block {chain.checkpoint_block}"
    )
    return 0
