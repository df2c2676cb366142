"""An eth-tester provider that reports reverts the way JSON-RPC nodes do.

web3's ``EthereumTesterProvider`` raises eth-tester's ``TransactionFailed`` for a reverted
``eth_call`` / ``eth_estimateGas`` instead of answering with a JSON-RPC error. Real nodes (anvil,
geth, Besu) answer ``{"code": 3, "message": "execution reverted", "data": "0x<revert data>"}``, which
web3 turns into ``ContractCustomError``. Answering the same way here means the tests exercise the
production revert-decoding path rather than a test-only one.
"""

from __future__ import annotations

import ast
import itertools
from typing import Any

from eth.exceptions import Revert as EVMRevert
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

_ids = itertools.count(1)
_REVERTED_PREFIX = "execution reverted: "


def _revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data behind ``exc``, or None when it carries none.

    For ``eth_estimateGas`` (and transactions) eth-tester chains py-evm's ``Revert``, which holds the
    data, to the exception it raises (sometimes wrapped more than once). For ``eth_call`` it raises its
    ``TransactionFailed`` with the data only as the *text* of the message (``str(Revert(data))``, e.g.
    ``b'\\x8c\\x9a...'``), and web3 re-raises that as ``"execution reverted: b'...'"``: nothing chained
    holds the bytes, so they are parsed back from the message.
    """
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for link in chain:
        if isinstance(link, EVMRevert) and link.args and isinstance(link.args[0], bytes):
            return link.args[0]
    for link in chain:
        if link.args and isinstance(link.args[0], str):
            data = _bytes_from_text(link.args[0])
            if data is not None:
                return data
    return None


def _bytes_from_text(text: str) -> bytes | None:
    """``b'...'`` (the repr of the revert data), possibly after ``execution reverted: ``, as bytes."""
    text = text.removeprefix(_REVERTED_PREFIX)
    if not text.startswith(("b'", 'b"')):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, bytes) else None


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
