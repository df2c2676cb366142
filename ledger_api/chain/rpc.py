"""A small JSON-RPC client over httpx for hot paths (anchoring, following blocks).

web3's request stack costs ~10 ms a call here; a plain keep-alive httpx client does several times
better, which matters for the anchoring loop. Only standard Ethereum JSON-RPC methods are used.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from ledger_api.chain.errors import ChainError, ChainUnavailable


class RpcError(ChainError):
    """The node answered a JSON-RPC error object."""

    def __init__(self, *, method: str, code: int, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{method}: {message} (code {code})")


class JsonRpc:
    def __init__(self, *, url: str, timeout_s: float = 10.0) -> None:
        self._url = url
        self._client = httpx.Client(timeout=timeout_s, limits=httpx.Limits(max_keepalive_connections=4))
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return self._url

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        try:
            response = self._client.post(self._url, json=body)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainUnavailable(f"{method} to {self._url} failed: {exc}") from exc
        if not isinstance(answer, dict):
            raise ChainUnavailable(f"{method} to {self._url}: not a JSON-RPC answer: {str(answer)[:100]}")
        if "error" in answer and answer["error"] is not None:
            error = answer["error"]
            if not isinstance(error, dict):
                raise ChainUnavailable(f"{method} to {self._url}: malformed error {str(error)[:100]}")
            raise RpcError(
                method=method,
                code=int(error.get("code", 0)),
                message=str(error.get("message", "")),
                data=error.get("data"),
            )
        return answer.get("result")

    def _quantity(self, method: str, params: list[Any] | None = None) -> int:
        result = self.call(method, params)
        try:
            return int(result, 16)
        except (TypeError, ValueError):
            raise ChainUnavailable(f"{method} to {self._url}: expected a hex quantity, got {result!r}") from None

    def chain_id(self) -> int:
        return self._quantity("eth_chainId")

    def block_number(self) -> int:
        return self._quantity("eth_blockNumber")

    def nonce(self, address: str, block: str = "pending") -> int:
        return self._quantity("eth_getTransactionCount", [address, block])

    def eth_call(self, to: str, data: bytes, block: str = "latest") -> bytes:
        result = self.call("eth_call", [{"to": to, "data": "0x" + data.hex()}, block])
        return bytes.fromhex(str(result)[2:])

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        result = self.call("eth_getTransactionReceipt", [tx_hash])
        return dict(result) if result else None

    def block(self, number: int | str = "latest") -> dict[str, Any] | None:
        tag = hex(number) if isinstance(number, int) else number
        result = self.call("eth_getBlockByNumber", [tag, False])
        return dict(result) if result else None

    def gas_price(self) -> int:
        return self._quantity("eth_gasPrice")

    def max_priority_fee(self) -> int:
        try:
            return self._quantity("eth_maxPriorityFeePerGas")
        except (RpcError, ChainUnavailable):
            return 0
