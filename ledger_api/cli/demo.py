"""``ledger demo``: the main job on embedded defaults, told as a story, then tidied up.

Brings up the devnet (unless one already runs), deploys (or reuses) the contracts, registers three
organisations in two communities from a policy, grants the committee access to police incidents for
elderly care, lists, revokes, lists again, and stops what it started. Safe to re-run.
"""

from __future__ import annotations

import argparse
from typing import Any

from ledger_api.chain.devnet import dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.cli.context import CliContext
from ledger_api.provision import COMMUNITY_B, provision


def register(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run the end-to-end story on the local devnet and tidy up")
    demo.set_defaults(handler=run_demo)


def step(number: int, text: str) -> None:
    print(f"\n[{number}] {text}")


def run_demo(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    node = ctx.devnet()
    already_running = node.status().running
    step(1, "Local devnet (anvil, state kept in " + str(node.state_path) + ")")
    status = node.up()
    print(
        f"    {'reusing running' if already_running else 'started'} devnet at {status.rpc_url}, "
        f"chain {status.chain_id}, block {status.block_number}"
    )
    try:
        _story(ctx)
    finally:
        if not already_running:
            node.down()
            print("\nStopped the devnet this demo started (its state is kept; `ledger devnet up` resumes it).")
    print("Demo finished.")
    return 0


def _story(ctx: CliContext) -> None:
    step(2, "Contracts and organisations: a police station, a property company, a neighbourhood committee")
    provisioned = provision(settings=ctx.settings, transactor=ctx.transactor, issue_api_keys=False)
    deployment = provisioned.deployment
    print(
        f"    {'deployed' if provisioned.deployed_now else 'reused'}: "
        + ", ".join(f"{k} {v}" for k, v in deployment.addresses.items())
    )
    print(f"    check: {ctx.deployments.path(deployment.chain_id)}")
    for action in provisioned.actions or ("nothing to change: already registered",):
        print(f"    + {action}")
    chain = ctx.chain
    for org in chain.organisations():
        print(f"    {org.org_id:<14} {org.kind.name.lower():<10} communities {','.join(org.communities)}")
    print("    check: ledger org list")

    step(3, "Grant: the committee may read police incidents in its community, for elderly care, for 30 days")
    police = dev_account(1)
    now = chain.latest_timestamp()
    spec = GrantSpec(
        owner_org="PS-XIHU-01",
        grantee_org="CM-CUIYUAN-01",
        purpose=Purpose.ELDERLY_CARE,
        valid_from=now,
        valid_until=now + 30 * 86400,
        record_types=("incident",),
        communities=(COMMUNITY_B,),
    )
    grant_id, receipt = chain.create_grant(signer=police, spec=spec)
    print(
        f"    grant #{grant_id} signed by the police station's own signer, block {receipt['blockNumber']}, "
        f"tx {receipt['transactionHash'].hex()}"
    )

    step(4, "Grants as the chain holds them")
    _print_grants(chain, now=chain.latest_timestamp())
    print("    check: ledger grants list --all")

    step(5, f"Revoke grant #{grant_id} (the police station withdraws access)")
    chain.revoke_grant(signer=police, grant_id=grant_id)
    grant = chain.grant(grant_id)
    print(f"    revoked in block {grant.revoked_block}; reads under it stop at once")
    _print_grants(chain, now=chain.latest_timestamp())


def _print_grants(chain: Any, *, now: int) -> None:
    active = [g for g in chain.iter_grants() if g.is_active(now=now)]
    total = chain.grant_count()
    print(f"    {len(active)} active of {total} grants on chain")
    for g in active:
        print(
            f"      #{g.grant_id} {g.spec.owner_org} -> {g.spec.grantee_org} for {g.spec.purpose.label} "
            f"types {','.join(g.spec.record_types) or '*'} communities {','.join(g.spec.communities) or '*'}"
        )
