"""A fake chain for unit tests of the outbox engine: one node's pool, blocks and a RecordAnchors.

It models what the engine must survive and nothing more: nonces that must be used in order (a gap holds
every later transaction in the pool), a pool that replaces a transaction only for a higher fee, a
contract that refuses a root twice (the second copy reverts), blocks lost with a restart from an older
state (with the pool), and an exception injected before or after any call (a kill at that point).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger_api.chain.anchor_writer import AnchoredBatch, AnchorWriter
from ledger_api.chain.transactions import BroadcastOutcome, Mined, SignedTx
from ledger_api.chain.tree_heads import ChainTreeHead, Preflight, TreeHeadWriter

_ANCHOR_BATCH = AnchorWriter.anchor_batch_calldata(b"\0" * 32, 0, b"\0" * 32)[:4]
_ANCHOR_TREE_HEAD = TreeHeadWriter.anchor_calldata(0, b"\0" * 32)[:4]


class Crash(Exception):
    """A kill at this very point: the engine object is thrown away, a new one starts on the same database."""


def steps_until_killed(chain: FakeChain, step: Callable[[], object], done: Callable[[], bool]) -> bool:
    """Steps, unguarded as a process runs them, until ``done()``; True when the kill at ``chain.crash_at`` hit."""
    try:
        for _ in range(20):
            step()
            if not chain.automine:
                chain.mine()
            if done():
                break
    except Crash:
        return True
    finally:
        chain.crash_at = None
    return False


def kill_at_every_tick(run_killed_at: Callable[[int], bool]) -> int:
    """``run_killed_at(tick)`` for ticks 1, 2, ... until a whole run went by unhit; how many ticks were hit."""
    tick = 1
    while run_killed_at(tick):
        tick += 1
    return tick - 1


@dataclass(frozen=True)
class FakeTx:
    sender: str
    nonce: int
    data: bytes
    fee: int
    tx_hash: str

    @property
    def is_filler(self) -> bool:
        return not self.data


@dataclass
class _State:
    """What a node keeps across a restart (a state dump): blocks, receipts, nonces, contract storage."""

    blocks: list[list[str]] = field(default_factory=list)  # block n (1-based) = blocks[n - 1]
    receipts: dict[str, Mined] = field(default_factory=dict)
    nonces: dict[str, int] = field(default_factory=dict)
    anchors: dict[bytes, tuple[int, int, str]] = field(default_factory=dict)  # root -> (size, block, tx hash)
    heads: list[tuple[int, bytes, int, str]] = field(default_factory=list)  # AccessLogAnchors: (size, root, block, tx)


@dataclass
class Scripted:
    """The node's next answer to a broadcast, whatever the pool would say; ``accept`` still takes the tx."""

    outcome: BroadcastOutcome
    accept: bool = False


class FakeChain:
    def __init__(self, *, automine: bool = True, gas_price: int = 100) -> None:
        self.state = _State()
        self.pool: dict[tuple[str, int], FakeTx] = {}
        self.txs: dict[str, FakeTx] = {}  # every transaction ever signed, by hash
        self.automine = automine
        self.gas_price = gas_price
        self.answers: deque[Scripted] = deque()
        self.ticks = 0
        self.crash_at: int | None = None  # raise Crash at this tick (each call has one before and one after)
        self.broadcasts: list[str] = []

    # --- failure injection -------------------------------------------------------------------------

    def tick(self, what: str) -> None:
        self.ticks += 1
        if self.crash_at is not None and self.ticks == self.crash_at:
            raise Crash(f"killed at tick {self.ticks} ({what})")

    # --- the node ------------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        return len(self.state.blocks)

    def nonce(self, sender: str) -> int:
        return self.state.nonces.get(sender, 0)

    def pending_nonce(self, sender: str) -> int:
        nonce = self.nonce(sender)
        while (sender, nonce) in self.pool:
            nonce += 1
        return nonce

    def sign(self, sender: str, data: bytes, *, nonce: int, fee: int) -> SignedTx:
        raw = json.dumps({"from": sender, "nonce": nonce, "data": data.hex(), "fee": fee}).encode()
        tx = FakeTx(sender=sender, nonce=nonce, data=data, fee=fee, tx_hash="0x" + hashlib.sha256(raw).hexdigest())
        self.txs[tx.tx_hash] = tx
        return SignedTx(nonce=nonce, tx_hash=tx.tx_hash, raw=raw, fee_level=fee)

    def broadcast(self, signed: SignedTx) -> BroadcastOutcome:
        tx = self.txs[signed.tx_hash]
        self.broadcasts.append(tx.tx_hash)
        if self.answers:
            scripted = self.answers.popleft()
            if scripted.accept:
                self._accept(tx)
            return scripted.outcome
        if tx.tx_hash in self.state.receipts or tx.nonce < self.nonce(tx.sender):
            return BroadcastOutcome.NONCE_TOO_LOW  # what geth answers for a mined transaction too
        queued = self.pool.get((tx.sender, tx.nonce))
        if queued is not None and queued.tx_hash == tx.tx_hash:
            return BroadcastOutcome.ALREADY_KNOWN
        if queued is not None and tx.fee * 10 < queued.fee * 11:
            return BroadcastOutcome.UNDERPRICED
        self._accept(tx)
        return BroadcastOutcome.ACCEPTED

    def _accept(self, tx: FakeTx) -> None:
        self.pool[(tx.sender, tx.nonce)] = tx
        if self.automine:
            self.mine()

    def mine(self, *, empty: int = 0) -> None:
        """One block with every transaction the pool can run in nonce order (if any), then ``empty`` more."""
        block: list[str] = []
        for sender in sorted({sender for sender, _ in self.pool}):
            while (tx := self.pool.pop((sender, self.nonce(sender)), None)) is not None:
                self._execute(tx, self.head + 1)
                block.append(tx.tx_hash)
        if block:
            self.state.blocks.append(block)
        for _ in range(empty):
            self.state.blocks.append([])

    def _execute(self, tx: FakeTx, block_number: int) -> None:
        self.state.nonces[tx.sender] = tx.nonce + 1
        succeeded = True
        if tx.data[:4] == _ANCHOR_BATCH:
            root, size = tx.data[4:36], int.from_bytes(tx.data[36:68], "big")
            if root in self.state.anchors:
                succeeded = False  # RecordAnchors refuses a root twice
            else:
                self.state.anchors[root] = (size, block_number, tx.tx_hash)
        elif tx.data[:4] == _ANCHOR_TREE_HEAD:
            size, root = int.from_bytes(tx.data[4:36], "big"), tx.data[36:68]
            if self.state.heads and self.state.heads[-1][0] >= size:
                succeeded = False  # AccessLogAnchorsTreeNotGrown
            else:
                self.state.heads.append((size, root, block_number, tx.tx_hash))
        self.state.receipts[tx.tx_hash] = Mined(block_number=block_number, succeeded=succeeded)

    def drop(self, tx_hash: str) -> None:
        """The pool forgets a transaction (evicted, or the node it was sent to went away)."""
        self.pool = {key: tx for key, tx in self.pool.items() if tx.tx_hash != tx_hash}

    def snapshot(self) -> _State:
        return copy.deepcopy(self.state)

    def restart_from(self, snapshot: _State) -> None:
        """The node comes back from an older state dump: later blocks and the whole pool are gone."""
        self.state = copy.deepcopy(snapshot)
        self.pool.clear()

    def successful_anchors(self, root: bytes) -> list[str]:
        """Transactions in the chain's blocks that anchored ``root`` (the contract allows one at most)."""
        return [
            tx_hash
            for block in self.state.blocks
            for tx_hash in block
            if self.txs[tx_hash].data[4:36] == root and self.state.receipts[tx_hash].succeeded
        ]


