"""Reads with the data-key cache: the key is unwrapped once, every read is still checked against the
chain and logged, a revoke still stops reads at once, and an erasure takes the key out of the cache."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ledger_api.chain.devnet import dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.crypto import envelope
from ledger_api.records import reading
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, Ledger
from tests.ledger_api.gateway.records import payload, sample_records
from tests.ledger_api.gateway.test_read_devnet import chain_of, read

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]


def test_a_cached_key_saves_the_unwrap_but_not_the_grant_check_the_log_or_the_erasure(
    client: TestClient, ledger_home: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = sample_records("police.incidents", POLICE)[70]
    assert client.post("/v1/records", json=payload([target]), headers=ledger_home.auth(POLICE)).status_code == 202
    services = client.app.state.services  # type: ignore[attr-defined]
    cache = services.reader.key_cache
    chain = chain_of(ledger_home)
    now = chain.latest_timestamp()
    grant_id, _ = chain.create_grant(signer=dev_account(1), spec=GrantSpec(
        owner_org=POLICE, grantee_org=COMMITTEE, purpose=Purpose.INVESTIGATION, valid_from=now - 10,
        valid_until=now + 3600, record_types=("incident",), communities=(target.community_code,)))  # fmt: skip

    unwraps: list[str] = []
    real_open = envelope.open_record

    def counting_open(*args: object, **kwargs: object) -> envelope.OpenedRecord:
        unwraps.append(str(kwargs.get("org_id")))
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reading, "open_record", counting_open)
    size_before = services.access_log.size
    answers = [read(client, ledger_home, COMMITTEE, target.record_id, purpose="investigation", grant=grant_id)
               for _ in range(3)]  # fmt: skip
    assert [a.status_code for a in answers] == [200, 200, 200]  # type: ignore[attr-defined]
    bodies = [a.json() for a in answers]  # type: ignore[attr-defined]
    assert unwraps == [POLICE]  # one HPKE unwrap, then the cached key
    assert bodies[1]["record"] == bodies[2]["record"] == bodies[0]["record"]
    # Every read, cached key or not, committed its own access entry before it answered.
    assert sorted(b["access"]["entry_index"] for b in bodies) == list(range(size_before, size_before + 3))
    assert services.access_log.size == size_before + 3
    version = bodies[0]["version"]
    blob_key = bodies[0]["anchor"]["ciphertext_hash"]
    assert cache.get(record_id=target.record_id, version=version, blob_key=blob_key) is not None

    # A revoke mined before the read refuses it, the key in the cache notwithstanding (invariant 6).
    chain.revoke_grant(signer=dev_account(1), grant_id=grant_id)
    revoked = read(client, ledger_home, COMMITTEE, target.record_id, purpose="investigation", grant=grant_id)
    assert revoked.status_code == 403  # type: ignore[attr-defined]
    assert services.access_log.size == size_before + 4  # the refusal is logged; nothing was released
    assert services.access_log.entry(size_before + 3).refusal == "REVOKED"

    # Crypto-shredding leaves no key behind in the gateway, and none can come back.
    assert client.delete(f"/v1/records/{target.record_id}", headers=ledger_home.auth(POLICE)).status_code == 200
    assert cache.get(record_id=target.record_id, version=version, blob_key=blob_key) is None
    assert not cache.put(record_id=target.record_id, version=version, blob_key=blob_key, data_key=b"k" * 32)
    erased = read(client, ledger_home, POLICE, target.record_id, purpose="investigation")
    assert erased.status_code == 410  # type: ignore[attr-defined]
