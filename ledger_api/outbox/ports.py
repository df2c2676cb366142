"""What the outbox engine is given: a sender to the chain, a client that knows its rows, settings.

The engine speaks to the chain only through :class:`Sender` (``ledger_api.chain.sender`` implements
it; a unit test passes a fake chain), and to its own table only through the columns of
:class:`OutboxRow` and what :class:`OutboxClient` adds. Nothing here imports a chain library.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from sqlmodel import Session

from ledger_api.chain.transactions import BroadcastOutcome, Mined, SignedTx

__all__ = ["Formed", "OnChain", "OutboxClient", "OutboxRow", "OutboxSettings", "Sender", "Verdict"]


class Sender(Protocol):
    """One signer's transactions to one contract, at the nonces the engine gives."""

    @property
    def signer_address(self) -> str: ...

    def sign(self, calldata: bytes, *, nonce: int, min_fee_level: int = 0) -> SignedTx: ...

    def replacement(self, calldata: bytes, stuck: SignedTx) -> SignedTx: ...

    def filler(self, *, nonce: int) -> SignedTx: ...

    def broadcast(self, tx: SignedTx) -> BroadcastOutcome: ...

    def mined(self, tx_hash: str) -> Mined | None: ...

    def nonces(self) -> tuple[int, int]:
        """(mined, pending) transaction counts of the signer."""
        ...

    def block_number(self) -> int: ...


class OutboxRow(Protocol):
    """The columns every outbox table has (``AnchorBatch``, ``AccessLogHeadRow``)."""

    id: int | None
    state: str
    """``assigned``, ``signed`` or ``anchored`` (see :mod:`ledger_api.outbox.engine`)."""
    signer: str
    nonce: int | None
    tx_hash: str | None
    raw_tx: bytes | None
    fee_level: int | None
    attempts: int
    sent_at: datetime | None
    block_number: int | None
    anchored_at: datetime | None


class OnChain(Protocol):
    """What a client finds on chain for one of its rows."""

    @property
    def block_number(self) -> int: ...


class Formed(enum.Enum):
    """What a client's :meth:`OutboxClient.form` did."""

    FORMED = "formed"
    """New rows (or a step towards them, e.g. a stored segment): something moved."""
    WAITING = "waiting"
    """Work is pending but not due yet (a batch still filling): not idle."""
    NOTHING = "nothing"


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What the chain holds now of a row marked anchored."""

    kind: Literal["held", "moved", "lost"]
    block_number: int | None = None
    """Where it is now, for ``moved`` (anchored again, in another block)."""


RowT = TypeVar("RowT", bound=OutboxRow)
FoundT = TypeVar("FoundT", bound=OnChain)


class OutboxClient(Protocol[RowT, FoundT]):
    """What differs between two outboxes: which rows are due, their calldata, how the chain shows them."""

    table: type[RowT]
    newest_first: Sequence[Any]
    """Order of anchored rows, newest first (SQL ``order_by`` terms)."""

    def lanes(self) -> Mapping[str, Sender]:
        """Lane (an owner organisation, a log) → the sender of its rows."""
        ...

    def in_lane(self, lane: str) -> Any:
        """SQL condition selecting the rows of ``lane``."""
        ...

    def refresh(self) -> bool:
        """Before each step; True when the client sees the chain lost something (re-check anchors)."""
        ...

    def form(self, lane: str) -> Formed: ...

    def ready(self, session: Session, lane: str) -> Sequence[RowT]:
        """``assigned`` rows of ``lane`` to sign now, in the order they must be mined."""
        ...

    def preflight(self, row: RowT) -> bool:
        """True to sign; False when the chain may hold the row already (it is then looked up)."""
        ...

    def calldata(self, row: RowT) -> bytes: ...

    def find(self, row: RowT) -> FoundT | None:
        """The row as the chain holds it now, or None."""
        ...

    def mark(self, row: RowT, found: FoundT) -> None:
        """Set what the client keeps of an anchored row (the engine sets state and block)."""
        ...

    def verify(self, row: RowT, head: int) -> Verdict | None:
        """Is this anchored row still on chain? None when it is not this client's to check."""
        ...

    def forget(self, row: RowT) -> None:
        """Clear what the client keeps of a row whose anchor the chain lost."""
        ...

    def check_chain(self, session: Session) -> None:
        """Before anchored rows are re-checked: raise if the chain holds what this outbox cannot explain."""
        ...

    def adopt(self, session: Session) -> None:
        """After: take in what the chain holds that the table does not know."""
        ...


@dataclass(frozen=True, kw_only=True)
class OutboxSettings:
    """What the engine itself is tuned by; each client's settings extend these."""

    confirmations: int = 0
    stuck_after_s: float = 20.0
    """A sent transaction not mined after this long is re-sent, then replaced with a higher fee."""
    poll_s: float = 0.05
    """Wait between steps that moved nothing while work is pending or in flight."""
    idle_poll_s: float = 1.0
    """Wait between steps while nothing is pending or in flight; :meth:`OutboxEngine.wake` ends it (a
    push wakes the record worker at once). Polling 20 times a second with nothing to do cost every read
    ~10 % of a core's time on a 2-core gateway."""
    backoff_max_s: float = 5.0
    gap_grace_s: float = 1.0
    """How long a nonce gap below a signer's queued transactions must last before it is filled."""