class FakeSender:
    """A signer on the fake chain: what ``TransactionSender`` is on a real one."""

    def __init__(self, chain: FakeChain, *, owner_org: str = "", address: str = "0x" + "a1" * 20) -> None:
        self.chain = chain
        self._owner = owner_org.encode("ascii").ljust(32, b"\0")
        self._address = address

    @property
    def signer_address(self) -> str:
        return self._address

    def sign(self, calldata: bytes, *, nonce: int, min_fee_level: int = 0) -> SignedTx:
        self.chain.tick("sign")
        tx = self.chain.sign(self._address, calldata, nonce=nonce, fee=max(self.chain.gas_price, min_fee_level))
        self.chain.tick("signed")
        return tx

    def replacement(self, calldata: bytes, stuck: SignedTx) -> SignedTx:
        return self.sign(calldata, nonce=stuck.nonce, min_fee_level=stuck.fee_level * 125 // 100)

    def filler(self, *, nonce: int) -> SignedTx:
        self.chain.tick("filler")
        return self.chain.sign(self._address, b"", nonce=nonce, fee=self.chain.gas_price)

    def broadcast(self, tx: SignedTx) -> BroadcastOutcome:
        self.chain.tick("broadcast")
        outcome = self.chain.broadcast(tx)
        self.chain.tick("broadcast done")  # a kill here: the node has it, the engine never heard
        return outcome

    def mined(self, tx_hash: str) -> Mined | None:
        self.chain.tick("receipt")
        return self.chain.state.receipts.get(tx_hash)

    def nonces(self) -> tuple[int, int]:
        self.chain.tick("nonces")
        return self.chain.nonce(self._address), self.chain.pending_nonce(self._address)

    def block_number(self) -> int:
        self.chain.tick("block number")
        return self.chain.head


class FakeWriter(FakeSender):
    """An owner's signer on the fake chain: what ``AnchorWriter`` is on a real one."""

    def anchored_batch(self, root: bytes) -> AnchoredBatch | None:
        self.chain.tick("batch")
        anchor = self.chain.state.anchors.get(root)
        if anchor is None:
            return None
        size, block_number, _tx_hash = anchor
        return AnchoredBatch(size=size, block_number=block_number, owner_org=self._owner)

    def anchoring_transaction(self, root: bytes, block_number: int) -> str | None:
        self.chain.tick("logs")
        anchor = self.chain.state.anchors.get(root)
        return anchor[2] if anchor is not None and anchor[1] == block_number else None


class FakeLogWriter(FakeSender):
    """The access log's writer on the fake chain: what ``TreeHeadWriter`` is on a real one."""

    def head_count(self) -> int:
        self.chain.tick("head count")
        return len(self.chain.state.heads)

    def head_at(self, index: int) -> ChainTreeHead:
        self.chain.tick("head at")
        size, root, block_number, _tx_hash = self.chain.state.heads[index]
        return ChainTreeHead(index=index, size=size, root=root, block_number=block_number, timestamp=0)

    def find_head(self, size: int) -> ChainTreeHead | None:
        self.chain.tick("find head")
        for index, head in enumerate(self.chain.state.heads):
            if head[0] == size:
                return ChainTreeHead(index=index, size=size, root=head[1], block_number=head[2], timestamp=0)
        return None

    def preflight(self, size: int, root: bytes) -> tuple[Preflight, str]:
        self.chain.tick("preflight")
        heads = self.chain.state.heads
        if heads and heads[-1][0] >= size:
            return Preflight.NOT_GROWN, f"the chain's last head has {heads[-1][0]} entries"
        return Preflight.OK, "ok"
