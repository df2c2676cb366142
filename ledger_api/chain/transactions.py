"""Signed transactions and what a node answers to them, as plain values (no chain library needed).

The outbox engine (:mod:`ledger_api.outbox`) reasons about these without speaking to the chain itself;
:mod:`ledger_api.chain.sender` makes and sends them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["BroadcastOutcome", "Mined", "SignedTx", "classify_rpc_error"]


class BroadcastOutcome(enum.Enum):
    ACCEPTED = "accepted"
    ALREADY_KNOWN = "already_known"
    NONCE_TOO_LOW = "nonce_too_low"
    UNDERPRICED = "underpriced"
    REJECTED = "rejected"


# Messages differ between clients (geth, Besu, GoQuorum, anvil); match on lower-cased fragments.
_CLASSIFIERS: tuple[tuple[BroadcastOutcome, tuple[str, ...]], ...] = (
    (BroadcastOutcome.ALREADY_KNOWN, ("already known", "known transaction", "already imported", "alreadyknown")),
    (BroadcastOutcome.NONCE_TOO_LOW, ("nonce too low", "nonce_too_low", "noncetoolow", "nonce is too low")),
    (BroadcastOutcome.UNDERPRICED, ("underpriced", "replacement_underpriced", "fee too low", "gas price too low")),
)


def classify_rpc_error(message: str) -> BroadcastOutcome:
    text = message.lower()
    for outcome, fragments in _CLASSIFIERS:
        if any(fragment in text for fragment in fragments):
            return outcome
    return BroadcastOutcome.REJECTED


@dataclass(frozen=True, kw_only=True)
class SignedTx:
    nonce: int
    tx_hash: str
    raw: bytes
    fee_level: int
    """Gas price (legacy) or max fee per gas (EIP-1559) this transaction pays."""


@dataclass(frozen=True, kw_only=True)
class Mined:
    """A transaction in a block the node holds now."""

    block_number: int
    succeeded: bool
    """False when it reverted."""
