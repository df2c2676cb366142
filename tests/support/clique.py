"""A real four-signer Clique network (geth 1.13, built by ``scripts/install_geth.sh``) for the
``multinode`` tests, and what those tests ask of it: heads, agreement at depth, waiting for blocks.

One network per pytest-xdist worker and session (``tests/conftest.py``'s ``clique`` fixture); a test
that kills nodes starts them again before it ends (:func:`all_nodes_up`), so the next one finds four.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger_api.chain.clique import GETH_BIN, CliqueNetwork
from ledger_api.chain.errors import ChainUnavailable

SIGNERS = 4


def start_network(home: Path) -> CliqueNetwork:
    if not GETH_BIN.is_file():
        raise RuntimeError(f"geth is not built at {GETH_BIN}: run `make bootstrap` (scripts/install_geth.sh)")
    network = CliqueNetwork(home=home, nodes=SIGNERS)
    network.up()
    return network


def head(network: CliqueNetwork, index: int) -> int | None:
    try:
        return int(network.call(index, "eth_blockNumber"), 16)
    except ChainUnavailable:
        return None


def block_hash(network: CliqueNetwork, index: int, number: int) -> str | None:
    try:
        block = network.call(index, "eth_getBlockByNumber", [hex(number), False])
    except ChainUnavailable:
        return None
    return str(block["hash"]) if block else None


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout_s: float,
    interval_s: float = 0.2,
    what: str,
    state: Callable[[], str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"not within {timeout_s:.0f}s: {what}" + (f"; {state()}" if state else ""))


def wait_for_blocks(network: CliqueNetwork, index: int, count: int, *, timeout_s: float = 60.0) -> int:
    """Wait until node ``index`` is ``count`` blocks past its head now; return the new head."""
    start = head(network, index) or 0
    wait_until(
        lambda: (head(network, index) or 0) >= start + count,
        timeout_s=timeout_s,
        what=f"node {index} did not seal {count} blocks past {start}",
    )
    return head(network, index) or 0


def agree_at_depth(network: CliqueNetwork, depth: int, nodes: list[int] | None = None) -> tuple[int, str]:
    """(number, hash) of the block ``depth`` below the lowest head of ``nodes``, the same on every one of
    them; AssertionError naming the disagreement otherwise."""
    indices = list(range(network.size)) if nodes is None else nodes
    heads = {i: head(network, i) for i in indices}
    assert all(h is not None for h in heads.values()), f"a node does not answer: heads {heads}"
    number = min(h for h in heads.values() if h is not None) - depth
    hashes = {i: block_hash(network, i, number) for i in indices}
    assert len(set(hashes.values())) == 1, f"nodes disagree at block {number}: {hashes} (heads {heads})"
    return number, str(hashes[indices[0]])


def isolate_idle(network: CliqueNetwork, index: int, *, timeout_s: float = 60.0) -> None:
    """Cut node ``index`` off with its sealing stopped, at a head whose last two blocks it did not seal.

    Clique lets a signer seal one of every floor(N/2)+1 blocks, so alone it may then seal exactly one
    block; with its miner stopped it seals it only when :func:`seal_alone` says so, with whatever its pool
    holds by then. (Isolating a node that keeps sealing races its next block against the transaction the
    test wants in it.) Once its miner is stopped and its last block sealed, every new block is another
    signer's, so the condition below, once true, stays true while the node is cut off.
    """
    network.call(index, "miner_stop")
    mine = network.signer(index).lower()
    other = (index + 1) % network.size
    # miner_stop does not cancel a block geth is already sealing (it lands up to a period and Clique's
    # 1.5 s out-of-turn wiggle later): let the others seal past it before looking at the node's chain.
    wait_for_blocks(network, other, 3)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = head(network, index) or 0
        synced = now >= 2 and now == head(network, other)
        if synced and mine not in (network.sealer(index, now).lower(), network.sealer(index, now - 1).lower()):
            network.isolate_node(index)
            return
        time.sleep(0.1)
    raise AssertionError(f"no moment to cut node {index} off in {timeout_s:.0f}s")


def kill_signer(network: CliqueNetwork, index: int, *, timeout_s: float = 90.0) -> None:
    """SIGKILL node ``index`` at a moment from which the three signers left cannot deadlock.

    With three of four signers, Clique has no slack: a signer may seal one of every floor(4/2)+1 = 3
    blocks, so at each height exactly one live signer may seal, *unless* the dead one sealed one of the
    last two blocks. Then two live signers may seal the next block, both out of turn, and when their
    random delays are close they fork; on each branch the one signer allowed next is on the other branch,
    and the network stops for good (the known Clique stall, go-ethereum #18402). So: stop every miner, let
    the chain settle, have chosen live signers seal alone until the last two blocks are not the victim's,
    then kill it and let the rest seal.
    """
    for node in range(network.size):
        network.call(node, "miner_stop")
    _settle(network, timeout_s=timeout_s)
    victim = network.signer(index).lower()
    while victim in _last_sealers(network, 2) or (head(network, 0) or 0) < 2:
        recent = _last_sealers(network, 2)
        chosen = next(n for n in range(network.size) if n != index and network.signer(n).lower() not in recent)
        _seal_one_block(network, chosen, timeout_s=timeout_s)
    network.kill_node(index)
    for node in range(network.size):
        if node != index:
            network.call(node, "miner_start")


def _last_sealers(network: CliqueNetwork, count: int) -> set[str]:
    now = head(network, 0) or 0
    return {network.sealer(0, n).lower() for n in range(max(now - count + 1, 1), now + 1)}


def _seal_one_block(network: CliqueNetwork, index: int, *, timeout_s: float) -> None:
    """Node ``index`` alone seals the next block (Clique lets it seal just one before others must)."""
    before = head(network, 0) or 0
    network.call(index, "miner_start")
    try:
        wait_until(
            lambda: all((head(network, n) or 0) > before for n in range(network.size)),
            timeout_s=timeout_s,
            what=f"node {index} sealed block {before + 1} and every node has it",
            state=lambda: describe_node(network, index),
        )
    finally:
        network.call(index, "miner_stop")
    _settle(network, timeout_s=timeout_s)


def _settle(network: CliqueNetwork, *, timeout_s: float, quiet_s: float = 3.0) -> None:
    """Until, with the miners stopped, every node has had the same head block for ``quiet_s``: a block
    already being sealed when ``miner_stop`` came lands up to a period and the out-of-turn delay later.
    Two nodes on different blocks at one height are an equal-weight fork no new block will settle while
    the miners are stopped: let them seal again for a moment, then stop and look again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tips = {block_hash(network, n, head(network, n) or 0) for n in range(network.size)}
        time.sleep(quiet_s)
        again = {block_hash(network, n, head(network, n) or 0) for n in range(network.size)}
        if len(tips) == 1 and tips == again:
            return
        if len(again) > 1:
            for node in range(network.size):
                network.call(node, "miner_start")
            wait_for_blocks(network, 0, 2)
            for node in range(network.size):
                network.call(node, "miner_stop")
    raise AssertionError(f"the nodes did not settle on one head in {timeout_s:.0f}s")


def seal_alone(network: CliqueNetwork, index: int) -> None:
    """Let the node cut off by :func:`isolate_idle` seal its one block, from its pool as it is now."""
    network.call(index, "miner_start")


def describe_node(network: CliqueNetwork, index: int) -> str:
    """What a failed wait needs to be understood: the node's head and who sealed it, its pool, its peers."""
    now = head(network, index) or 0
    sealers = {n: network.sealer(index, n)[:10] for n in range(max(now - 3, 1), now + 1)}
    return (
        f"node {index} (signer {network.signer(index)[:10]}): head {now}, sealed by {sealers}, "
        f"mining {network.call(index, 'eth_mining')}, peers {int(network.call(index, 'net_peerCount'), 16)}, "
        f"pool {network.call(index, 'txpool_status')}"
    )


@contextmanager
def all_nodes_up(network: CliqueNetwork) -> Iterator[CliqueNetwork]:
    """Whatever the test kills, every node runs, peered and sealing, when it ends."""
    try:
        yield network
    finally:
        network.up()
