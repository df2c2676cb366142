"""Read-only access to ``RecordAnchors``: what the chain holds for a batch root, over a caller's own node.

For readers that trust no gateway (``ledger_api.client.GatewayClient`` with ``rpc_url``): one ``eth_call``
of the contract's ``batch(bytes32 ownerOrg, bytes32 root)`` view (``contracts/interfaces/IRecordAnchors.sol``),
no signer, no web3.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from ledger_api.chain.encoding import code_to_bytes32
from ledger_api.chain.errors import ChainUnavailable
from ledger_api.chain.rpc import JsonRpc

_BATCH = keccak(text="batch(bytes32,bytes32)")[:4]


@dataclass(frozen=True, kw_only=True)
class BatchAnchor:
    """``IRecordAnchors.Batch`` as stored for an owner's root."""

    size: int
    block_number: int
    sequence: int


class RecordAnchorsReader:
    """The views of a ``RecordAnchors`` contract at ``address``, over ``rpc``."""

    def __init__(self, *, rpc: JsonRpc, address: str) -> None:
        self._rpc = rpc
        self._address = address

    @classmethod
    def from_url(cls, *, rpc_url: str, address: str) -> RecordAnchorsReader:
        return cls(rpc=JsonRpc(url=rpc_url), address=address)

    @property
    def address(self) -> str:
        return self._address

    def close(self) -> None:
        self._rpc.close()

    def batch(self, *, owner_org: str, root: bytes) -> BatchAnchor | None:
        """The batch ``owner_org`` anchored under ``root`` as the chain holds it now; None if it did not."""
        call = _BATCH + abi_encode(["bytes32", "bytes32"], [code_to_bytes32(owner_org), root])
        raw = self._rpc.eth_call(self._address, call)
        try:
            _owner, size, block_number, sequence = abi_decode(["bytes32", "uint64", "uint64", "uint64"], raw)
        except DecodingError as exc:  # "0x": no contract at that address on this chain
            raise ChainUnavailable(
                f"RecordAnchors at {self._address} answered {raw.hex() or 'nothing'}: {exc}"
            ) from exc
        if size == 0:
            return None
        return BatchAnchor(size=int(size), block_number=int(block_number), sequence=int(sequence))


__all__ = ["BatchAnchor", "RecordAnchorsReader"]
