"""One signer's transactions to one contract over raw JSON-RPC, with explicit nonces.

The sender keeps no state: the outbox engine (:mod:`ledger_api.outbox`) records each signed transaction
(nonce, hash, raw bytes) before it broadcasts it, and decides what to do from the classified answer.
:class:`~ledger_api.chain.anchor_writer.AnchorWriter` (record anchors) and
:class:`~ledger_api.chain.tree_heads.TreeHeadWriter` (access-log tree heads) are this sender plus the few
contract reads that tell whether their own call is on chain.

Everything here that talks to the node raises :class:`~ledger_api.chain.errors.ChainError` (or a
subclass) when the node is unreachable or answers nonsense, never a decoding or key error, so the
engine can tell a chain problem from a bug of its own.
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount

from ledger_api.chain.rpc import JsonRpc, RpcError
from ledger_api.chain.transactions import BroadcastOutcome, Mined, SignedTx, classify_rpc_error
from ledger_api.chain.transactor import GasPricing

__all__ = ["TransactionSender", "sign_call"]

_FILLER_GAS = 21_000
# EIP-1559 / geth txpool: a replacement must pay at least 10% more; 25% leaves headroom.
_REPLACEMENT_BUMP_PERCENT = 125


def sign_call(
    *,
    rpc: JsonRpc,
    signer: LocalAccount,
    chain_id: int,
    gas_pricing: GasPricing,
    to: str,
    data: bytes,
    gas: int,
    nonce: int,
    min_fee_level: int = 0,
) -> SignedTx:
    """Sign a call at an explicit nonce, priced as the chain wants (EIP-1559 when blocks carry a base
    fee, legacy otherwise); ``min_fee_level`` forces a replacement's higher fee."""
    tx: dict[str, Any] = {"to": to, "data": data, "nonce": nonce, "gas": gas, "chainId": chain_id, "value": 0}
    pricing = gas_pricing
    base_fee: int | None = None
    if pricing != "legacy":
        latest = rpc.block("latest") or {}
        base_fee = int(latest["baseFeePerGas"], 16) if latest.get("baseFeePerGas") else None
        if pricing == "auto":
            pricing = "eip1559" if base_fee is not None else "legacy"
    if pricing == "legacy":
        fee = max(rpc.gas_price(), min_fee_level)
        tx["gasPrice"] = fee
    else:
        tip = rpc.max_priority_fee()
        fee = max(2 * (base_fee or 0) + tip, min_fee_level)
        tx["maxFeePerGas"] = fee
        tx["maxPriorityFeePerGas"] = min(max(tip, min_fee_level - 2 * (base_fee or 0)), fee)
    signed = signer.sign_transaction(tx)
    return SignedTx(
        nonce=nonce,
        tx_hash="0x" + signed.hash.hex().removeprefix("0x"),
        raw=bytes(signed.raw_transaction),
        fee_level=fee,
    )


class TransactionSender:
    """Signs calls to ``to`` for ``signer`` at the nonces it is given, sends them, reads their fate."""

    def __init__(
        self,
        *,
        rpc: JsonRpc,
        signer: LocalAccount,
        to: str,
        chain_id: int,
        gas_limit: int,
        gas_pricing: GasPricing = "auto",
    ) -> None:
        self._rpc = rpc
        self._signer = signer
        self._to = to
        self._chain_id = chain_id
        self._gas_limit = gas_limit
        self._gas_pricing = gas_pricing

    @property
    def rpc(self) -> JsonRpc:
        return self._rpc

    @property
    def signer_address(self) -> str:
        return str(self._signer.address)

    def sign(self, calldata: bytes, *, nonce: int, min_fee_level: int = 0) -> SignedTx:
        """Sign a call to the contract; ``min_fee_level`` forces a replacement's higher fee."""
        return self._sign(to=self._to, data=calldata, gas=self._gas_limit, nonce=nonce, min_fee_level=min_fee_level)

    def filler(self, *, nonce: int) -> SignedTx:
        """A transaction that only uses up ``nonce``: a transfer of nothing to the signer itself.

        It fills a gap below this signer's queued transactions (a nonce no recorded transaction will
        ever use, e.g. one whose block the node lost), so that the transactions above it can be mined.
        """
        return self._sign(to=self.signer_address, data=b"", gas=_FILLER_GAS, nonce=nonce, min_fee_level=0)

    def _sign(self, *, to: str, data: bytes, gas: int, nonce: int, min_fee_level: int) -> SignedTx:
        return sign_call(
            rpc=self._rpc, signer=self._signer, chain_id=self._chain_id, gas_pricing=self._gas_pricing,
            to=to, data=data, gas=gas, nonce=nonce, min_fee_level=min_fee_level,
        )  # fmt: skip

    def replacement(self, calldata: bytes, stuck: SignedTx) -> SignedTx:
        """The same call at the same nonce paying enough more to replace ``stuck`` in the pool."""
        if stuck.fee_level == 0:
            # A zero-gas-price chain has nothing to outbid: re-sending the same transaction is the cure.
            return stuck
        bumped = max(stuck.fee_level * _REPLACEMENT_BUMP_PERCENT // 100, stuck.fee_level + 1)
        return self.sign(calldata, nonce=stuck.nonce, min_fee_level=bumped)

    def broadcast(self, tx: SignedTx) -> BroadcastOutcome:
        try:
            self._rpc.call("eth_sendRawTransaction", ["0x" + tx.raw.hex()])
        except RpcError as exc:
            return classify_rpc_error(exc.message)
        return BroadcastOutcome.ACCEPTED

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt of a mined transaction, or None (unknown, still pending, or in a lost block)."""
        receipt = self._rpc.receipt(tx_hash)
        if receipt is None or receipt.get("blockNumber") is None:
            return None  # some clients answer a receipt without a block for a pending transaction
        return receipt

    def mined(self, tx_hash: str) -> Mined | None:
        """Where and how ``tx_hash`` was mined, or None (see :meth:`receipt`)."""
        receipt = self.receipt(tx_hash)
        if receipt is None:
            return None
        return Mined(block_number=int(str(receipt["blockNumber"]), 16), succeeded=int(str(receipt["status"]), 16) == 1)

    def nonces(self) -> tuple[int, int]:
        """(mined, pending) transaction counts of the signer."""
        return self._rpc.nonce(self.signer_address, "latest"), self._rpc.nonce(self.signer_address, "pending")

    def block_number(self) -> int:
        """The chain's head."""
        return self._rpc.block_number()
