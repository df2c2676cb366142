"""The chain layer on a real proof-of-authority network: four geth Clique signers on loopback.

Written through node A, read through node C: receipts, events (``eth_getLogs`` in bounded ranges) and
contract state agree; Clique headers (signers and seal in ``extraData``, longer than 32 bytes) pass
through web3 and the raw JSON-RPC client; a comma-separated URL list fails over from a node that stops
answering.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger_api.chain.client import LedgerChain, grant_request
from ledger_api.chain.clique import CliqueNetwork
from ledger_api.chain.deploy import deploy_contracts
from ledger_api.chain.devnet import dev_account, free_port
from ledger_api.chain.encoding import OrganisationKind, Purpose
from ledger_api.chain.events import iter_events
from ledger_api.chain.follower import ChainFollower
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.transactor import Transactor
from tests.support.clique import (
    agree_at_depth,
    all_nodes_up,
    describe_node,
    head,
    isolate_idle,
    kill_signer,
    seal_alone,
    wait_for_blocks,
    wait_until,
)

pytestmark = [pytest.mark.multinode, pytest.mark.slow, pytest.mark.xdist_group("clique")]

NODE_A, NODE_C = 0, 2
HPKE_KEY = bytes([0x00, 0x20]) + bytes(range(32))
OWNER, GRANTEE = "PS-REORG-01", "CM-REORG-01"


def test_written_through_node_a_read_through_node_c(clique: CliqueNetwork, tmp_path: Path) -> None:
    admin = dev_account(0)
    # Legacy pricing, as on a Besu or GoQuorum free-gas network; geth prices at its minimum or above.
    writer = Transactor.from_url(clique.node_url(NODE_A), gas_pricing="legacy", confirmations=3)
    deployment = deploy_contracts(transactor=writer, admin=admin)
    chain_a = LedgerChain(transactor=writer, deployment=deployment)
    receipt = chain_a.register_organisation(
        signer=admin,
        org_id="PS-MULTI-01",
        kind=OrganisationKind.POLICE,
        org_signer=dev_account(5).address,
        communities=["330102001"],
        public_key=HPKE_KEY,
    )
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    # Three blocks on top, by the writer's own count: the other nodes have it too by then.
    reader = JsonRpc(url=clique.node_url(NODE_C))
    try:
        seen = reader.receipt(tx_hash)
        assert seen is not None, "node C has no receipt for a transaction confirmed through node A"
        assert int(seen["status"], 16) == 1
        assert seen["blockHash"] == "0x" + bytes(receipt["blockHash"]).hex()
        events = list(
            iter_events(
                reader,
                contract="OrganisationRegistry",
                address=deployment.address("OrganisationRegistry"),
                from_block=deployment.block_number,
                names=("OrganisationRegistered",),
                chunk=2,  # bounded ranges, as a consortium node's log range limit forces
            )
        )
        assert [e.transaction_hash for e in events] == [tx_hash]
        header = reader.block(int(seen["blockNumber"], 16))
        assert header is not None
        # 32 bytes of vanity, then the 65-byte seal: a proof-of-authority header.
        assert len(bytes.fromhex(header["extraData"][2:])) >= 97
    finally:
        reader.close()
    chain_c = LedgerChain.from_settings(rpc_url=clique.node_url(NODE_C), deployment=deployment)
    organisation = chain_c.organisation("PS-MULTI-01")
    assert organisation.kind is OrganisationKind.POLICE
    assert organisation.signer == dev_account(5).address
    assert organisation.public_key == HPKE_KEY
    assert chain_c.w3.eth.get_block("latest")["proofOfAuthorityData"][:32] is not None

    follower = ChainFollower(rpc=JsonRpc(url=clique.node_url(NODE_C)), deployment=deployment, log_chunk=3)
    follower.sync()
    assert follower.organisation("PS-MULTI-01") is not None


def test_a_url_list_fails_over_from_a_node_that_stops_answering(clique: CliqueNetwork) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    rpc = JsonRpc(url=f"{dead}, {clique.node_url(1)}", timeout_s=2)
    with all_nodes_up(clique):
        assert rpc.chain_id() == clique.chain_id
        assert rpc.url == clique.node_url(1)
        # Now the node in use dies: the next call goes to the first URL's node (dead) and on, round the list.
        rpc_two = JsonRpc(url=f"{clique.node_url(3)},{clique.node_url(0)}", timeout_s=2)
        assert rpc_two.block_number() >= 0
        kill_signer(clique, 3)
        before = rpc_two.block_number()
        assert rpc_two.url == clique.node_url(0)
        wait_until(lambda: rpc_two.block_number() > before, timeout_s=30, what="blocks go on after the fail-over")
        w3_chain = Transactor.from_url(f"{clique.node_url(3)},{clique.node_url(1)}")
        assert w3_chain.chain_id == clique.chain_id
        assert w3_chain.w3.eth.get_block("latest")["number"] >= before
    rpc.close()
    rpc_two.close()


def test_a_killed_signer_restarts_catches_up_and_agrees(clique: CliqueNetwork) -> None:
    with all_nodes_up(clique):
        kill_signer(clique, 1)
        wait_for_blocks(clique, 0, 4)  # three signers of four keep sealing
        clique.start_node(1)
        wait_until(
            lambda: (head(clique, 1) or 0) >= (head(clique, 0) or 0) - 1,
            timeout_s=60,
            what="the restarted signer caught up",
        )
        wait_for_blocks(clique, 1, 4)  # and it seals again with the others
        agree_at_depth(clique, 3)


def test_a_grant_in_a_block_the_network_replaced_is_forgotten_by_the_follower(clique: CliqueNetwork) -> None:
    """A real reorganisation: node 3, cut off, seals a block with grant A; the other three seal a block
    with grant B, signed by the same owner at the same nonce. When node 3 rejoins, its block is replaced
    by the majority's chain: the follower on node 3 showed A, and now shows B in its place."""
    admin = dev_account(0)
    transactor = Transactor.from_url(clique.node_url(0), confirmations=3)
    chain = LedgerChain(transactor=transactor, deployment=deploy_contracts(transactor=transactor, admin=admin))
    for org_id, kind, account in ((OWNER, OrganisationKind.POLICE, 6), (GRANTEE, OrganisationKind.COMMITTEE, 7)):
        chain.register_organisation(
            signer=admin,
            org_id=org_id,
            kind=kind,
            org_signer=dev_account(account).address,
            communities=["330102001"],
            public_key=HPKE_KEY,
        )
    follower = ChainFollower(rpc=JsonRpc(url=clique.node_url(3)), deployment=chain.deployment)
    with all_nodes_up(clique):
        _reorganise_under(clique, chain, follower)


