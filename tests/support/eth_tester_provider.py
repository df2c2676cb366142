"""An eth-tester provider that reports reverts the way JSON-RPC nodes do.

web3's ``EthereumTesterProvider`` raises eth-tester's ``TransactionFailed`` for a reverted
``eth_call`` / ``eth_estimateGas`` instead of answering with a JSON-RPC error. Real nodes (anvil,
geth, Besu) answer ``{"code": 3, "message": "execution reverted", "data": "0x<revert data>"}``, which
web3 turns into ``ContractCustomError``. Answering the same way here means the tests exercise the
production revert-decoding path rather than a test-only one.
"""

from __future__ import annotations

import itertools
from typing import Any

from eth.exceptions import Revert as EVMRevert
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

_ids = itertools.count(1)


def _revert_data(exc: BaseException) -> bytes | None:
    # py-evm's Revert carries the raw revert data; eth-tester wraps it (sometimes more than once).
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, EVMRevert) and seen.args and isinstance(seen.args[0], bytes):
            return seen.args[0]
        seen = seen.__cause__ or seen.__context__
    return None


class StandardErrorsEthereumTesterProvider(EthereumTesterProvider):
    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except TransactionFailed as exc:
            data = _revert_data(exc)
            error: dict[str, Any] = {"code": 3, "message": "execution reverted"}
            if data is not None:
                error["data"] = "0x" + data.hex()
            return {"jsonrpc": "2.0", "id": next(_ids), "error": error}  # type: ignore[typeddict-item]
