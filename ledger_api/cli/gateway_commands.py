"""``ledger serve``, ``ledger enrol``, ``ledger apikey issue|revoke|list``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ledger_api.cli.context import CliContext, add_chain_options, enter_demo_mode
from ledger_api.errors import ConfigurationError


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the HTTP gateway (and its anchoring worker)")
    add_chain_options(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(handler=run_serve)

    enrol = commands.add_parser(
        "enrol", help="give the gateway an organisation's keys: a new HPKE key pair and its transaction signer"
    )
    add_chain_options(enrol)
    enrol.add_argument("org_id")
    enrol.add_argument("--signer-key-env", metavar="VAR", help="variable holding the organisation signer's hex key")
    enrol.add_argument(
        "--suite",
        choices=("x25519", "mlkem768-x25519"),
        default=None,
        help="HPKE suite of a new key (default LEDGER_HPKE_SUITE; the hybrid one for long-lived sensitive data)",
    )
    enrol.add_argument("--json", action="store_true")
    enrol.set_defaults(handler=run_enrol)

    reindex = commands.add_parser("reindex", help="rebuild the gateway index from chain events and blob storage")
    add_chain_options(reindex)
    reindex.add_argument("--json", action="store_true")
    reindex.set_defaults(handler=run_reindex)

    keys = commands.add_parser("keys", help="organisation encryption keys held by the gateway")
    key_actions = keys.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    rotate = key_actions.add_parser(
        "rotate", help="new HPKE key for an organisation, published on chain by its own signer"
    )
    add_chain_options(rotate)
    rotate.add_argument("org_id")
    rotate.add_argument("--suite", choices=("x25519", "mlkem768-x25519"), default=None)
    rotate.set_defaults(handler=run_keys_rotate)

    bench = commands.add_parser("bench", help="measure ingest, anchoring and gas on a devnet of its own")
    bench.add_argument("--records", type=int, default=20_000)
    bench.add_argument("--batch", type=int, default=500, help="records per HTTP request")
    bench.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    bench.add_argument("--block-time", type=float, default=1.0, help="seconds between blocks")
    bench.add_argument("--naive-seconds", type=float, default=20.0, help="how long to run the naive baseline")
    bench.add_argument("--reads", type=int, default=5_000, help="logged reads to measure")
    bench.add_argument("--read-clients", type=int, default=16, help="concurrent readers")
    bench.add_argument("--engine", choices=("anvil", "clique"), default="anvil", help="the chain to measure on")
    bench.add_argument("--nodes", type=int, default=None, help="signer nodes (clique; default 4)")
    bench.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    bench.set_defaults(handler=run_bench)

    apikey = commands.add_parser("apikey", help="API keys of department systems")
    actions = apikey.add_subparsers(dest="apikey_action", metavar="ACTION", required=True)
    issue = actions.add_parser("issue", help="issue a key for an organisation (shown once)")
    issue.add_argument("org_id")
    issue.add_argument("--label", default="")
    issue.set_defaults(handler=run_apikey_issue)
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=run_apikey_revoke)
    listing = actions.add_parser("list", help="list keys (ids and organisations, never secrets)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=run_apikey_list)
    for action in (issue, revoke, listing):
        add_chain_options(action)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ledger_api.gateway.app import create_app
    from ledger_api.gateway.services import GatewayServices

    ctx = CliContext.from_args(args)
    settings = ctx.settings.model_copy(update={"rpc_url": ctx.rpc_url})
    services = GatewayServices.from_settings(settings)
    app = create_app(services)
    host = args.host or settings.host
    port = args.port or settings.port
    print(f"gateway: http://{host}:{port}/v1 (OpenAPI at /v1/openapi.json), chain {ctx.rpc_url}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


def _engine(ctx: CliContext) -> Any:
    from ledger_api.index.database import make_engine

    return make_engine(ctx.settings.index_url)


def run_enrol(args: argparse.Namespace) -> int:
    from ledger_api.chain.signers import SignerStore
    from ledger_api.crypto.keystore import OrgKeystore
    from ledger_api.crypto.keystore_secret import master_secret

    ctx = CliContext.from_args(args)
    secret = master_secret(ctx.settings, chain_id=ctx.transactor.chain_id)
    keystore = OrgKeystore.open(ctx.settings.keystore_dir, master_secret=secret, demo=True)
    existing = args.org_id in keystore.org_ids()
    if existing:
        key_index, public_key = keystore.current(args.org_id)
    else:
        key_index, public_key = keystore.generate(args.org_id, _suite(args.suite or ctx.settings.hpke_suite))
    signer_address = None
    if args.signer_key_env:
        from ledger_api.chain.signers import load_signer

        account = load_signer(chain_id=ctx.transactor.chain_id, key_env=args.signer_key_env, devnet_default_index=None)
        SignerStore(directory=ctx.settings.home / "signers", password=secret).put(args.org_id, account)
        signer_address = account.address
    result = {"org_id": args.org_id, "key_index": key_index, "public_key": public_key.hex(), "signer": signer_address}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.org_id}: HPKE key #{key_index} {'kept' if existing else 'generated'}; public key {public_key.hex()}"
        )
        if signer_address:
            print(f"  anchors will be signed by {signer_address}")
        print(f"  register it: ledger org register {args.org_id} --public-key {public_key.hex()} …")
    return 0


def run_apikey_issue(args: argparse.Namespace) -> int:
    from ledger_api.index.apikeys import issue_key

    issued = issue_key(_engine(CliContext.from_args(args)), org_id=args.org_id, label=args.label)
    print(f"API key for {issued.org_id} (id {issued.key_id}); store it now, it is not shown again:")
    print(issued.token)
    return 0


def run_apikey_revoke(args: argparse.Namespace) -> int:
    from ledger_api.index.apikeys import revoke_key

    if not revoke_key(_engine(CliContext.from_args(args)), key_id=args.key_id):
        raise ConfigurationError(f"no active API key {args.key_id}")
    print(f"revoked API key {args.key_id}")
    return 0


def run_apikey_list(args: argparse.Namespace) -> int:
    from ledger_api.index.apikeys import list_keys

    keys = list_keys(_engine(CliContext.from_args(args)))
    rows = [
        {
            "key_id": k.key_id,
            "org_id": k.org_id,
            "label": k.label,
            "created_at": k.created_at.isoformat(),
            "revoked": k.revoked_at is not None,
        }
        for k in keys
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['key_id']}  {row['org_id']:<16} {'revoked' if row['revoked'] else 'active':<8} {row['label']}")
    return 0


def run_reindex(args: argparse.Namespace) -> int:
    from ledger_api.gateway.services import GatewayServices
    from ledger_api.records.reindex import reindex

    ctx = CliContext.from_args(args)
    services = GatewayServices.from_settings(ctx.settings.model_copy(update={"rpc_url": ctx.rpc_url}))
    try:
        report = reindex(
            engine=services.engine,
            blobs=services.blobs,
            keystore=services.keystore,
            rpc=services.rpc,
            deployment=services.deployment,
            progress=lambda message: print(f"reindex: {message}", file=sys.stderr),
        )
    finally:
        services.close()
    if args.json:
        print(json.dumps(report.__dict__, default=list))
    else:
        print(
            f"reindexed {report.anchored_records} anchored record versions in {report.batches} batches, "
            f"{report.pending_records} waiting to be anchored"
        )
        for reason in report.skipped:
            print(f"  skipped: {reason}")
    return 0


def _suite(name: str) -> Any:
    from ledger_api.crypto.hpke import HpkeSuite

    return HpkeSuite.MLKEM768_X25519 if name == "mlkem768-x25519" else HpkeSuite.X25519


def run_keys_rotate(args: argparse.Namespace) -> int:
    from ledger_api.records.keys import rotate_organisation_key

    ctx = CliContext.from_args(args)
    key_index, public_key = rotate_organisation_key(
        settings=ctx.settings, chain=ctx.chain, org_id=args.org_id, suite=_suite(args.suite or ctx.settings.hpke_suite)
    )
    print(
        f"{args.org_id}: key #{key_index} published on chain ({len(public_key)} bytes); new records use it, "
        "older records stay readable with their own keys"
    )
    return 0


def run_bench(args: argparse.Namespace) -> int:
    enter_demo_mode()
    from ledger_api.bench import render, result_json
    from ledger_api.bench import run_bench as bench

    result = bench(
        records=args.records,
        batch_size=args.batch,
        clients=args.clients,
        block_time_s=args.block_time,
        naive_seconds=args.naive_seconds,
        reads=args.reads,
        read_clients=args.read_clients,
        chain=args.engine,
        nodes=args.nodes or (4 if args.engine == "clique" else 1),
        progress=(lambda message: print(f"bench: {message}", file=sys.stderr)) if not args.json else (lambda _m: None),
    )
    print(result_json(result) if args.json else render(result))
    return 0
