"""``AccessLogAnchors`` over raw JSON-RPC: read the anchored tree heads, sign and send new ones.

:class:`TreeHeadReader` is all an auditor needs (``headCount``/``headAt``/``latestHead`` are kept in
contract storage, so no archive state is read). :class:`TreeHeadWriter` signs ``anchorTreeHead`` calls
with the log writer's key (``LOG_WRITER_ROLE``) with explicit nonces, for the anchorer's durable outbox:
it is the one :class:`~ledger_api.chain.sender.TransactionSender` plus the dry run of its call.

Everything that talks to the node raises :class:`~ledger_api.chain.errors.ChainError` (or a subclass)
when the node is unreachable or answers nonsense, so the anchorer can tell a chain problem from a bug.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.encoding import OrganisationKind, code_to_bytes32
from ledger_api.chain.errors import ChainUnavailable
from ledger_api.chain.rpc import JsonRpc, RpcError
from ledger_api.chain.sender import TransactionSender
from ledger_api.chain.transactor import GasPricing

__all__ = [
    "ChainTreeHead",
    "Preflight",
    "TreeHeadReader",
    "TreeHeadWriter",
    "auditor_recipients",
]


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


_ANCHOR_TREE_HEAD = _selector("anchorTreeHead(uint64,bytes32)")
_HEAD_COUNT = _selector("headCount()")
_HEAD_AT = _selector("headAt(uint256)")
_LATEST_HEAD = _selector("latestHead()")
_IS_ENTRY_INCLUDED = _selector("isEntryIncluded(uint256,bytes32,uint256,bytes32[])")
_ERR_UNAUTHORISED = _selector("AccessLogAnchorsUnauthorised(address)")
_ERR_NOT_GROWN = _selector("AccessLogAnchorsTreeNotGrown(uint64,uint64)")
_ERR_INVALID_ROOT = _selector("AccessLogAnchorsInvalidRoot()")
_HEAD_TYPES = ["bytes32", "uint64", "uint64", "uint64"]  # TreeHead {root, size, blockNumber, timestamp}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainTreeHead:
    """Tree head number ``index`` as ``AccessLogAnchors`` stores it."""

    index: int
    size: int
    root: bytes
    block_number: int
    timestamp: int


class Preflight(enum.Enum):
    """What a dry run (``eth_call``) of ``anchorTreeHead`` says would happen."""

    OK = "ok"
    NOT_GROWN = "not_grown"
    """The chain already holds a head at least this large: decide by reading the heads."""
    UNAUTHORISED = "unauthorised"
    """The signer does not hold ``LOG_WRITER_ROLE``."""
    REJECTED = "rejected"


class TreeHeadReader:
    """Read-only view of an ``AccessLogAnchors`` contract."""

    def __init__(self, *, rpc: JsonRpc, address: str) -> None:
        self._rpc = rpc
        self._address = address

    @property
    def rpc(self) -> JsonRpc:
        return self._rpc

    @property
    def address(self) -> str:
        return self._address

    def _call(self, data: bytes, types: Sequence[str]) -> tuple[Any, ...]:
        raw = self._rpc.eth_call(self._address, data)
        try:
            return tuple(abi_decode(list(types), raw))
        except DecodingError as exc:
            # "0x": no contract there (a chain reset or restored without it) — a chain problem, retried.
            raise ChainUnavailable(
                f"AccessLogAnchors at {self._address} answered {raw.hex() or 'nothing'}: {exc}"
            ) from exc

    def head_count(self) -> int:
        (count,) = self._call(_HEAD_COUNT, ["uint256"])
        return int(count)

    def head_at(self, index: int) -> ChainTreeHead:
        root, size, block_number, timestamp = self._call(_HEAD_AT + abi_encode(["uint256"], [index]), _HEAD_TYPES)
        return ChainTreeHead(
            index=index, size=int(size), root=bytes(root), block_number=int(block_number), timestamp=int(timestamp)
        )

    def latest_head(self) -> ChainTreeHead | None:
        """The newest head, or None when nothing is anchored yet."""
        count = self.head_count()
        return self.head_at(count - 1) if count else None

    def heads(self) -> list[ChainTreeHead]:
        """Every anchored head, oldest first (sizes strictly grow)."""
        return [self.head_at(i) for i in range(self.head_count())]

    def find_head(self, size: int) -> ChainTreeHead | None:
        """The anchored head of exactly ``size`` entries, or None (binary search: sizes strictly grow)."""
        low, high = 0, self.head_count() - 1
        if high >= 0:
            latest = self.head_at(high)  # the usual answer: look there first
            if latest.size == size:
                return latest
            if latest.size < size:
                return None
            high -= 1
        while low <= high:
            middle = (low + high) // 2
            head = self.head_at(middle)
            if head.size == size:
                return head
            if head.size < size:
                low = middle + 1
            else:
                high = middle - 1
        return None

    def is_entry_included(self, head_index: int, leaf_hash: bytes, leaf_index: int, proof: Sequence[bytes]) -> bool:
        """The contract's own RFC 9162 verification of an inclusion proof against head ``head_index``."""
        data = _IS_ENTRY_INCLUDED + abi_encode(
            ["uint256", "bytes32", "uint256", "bytes32[]"], [head_index, leaf_hash, leaf_index, list(proof)]
        )
        (included,) = self._call(data, ["bool"])
        return bool(included)


