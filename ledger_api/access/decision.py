"""May organisation X read record R of owner O for purpose P now: the rule, written once.

``GrantRegistry.accessDecision`` (contracts/GrantRegistry.sol) is the authority; this module is the same
rule over plain values, check for check and in the contract's order, so that the gateway's in-memory
view (:class:`~ledger_api.chain.follower.ChainFollower`), the auditor's verifier
(:mod:`ledger_api.audit.verifier`) and the listings decide exactly as the chain would. It knows nothing
of the chain or of a database: its inputs are a grant's terms, the request, the organisations suspended
at the moment, and the moment itself.

A :class:`Moment` is a block (the state the read is decided on: a grant created after it does not exist
yet, a revocation in it or before counts) and a span of time the grant must be valid over: the contract
has the one instant ``block.timestamp``; the gateway also holds a grant to its own clock (stricter, never
looser, than the chain at its head), and the auditor to the time the read was released.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "EMERGENCY_READS_PER_HOUR",
    "AccessDecision",
    "AccessRequest",
    "EmergencyReason",
    "GrantScope",
    "GrantTerms",
    "Moment",
    "Purpose",
    "ScopeMiss",
    "active_at",
    "communities_at",
    "covers_record",
    "decide",
    "emergency_in_reach",
    "record_key",
    "scope_miss",
    "standing",
    "validity",
]


class Purpose(enum.IntEnum):
    """Mirrors ``IGrantRegistry.Purpose``: the fixed vocabulary of reasons to read."""

    NONE = 0
    EMERGENCY_RESPONSE = 1
    INVESTIGATION = 2
    FIRE_SAFETY = 3
    ELDERLY_CARE = 4
    COMMUNITY_GOVERNANCE = 5
    PROPERTY_MANAGEMENT = 6
    AUDIT = 7

    @classmethod
    def parse(cls, text: str) -> Purpose:
        try:
            purpose = cls[text.strip().upper().replace("-", "_").replace(" ", "_")]
        except KeyError:
            raise ValueError(f"unknown purpose {text!r}; expected one of {cls.names()}") from None
        if purpose is cls.NONE:
            raise ValueError("purpose must not be 'none'")
        return purpose

    @classmethod
    def names(cls) -> list[str]:
        return [p.name.lower() for p in cls if p is not cls.NONE]

    @property
    def label(self) -> str:
        return self.name.lower()


#: Break-glass reads one organisation may make an hour by default (``LEDGER_EMERGENCY_PER_HOUR`` on the
#: gateway, ``--emergency-per-hour`` for the auditor, who holds the log to the same bound).
EMERGENCY_READS_PER_HOUR = 10


class EmergencyReason(enum.StrEnum):
    """Why a break-glass read (an emergency read naming no grant) is made: a fixed vocabulary, so that the
    identifiers it shows in clear follow from the class (:attr:`reveals`), never from the reader's say."""

    LIFE_THREAT = "life_threat"
    MISSING_PERSON = "missing_person"
    FIRE_OR_HAZARD = "fire_or_hazard"
    PUBLIC_ORDER = "public_order"
    OTHER = "other"

    @classmethod
    def parse(cls, text: str) -> EmergencyReason:
        try:
            return cls(text.strip().lower().replace("-", "_").replace(" ", "_"))
        except ValueError:
            raise ValueError(f"unknown emergency reason class {text!r}; expected one of {cls.names()}") from None

    @classmethod
    def names(cls) -> list[str]:
        return [reason.value for reason in cls]

    @property
    def reveals(self) -> frozenset[str]:
        """The identifier kinds a break-glass read of this class shows in clear: finding a person needs
        their ID number; any emergency may need to call someone; everything else stays masked."""
        if self in (EmergencyReason.LIFE_THREAT, EmergencyReason.MISSING_PERSON):
            return frozenset({"id_number", "phone"})
        if self is EmergencyReason.FIRE_OR_HAZARD:
            return frozenset({"phone"})
        return frozenset()


