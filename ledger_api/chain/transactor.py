"""Signing, sending and confirming transactions over standard JSON-RPC, with reverts decoded by name.

Transactions are signed locally (no ``eth_sendTransaction``: production nodes hold no keys) and priced
the way the chain wants: EIP-1559 fees when the latest block carries a base fee, a legacy gas price
otherwise, which covers zero-gas-price consortium chains (Besu, GoQuorum) as well as anvil.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError, Web3Exception, Web3RPCError
from web3.types import TxParams, TxReceipt, Wei

from ledger_api.chain.artifacts import load_artifacts
from ledger_api.chain.errors import ChainUnavailable, ContractReverted, TransactionFailed
from ledger_api.chain.providers import connect

GasPricing = Literal["auto", "legacy", "eip1559"]


class RevertDecoder:
    """Maps the 4-byte selectors of every custom error in the ledger ABIs to names and argument types."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") == "error":
                    types = [_abi_type(i) for i in item["inputs"]]
                    selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                    self._errors[selector] = (item["name"], types)

    @classmethod
    def for_ledger(cls) -> RevertDecoder:
        return cls(c["abi"] for c in load_artifacts()["contracts"].values())

    def decode(self, data: str | bytes | None) -> ContractReverted | None:
        if isinstance(data, str):
            if not data.startswith("0x"):
                return None
            try:
                raw = bytes.fromhex(data[2:])
            except ValueError:
                return None
        elif data is None:
            return None
        else:
            raw = data
        known = self._errors.get(raw[:4])
        if known is None:
            return None
        name, types = known
        return ContractReverted(name=name, args=tuple(abi_decode(types, raw[4:])))

    def translate(self, exc: ContractLogicError) -> Exception:
        """The domain error for a web3 revert: a named custom error, or a plain failure."""
        data = exc.data if isinstance(exc.data, str) else None
        decoded = self.decode(data) if isinstance(exc, ContractCustomError) or data else None
        if decoded is not None:
            return decoded
        if isinstance(exc, ContractPanicError):
            return TransactionFailed(f"contract panicked: {exc.message}")
        return TransactionFailed(f"contract reverted: {exc.message or 'no reason given'}")


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


_NONCE_RETRIES = 5


class _NonceTaken(Exception):
    """Another sender used this signer's nonce first."""


def _nonce_taken(message: str) -> bool:
    text = message.lower()
    return any(
        f in text for f in ("nonce too low", "nonce_too_low", "underpriced", "already known", "known transaction")
    )


class Transactor:
    """Sends contract calls as locally signed transactions and waits for them to be mined."""

    def __init__(
        self,
        *,
        w3: Web3,
        decoder: RevertDecoder | None = None,
        gas_pricing: GasPricing = "auto",
        confirmations: int = 0,
        receipt_timeout_s: float = 120.0,
    ) -> None:
        self._w3 = w3
        self._decoder = decoder or RevertDecoder.for_ledger()
        self._gas_pricing = gas_pricing
        self._confirmations = confirmations
        self._receipt_timeout_s = receipt_timeout_s
        self._chain_id: int | None = None

    @classmethod
    def from_url(cls, rpc_url: str, *, gas_pricing: GasPricing = "auto", confirmations: int = 0) -> Transactor:
        w3 = connect(rpc_url)
        return cls(w3=w3, gas_pricing=gas_pricing, confirmations=confirmations)

    @property
    def w3(self) -> Web3:
        return self._w3

    @property
    def decoder(self) -> RevertDecoder:
        return self._decoder

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            try:
                self._chain_id = int(self._w3.eth.chain_id)
            except (OSError, Web3Exception) as exc:
                raise ChainUnavailable(f"cannot reach the chain: {exc}") from exc
        return self._chain_id

    def fee_fields(self) -> TxParams:
        """Fee fields for a new transaction, in the pricing the chain uses."""
        pricing = self._gas_pricing
        latest = self._w3.eth.get_block("latest")
        base_fee = latest.get("baseFeePerGas")
        if pricing == "auto":
            pricing = "eip1559" if base_fee is not None else "legacy"
        if pricing == "legacy":
            return {"gasPrice": self._w3.eth.gas_price}
        try:
            tip = int(self._w3.eth.max_priority_fee)
        except (ValueError, Web3Exception):
            tip = 0
        base = int(base_fee or 0)
        return {"maxPriorityFeePerGas": Wei(tip), "maxFeePerGas": Wei(2 * base + tip)}

    def call(self, fn: Any, *, sender: str | None = None) -> Any:
        """A read-only contract call at the latest block, reverts translated."""
        try:
            return fn.call({"from": sender} if sender else {})
        except ContractLogicError as exc:
            raise self._decoder.translate(exc) from exc
        except (OSError, Web3Exception) as exc:
            raise ChainUnavailable(f"chain call failed: {exc}") from exc

    def transact(self, fn: Any, *, signer: LocalAccount, gas: int | None = None) -> TxReceipt:
        """Send ``fn`` (a bound contract function or constructor) signed by ``signer``; wait for it.

        An organisation's signer may also be sending anchors from the gateway at the same moment; when
        the node says the nonce is taken (too low, or a pending transaction already holds it), the call
        is signed again with a fresh nonce, a few times, rather than failing.
        """
        for attempt in range(_NONCE_RETRIES):
            try:
                return self._transact_once(fn, signer=signer, gas=gas)
            except _NonceTaken:
                time.sleep(0.1 * (attempt + 1))
        return self._transact_once(fn, signer=signer, gas=gas)

    def _transact_once(self, fn: Any, *, signer: LocalAccount, gas: int | None) -> TxReceipt:
        params: TxParams = {"from": signer.address, "chainId": self.chain_id}
        try:
            params["nonce"] = self._w3.eth.get_transaction_count(signer.address, "pending")
            params.update(self.fee_fields())
            if gas is not None:
                params["gas"] = gas
            # Building the transaction estimates gas, which surfaces a revert before anything is sent.
            tx = fn.build_transaction(params)
        except ContractLogicError as exc:
            raise self._decoder.translate(exc) from exc
        except (OSError, Web3Exception) as exc:
            raise ChainUnavailable(f"cannot prepare transaction: {exc}") from exc
        signed = signer.sign_transaction(tx)
        try:
            tx_hash = self._w3.eth.send_raw_transaction(signed.raw_transaction)
        except Web3RPCError as exc:
            if _nonce_taken(str(exc)):
                raise _NonceTaken from exc
            raise ChainUnavailable(f"transaction refused: {exc}") from exc
        except (OSError, Web3Exception) as exc:
            raise ChainUnavailable(f"transaction not sent: {exc}") from exc
        try:
            receipt = self._w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self._receipt_timeout_s)
        except (OSError, Web3Exception) as exc:
            raise ChainUnavailable(f"transaction not confirmed: {exc}") from exc
        if receipt["status"] != 1:
            raise TransactionFailed(f"transaction {tx_hash.hex()} failed in block {receipt['blockNumber']}")
        self._await_confirmations(receipt["blockNumber"])
        return receipt

    def _await_confirmations(self, block_number: int) -> None:
        deadline = time.monotonic() + self._receipt_timeout_s
        while self._confirmations and self._w3.eth.block_number < block_number + self._confirmations:
            if time.monotonic() > deadline:
                raise ChainUnavailable(f"block {block_number} did not reach {self._confirmations} confirmations")
            time.sleep(0.2)
