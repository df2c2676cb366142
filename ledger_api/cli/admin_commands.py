"""``ledger org …``, ``ledger grant``, ``ledger revoke``, ``ledger grants list``, ``ledger policy plan|apply``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledger_api.access.decision import AccessDecision, Moment
from ledger_api.admin.policy import Policy, apply, plan
from ledger_api.admin.timeparse import format_timestamp, parse_timestamp
from ledger_api.chain.encoding import OrganisationKind, Purpose
from ledger_api.chain.models import Grant, GrantSpec, Organisation
from ledger_api.cli.context import CliContext, add_chain_options, add_signer_options
from ledger_api.errors import ConfigurationError


def register(commands: Any) -> None:
    org = commands.add_parser("org", help="register and administer organisations")
    org_actions = org.add_subparsers(dest="org_action", metavar="ACTION", required=True)

    reg = org_actions.add_parser("register", help="register an organisation (admin)")
    reg.add_argument("org_id", help="short code, e.g. PS-XIHU-01")
    reg.add_argument("--kind", required=True, choices=OrganisationKind.names())
    reg.add_argument("--signer", required=True, metavar="ADDRESS", help="address that signs for the organisation")
    reg.add_argument("--communities", default="", help="comma-separated community codes")
    reg.add_argument(
        "--public-key",
        metavar="HEX",
        help="HPKE public key: kem id (2 bytes) || key (default: the key `ledger enrol` made for it)",
    )
    reg.set_defaults(handler=run_org_register)

    change = org_actions.add_parser(
        "change-signer",
        help="propose a new signer (admin): effective when the organisation accepts it, or after the delay",
    )
    change.add_argument("org_id")
    change.add_argument("--signer", required=True, metavar="ADDRESS")
    change.set_defaults(handler=run_org_change_signer)
    _common(change)

    for name, help_text, handler in [
        ("suspend", "suspend an organisation (admin)", run_org_suspend),
        ("reinstate", "reinstate a suspended organisation (admin)", run_org_reinstate),
        (
            "accept-signer",
            "accept the pending signer change (the organisation's current signer)",
            run_org_accept_signer,
        ),
        (
            "complete-signer",
            "complete a pending signer change past its delay (the new signer)",
            run_org_complete_signer,
        ),
        ("cancel-signer", "cancel a pending signer change (the organisation's signer or admin)", run_org_cancel_signer),
    ]:
        action = org_actions.add_parser(name, help=help_text)
        action.add_argument("org_id")
        action.set_defaults(handler=handler)
        _common(action)

    rotate = org_actions.add_parser("rotate-key", help="publish a new HPKE public key (the organisation's signer)")
    rotate.add_argument("org_id")
    rotate.add_argument("--public-key", required=True, metavar="HEX")
    rotate.set_defaults(handler=run_org_rotate_key)

    show = org_actions.add_parser("list", help="list registered organisations")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_org_list)
    for action in (reg, rotate, show):
        _common(action)

    grant = commands.add_parser("grant", help="grant an organisation access to another's records")
    grant.add_argument("--owner", required=True, help="owner organisation id")
    grant.add_argument("--grantee", required=True, help="grantee organisation id")
    grant.add_argument("--purpose", required=True, choices=Purpose.names())
    grant.add_argument("--types", default="", help="comma-separated record types (default: any)")
    grant.add_argument("--communities", default="", help="comma-separated community codes (default: any)")
    grant.add_argument("--record-id", help="limit the grant to one record (64 hex digits)")
    grant.add_argument("--from", dest="valid_from", help="ISO 8601 or epoch seconds (default: now)")
    grant.add_argument("--until", dest="valid_until", help="ISO 8601 or epoch seconds")
    grant.add_argument("--days", type=float, help="valid for N days from --from (instead of --until)")
    grant.set_defaults(handler=run_grant)
    _common(grant)

    revoke = commands.add_parser("revoke", help="revoke a grant (owner's signer or admin)")
    revoke.add_argument("grant_id", type=int)
    revoke.set_defaults(handler=run_revoke)
    _common(revoke)

    grants = commands.add_parser("grants", help="inspect grants")
    grants_actions = grants.add_subparsers(dest="grants_action", metavar="ACTION", required=True)
    listing = grants_actions.add_parser("list", help="list grants as a table, or --json")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--all", action="store_true", help="include revoked and expired grants")
    listing.add_argument("--owner")
    listing.add_argument("--grantee")
    listing.set_defaults(handler=run_grants_list)
    _common(listing)

    policy = commands.add_parser("policy", help="reviewed policy files: plan, then apply")
    policy_actions = policy.add_subparsers(dest="policy_action", metavar="ACTION", required=True)
    for name, help_text, handler in [
        ("plan", "print what would change on chain", run_policy_plan),
        ("apply", "make the chain match the policy file", run_policy_apply),
    ]:
        action = policy_actions.add_parser(name, help=help_text)
        action.add_argument("file", type=Path)
        action.set_defaults(handler=handler)
        _common(action)


def _common(parser: argparse.ArgumentParser) -> None:
    add_chain_options(parser)
    add_signer_options(parser)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise ConfigurationError(f"{what} is not hex: {text!r}") from None


def run_org_register(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    ctx.chain.register_organisation(
        signer=ctx.signer(args),
        org_id=args.org_id,
        kind=OrganisationKind.parse(args.kind),
        org_signer=args.signer,
        communities=_split(args.communities),
        public_key=_hex(args.public_key, "--public-key") if args.public_key else _enrolled_key(ctx, args.org_id),
    )
    print(f"registered {args.org_id} ({args.kind}) with signer {args.signer}")
    return 0


def _enrolled_key(ctx: CliContext, org_id: str) -> bytes:
    from ledger_api.crypto.keystore import OrgKeystore
    from ledger_api.crypto.keystore_secret import master_secret

    secret = master_secret(ctx.settings, chain_id=ctx.transactor.chain_id)
    keystore = OrgKeystore.open(ctx.settings.keystore_dir, master_secret=secret, demo=True)
    if org_id not in keystore.org_ids():
        raise ConfigurationError(f"no --public-key given and {org_id} is not enrolled: run `ledger enrol {org_id}`")
    return keystore.current(org_id)[1]


def run_org_suspend(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    ctx.chain.suspend_organisation(signer=ctx.signer(args), org_id=args.org_id)
    print(f"suspended {args.org_id}")
    return 0


def run_org_reinstate(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    ctx.chain.reinstate_organisation(signer=ctx.signer(args), org_id=args.org_id)
    print(f"reinstated {args.org_id}")
    return 0


def run_org_change_signer(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    ctx.chain.propose_signer_change(signer=ctx.signer(args), org_id=args.org_id, new_signer=args.signer)
    pending = ctx.chain.pending_signer(args.org_id)
    assert pending is not None
    print(
        f"proposed signer {args.signer} for {args.org_id}: effective when {args.org_id} accepts it "
        f"(ledger org accept-signer {args.org_id}, signed by its current signer) or, completed by the new "
        f"signer, from {format_timestamp(pending.effective_at)}"
    )
    return 0


def run_org_accept_signer(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    ctx.chain.accept_signer_change(signer=ctx.signer(args), org_id=args.org_id)
    print(f"accepted: {args.org_id} now signs with {ctx.chain.organisation(args.org_id).signer}")
    return 0


def run_org_complete_signer(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    ctx.chain.complete_signer_change(signer=ctx.signer(args), org_id=args.org_id)
    print(f"completed: {args.org_id} now signs with {ctx.chain.organisation(args.org_id).signer}")
    return 0


def run_org_cancel_signer(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    ctx.chain.cancel_signer_change(signer=ctx.signer(args), org_id=args.org_id)
    print(f"cancelled the pending signer change of {args.org_id}")
    return 0


def run_org_rotate_key(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    ctx.chain.rotate_key(signer=ctx.signer(args), org_id=args.org_id, public_key=_hex(args.public_key, "--public-key"))
    org = ctx.chain.organisation(args.org_id)
    print(f"rotated key of {args.org_id}: now key #{org.key_count - 1} (earlier keys stay readable)")
    return 0


def run_org_list(args: argparse.Namespace) -> int:
    orgs = CliContext.from_args(args).chain.organisations()
    if args.json:
        print(json.dumps([_org_json(o) for o in orgs], indent=2))
        return 0
    rows = [
        (
            o.org_id,
            o.kind.name.lower(),
            o.signer,
            ",".join(o.communities),
            "yes" if o.suspended else "",
            str(o.key_count),
        )
        for o in orgs
    ]
    print(_table(("ORGANISATION", "KIND", "SIGNER", "COMMUNITIES", "SUSPENDED", "KEYS"), rows))
    return 0


def run_grant(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    # "Now" as the contract will judge it: the newest block's time when that is behind this machine's
    # clock (an idle automining devnet), so a grant made now is valid at once, in the next block too.
    valid_from = (
        parse_timestamp(args.valid_from) if args.valid_from else min(int(time.time()), ctx.chain.latest_timestamp())
    )
    if args.valid_until and args.days:
        raise ConfigurationError("give --until or --days, not both")
    if args.valid_until:
        valid_until = parse_timestamp(args.valid_until)
    elif args.days:
        valid_until = valid_from + int(args.days * 86400)
    else:
        raise ConfigurationError("give --until or --days")
    spec = GrantSpec(
        owner_org=args.owner,
        grantee_org=args.grantee,
        purpose=Purpose.parse(args.purpose),
        valid_from=valid_from,
        valid_until=valid_until,
        record_types=_split(args.types),
        communities=_split(args.communities),
        record_id=args.record_id.lower().removeprefix("0x") if args.record_id else None,
    )
    grant_id, receipt = ctx.chain.create_grant(signer=ctx.signer(args), spec=spec)
    print(
        f"grant #{grant_id} created in block {receipt['blockNumber']}: {args.owner} -> {args.grantee} "
        f"for {args.purpose} until {format_timestamp(valid_until)}"
    )
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    ctx = CliContext.from_args(args)
    receipt = ctx.chain.revoke_grant(signer=ctx.signer(args), grant_id=args.grant_id)
    print(f"grant #{args.grant_id} revoked in block {receipt['blockNumber']}")
    return 0


def run_grants_list(args: argparse.Namespace) -> int:
    chain = CliContext.from_args(args).chain
    now = chain.moment_now()
    grants = [
        g
        for g in chain.iter_grants()
        if (args.all or g.is_active(now=now))
        and (not args.owner or g.spec.owner_org == args.owner)
        and (not args.grantee or g.spec.grantee_org == args.grantee)
    ]
    if args.json:
        print(json.dumps([_grant_json(g, now) for g in grants], indent=2))
        return 0
    rows = [
        (
            str(g.grant_id),
            g.spec.owner_org,
            g.spec.grantee_org,
            g.spec.purpose.label,
            ",".join(g.spec.record_types) or "*",
            ",".join(g.spec.communities) or "*",
            format_timestamp(g.spec.valid_until),
            _grant_state(g, now),
        )
        for g in grants
    ]
    print(_table(("ID", "OWNER", "GRANTEE", "PURPOSE", "TYPES", "COMMUNITIES", "UNTIL", "STATE"), rows))
    return 0


def run_policy_plan(args: argparse.Namespace) -> int:
    policy = Policy.from_file(args.file)
    result = plan(policy, CliContext.from_args(args).chain)
    print(f"plan for {args.file}: {len(result.actions)} change(s)")
    print(result.render())
    return 0


def run_policy_apply(args: argparse.Namespace) -> int:
    policy = Policy.from_file(args.file)
    ctx = CliContext.from_args(args)
    result = plan(policy, ctx.chain)
    if result.empty:
        print(f"apply {args.file}: nothing to do, the chain matches the policy")
        for note in result.notes:
            print(f"  ! {note}")
        return 0
    print(f"apply {args.file}: {len(result.actions)} change(s)")
    done = apply(result, ctx.chain, ctx.signer(args))
    for note in result.notes:
        print(f"  ! {note}")
    print(f"applied {done} change(s)")
    return 0


_STATE_WORDS = {AccessDecision.EXPIRED: "expired", AccessDecision.NOT_YET_VALID: "not yet valid"}


def _grant_state(grant: Grant, now: Moment) -> str:
    state = grant.state(now)
    if state is AccessDecision.REVOKED:
        return f"revoked@{grant.revoked_block}"
    return _STATE_WORDS.get(state, "active")


def _grant_json(grant: Grant, now: Moment) -> dict[str, object]:
    spec = grant.spec
    return {
        "grant_id": grant.grant_id,
        "owner": spec.owner_org,
        "grantee": spec.grantee_org,
        "purpose": spec.purpose.label,
        "record_types": list(spec.record_types),
        "communities": list(spec.communities),
        "record_id": spec.record_id,
        "valid_from": format_timestamp(spec.valid_from),
        "valid_until": format_timestamp(spec.valid_until),
        "granted_by": grant.granted_by,
        "by_admin": grant.by_admin,
        "created_block": grant.created_block,
        "revoked_block": grant.revoked_block or None,
        "state": _grant_state(grant, now),
    }


def _org_json(org: Organisation) -> dict[str, object]:
    return {
        "org_id": org.org_id,
        "kind": org.kind.name.lower(),
        "signer": org.signer,
        "communities": list(org.communities),
        "suspended": org.suspended,
        "key_count": org.key_count,
        "public_key": "0x" + org.public_key.hex(),
    }


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in [header, *rows]]
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)
