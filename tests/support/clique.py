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
