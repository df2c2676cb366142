"""AccessLogAnchors: only LOG_WRITER_ROLE anchors, sizes strictly grow, heads kept in storage, and
entries proved against an anchored head with RFC 9162 inclusion proofs."""

from __future__ import annotations

import pytest

from ledger_api.chain.client import LedgerChain
from ledger_api.merkle import MerkleTree, leaf_hash
from tests.contracts.conftest import (
    LOG_WRITER_ROLE,
    ZERO32,
    Actors,
    call,
    digest,
    fresh_account,
    reverts,
    single_event,
    transact,
)


def anchor(ledger: LedgerChain, actors: Actors, size: int, root: bytes) -> dict:
    receipt = transact(ledger, ledger.access_log.functions.anchorTreeHead(size, root), actors.log_writer)
    event = single_event(ledger.access_log, "TreeHeadAnchored", receipt)
    block = ledger.w3.eth.get_block(receipt["blockNumber"])
    return {**event, "blockNumber": receipt["blockNumber"], "timestamp": block["timestamp"]}


def log_tree(n: int) -> MerkleTree:
    tree = MerkleTree()
    for i in range(n):
        tree.append(leaf_hash(f'{{"entry":{i}}}'.encode()))
    return tree


def test_log_writer_anchors_heads(ledger: LedgerChain, actors: Actors) -> None:
    tree = log_tree(10)
    fn = ledger.access_log.functions.anchorTreeHead(5, tree.root(5))
    assert fn.call({"from": actors.log_writer.address}) == 0
    first = anchor(ledger, actors, 5, tree.root(5))
    second = anchor(ledger, actors, 10, tree.root(10))
    assert (first["index"], first["size"], first["root"]) == (0, 5, tree.root(5))
    assert (second["index"], second["size"], second["root"]) == (1, 10, tree.root(10))

    assert call(ledger, ledger.access_log.functions.headCount()) == 2
    for index, head in ((0, first), (1, second)):
        stored = call(ledger, ledger.access_log.functions.headAt(index))
        assert list(stored) == [head["root"], head["size"], head["blockNumber"], head["timestamp"]]
    latest = call(ledger, ledger.access_log.functions.latestHead())
    assert list(latest) == [tree.root(10), 10, second["blockNumber"], second["timestamp"]]


def test_no_heads_yet(ledger: LedgerChain) -> None:
    assert call(ledger, ledger.access_log.functions.headCount()) == 0
    assert list(call(ledger, ledger.access_log.functions.latestHead())) == [ZERO32, 0, 0, 0]
    with reverts("AccessLogAnchorsUnknownHead", 0):
        call(ledger, ledger.access_log.functions.headAt(0))


def test_unknown_head_index(ledger: LedgerChain, actors: Actors) -> None:
    anchor(ledger, actors, 1, digest("r1"))
    for index in (1, 2**256 - 1):
        with reverts("AccessLogAnchorsUnknownHead", index):
            call(ledger, ledger.access_log.functions.headAt(index))
        with reverts("AccessLogAnchorsUnknownHead", index):
            call(ledger, ledger.access_log.functions.isEntryIncluded(index, digest("leaf"), 0, []))


@pytest.mark.parametrize("caller", ["admin", "pending_admin", "owner", "grantee", "stranger", "suspended"])
def test_only_the_log_writer_anchors(ledger: LedgerChain, actors: Actors, caller: str) -> None:
    account = getattr(actors, caller)
    with reverts("AccessLogAnchorsUnauthorised", account.address):
        transact(ledger, ledger.access_log.functions.anchorTreeHead(1, digest("r")), account)


