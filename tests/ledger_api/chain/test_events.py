"""``iter_events`` reads only logs of the node's canonical chain: one marked ``removed`` (a block replaced
by a reorganisation, as a node reports it) is not an event that happened."""

from __future__ import annotations

from typing import Any

from ledger_api.chain.encoding import code_to_bytes32
from ledger_api.chain.events import EventDecoder, iter_events
from ledger_api.chain.rpc import JsonRpc

ADDRESS = "0x" + "11" * 20


class CannedNode(JsonRpc):
    """Answers ``eth_getLogs`` with fixed logs (a unit test of the reading loop, no chain)."""

    def __init__(self, logs: list[dict[str, Any]]) -> None:
        super().__init__(url="http://127.0.0.1:9")
        self.logs = logs

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        assert method == "eth_getLogs"
        return self.logs


def _suspended(org_id: str, *, block: int, removed: bool) -> dict[str, Any]:
    topic = EventDecoder("OrganisationRegistry").topic("OrganisationSuspended")
    return {
        "address": ADDRESS,
        "topics": [topic, "0x" + code_to_bytes32(org_id).hex()],
        "data": "0x" + "00" * 12 + "22" * 20,
        "blockNumber": hex(block),
        "blockHash": "0x" + f"{block:064x}",
        "transactionHash": "0x" + f"{block:064x}",
        "logIndex": "0x0",
        "removed": removed,
    }


def test_a_log_marked_removed_is_not_an_event() -> None:
    node = CannedNode(
        [_suspended("PS-GONE-01", block=5, removed=True), _suspended("PS-KEPT-01", block=6, removed=False)]
    )
    events = list(iter_events(node, contract="OrganisationRegistry", address=ADDRESS, from_block=1, to_block=6))
    assert [(e.name, e.block_number) for e in events] == [("OrganisationSuspended", 6)]
    assert events[0].args["orgId"] == code_to_bytes32("PS-KEPT-01")
