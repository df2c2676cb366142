"""Where an audit's evidence comes from, shared by every ``ledger audit`` command: the source options, the
gathering of evidence (a chain and storage, or a bundle), the audit itself, and the one-line exit 2 when it
cannot run (:mod:`ledger_api.cli.audit_commands` documents the options and exit statuses).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ledger_api.access.decision import EMERGENCY_READS_PER_HOUR
from ledger_api.audit.model import AuditResult, Discrepancy
from ledger_api.errors import LedgerError

if TYPE_CHECKING:
    from ledger_api.audit.collect import AuditorKey
    from ledger_api.audit.evidence import Evidence
    from ledger_api.chain.deploy import Deployment
    from ledger_api.settings import Settings

__all__ = ["AUDITOR_KEY_ENV", "USAGE_EXIT", "add_source_arguments", "cannot_run", "collect", "obtain_result"]

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
    parser.add_argument(
        "--emergency-per-hour",
        type=int,
        default=EMERGENCY_READS_PER_HOUR,
        metavar="N",
        help=f"break-glass reads one organisation may make an hour (the gateway's LEDGER_EMERGENCY_PER_HOUR; "
        f"default {EMERGENCY_READS_PER_HOUR})",
    )


@dataclass(frozen=True, kw_only=True)
class _Audited:
    result: AuditResult
    evidence: Evidence


def cannot_run(message: str) -> SystemExit:
    # The audit could not run: one line, exit status 2 (distinct from 1, "discrepancies found").
    print(f"ledger: error: {message}", file=sys.stderr)
    return SystemExit(USAGE_EXIT)


def _auditor_key(args: argparse.Namespace, chain_id: int, *, demo: bool) -> AuditorKey:
    from ledger_api.audit.collect import AuditorKey

    value = os.environ.get(args.auditor_key_env, "").strip()
    if value:
        try:
            private = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise cannot_run(f"{args.auditor_key_env} is not hexadecimal") from None
    elif demo and chain_id == _DEVNET_CHAIN_ID:
        from ledger_api.provision import demo_private_key  # the devnet demo's fixed keys only

        private = demo_private_key(args.auditor)
    else:
        raise cannot_run(f"set {args.auditor_key_env} to the auditor's HPKE private key (hex) to open the access log")
    return AuditorKey(org_id=args.auditor, key_index=args.auditor_key_index, private_key=private)


def _deployment(args: argparse.Namespace, chain_id: int, settings: Settings) -> Deployment:
    from ledger_api.chain.deploy import Deployment, DeploymentStore

    if args.deployment is not None:
        try:
            return Deployment(**json.loads(args.deployment.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise cannot_run(f"cannot read the deployment record {args.deployment}: {exc}") from None
    return DeploymentStore(directory=settings.deployments_dir).require(chain_id)


def collect(args: argparse.Namespace) -> Evidence:
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
            raise cannot_run(f"cannot reach the chain at {url}: {exc}") from None
        storage_url = args.storage or settings.blob_store_url
        store = blob_store_from_settings(storage_url)
        return collect_evidence(
            rpc=rpc,
            deployment=_deployment(args, chain_id, settings),
            store=store,
            auditor=_auditor_key(args, chain_id, demo=settings.demo_mode),
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
        raise cannot_run(f"cannot reach the chain at {args.rpc}: {exc}") from None
    finally:
        rpc.close()
    return cross_check(evidence, node, url=args.rpc, node_checkpoint_hash=str(header["hash"]) if header else None)


def _audit(args: argparse.Namespace) -> _Audited:
    from ledger_api.audit.verifier import VerifyOptions, verify

    kinds = frozenset(k.strip().lower() for k in str(args.emergency_kinds).split(",") if k.strip())
    options = VerifyOptions(
        emergency_kinds=kinds,
        emergency_per_hour=max(1, int(getattr(args, "emergency_per_hour", EMERGENCY_READS_PER_HOUR))),
    )
    try:
        found: list[Discrepancy] = []
        if getattr(args, "bundle", None) is not None:
            from ledger_api.audit.bundle import read_bundle

            evidence, found = read_bundle(args.bundle)
            if args.rpc:
                found += _cross_check(args, evidence)
        else:
            evidence = collect(args)
        result = verify(evidence, options=options, found=found)
        check_index = getattr(args, "check_index", None)
        if check_index:
            import dataclasses

            from ledger_api.audit.index_check import check_index as compare_index

            extra = compare_index(check_index, result, evidence)
            result = dataclasses.replace(result, discrepancies=result.discrepancies + tuple(extra))
    except LedgerError as exc:
        raise cannot_run(str(exc)) from None
    return _Audited(result=result, evidence=evidence)


def obtain_result(args: argparse.Namespace) -> AuditResult:
    """The audit the source options in ``args`` describe (see :func:`add_source_arguments`).

    When the audit cannot run at all it prints one line on stderr and raises ``SystemExit(2)``.
    """
    return _audit(args).result