def _reorganise_under(network: CliqueNetwork, chain: LedgerChain, follower: ChainFollower) -> None:
    owner = dev_account(6)
    lone, majority = JsonRpc(url=network.node_url(3)), JsonRpc(url=network.node_url(0))
    grant_id = chain.grant_count() + 1
    nonce = chain.w3.eth.get_transaction_count(owner.address, "pending")
    tx_a = _signed_grant(chain, owner, _spec(Purpose.ELDERLY_CARE, chain), nonce)
    tx_b = _signed_grant(chain, owner, _spec(Purpose.FIRE_SAFETY, chain), nonce)
    isolate_idle(network, 3)
    lone.call("eth_sendRawTransaction", [tx_a])
    majority.call("eth_sendRawTransaction", [tx_b])
    seal_alone(network, 3)  # its one block, with A in it
    wait_until(
        lambda: lone.receipt(_hash(tx_a)) is not None,
        timeout_s=30,
        what="node 3 sealed A",
        state=lambda: describe_node(network, 3),
    )
    follower.sync()
    assert _purpose(follower, grant_id) is Purpose.ELDERLY_CARE
    wait_until(lambda: majority.receipt(_hash(tx_b)) is not None, timeout_s=30, what="B mined")
    wait_for_blocks(network, 0, 3)
    rebuilds = follower.rebuilds
    network.rejoin_node(3)
    agree_at_depth(network, 1)
    follower.sync()
    assert follower.rebuilds > rebuilds, "the follower did not notice that its block was replaced"
    assert _purpose(follower, grant_id) is Purpose.FIRE_SAFETY
    assert lone.receipt(_hash(tx_a)) is None  # A's block is gone, and A with it (its nonce is B's)


def _purpose(follower: ChainFollower, grant_id: int) -> Purpose | None:
    grant = follower.grant(grant_id)
    return grant.spec.purpose if grant is not None else None


def _spec(purpose: Purpose, chain: LedgerChain) -> GrantSpec:
    now = chain.latest_timestamp()
    return GrantSpec(
        owner_org=OWNER,
        grantee_org=GRANTEE,
        purpose=purpose,
        valid_from=now - 60,
        valid_until=now + 3600,
    )


def _signed_grant(chain: LedgerChain, owner: LocalAccount, spec: GrantSpec, nonce: int) -> str:
    """``createGrant`` signed at an explicit nonce (no gas estimate: it must not depend on either node)."""
    fn = chain.grants.functions.createGrant(grant_request(spec))
    tx = fn.build_transaction(
        {
            "from": owner.address,
            "nonce": nonce,
            "gas": 800_000,
            "gasPrice": chain.w3.eth.gas_price,
            "chainId": chain.transactor.chain_id,
        }
    )
    return "0x" + owner.sign_transaction(tx).raw_transaction.hex()


def _hash(raw: str) -> str:
    return "0x" + keccak(bytes.fromhex(raw[2:])).hex()
