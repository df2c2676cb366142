"""Frozen views of on-chain state, free of web3 types, for the rest of ``ledger_api``."""

from __future__ import annotations

from dataclasses import dataclass

from ledger_api.access.decision import AccessDecision, GrantTerms, Moment, validity
from ledger_api.chain.encoding import OrganisationKind, Purpose


@dataclass(frozen=True, kw_only=True)
class Organisation:
    org_id: str
    kind: OrganisationKind
    signer: str
    suspended: bool
    communities: tuple[str, ...]
    key_count: int
    public_key: bytes
    """The newest HPKE public key (``kem_id || key``, RFC 9180 §7.1 identifiers)."""


@dataclass(frozen=True, kw_only=True)
class PendingSigner:
    """An admin's signer change waiting for the organisation's acceptance or for ``effective_at``."""

    signer: str
    effective_at: int


@dataclass(frozen=True, kw_only=True)
class GrantSpec:
    """What an admin or an owner asks for; empty scopes mean "any"."""

    owner_org: str
    grantee_org: str
    purpose: Purpose
    valid_from: int
    valid_until: int
    record_types: tuple[str, ...] = ()
    communities: tuple[str, ...] = ()
    record_id: str | None = None
    """64 hex digits when the grant covers one record only."""

    def identity(self) -> tuple[object, ...]:
        """Fields that make two grants the same grant (scope order does not matter)."""
        return (
            self.owner_org,
            self.grantee_org,
            self.purpose,
            tuple(sorted(self.record_types)),
            tuple(sorted(self.communities)),
            (self.record_id or "").lower(),
            self.valid_from,
            self.valid_until,
        )


@dataclass(frozen=True, kw_only=True)
class Grant:
    grant_id: int
    spec: GrantSpec
    granted_by: str
    by_admin: bool
    created_block: int
    revoked_block: int = 0

    @property
    def revoked(self) -> bool:
        return self.revoked_block != 0

    def terms(self) -> GrantTerms:
        """The grant as the access rule (:mod:`ledger_api.access.decision`) takes it."""
        return GrantTerms.of(
            self.spec, purpose=self.spec.purpose, created_block=self.created_block, revoked_block=self.revoked_block
        )

    def is_valid_at(self, *, block_number: int, timestamp: int) -> bool:
        """Valid in block ``block_number`` mined at ``timestamp`` (the contract's own rule)."""
        return validity(self.terms(), Moment.at(timestamp, block=block_number)) is AccessDecision.ALLOWED

    def is_active(self, *, now: int | Moment) -> bool:
        """Not revoked and not expired at ``now`` (it may still lie in the future)."""
        return self.state(now) in _NOT_OVER

    def state(self, now: int | Moment) -> AccessDecision:
        """The grant's validity at ``now`` (an instant, or a :class:`Moment` as the read path takes it)."""
        return validity(self.terms(), now if isinstance(now, Moment) else Moment.at(now))


_NOT_OVER = frozenset({AccessDecision.ALLOWED, AccessDecision.NOT_YET_VALID})
