"""web3 connections to one chain through one or several nodes, proof-of-authority headers accepted.

Why a provider of our own: ``LEDGER_RPC_URL`` of a consortium chain names several members' nodes,
comma-separated; a request whose node stops answering (refused, timed out, an HTTP error) goes to the
next node, which is then used from there on, as :class:`ledger_api.chain.rpc.JsonRpc` does.

Why the middleware: proof-of-authority headers (Clique, QBFT, IBFT 2.0) carry the signers and seals in
``extraData``, longer than the 32 bytes Ethereum's yellow paper allows; web3 refuses such a block
(``ExtraDataLengthError``) unless ``ExtraDataToPOAMiddleware`` moves the field aside (as ``proofOfAuthorityData``).
"""

from __future__ import annotations

import requests
from eth_typing import URI
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint

from ledger_api.chain.rpc import rpc_urls


class FailoverHTTPProvider(HTTPProvider):
    """An HTTP provider over several endpoints of one chain, moving to the next when one fails."""

    def __init__(self, urls: tuple[str, ...], *, timeout_s: float) -> None:
        super().__init__(urls[0], request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None)
        self._urls = urls
        self._current = 0

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        first = self._current
        error: Exception | None = None
        for step in range(len(self._urls)):
            index = (first + step) % len(self._urls)
            try:
                answer = self._request_session_manager.make_post_request(
                    URI(self._urls[index]), request_data, **self.get_request_kwargs()
                )
            except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as exc:
                error = exc
                continue
            self._current = index
            self.endpoint_uri = URI(self._urls[index])
            return bytes(answer)
        assert error is not None
        raise error


def connect(rpc_url: str, *, timeout_s: float = 30.0) -> Web3:
    """A web3 handle on the chain behind ``rpc_url`` (one URL, or several comma-separated)."""
    w3 = Web3(FailoverHTTPProvider(rpc_urls(rpc_url), timeout_s=timeout_s))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


__all__ = ["FailoverHTTPProvider", "connect"]
