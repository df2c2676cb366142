"""The staging sweep and erasure's leftover rule, on a real SQLite index and a real local blob store.

The sweep promotes what the index names, discards unnamed leftovers past the grace period, keeps
young ones (a push in flight), and never deletes a blob of the shared area, where anchored leaves live.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ledger_api.crypto import hpke
from ledger_api.crypto.envelope import RecipientKey, seal_record
from ledger_api.index.database import make_engine, sqlite_url
from ledger_api.index.models import RecordVersion
from ledger_api.records.erasure import ErasureService
from ledger_api.records.staging import StagingSweep, SweepOutcome
from ledger_api.storage import LocalBlobStore
from ledger_api.storage.local import STAGING_DIR

OWNER = "PS-XIHU-01"
_, PUBLIC_KEY = hpke.generate_keypair()
OWNER_KEY = RecipientKey(org_id=OWNER, key_index=0, public_key=PUBLIC_KEY)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(sqlite_url(tmp_path / "index.db"))


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(root=tmp_path / "blobs")


def sealed(record_id: str, version: int) -> bytes:
    return seal_record(
        plaintext=b'{"name": "personal data"}',
        record_id=record_id,
        owner_org=OWNER,
        record_type="incident",
        version=version,
        recipients={OWNER: OWNER_KEY},
    ).blob


def index_row(engine: Engine, record_id: str, version: int, blob_key: str, *, shredded: bool = False) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(
            RecordVersion(
                record_id=record_id, version=version, owner_org=OWNER, record_type="incident",
                community_code="330102001", occurred_at=now, received_at=now, fingerprint="0" * 64,
                blob_key=blob_key, commitment="0" * 64, key_index=0, shredded_at=now if shredded else None,
            )
        )  # fmt: skip
        session.commit()


def age(store: LocalBlobStore, key: str, *, hours: float) -> None:
    """Back-date a staged blob as if it had been written ``hours`` ago."""
    then = (datetime.now(UTC) - timedelta(hours=hours)).timestamp()
    os.utime(store.root / STAGING_DIR / key, (then, then))


def staged_keys(store: LocalBlobStore) -> set[str]:
    return {s.key for s in store.iter_staged()}


def test_the_sweep_promotes_what_the_index_names_and_discards_old_leftovers_only(
    engine: Engine, store: LocalBlobStore
) -> None:
    (committed, shredded, leftover_old, leftover_young, junk_old) = store.stage_many(
        [sealed("r-committed", 1), sealed("r-shredded", 1), sealed("r-retried", 1), sealed("r-young", 1), b"junk"]
    )
    index_row(engine, "r-committed", 1, committed)  # committed, then the gateway died before promoting
    index_row(engine, "r-shredded", 1, shredded, shredded=True)
    retried = store.put(sealed("r-retried", 1))  # the client's retry: the same version, another key
    index_row(engine, "r-retried", 1, retried)
    for key in (leftover_old, junk_old):  # the committed and the shredded one are young: age does not matter
        age(store, key, hours=2)

    outcome = StagingSweep(engine=engine, blobs=store, grace_s=3600).sweep()

    assert outcome == SweepOutcome(promoted=1, discarded=3, kept=1)
    assert staged_keys(store) == {leftover_young}  # perhaps a push in flight: kept
    assert set(store.iter_keys()) == {committed, retried}
    assert store.verify(committed)


def test_the_sweep_never_deletes_a_shared_blob_even_one_no_row_names(engine: Engine, store: LocalBlobStore) -> None:
    """An anchored leaf, a manifest or a log segment lives in the shared area; the index is not asked."""
    anchored = store.put(sealed("r-anchored", 1))  # listed by an anchored batch; say the index lost its row
    manifest = store.put(b'{"manifest": true}')
    promoted = store.stage_many([sealed("r-promoted", 1)])[0]
    index_row(engine, "r-promoted", 1, promoted)
    store.promote_many([promoted])
    store.stage_many([sealed("r-anchored", 1)])  # a leftover of the same record version, under another key

    outcome = StagingSweep(engine=engine, blobs=store, grace_s=0, clock=lambda: datetime.now(UTC) + timedelta(days=1))
    assert outcome.sweep() == SweepOutcome(discarded=1)

    assert set(store.iter_keys()) == {anchored, manifest, promoted}
    assert staged_keys(store) == set()


def test_erasure_discards_staged_copies_of_the_record_and_spares_a_newer_push_in_flight(
    engine: Engine, store: LocalBlobStore
) -> None:
    retried = store.put(sealed("r-1", 1))
    index_row(engine, "r-1", 1, retried)
    (dead_push, in_flight_v2, other_record) = store.stage_many([sealed("r-1", 1), sealed("r-1", 2), sealed("r-2", 1)])
    old_v3 = store.stage_many([sealed("r-1", 3)])[0]
    age(store, old_v3, hours=2)  # a dead push of a newer version, older than the grace period

    receipt = ErasureService(engine=engine, blobs=store, staging_grace_s=3600).erase(caller=OWNER, record_id="r-1")

    assert receipt.newly_erased == 1
    assert staged_keys(store) == {in_flight_v2, other_record}
    assert retried not in set(store.iter_keys())  # the anchored original, replaced by its shredded form
    assert dead_push not in staged_keys(store)
