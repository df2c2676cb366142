"""The evidence an audit checks, as plain frozen values: what the chain says and what storage holds.

:mod:`~ledger_api.audit.collect` gathers it from a JSON-RPC node and a blob store,
:mod:`~ledger_api.audit.bundle` writes it to one file and reads it back, and
:mod:`~ledger_api.audit.verifier` checks it. Nothing here comes from the gateway's database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger_api.access.decision import active_at
from ledger_api.audit.model import AdminGrantAction, GrantFact, SignerChangeStep

__all__ = [
    "AnchorReceipt",
    "BlobObservation",
    "ChainFacts",
    "Evidence",
    "HeadReceipt",
    "OrganisationHistory",
    "StorageFacts",
]


@dataclass(frozen=True, kw_only=True)
class OrganisationHistory:
    org_id: str
    kind: str
    """Lower case: ``police``, ``property``, ``committee``, ``auditor``, ``admin``."""
    registered_block: int
    suspensions: tuple[tuple[int, bool], ...]
    """(block, suspended after that block) from registration on, in chain order."""

    def active_at(self, block: int) -> bool:
        """Registered and not suspended at the end of ``block`` (the registry's rule)."""
        return block >= self.registered_block and active_at(((self.registered_block, False), *self.suspensions), block)

    @property
    def suspended_now(self) -> bool:
        return bool(self.suspensions) and self.suspensions[-1][1]


@dataclass(frozen=True, kw_only=True)
class AnchorReceipt:
    """One ``BatchAnchored`` event (``IRecordAnchors``): a batch root, its size and its manifest's hash."""

    sequence: int
    owner_org: str
    root: str
    size: int
    manifest_hash: str
    block_number: int
    transaction: str
    log_index: int


@dataclass(frozen=True, kw_only=True)
class HeadReceipt:
    """An anchored tree head of the access log (``AccessLogAnchors.headAt``)."""

    index: int
    size: int
    root: str
    block_number: int
    timestamp: int


@dataclass(frozen=True, kw_only=True)
class ChainFacts:
    chain_id: int
    checkpoint_block: int
    checkpoint_hash: str
    deployment_block: int
    addresses: dict[str, str] = field(repr=False)
    organisations: tuple[OrganisationHistory, ...] = field(repr=False)
    grants: tuple[GrantFact, ...] = field(repr=False)
    receipts: tuple[AnchorReceipt, ...] = field(repr=False)
    heads: tuple[HeadReceipt, ...] = field(repr=False)
    block_times: dict[int, int] = field(repr=False)
    """Block number → timestamp of every block the audit refers to (anchors, grant checks)."""
    admin_grants: tuple[AdminGrantAction, ...] = field(default=(), repr=False)
    """``GrantCreated`` / ``GrantRevoked`` events with ``byAdmin``, in chain order."""
    signer_changes: tuple[SignerChangeStep, ...] = field(default=(), repr=False)
    """The signer-change events of the organisation registry, in chain order."""
    admin_events_known: bool = True
    """False when the evidence predates admin actions (a ``v1`` bundle)."""
    communities: dict[str, tuple[tuple[int, tuple[str, ...]], ...]] = field(default_factory=dict, repr=False)
    """Organisation id → (block, the community codes it serves from that block on), from registration on."""
    communities_known: bool = True
    """False when the evidence predates community histories (a ``v1`` or ``v2`` bundle): the communities a
    break-glass read may reach cannot be checked then."""


@dataclass(frozen=True, kw_only=True)
class BlobObservation:
    """What was seen in storage under ``key``: the SHA-256 of the bytes found, and for a record blob its
    cleartext header (``kind`` is ``record``, ``shredded`` (crypto-shredded record) or ``segment``)."""

    key: str
    sha256: str
    kind: str
    record_id: str = ""
    version: int = 0
    owner_org: str = ""


@dataclass(frozen=True, kw_only=True)
class StorageFacts:
    manifests: dict[str, bytes] = field(repr=False)
    """Manifest bytes by the key they were found under (the anchored manifest hash)."""
    blobs: tuple[BlobObservation, ...] = field(repr=False)
    """Every record, shredded-record and access-log segment blob found."""
    entries: tuple[bytes, ...] = field(repr=False)
    """Leaf data of the access log rebuilt from the segments, in order, from entry 0."""
    log_problems: tuple[str, ...] = ()
    """Segments that could not be read, opened or chained into the log."""


@dataclass(frozen=True, kw_only=True)
class Evidence:
    chain: ChainFacts
    storage: StorageFacts
    source: str
