"""A small JSON-RPC client over httpx for hot paths (anchoring, following blocks).

web3's request stack costs ~10 ms a call here; a plain keep-alive httpx client does several times
better, which matters for the anchoring loop. Only standard Ethereum JSON-RPC methods are used.

Several nodes: ``url`` may list several endpoints, comma-separated (``LEDGER_RPC_URL`` of a consortium
chain names its members' nodes). Calls go to one node; when it stops answering (connection refused, a
time-out, an HTTP error: not a JSON-RPC error object, which is the node's answer) the same call goes to
the next one, and that node is used from then on. A node that fails over sees the chain as the new node
does: its head may be a block or two behind, which the follower and the anchoring worker already handle
as a chain that went back.
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


def rpc_urls(url: str) -> tuple[str, ...]:
    """The endpoints of a (comma-separated) ``LEDGER_RPC_URL``, in order; a clear error when none is given."""
    urls = tuple(u.strip() for u in url.split(",") if u.strip())
    if not urls:
        raise ChainUnavailable(f"no JSON-RPC endpoint in {url!r}: give one URL, or several separated by commas")
    for u in urls:
        if not u.startswith(("http://", "https://")):
            raise ChainUnavailable(f"JSON-RPC endpoint {u!r} in {url!r} is not an http(s) URL")
    return urls


class JsonRpc:
    def __init__(self, *, url: str, timeout_s: float = 10.0) -> None:
        self._urls = rpc_urls(url)
        self._current = 0
        self._client = httpx.Client(timeout=timeout_s, limits=httpx.Limits(max_keepalive_connections=4))
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        """The endpoint calls go to now."""
        return self._urls[self._current]

    @property
    def urls(self) -> tuple[str, ...]:
        return self._urls

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        first = self._current
        failures: list[str] = []
        for step in range(len(self._urls)):
            index = (first + step) % len(self._urls)
            try:
                answer = self._post(self._urls[index], body)
            except ChainUnavailable as exc:
                failures.append(str(exc))
                continue
            self._current = index
            return self._result(method, self._urls[index], answer)
        raise ChainUnavailable(f"{method}: no node answered: " + "; ".join(failures))

    def _post(self, url: str, body: dict[str, Any]) -> Any:
        try:
            response = self._client.post(url, json=body)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainUnavailable(f"{body['method']} to {url} failed: {exc}") from exc
        if not isinstance(answer, dict):
            raise ChainUnavailable(f"{body['method']} to {url}: not a JSON-RPC answer: {str(answer)[:100]}")
        return answer

    @staticmethod
    def _result(method: str, url: str, answer: dict[str, Any]) -> Any:
        if "error" in answer and answer["error"] is not None:
            error = answer["error"]
            if not isinstance(error, dict):
                raise ChainUnavailable(f"{method} to {url}: malformed error {str(error)[:100]}")
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
            raise ChainUnavailable(f"{method} to {self.url}: expected a hex quantity, got {result!r}") from None

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
