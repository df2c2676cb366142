"""``RecordAnchors`` calls for one signer: the calls themselves, and whether a batch root is on chain.

Signing, sending and reading a transaction's fate is :class:`~ledger_api.chain.sender.TransactionSender`;
the outbox engine (:mod:`ledger_api.outbox`) decides what to do with it. The contract refuses a root
twice, so a root is anchored at most once whatever happens: the engine asks :meth:`AnchorWriter.anchored_batch`
whether *this* batch root is anchored, never what happened to one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger_api.chain.record_anchors import RecordAnchorsReader
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.sender import TransactionSender, sign_call
from ledger_api.chain.transactions import BroadcastOutcome, SignedTx, classify_rpc_error
from ledger_api.chain.transactor import GasPricing

# Kept importable from here: callers and tests name them through this module.
__all__ = [
    "AnchorWriter",
    "AnchoredBatch",
    "BroadcastOutcome",
    "SignedTx",
    "classify_rpc_error",
    "sign_call",
]

_ANCHOR_BATCH = keccak(text="anchorBatch(bytes32,uint64,bytes32)")[:4]
_ANCHOR_RECORD = keccak(text="anchorRecord(bytes32,uint32,bytes32,bytes32)")[:4]
_BATCH_ANCHORED = "0x" + keccak(text="BatchAnchored(uint64,bytes32,bytes32,uint64,bytes32)").hex()


@dataclass(frozen=True, kw_only=True)
class AnchoredBatch:
    size: int
    block_number: int
    owner_org: bytes


class AnchorWriter(TransactionSender):
    """Signs and sends ``RecordAnchors`` transactions for one signer over raw JSON-RPC."""

    def __init__(
        self,
        *,
        rpc: JsonRpc,
        signer: LocalAccount,
        owner_org: str,
        records_address: str,
        chain_id: int,
        gas_limit: int = 200_000,
        gas_pricing: GasPricing = "auto",
    ) -> None:
        super().__init__(
            rpc=rpc, signer=signer, to=records_address, chain_id=chain_id, gas_limit=gas_limit, gas_pricing=gas_pricing
        )
        self._owner = owner_org.encode("ascii").ljust(32, b"\x00")
        self._owner_org = owner_org
        self._records = records_address
        self._reader = RecordAnchorsReader(rpc=rpc, address=records_address)

    @property
    def address(self) -> str:
        """The signer's address."""
        return self.signer_address

    @staticmethod
    def anchor_batch_calldata(root: bytes, size: int, manifest_hash: bytes) -> bytes:
        return _ANCHOR_BATCH + abi_encode(["bytes32", "uint64", "bytes32"], [root, size, manifest_hash])

    @staticmethod
    def anchor_record_calldata(record_id: bytes, version: int, ciphertext_hash: bytes, commitment: bytes) -> bytes:
        return _ANCHOR_RECORD + abi_encode(
            ["bytes32", "uint32", "bytes32", "bytes32"], [record_id, version, ciphertext_hash, commitment]
        )

    def anchored_batch(self, root: bytes) -> AnchoredBatch | None:
        """The batch this signer's organisation anchored under ``root``, as the chain holds it now, or None.

        A contract that answers nothing (a chain reset or restored without it) raises ``ChainUnavailable``:
        a chain problem, retried, not a crash of the worker."""
        found = self._reader.batch(owner_org=self._owner_org, root=root)
        if found is None:
            return None
        return AnchoredBatch(size=found.size, block_number=found.block_number, owner_org=self._owner)

    def anchoring_transaction(self, root: bytes, block_number: int) -> str | None:
        """The hash of the transaction that emitted ``BatchAnchored`` for ``root`` in ``block_number``.

        The batch root can be anchored by another transaction than the one last recorded for it (an
        earlier copy that was mined after all, a replacement that lost): the status a caller sees must
        name the transaction that really did it.
        """
        logs = self._rpc.call(
            "eth_getLogs",
            [
                {
                    "address": self._records,
                    "fromBlock": hex(block_number),
                    "toBlock": hex(block_number),
                    "topics": [_BATCH_ANCHORED, None, "0x" + self._owner.hex()],
                }
            ],
        )
        for log in logs or ():
            data = bytes.fromhex(str(log.get("data", "0x"))[2:])
            if data[:32] == root and log.get("transactionHash"):
                return str(log["transactionHash"])
        return None