def test_log_writer_role_is_read_from_the_registry(ledger: LedgerChain, actors: Actors) -> None:
    newcomer = fresh_account("gateway-2")
    ledger.w3.eth.send_transaction({"from": ledger.w3.eth.accounts[0], "to": newcomer.address, "value": 10**18})
    with reverts("AccessLogAnchorsUnauthorised", newcomer.address):
        transact(ledger, ledger.access_log.functions.anchorTreeHead(1, digest("r")), newcomer)
    ledger.grant_log_writer(signer=actors.admin, account=newcomer.address)
    transact(ledger, ledger.access_log.functions.anchorTreeHead(1, digest("r")), newcomer)
    transact(ledger, ledger.registry.functions.revokeRole(LOG_WRITER_ROLE, actors.log_writer.address), actors.admin)
    with reverts("AccessLogAnchorsUnauthorised", actors.log_writer.address):
        transact(ledger, ledger.access_log.functions.anchorTreeHead(2, digest("r2")), actors.log_writer)


def test_zero_root_is_rejected(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("AccessLogAnchorsInvalidRoot"):
        transact(ledger, ledger.access_log.functions.anchorTreeHead(1, ZERO32), actors.log_writer)


def test_first_head_must_not_be_empty(ledger: LedgerChain, actors: Actors) -> None:
    with reverts("AccessLogAnchorsTreeNotGrown", 0, 0):
        transact(ledger, ledger.access_log.functions.anchorTreeHead(0, digest("r")), actors.log_writer)


@pytest.mark.parametrize("size", [9, 10, 0], ids=["smaller", "equal", "zero"])
def test_sizes_must_strictly_grow(ledger: LedgerChain, actors: Actors, size: int) -> None:
    anchor(ledger, actors, 10, digest("r10"))
    with reverts("AccessLogAnchorsTreeNotGrown", 10, size):
        transact(ledger, ledger.access_log.functions.anchorTreeHead(size, digest("other")), actors.log_writer)
    assert call(ledger, ledger.access_log.functions.headCount()) == 1


def test_size_may_grow_by_one_and_to_the_uint64_limit(ledger: LedgerChain, actors: Actors) -> None:
    anchor(ledger, actors, 10, digest("r10"))
    assert anchor(ledger, actors, 11, digest("r11"))["index"] == 1
    assert anchor(ledger, actors, 2**64 - 1, digest("rmax"))["index"] == 2
    with reverts("AccessLogAnchorsTreeNotGrown", 2**64 - 1, 2**64 - 1):
        transact(ledger, ledger.access_log.functions.anchorTreeHead(2**64 - 1, digest("x")), actors.log_writer)


def test_entries_are_included_under_the_heads_that_cover_them(ledger: LedgerChain, actors: Actors) -> None:
    tree = log_tree(13)
    anchor(ledger, actors, 6, tree.root(6))
    anchor(ledger, actors, 13, tree.root(13))
    included = ledger.access_log.functions.isEntryIncluded
    for index in range(13):
        leaf = tree.leaf_hash_at(index)
        assert call(ledger, included(1, leaf, index, tree.inclusion_proof(index, 13)))
        if index < 6:
            assert call(ledger, included(0, leaf, index, tree.inclusion_proof(index, 6)))
            # A proof for the other head's size does not fit this head.
            assert not call(ledger, included(0, leaf, index, tree.inclusion_proof(index, 13)))
        else:
            # Entries appended after head 0 cannot be proved under it.
            assert not call(ledger, included(0, leaf, index, tree.inclusion_proof(index, 13)))


def test_entry_proof_rejections(ledger: LedgerChain, actors: Actors) -> None:
    tree = log_tree(13)
    anchor(ledger, actors, 13, tree.root(13))
    included = ledger.access_log.functions.isEntryIncluded
    leaf, proof = tree.leaf_hash_at(9), tree.inclusion_proof(9)
    assert call(ledger, included(0, leaf, 9, proof))
    assert not call(ledger, included(0, tree.leaf_hash_at(8), 9, proof))
    assert not call(ledger, included(0, leaf, 8, proof))
    assert not call(ledger, included(0, leaf, 10, proof))
    assert not call(ledger, included(0, leaf, 9, proof[:-1]))
    assert not call(ledger, included(0, leaf, 9, [*proof, digest("x")]))
    assert not call(ledger, included(0, leaf, 9, [digest("x"), *proof[1:]]))
