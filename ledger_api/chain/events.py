"""Reading contract events with plain ``eth_getLogs``, decoded by the committed ABIs.

Events are how history is read without archive state (DESIGN.md, Chain): the index is rebuilt from
them and auditors check the access trail with them. Ranges are fetched in chunks because public and
consortium nodes cap the span of one ``eth_getLogs`` call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

from ledger_api.chain.artifacts import contract_abi
from ledger_api.chain.rpc import JsonRpc


@dataclass(frozen=True, kw_only=True)
class DecodedEvent:
    contract: str
    name: str
    args: dict[str, Any]
    block_number: int
    transaction_hash: str
    log_index: int


class EventDecoder:
    """Topic → (event name, inputs) for one contract's ABI."""

    def __init__(self, contract: str) -> None:
        self.contract = contract
        self._events: dict[bytes, dict[str, Any]] = {}
        for item in contract_abi(contract):
            if item.get("type") == "event":
                signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                self._events[keccak(text=signature)] = item

    def topic(self, name: str) -> str:
        for topic, item in self._events.items():
            if item["name"] == name:
                return "0x" + topic.hex()
        raise KeyError(f"{self.contract} has no event {name}")

    def decode(self, log: dict[str, Any]) -> DecodedEvent | None:
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        item = self._events.get(topics[0]) if topics else None
        if item is None:
            return None
        indexed = [i for i in item["inputs"] if i["indexed"]]
        plain = [i for i in item["inputs"] if not i["indexed"]]
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=True):
            (args[param["name"]],) = abi_decode([param["type"]], topic)
        values = abi_decode([p["type"] for p in plain], bytes.fromhex(log["data"][2:]))
        args.update({p["name"]: v for p, v in zip(plain, values, strict=True)})
        return DecodedEvent(
            contract=self.contract,
            name=item["name"],
            args=args,
            block_number=int(log["blockNumber"], 16),
            transaction_hash=str(log["transactionHash"]),
            log_index=int(log["logIndex"], 16),
        )


def iter_events(
    rpc: JsonRpc,
    *,
    contract: str,
    address: str,
    from_block: int,
    to_block: int | None = None,
    names: tuple[str, ...] = (),
    chunk: int = 5_000,
) -> Iterator[DecodedEvent]:
    """Every event of ``contract`` at ``address`` in the block range, in chain order."""
    decoder = EventDecoder(contract)
    last = rpc.block_number() if to_block is None else to_block
    topics: list[Any] = [[decoder.topic(n) for n in names]] if names else []
    start = from_block
    while start <= last:
        end = min(start + chunk - 1, last)
        logs = rpc.call(
            "eth_getLogs", [{"address": address, "fromBlock": hex(start), "toBlock": hex(end), "topics": topics}]
        )
        for log in logs:
            if log.get("removed"):
                continue  # a log of a block the node has just replaced (reorganisation)
            event = decoder.decode(log)
            if event is not None:
                yield event
        start = end + 1
