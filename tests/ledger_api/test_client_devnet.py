"""``GatewayClient.read`` with its own chain node: a gateway's answer is checked against RecordAnchors itself.

The gateway is the real app on the devnet; a dishonest one is the same app behind an httpx transport that
rewrites its answers (what a compromised gateway, or anyone between it and the client, could send).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ledger_api.client import CommitmentNotOpened, GatewayClient, RecordNotOnChain
from ledger_api.errors import ConfigurationError
from ledger_api.records.commitment import commitment_of, open_commitment
from ledger_api.records.leaves import RecordLeaf
from tests.ledger_api.gateway.conftest import POLICE, Ledger, client, ledger_home, wait_until
from tests.ledger_api.gateway.records import payload, sample_records

__all__ = ["client", "ledger_home"]  # the gateway's fixtures, used here as they are

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

Rewrite = Callable[[str, dict[str, Any]], dict[str, Any]]


class Rewriting(httpx.BaseTransport):
    """Sends each request to the in-process gateway and lets ``rewrite(path, body)`` change its JSON answer."""

    def __init__(self, gateway: TestClient, rewrite: Rewrite) -> None:
        self._gateway = gateway
        self._rewrite = rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self._gateway.send(request)
        if not answer.is_success:
            return httpx.Response(answer.status_code, headers=answer.headers, content=answer.read())
        return httpx.Response(answer.status_code, json=self._rewrite(request.url.path, answer.json()))


def _honest(path: str, body: dict[str, Any]) -> dict[str, Any]:
    return body


def _client(gateway: TestClient, ledger: Ledger, rewrite: Rewrite = _honest, *, on_chain: bool = True) -> GatewayClient:
    http = httpx.Client(base_url=str(gateway.base_url), transport=Rewriting(gateway, rewrite))
    chain = (
        {"rpc_url": ledger.settings.rpc_url, "record_anchors": ledger.provisioned.deployment.address("RecordAnchors")}
        if on_chain
        else {}
    )
    return GatewayClient(api_key=ledger.provisioned.api_keys[POLICE], http=http, **chain)


@pytest.fixture(scope="module")
def anchored_record(client: TestClient, ledger_home: Ledger) -> str:
    record = sample_records("police.incidents", POLICE, limit=3)[2]
    auth = ledger_home.auth(POLICE)
    assert client.post("/v1/records", json=payload([record]), headers=auth).status_code == 202
    wait_until(lambda: client.get(f"/v1/records/{record.record_id}/status", headers=auth).json()["state"] == "anchored")
    return record.record_id


def _forged(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A gateway that serves a record of its own making, with an opening, a commitment and a Merkle proof that
    are all consistent with each other (a one-leaf tree whose root is the forged leaf): only the chain says no."""
    forged = copy.deepcopy(body)
    if path.endswith("/proof"):
        leaf = RecordLeaf(**{**body["leaf"], "commitment": _FORGERY["commitment"]})
        forged.update(leaf=vars(leaf), leaf_hash=leaf.leaf_hash().hex(), batch_root=leaf.leaf_hash().hex(),
                      tree_size=1, leaf_index=0, inclusion_path=[])  # fmt: skip
    elif "record" in body:
        forged["record"]["location"] = {**(forged["record"].get("location") or {}), "text": "somewhere else"}
        salt, data_key = os.urandom(16), os.urandom(32)
        _FORGERY["commitment"] = commitment_of(forged["record"], salt=salt, data_key=data_key)
        opening = open_commitment(forged["record"], salt=salt, data_key=data_key, masked_paths=[])
        forged["anchor"].update(commitment=_FORGERY["commitment"], opening=opening.to_json(), batch_root=None)
    return forged


_FORGERY: dict[str, str] = {}


def _proof_rewrite(change: Callable[[dict[str, Any]], None]) -> Rewrite:
    def rewrite(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("/proof"):
            body = copy.deepcopy(body)
            change(body)
        return body

    return rewrite


def _flip(hex_text: str) -> str:
    return ("0" if hex_text[0] != "0" else "1") + hex_text[1:]


def test_an_honest_gateway_passes_the_chain_check(
    client: TestClient, ledger_home: Ledger, anchored_record: str
) -> None:
    body = _client(client, ledger_home).read(anchored_record, purpose="investigation")
    assert body["record_id"] == anchored_record
    assert (
        body["anchor"]["commitment"]
        == client.get(f"/v1/records/{anchored_record}/proof", headers=ledger_home.auth(POLICE)).json()["leaf"][
            "commitment"
        ]
    )


def test_a_forged_record_with_a_self_consistent_proof_is_caught_only_against_the_chain(
    client: TestClient, ledger_home: Ledger, anchored_record: str
) -> None:
    # Without a chain node (today's only mode) the forgery opens the commitment the gateway names: accepted.
    accepted = _client(client, ledger_home, _forged, on_chain=False).read(anchored_record, purpose="investigation")
    assert accepted["record"]["location"]["text"] == "somewhere else"
    with pytest.raises(RecordNotOnChain, match=rf"{POLICE} anchored no batch [0-9a-f]{{64}} at 0x"):
        _client(client, ledger_home, _forged).read(anchored_record, purpose="investigation")


def _set(key: str, value: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    return lambda proof: proof.update({key: value(proof)})


def _set_leaf(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda proof: proof["leaf"].update({key: _flip(proof["leaf"][key])})


TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "leaf commitment": (_set_leaf("commitment"), "is not the record read"),
    "leaf ciphertext hash": (_set_leaf("ciphertext_hash"), "is not the record read"),
    "batch root": (_set("batch_root", lambda p: _flip(p["batch_root"])), "read under batch"),
    "inclusion path": (_set("inclusion_path", lambda p: [_flip(h) for h in p["inclusion_path"]] or ["00" * 32]),
                       "does not hold"),
    "tree size": (_set("tree_size", lambda p: p["tree_size"] + 1), "does not hold|leaves on chain"),
    "no proof at all": (lambda p: p.pop("inclusion_path"), "does not hold"),
}  # fmt: skip


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_a_tampered_proof_is_caught(
    client: TestClient, ledger_home: Ledger, anchored_record: str, tampering: str
) -> None:
    change, reason = TAMPERINGS[tampering]
    with pytest.raises(RecordNotOnChain, match=reason):
        _client(client, ledger_home, _proof_rewrite(change)).read(anchored_record, purpose="investigation")


def test_a_tampered_commitment_in_the_read_is_caught_before_the_chain(
    client: TestClient, ledger_home: Ledger, anchored_record: str
) -> None:
    def rewrite(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if "anchor" in body:
            body = copy.deepcopy(body)
            body["anchor"]["commitment"] = _flip(body["anchor"]["commitment"])
        return body

    with pytest.raises(CommitmentNotOpened):
        _client(client, ledger_home, rewrite).read(anchored_record, purpose="investigation")


def test_a_chain_check_needs_both_the_node_and_the_contract(ledger_home: Ledger) -> None:
    with pytest.raises(ConfigurationError, match="rpc_url and record_anchors"):
        GatewayClient(api_key="k", rpc_url=ledger_home.settings.rpc_url)
