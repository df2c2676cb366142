"""Key rotation keeps old records readable; the hybrid post-quantum suite is a setting."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from web3 import Web3

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.transactor import Transactor
from ledger_api.crypto import hpke
from ledger_api.crypto.envelope import open_record, parse_blob
from ledger_api.records.keys import rotate_organisation_key
from tests.ledger_api.gateway.conftest import POLICE, Ledger, wait_until
from tests.ledger_api.gateway.records import payload, sample_records

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def test_rotation_to_the_hybrid_suite_keeps_old_records_readable(client: TestClient, ledger_home: Ledger) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    chain = LedgerChain(
        transactor=Transactor(w3=Web3(Web3.HTTPProvider(ledger_home.settings.rpc_url))),
        deployment=ledger_home.provisioned.deployment,
    )
    before, after = sample_records("police.incidents", POLICE)[100:102]

    def push_and_blob(record: object) -> bytes:
        answer = client.post("/v1/records", json=payload([record]), headers=ledger_home.auth(POLICE))  # type: ignore[list-item]
        assert answer.status_code == 202
        record_id = answer.json()["records"][0]["record_id"]
        status = client.get(f"/v1/records/{record_id}/status", headers=ledger_home.auth(POLICE)).json()
        return bytes(services.blobs.get(status["ciphertext_hash"]))

    old_blob = push_and_blob(before)
    key_index, public_key = rotate_organisation_key(
        settings=ledger_home.settings, chain=chain, org_id=POLICE, suite=hpke.HpkeSuite.MLKEM768_X25519
    )
    assert key_index == 1
    assert chain.organisation(POLICE).public_key == public_key
    assert chain.public_key(POLICE, 0) != public_key  # the old key stays readable on chain by index
    assert hpke.suite_of(public_key) is hpke.HpkeSuite.MLKEM768_X25519

    new_blob = push_and_blob(after)
    (wrap,) = parse_blob(new_blob).wrapped_keys
    assert (wrap.org_id, wrap.key_index) == (POLICE, 1)
    assert wrap.wrapped[:2] == hpke.HpkeSuite.MLKEM768_X25519.kem_id_bytes

    keystore = services.keystore
    assert open_record(new_blob, org_id=POLICE, key_index=1, private_key=keystore.private_key(POLICE, 1)).plaintext
    assert open_record(old_blob, org_id=POLICE, key_index=0, private_key=keystore.private_key(POLICE, 0)).plaintext
    wait_until(lambda: all(
        client.get(f"/v1/records/{r.record_id}/status", headers=ledger_home.auth(POLICE)).json()["state"] == "anchored"
        for r in (before, after)
    ))  # fmt: skip
