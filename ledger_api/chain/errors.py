"""Chain-layer errors: contract reverts decoded to named domain errors, RPC and deployment problems."""

from __future__ import annotations

from typing import Any

from ledger_api.errors import LedgerError


class ChainError(LedgerError):
    """Root of the errors raised by :mod:`ledger_api.chain`."""


class ChainUnavailable(ChainError):
    """The JSON-RPC endpoint cannot be reached or answered with an error unrelated to a contract."""


class ChainViewBehind(ChainUnavailable):
    """The in-memory chain view (:class:`~ledger_api.chain.follower.ChainFollower`) was not confirmed at the
    node's head within the allowed lag, and cannot be brought there now: answers from it could be stale."""

    def __init__(self, message: str, *, lag_s: float | None, max_lag_s: float, head: int) -> None:
        super().__init__(message)
        self.lag_s = lag_s
        """Seconds since the view was last confirmed at the node's head; None: never."""
        self.max_lag_s = max_lag_s
        self.head = head
        """The latest block the view holds."""


class CompilerError(ChainError):
    """The Solidity compiler failed or is not installed."""


class DeploymentNotFound(ChainError):
    """No ledger contracts are recorded (or present) for this chain."""


class ContractReverted(ChainError):
    """A contract call reverted with a custom error, decoded by name and arguments.

    ``name`` is the Solidity error name (``GrantRegistryUnknownGrant``), ``args`` its decoded
    arguments in declaration order.
    """

    def __init__(self, *, name: str, args: tuple[Any, ...], contract: str | None = None) -> None:
        self.name = name
        self.args_decoded = args
        self.contract = contract
        rendered = ", ".join(_render(a) for a in args)
        super().__init__(f"{name}({rendered})")


class TransactionFailed(ChainError):
    """A transaction was mined but failed without a decodable reason, or could not be sent."""


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        text = value.rstrip(b"\x00")
        if text and all(32 <= b < 127 for b in text):
            return repr(text.decode("ascii"))
        return "0x" + value.hex()
    return repr(value)