class AccessDecision(enum.IntEnum):
    """Mirrors ``IGrantRegistry.AccessDecision``; ``ALLOWED`` is the only one that permits a read."""

    ALLOWED = 0
    UNKNOWN_GRANT = 1
    WRONG_GRANTEE = 2
    WRONG_OWNER = 3
    WRONG_PURPOSE = 4
    NOT_YET_VALID = 5
    EXPIRED = 6
    REVOKED = 7
    OUT_OF_SCOPE = 8
    OWNER_SUSPENDED = 9
    GRANTEE_SUSPENDED = 10


def record_key(record_id: str | bytes) -> str:
    """A record id (32 bytes, or 64 hex digits with or without 0x) as lower-case hex without 0x."""
    if isinstance(record_id, bytes | bytearray):
        return bytes(record_id).hex()
    text = record_id.lower()
    return text[2:] if text.startswith("0x") else text


class GrantScope(Protocol):
    """What a grant's description holds besides its purpose (a chain ``GrantSpec``, an audit ``GrantFact``)."""

    @property
    def owner_org(self) -> str: ...

    @property
    def grantee_org(self) -> str: ...

    @property
    def valid_from(self) -> int: ...

    @property
    def valid_until(self) -> int: ...

    @property
    def record_types(self) -> Sequence[str]: ...

    @property
    def communities(self) -> Sequence[str]: ...

    @property
    def record_id(self) -> str | None: ...


@dataclass(frozen=True, kw_only=True)
class GrantTerms:
    """A grant as the contract stores it. Empty scopes mean "any"; organisation ids, record types and
    community codes are the short codes the contract holds in bytes32."""

    owner_org: str
    grantee_org: str
    purpose: int
    valid_from: int
    valid_until: int
    record_types: frozenset[str] = frozenset()
    communities: frozenset[str] = frozenset()
    record_id: str | None = None
    """:func:`record_key` of the one record the grant covers, or None when not narrowed to one."""
    created_block: int = 0
    revoked_block: int = 0
    """0 while not revoked."""

    @classmethod
    def of(cls, scope: GrantScope, *, purpose: int, created_block: int, revoked_block: int = 0) -> GrantTerms:
        return cls(
            owner_org=scope.owner_org,
            grantee_org=scope.grantee_org,
            purpose=purpose,
            valid_from=scope.valid_from,
            valid_until=scope.valid_until,
            record_types=frozenset(scope.record_types),
            communities=frozenset(scope.communities),
            record_id=None if scope.record_id is None else record_key(scope.record_id),
            created_block=created_block,
            revoked_block=revoked_block,
        )


@dataclass(frozen=True, kw_only=True)
class AccessRequest:
    """A read as the access check sees it: who asks, for which record, for what."""

    grantee_org: str
    owner_org: str
    record_id: str
    """:func:`record_key` of the record."""
    record_type: str
    community_code: str
    purpose: int


@dataclass(frozen=True, kw_only=True)
class Moment:
    """When a read is decided: the state of ``block`` (None: the newest state known), and the span of
    time ``[earliest, latest]`` (seconds since the epoch) the grant must be valid over."""

    block: int | None = None
    earliest: float
    latest: float

    @classmethod
    def at(cls, *times: float, block: int | None = None) -> Moment:
        """The span covering ``times`` (one instant when given one), as of ``block``."""
        return cls(block=block, earliest=min(times), latest=max(times))


ScopeMiss = Literal["record", "record_type", "community"]


def _known(grant: GrantTerms | None, moment: Moment) -> bool:
    return grant is not None and (moment.block is None or grant.created_block <= moment.block)


def _timing(grant: GrantTerms, moment: Moment) -> AccessDecision:
    """Revocation, then the validity window (the contract's order)."""
    if grant.revoked_block != 0 and (moment.block is None or grant.revoked_block <= moment.block):
        return AccessDecision.REVOKED
    if moment.earliest < grant.valid_from:
        return AccessDecision.NOT_YET_VALID
    if moment.latest >= grant.valid_until:
        return AccessDecision.EXPIRED
    return AccessDecision.ALLOWED


def _suspension(owner_org: str, grantee_org: str, suspended: Set[str]) -> AccessDecision:
    if owner_org in suspended:
        return AccessDecision.OWNER_SUSPENDED
    if grantee_org in suspended:
        return AccessDecision.GRANTEE_SUSPENDED
    return AccessDecision.ALLOWED


