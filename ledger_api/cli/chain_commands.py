"""``ledger compile``, ``ledger devnet up|down|status``, ``ledger deploy``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from ledger_api.chain.clique import CliqueNetworkStatus
from ledger_api.cli.context import CliContext, add_chain_options, add_signer_options, enter_demo_mode
from ledger_api.errors import ConfigurationError

ENGINES = ("anvil", "clique")


def register(commands: Any) -> None:
    compile_cmd = commands.add_parser("compile", help="compile contracts/ into the committed artifacts")
    compile_cmd.add_argument("--check", action="store_true", help="only report whether the artifacts are stale")
    compile_cmd.add_argument(
        "--evm-version",
        default=None,
        help="target EVM (default london, which every supported chain runs; a newer one only for a chain that runs it)",
    )
    compile_cmd.set_defaults(handler=run_compile)

    devnet = commands.add_parser(
        "devnet", help="the local devnet: anvil, or a multi-node Clique network (state kept in LEDGER_HOME)"
    )
    actions = devnet.add_subparsers(dest="devnet_action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start the devnet (no-op when it runs)")
    up.add_argument("--engine", choices=ENGINES, default="anvil", help="anvil (one node) or clique (geth signers)")
    up.add_argument("--nodes", type=int, help="signer nodes of a clique network (default 4)")
    up.add_argument("--port", type=int, help="anvil's port (a clique network chooses free ports once)")
    up.add_argument("--block-time", type=float, help="a block every N seconds, like a consortium chain")
    up.set_defaults(handler=run_devnet_up)
    down = actions.add_parser("down", help="stop the devnet, every node of it (its state is kept)")
    down.set_defaults(handler=run_devnet_down)
    status = actions.add_parser("status", help="is the devnet running, at which block")
    status.add_argument("--engine", choices=ENGINES, help="default: the clique network when one was created")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=run_devnet_status)

    run = commands.add_parser("run", help="devnet, contracts, demo organisations and the gateway, up until Ctrl-C")
    run.set_defaults(handler=run_services)

    deploy = commands.add_parser("deploy", help="deploy the contracts (a re-run reuses the recorded ones)")
    add_chain_options(deploy)
    add_signer_options(deploy)
    deploy.add_argument("--log-writer", metavar="ADDRESS", help="account allowed to anchor access-log heads")
    deploy.add_argument("--force", action="store_true", help="deploy anew even if a live deployment is recorded")
    deploy.add_argument("--json", action="store_true")
    deploy.set_defaults(handler=run_deploy)


def run_compile(args: argparse.Namespace) -> int:
    from ledger_api.chain import compiler
    from ledger_api.chain.artifacts import ARTIFACT_PATH, load_artifacts

    if args.check:
        drift = compiler.artifact_drift(load_artifacts())
        print(drift or f"artifacts are current ({ARTIFACT_PATH})")
        return 1 if drift else 0
    document = compiler.compile_contracts(evm_version=args.evm_version or compiler.EVM_VERSION)
    path = compiler.write_artifacts(document)
    print(
        f"compiled {len(document['contracts'])} contracts with solc {document['compiler']['version']} "
        f"for EVM {document['settings']['evmVersion']} -> {path}"
    )
    return 0


def run_devnet_up(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    if args.engine == "clique":
        if args.port is not None:
            raise ConfigurationError(
                "--port is for anvil: a clique network chooses its nodes' ports once and keeps them"
            )
        block_time = args.block_time if args.block_time is not None else 1
        if block_time < 1 or block_time != int(block_time):
            raise ConfigurationError(
                f"--block-time {block_time:g}: Clique seals every whole number of seconds (1 or more)"
            )
        network = ctx.clique(nodes=args.nodes or 4, period_s=int(block_time))
        _print_clique(network.up(), prefix="devnet up")
        return 0
    if args.nodes not in (None, 1):
        raise ConfigurationError(f"--nodes {args.nodes}: anvil is one node; use --engine clique for a network")
    node = ctx.devnet(port=args.port, block_time_s=args.block_time)
    status = node.up()
    print(f"devnet up: {status.rpc_url} chain {status.chain_id} block {status.block_number} (pid {status.pid})")
    return 0


def run_devnet_down(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    node = ctx.devnet()
    print("devnet stopped; state kept in " + str(node.state_path) if node.down() else "devnet was not running")
    network = ctx.existing_clique()
    if network is not None:
        stopped = network.down()
        print(f"clique network {'stopped' if stopped else 'was not running'}; state kept in {network.home}")
    return 0


def run_devnet_status(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    network = ctx.existing_clique() if args.engine != "anvil" else None
    if network is not None or args.engine == "clique":
        if network is None:
            print("no clique network was created: `ledger devnet up --engine clique`")
            return 3
        clique = network.status()
        if args.json:
            print(json.dumps(dataclasses.asdict(clique) | {"engine": "clique", "rpc_url": clique.rpc_url}))
        else:
            _print_clique(clique, prefix="devnet " + ("running" if clique.running else "not fully running"))
        return 0 if clique.running else 3
    status = ctx.devnet().status()
    if args.json:
        print(json.dumps(status.__dict__))
    elif status.running:
        print(
            f"devnet running: {status.rpc_url} chain {status.chain_id} block {status.block_number} (pid {status.pid})"
        )
    else:
        print("devnet not running")
    return 0 if status.running else 3


def _print_clique(status: CliqueNetworkStatus, *, prefix: str) -> None:
    heads = [n.block_number for n in status.nodes if n.block_number is not None]
    print(f"{prefix}: clique, {len(status.nodes)} signers, chain {status.chain_id}, block {max(heads, default='-')}")
    for node in status.nodes:
        state = f"block {node.block_number}, {node.peers} peers (pid {node.pid})" if node.running else "stopped"
        print(f"  node {node.index}  {node.rpc_url}  signer {node.signer}  {state}")
    print(f"  LEDGER_RPC_URL={status.rpc_url} LEDGER_CHAIN_ENGINE=clique")


def run_deploy(args: argparse.Namespace) -> int:
    from ledger_api.chain.deploy import ensure_deployed

    ctx = CliContext.from_args(args)
    admin = ctx.signer(args)
    deployment, reused = ensure_deployed(
        transactor=ctx.transactor, store=ctx.deployments, admin=admin, log_writer=args.log_writer, force=args.force
    )
    if args.json:
        print(json.dumps({"reused": reused, **deployment.__dict__}))
        return 0
    print(("reusing" if reused else "deployed") + f" ledger contracts on chain {deployment.chain_id}:")
    for name, address in deployment.addresses.items():
        print(f"  {name:<22} {address}")
    print(f"  recorded in {ctx.deployments.path(deployment.chain_id)}")
    return 0


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def run_services(args: argparse.Namespace) -> int:
    enter_demo_mode()
    import json as _json
    import signal

    import uvicorn

    from ledger_api.gateway.app import create_app
    from ledger_api.gateway.services import GatewayServices
    from ledger_api.provision import provision

    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
    # `finally` below stop the devnet this command started.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    ctx = CliContext.from_args(args)
    node = ctx.devnet()
    status = node.up()
    try:
        provisioned = provision(settings=ctx.settings, transactor=ctx.transactor)
        keys_file = ctx.settings.home / "demo-api-keys.json"
        keys_file.write_text(_json.dumps(provisioned.api_keys, indent=2))
        keys_file.chmod(0o600)
        services = GatewayServices.from_settings(ctx.settings)
        print(
            f"devnet:  {status.rpc_url} (chain {status.chain_id}), contracts in "
            f"{ctx.deployments.path(provisioned.deployment.chain_id)}"
        )
        print(f"gateway: http://{ctx.settings.host}:{ctx.settings.port}/v1 (OpenAPI: /v1/openapi.json)")
        print(f"API keys of the demo organisations: {keys_file}")
        print("running; press Ctrl-C to stop", flush=True)
        uvicorn.run(create_app(services), host=ctx.settings.host, port=ctx.settings.port, log_level="warning")
    finally:
        node.down()
        print("stopped the gateway and the devnet (state kept)")
    return 0
