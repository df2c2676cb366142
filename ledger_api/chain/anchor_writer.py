"""Anchoring transactions for one signer: explicit nonces, replacement of stuck transactions, and
RPC errors classified so the outbox worker can decide what to do.

The worker (``ledger_api.anchoring``) owns the durable state: it records each signed transaction
(nonce, hash, raw bytes) before broadcasting it, so after a crash the very same transaction can be
sent again. A resend answered "already known" is a success; "nonce too low" means the nonce was used,
and the worker then asks the chain whether *this* batch root is anchored (the contract refuses a root
twice, so a root is anchored at most once whatever happens).

Everything here that talks to the node raises :class:`~ledger_api.chain.errors.ChainError` (or a
subclass) when the node is unreachable or answers nonsense, never a decoding or key error, so the
worker can tell a chain problem from a bug of its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger_api.chain.errors import ChainUnavailable
from ledger_api.chain.rpc import JsonRpc, RpcError
from ledger_api.chain.transactor import GasPricing

_ANCHOR_BATCH = keccak(text="anchorBatch(bytes32,uint64,bytes32)")[:4]
_ANCHOR_RECORD = keccak(text="anchorRecord(bytes32,uint32,bytes32,bytes32)")[:4]
_BATCH = keccak(text="batch(bytes32,bytes32)")[:4]
_BATCH_ANCHORED = "0x" + keccak(text="BatchAnchored(uint64,bytes32,bytes32,uint64,bytes32)").hex()
_FILLER_GAS = 21_000
# EIP-1559 / geth txpool: a replacement must pay at least 10% more; 12.5% leaves headroom.
_REPLACEMENT_BUMP_PERCENT = 125


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
class AnchoredBatch:
    size: int
    block_number: int
    owner_org: bytes


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
    fee, legacy otherwise); ``min_fee_level`` forces a replacement's higher fee. Shared by every writer
    that keeps its own nonces (record anchors, access-log tree heads)."""
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


class AnchorWriter:
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
        self._rpc = rpc
        self._signer = signer
        self._owner = owner_org.encode("ascii").ljust(32, b"\x00")
        self._records = records_address
        self._chain_id = chain_id
        self._gas_limit = gas_limit
        self._gas_pricing = gas_pricing

    @property
    def address(self) -> str:
        return str(self._signer.address)

    @property
    def rpc(self) -> JsonRpc:
        return self._rpc

    @staticmethod
    def anchor_batch_calldata(root: bytes, size: int, manifest_hash: bytes) -> bytes:
        return _ANCHOR_BATCH + abi_encode(["bytes32", "uint64", "bytes32"], [root, size, manifest_hash])

    @staticmethod
    def anchor_record_calldata(record_id: bytes, version: int, ciphertext_hash: bytes, commitment: bytes) -> bytes:
        return _ANCHOR_RECORD + abi_encode(
            ["bytes32", "uint32", "bytes32", "bytes32"], [record_id, version, ciphertext_hash, commitment]
        )

    def sign(self, calldata: bytes, *, nonce: int, min_fee_level: int = 0) -> SignedTx:
        """Sign a call to the anchors contract; ``min_fee_level`` forces a replacement's higher fee."""
        return self._sign(
            to=self._records, data=calldata, gas=self._gas_limit, nonce=nonce, min_fee_level=min_fee_level
        )

    def filler(self, *, nonce: int) -> SignedTx:
        """A transaction that only uses up ``nonce``: a transfer of nothing to the signer itself.

        It fills a gap below this signer's queued transactions (a nonce no recorded transaction will
        ever use, e.g. one whose block the node lost), so that the transactions above it can be mined.
        """
        return self._sign(to=self.address, data=b"", gas=_FILLER_GAS, nonce=nonce, min_fee_level=0)

    def _sign(self, *, to: str, data: bytes, gas: int, nonce: int, min_fee_level: int) -> SignedTx:
        return sign_call(
            rpc=self._rpc, signer=self._signer, chain_id=self._chain_id, gas_pricing=self._gas_pricing,
            to=to, data=data, gas=gas, nonce=nonce, min_fee_level=min_fee_level,
        )  # fmt: skip

    def replacement(self, calldata: bytes, stuck: SignedTx) -> SignedTx:
        """The same call at the same nonce paying enough more to replace ``stuck`` in the pool."""
        bumped = max(stuck.fee_level * _REPLACEMENT_BUMP_PERCENT // 100, stuck.fee_level + 1)
        if stuck.fee_level == 0:
            # A zero-gas-price chain has nothing to outbid: re-sending the same transaction is the cure.
            return stuck
        return self.sign(calldata, nonce=stuck.nonce, min_fee_level=bumped)

    def broadcast(self, tx: SignedTx) -> BroadcastOutcome:
        try:
            self._rpc.call("eth_sendRawTransaction", ["0x" + tx.raw.hex()])
        except RpcError as exc:
            return classify_rpc_error(exc.message)
        return BroadcastOutcome.ACCEPTED

    def receipt(self, tx_hash: str) -> dict[str, object] | None:
        """The receipt of a mined transaction, or None (unknown, still pending, or in a lost block)."""
        receipt = self._rpc.receipt(tx_hash)
        if receipt is None or receipt.get("blockNumber") is None:
            return None  # some clients answer a receipt without a block for a pending transaction
        return receipt

    def anchored_batch(self, root: bytes) -> AnchoredBatch | None:
        """The batch this signer's organisation anchored under ``root``, as the chain holds it now, or None."""
        raw = self._rpc.eth_call(self._records, _BATCH + abi_encode(["bytes32", "bytes32"], [self._owner, root]))
        try:
            owner, size, block_number, _sequence = abi_decode(["bytes32", "uint64", "uint64", "uint64"], raw)
        except DecodingError as exc:
            # "0x": no contract at that address (a chain reset or restored without it). A chain problem,
            # to be retried, not a crash of the worker.
            raise ChainUnavailable(
                f"RecordAnchors at {self._records} answered {raw.hex() or 'nothing'}: {exc}"
            ) from exc
        if size == 0:
            return None
        return AnchoredBatch(size=int(size), block_number=int(block_number), owner_org=bytes(owner))

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

    def nonces(self) -> tuple[int, int]:
        """(mined, pending) transaction counts of the signer."""
        return self._rpc.nonce(self.address, "latest"), self._rpc.nonce(self.address, "pending")