def validity(grant: GrantTerms | None, moment: Moment) -> AccessDecision:
    """Does the grant exist and is it in force at ``moment`` (whoever reads, whatever record)?
    ``ALLOWED``, ``UNKNOWN_GRANT``, ``REVOKED``, ``NOT_YET_VALID`` or ``EXPIRED``."""
    if grant is None or not _known(grant, moment):
        return AccessDecision.UNKNOWN_GRANT
    return _timing(grant, moment)


def scope_miss(grant: GrantTerms, request: AccessRequest) -> ScopeMiss | None:
    """Which part of the grant's scope leaves the record out (the contract's order), or None."""
    if grant.record_id is not None and grant.record_id != request.record_id:
        return "record"
    if grant.record_types and request.record_type not in grant.record_types:
        return "record_type"
    if grant.communities and request.community_code not in grant.communities:
        return "community"
    return None


def standing(grant: GrantTerms | None, *, moment: Moment, suspended: Set[str]) -> AccessDecision:
    """The grant's own standing at ``moment``: :func:`validity`, then the owner's and the grantee's
    suspensions. ``ALLOWED`` when it lets its grantee read whatever its scope covers."""
    decision = validity(grant, moment)
    if decision is not AccessDecision.ALLOWED or grant is None:
        return decision
    return _suspension(grant.owner_org, grant.grantee_org, suspended)


def decide(grant: GrantTerms | None, request: AccessRequest, *, moment: Moment, suspended: Set[str]) -> AccessDecision:
    """``GrantRegistry.accessDecision``, check for check, in the contract's order.

    ``grant`` is None when there is no such grant; ``suspended`` holds (at least) the organisations of
    the request that are registered and suspended at ``moment`` (the registry's ``isSuspended``)."""
    if grant is None or not _known(grant, moment):
        return AccessDecision.UNKNOWN_GRANT
    if grant.grantee_org != request.grantee_org:
        return AccessDecision.WRONG_GRANTEE
    if grant.owner_org != request.owner_org:
        return AccessDecision.WRONG_OWNER
    if grant.purpose != request.purpose:
        return AccessDecision.WRONG_PURPOSE
    timing = _timing(grant, moment)
    if timing is not AccessDecision.ALLOWED:
        return timing
    if scope_miss(grant, request) is not None:
        return AccessDecision.OUT_OF_SCOPE
    return _suspension(request.owner_org, request.grantee_org, suspended)


def covers_record(grant: GrantTerms | None, request: AccessRequest, *, moment: Moment) -> bool:
    """Does the grant a caller presents speak of this record at all: known at ``moment``, made to the
    caller by the record's owner, and its scope (record, types, communities) takes the record in, whatever
    its purpose, validity or the suspensions? Only then may a refusal say why (403): a caller it does not
    cover learns nothing a missing record would not tell it (DESIGN.md invariant 8)."""
    return (
        grant is not None
        and _known(grant, moment)
        and grant.grantee_org == request.grantee_org
        and grant.owner_org == request.owner_org
        and scope_miss(grant, request) is None
    )


def emergency_in_reach(reader_communities: Set[str] | Sequence[str], community_code: str) -> bool:
    """May a break-glass read reach a record of ``community_code``? Only in a community the reader serves
    (DESIGN.md, Privacy): the registry's community codes of the reading organisation."""
    return community_code in reader_communities


def communities_at(history: Sequence[tuple[int, Sequence[str]]], block: int) -> frozenset[str]:
    """The community codes an organisation served at the end of ``block``; ``history`` is (block, codes
    from that block on) from registration on, in chain order. Empty before registration."""
    served: frozenset[str] = frozenset()
    for at, codes in history:
        if at > block:
            break
        served = frozenset(codes)
    return served


def active_at(suspensions: Sequence[tuple[int, bool]], block: int) -> bool:
    """Was an organisation registered and not suspended at the end of ``block``? ``suspensions`` is its
    history: (block, suspended after that block) from registration (``(block, False)``) on, in chain order."""
    if not suspensions or suspensions[0][0] > block:
        return False
    suspended = False
    for at, value in suspensions:
        if at > block:
            break
        suspended = value
    return not suspended