class TreeHeadWriter(TreeHeadReader, TransactionSender):
    """Signs and sends ``anchorTreeHead`` for the log writer, with explicit nonces."""

    def __init__(
        self,
        *,
        rpc: JsonRpc,
        signer: LocalAccount,
        address: str,
        chain_id: int,
        gas_limit: int = 150_000,
        gas_pricing: GasPricing = "auto",
    ) -> None:
        TreeHeadReader.__init__(self, rpc=rpc, address=address)
        TransactionSender.__init__(
            self, rpc=rpc, signer=signer, to=address, chain_id=chain_id, gas_limit=gas_limit, gas_pricing=gas_pricing
        )

    @staticmethod
    def anchor_calldata(size: int, root: bytes) -> bytes:
        return _ANCHOR_TREE_HEAD + abi_encode(["uint64", "bytes32"], [size, root])

    def preflight(self, size: int, root: bytes) -> tuple[Preflight, str]:
        """Dry-run ``anchorTreeHead(size, root)`` from the signer; the outcome and a one-line reason."""
        request = {
            "from": self.signer_address,
            "to": self._address,
            "data": "0x" + self.anchor_calldata(size, root).hex(),
        }
        try:
            self._rpc.call("eth_call", [request, "latest"])
        except RpcError as exc:
            data = _revert_data(exc)
            if data[:4] == _ERR_NOT_GROWN:
                try:
                    last, _size = abi_decode(["uint64", "uint64"], data[4:])
                except DecodingError:
                    last = "?"
                return Preflight.NOT_GROWN, f"the chain's last head has {last} entries"
            if data[:4] == _ERR_UNAUTHORISED:
                return Preflight.UNAUTHORISED, f"{self.signer_address} does not hold LOG_WRITER_ROLE"
            if data[:4] == _ERR_INVALID_ROOT:
                return Preflight.REJECTED, "the root is zero"
            if exc.code in (3, -32015) or "revert" in exc.message.lower():
                return Preflight.REJECTED, exc.message
            raise  # not a revert: a node problem
        return Preflight.OK, "ok"


def _revert_data(exc: RpcError) -> bytes:
    data: object = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


def auditor_recipients(chain: LedgerChain) -> dict[str, tuple[int, bytes]]:
    """Current HPKE keys of every auditor organisation on chain that is not suspended.

    The result is the ``recipients`` a segment is sealed for (the anchorer adds the gateway's own key).
    """
    out: dict[str, tuple[int, bytes]] = {}
    for org in chain.organisations():
        if org.kind is not OrganisationKind.AUDITOR or org.suspended:
            continue
        index, key = chain.transactor.call(chain.registry.functions.currentPublicKey(code_to_bytes32(org.org_id)))
        out[org.org_id] = (int(index), bytes(key))
    return out
