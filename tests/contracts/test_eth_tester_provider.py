"""The test provider answers reverted ``eth_call``s as a JSON-RPC node does (code 3 with the revert data),
so view reverts reach the production decoder (``Transactor`` → ``RevertDecoder`` → ``ContractReverted``)."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_tester.exceptions import TransactionFailed as EthTesterTransactionFailed
from eth_utils.crypto import keccak
from web3.exceptions import ContractCustomError
from web3.types import RPCEndpoint

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.errors import ContractReverted
from tests.contracts.conftest import Actors, call
from tests.support.eth_tester_provider import _revert_data

UNKNOWN_GRANT_999 = keccak(text="GrantRegistryUnknownGrant(uint256)")[:4] + abi_encode(["uint256"], [999])


def test_a_reverting_view_raises_the_named_error(ledger: LedgerChain) -> None:
    with pytest.raises(ContractReverted) as info:
        ledger.transactor.call(ledger.grants.functions.grant(999))
    assert (info.value.name, info.value.args_decoded) == ("GrantRegistryUnknownGrant", (999,))
    # The same through the test helper and the client (no replay, no test-only decoding).
    for attempt in (lambda: call(ledger, ledger.grants.functions.grant(999)), lambda: ledger.grant(999)):
        with pytest.raises(ContractReverted) as info:
            attempt()
        assert (info.value.name, info.value.args_decoded) == ("GrantRegistryUnknownGrant", (999,))


def test_a_reverted_eth_call_answers_with_the_revert_data(ledger: LedgerChain, actors: Actors) -> None:
    fn = ledger.grants.functions.grant(999)
    response = ledger.w3.provider.make_request(
        RPCEndpoint("eth_call"),
        [{"from": actors.stranger.address, "to": fn.address, "data": fn._encode_transaction_data()}, "latest"],
    )
    assert response["error"] == {"code": 3, "message": "execution reverted", "data": "0x" + UNKNOWN_GRANT_999.hex()}
    # web3 sees what it sees from anvil: a custom error carrying the data.
    with pytest.raises(ContractCustomError) as info:
        fn.call()
    assert info.value.data == "0x" + UNKNOWN_GRANT_999.hex()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (str(UNKNOWN_GRANT_999), UNKNOWN_GRANT_999),
        ("execution reverted: " + str(UNKNOWN_GRANT_999), UNKNOWN_GRANT_999),
        ('b"it\'s"', b"it's"),
        ("b''", b""),
        ("execution reverted: some reason", None),
        ("execution reverted: b'unterminated", None),
        ("execution reverted: b'\\x00' + b'\\x01'", None),
        ("bytes", None),
    ],
    ids=[
        "bytes repr",
        "after the prefix",
        "double quotes",
        "empty data",
        "reason text",
        "broken",
        "expression",
        "word",
    ],
)
def test_revert_data_from_the_message_text(message: str, expected: bytes | None) -> None:
    assert _revert_data(EthTesterTransactionFailed(message)) == expected


def _reraised(inner: str, outer: str) -> EthTesterTransactionFailed:
    """``outer`` raised inside the handler of ``inner``, as web3 re-raises eth-tester's failure."""
    try:
        try:
            raise EthTesterTransactionFailed(inner)
        except EthTesterTransactionFailed:
            raise EthTesterTransactionFailed(outer) from None
    except EthTesterTransactionFailed as exc:
        return exc


def test_revert_data_from_a_chained_message() -> None:
    exc = _reraised(str(UNKNOWN_GRANT_999), "execution reverted")
    assert exc.__context__ is not None
    assert _revert_data(exc) == UNKNOWN_GRANT_999
