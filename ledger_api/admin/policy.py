"""Declarative policy files: the organisations and grants an admin wants, planned against the chain.

``plan`` compares the file with the chain and lists the actions that would make the chain match;
``apply`` carries them out; a second ``apply`` finds nothing to do. Grants are never edited on chain,
so a changed grant is planned as a revoke plus a create. Grants are managed only for the owner
organisations the file lists: an owner's active grants that the file does not list are revoked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ledger_api.admin.timeparse import format_timestamp, parse_timestamp
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.encoding import OrganisationKind, Purpose, checksum_address, code_to_bytes32, hex_to_bytes32
from ledger_api.chain.models import Grant, GrantSpec, Organisation, PendingSigner
from ledger_api.chain.signers import Signer
from ledger_api.errors import LedgerError


class PolicyError(LedgerError):
    """The policy file is unreadable or an entry in it is invalid (the message says which and where)."""


@dataclass(frozen=True, kw_only=True)
class DesiredOrganisation:
    org_id: str
    kind: OrganisationKind
    signer: str
    communities: tuple[str, ...]
    public_key: bytes | None
    suspended: bool = False


@dataclass(frozen=True, kw_only=True)
class Policy:
    organisations: tuple[DesiredOrganisation, ...]
    grants: tuple[GrantSpec, ...]
    source: str = "<policy>"

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PolicyError(f"{path}: no such file") from None
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_document(document or {}, source=str(path))

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, source: str = "<policy>") -> Policy:
        if not isinstance(document, Mapping):
            raise PolicyError(f"{source}: expected a mapping with 'organisations' and 'grants'")
        unknown = set(document) - {"organisations", "grants"}
        if unknown:
            raise PolicyError(f"{source}: unknown top-level keys {sorted(unknown)}")
        orgs = tuple(
            _parse_organisation(item, where=f"{source}: organisations[{i}]")
            for i, item in enumerate(_as_list(document.get("organisations"), f"{source}: organisations"))
        )
        grants = tuple(
            _parse_grant(item, where=f"{source}: grants[{i}]")
            for i, item in enumerate(_as_list(document.get("grants"), f"{source}: grants"))
        )
        seen: set[str] = set()
        for org in orgs:
            if org.org_id in seen:
                raise PolicyError(f"{source}: organisation {org.org_id} is listed twice")
            seen.add(org.org_id)
        identities = [g.identity() for g in grants]
        if len(set(identities)) != len(identities):
            raise PolicyError(f"{source}: a grant is listed twice")
        return cls(organisations=orgs, grants=grants, source=source)


@dataclass(frozen=True, kw_only=True)
class Action:
    """One change to make on chain."""

    description: str
    run: Callable[[LedgerChain, Signer], object] = field(compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Plan:
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions

    def render(self) -> str:
        lines = [f"  + {a.description}" for a in self.actions] or ["  nothing to do: the chain matches the policy"]
        lines += [f"  ! {n}" for n in self.notes]
        return "\n".join(lines)


def plan(policy: Policy, chain: LedgerChain) -> Plan:
    """The actions that make the chain match ``policy``."""
    current_orgs = {org.org_id: org for org in chain.organisations()}
    actions: list[Action] = []
    notes: list[str] = []
    for desired in policy.organisations:
        current = current_orgs.get(desired.org_id)
        actions += _organisation_actions(desired, current, notes)
        if current is not None:
            actions += _signer_actions(desired, current, chain.pending_signer(desired.org_id), notes)

    now = chain.moment_now()
    managed_owners = {o.org_id for o in policy.organisations}
    active = [g for g in chain.iter_grants() if g.is_active(now=now)]
    active_by_identity: dict[tuple[object, ...], Grant] = {}
    for g in active:
        active_by_identity.setdefault(g.spec.identity(), g)
    wanted = {g.identity() for g in policy.grants}
    for existing in active:
        if existing.spec.owner_org in managed_owners and existing.spec.identity() not in wanted:
            actions.append(
                Action(
                    description=f"revoke grant #{existing.grant_id}: {_describe_grant(existing.spec)}",
                    run=_revoke(existing.grant_id),
                )
            )
    for spec in policy.grants:
        if spec.identity() in active_by_identity:
            continue
        if spec.valid_until <= now.latest:
            notes.append(f"grant {_describe_grant(spec)} has already expired; not created")
            continue
        actions.append(Action(description=f"create grant: {_describe_grant(spec)}", run=_create(spec)))
    return Plan(actions=tuple(actions), notes=tuple(notes))


def apply(plan_: Plan, chain: LedgerChain, signer: Signer, *, echo: Callable[[str], None] = print) -> int:
    """Carry out every action in order; returns how many were carried out."""
    for action in plan_.actions:
        action.run(chain, signer)
        echo(f"  done: {action.description}")
    return len(plan_.actions)


def _signer_actions(
    desired: DesiredOrganisation, current: Organisation, pending: PendingSigner | None, notes: list[str]
) -> list[Action]:
    """An admin only proposes a signer: the organisation accepts it, or it takes effect after the delay."""
    org_id, wanted = desired.org_id, checksum_address(desired.signer)
    if checksum_address(current.signer) == wanted:
        return []
    if pending is not None and checksum_address(pending.signer) == wanted:
        notes.append(
            f"signer change of {org_id} to {wanted} is pending: effective when {org_id} accepts it "
            f"(ledger org accept-signer {org_id}) or from {format_timestamp(pending.effective_at)}"
        )
        return []
    return [
        Action(
            description=f"propose signer of {org_id}: {current.signer} -> {wanted} "
            "(effective on the organisation's acceptance or after the registry's delay)",
            run=lambda c, s: c.propose_signer_change(signer=s, org_id=org_id, new_signer=wanted),
        )
    ]


def _organisation_actions(desired: DesiredOrganisation, current: Organisation | None, notes: list[str]) -> list[Action]:
    org_id = desired.org_id
    if current is None:
        if desired.public_key is None:
            notes.append(f"organisation {org_id} needs a public_key to be registered; skipped")
            return []
        key = desired.public_key
        actions = [
            Action(
                description=f"register {org_id} ({desired.kind.name.lower()}, signer {desired.signer}, "
                f"communities {', '.join(desired.communities) or '-'})",
                run=lambda c, s: c.register_organisation(
                    signer=s,
                    org_id=org_id,
                    kind=desired.kind,
                    org_signer=desired.signer,
                    communities=desired.communities,
                    public_key=key,
                ),
            )
        ]
        if desired.suspended:
            actions.append(
                Action(
                    description=f"suspend {org_id}",
                    run=lambda c, s: c.suspend_organisation(signer=s, org_id=org_id),
                )
            )
        return actions
    actions = []
    if current.kind != desired.kind:
        notes.append(f"organisation {org_id} is a {current.kind.name.lower()} on chain; kinds cannot change")
    if tuple(current.communities) != desired.communities:
        actions.append(
            Action(
                description=f"set communities of {org_id}: {', '.join(desired.communities) or '-'}",
                run=lambda c, s: c.set_communities(signer=s, org_id=org_id, communities=desired.communities),
            )
        )
    if desired.suspended and not current.suspended:
        actions.append(
            Action(
                description=f"suspend {org_id}",
                run=lambda c, s: c.suspend_organisation(signer=s, org_id=org_id),
            )
        )
    if current.suspended and not desired.suspended:
        actions.append(
            Action(
                description=f"reinstate {org_id}",
                run=lambda c, s: c.reinstate_organisation(signer=s, org_id=org_id),
            )
        )
    if desired.public_key is not None and desired.public_key != current.public_key:
        notes.append(
            f"public key of {org_id} differs from the chain: only its own signer can rotate it "
            f"(`ledger org rotate-key {org_id}`)"
        )
    return actions


def _create(spec: GrantSpec) -> Callable[[LedgerChain, Signer], object]:
    return lambda chain, signer: chain.create_grant(signer=signer, spec=spec)


def _revoke(grant_id: int) -> Callable[[LedgerChain, Signer], object]:
    return lambda chain, signer: chain.revoke_grant(signer=signer, grant_id=grant_id)


def _describe_grant(spec: GrantSpec) -> str:
    scope = []
    if spec.record_types:
        scope.append("types " + ",".join(spec.record_types))
    if spec.communities:
        scope.append("communities " + ",".join(spec.communities))
    if spec.record_id:
        scope.append("record " + spec.record_id[:12] + "…")
    return (
        f"{spec.owner_org} -> {spec.grantee_org} for {spec.purpose.label}"
        f" [{'; '.join(scope) or 'all records'}]"
        f" {format_timestamp(spec.valid_from)} .. {format_timestamp(spec.valid_until)}"
    )


def _as_list(value: object, where: str) -> Sequence[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise PolicyError(f"{where}: expected a list of mappings")
    return value


def _codes(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    codes = tuple(str(v).strip() for v in items)
    for code in codes:
        try:
            code_to_bytes32(code)
        except ValueError as exc:
            raise PolicyError(f"{where}: {exc}") from None
    return codes


def _require(item: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in item or item[key] in (None, ""):
        raise PolicyError(f"{where}: missing '{key}'")
    return item[key]


def _check_keys(item: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(item) - allowed
    if unknown:
        raise PolicyError(f"{where}: unknown fields {sorted(unknown)} (allowed: {sorted(allowed)})")


def _parse_organisation(item: Mapping[str, Any], *, where: str) -> DesiredOrganisation:
    _check_keys(item, {"id", "kind", "signer", "communities", "public_key", "suspended"}, where)
    org_id = str(_require(item, "id", where)).strip()
    where = f"{where} ({org_id})"
    try:
        code_to_bytes32(org_id)
        kind = OrganisationKind.parse(str(_require(item, "kind", where)))
        signer = checksum_address(str(_require(item, "signer", where)))
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    key_text = item.get("public_key")
    try:
        public_key = bytes.fromhex(str(key_text).removeprefix("0x")) if key_text else None
    except ValueError:
        raise PolicyError(f"{where}: public_key is not hex") from None
    return DesiredOrganisation(
        org_id=org_id,
        kind=kind,
        signer=signer,
        communities=_codes(item.get("communities"), f"{where}: communities"),
        public_key=public_key,
        suspended=bool(item.get("suspended", False)),
    )


def _parse_grant(item: Mapping[str, Any], *, where: str) -> GrantSpec:
    allowed = {
        "owner",
        "grantee",
        "purpose",
        "record_types",
        "communities",
        "record_id",
        "valid_from",
        "valid_until",
    }
    _check_keys(item, allowed, where)
    try:
        record_id = item.get("record_id")
        if record_id:
            hex_to_bytes32(str(record_id))
        spec = GrantSpec(
            owner_org=str(_require(item, "owner", where)).strip(),
            grantee_org=str(_require(item, "grantee", where)).strip(),
            purpose=Purpose.parse(str(_require(item, "purpose", where))),
            valid_from=parse_timestamp(_require(item, "valid_from", where)),
            valid_until=parse_timestamp(_require(item, "valid_until", where)),
            record_types=_codes(item.get("record_types"), f"{where}: record_types"),
            communities=_codes(item.get("communities"), f"{where}: communities"),
            record_id=str(record_id).lower().removeprefix("0x") if record_id else None,
        )
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    if spec.valid_until <= spec.valid_from:
        raise PolicyError(f"{where}: valid_until must be after valid_from")
    return spec
