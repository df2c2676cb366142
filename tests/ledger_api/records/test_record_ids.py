"""Keyed record ids on the write path: the owner's gateway assigns them, and legacy (v1) ids stay found.

Real components without a chain: the ingest service over SQLite, a local blob store and a keystore on disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from adapters.canonical import CanonicalRecord, derive_legacy_record_id, derive_record_id
from ledger_api.crypto.envelope import open_record, parse_blob
from ledger_api.crypto.errors import InsecureSecretError
from ledger_api.crypto.keystore import OrgKeystore, demo_record_id_key
from ledger_api.index.database import make_engine
from ledger_api.index.models import RecordVersion
from ledger_api.records import ingest as ingest_module
from ledger_api.records.commitment import RECORD_COMMITMENT
from ledger_api.records.ingest import IngestError, IngestService
from ledger_api.records.record_ids import IdCandidates, id_candidates
from ledger_api.storage.local import LocalBlobStore
from tests.ledger_api.gateway.records import sample_records

OWNER, OTHER = "PS-XIHU-01", "CM-CUIYUAN-01"
SECRET = "correct horse battery staple 2024"
FAST = 2**4


def unkeyed_guess(record: CanonicalRecord) -> str:
    """What anyone could compute before: SHA-256 over the v1 domain and the length-prefixed parts."""
    parts = (record.owner_org, str(record.record_type), record.source.native_id)
    encoded = b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)
    return hashlib.sha256(b"ledger/record-id/v1\x00" + encoded).hexdigest()


def export(owner: str = OWNER, *, limit: int = 12) -> list[CanonicalRecord]:
    """An export as a department machine parses it: no record-id key, so no ids."""
    return [r.model_copy(update={"record_id": None}) for r in sample_records("police.incidents", owner, limit=limit)]


class Gateway:
    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.keystore = OrgKeystore.open(home / "keystore", master_secret=SECRET, scrypt_n=FAST)
        for org in (OWNER, OTHER):
            self.keystore.generate(org)
        self.engine: Engine = make_engine(f"sqlite:///{home / 'index.db'}")
        self.blobs = LocalBlobStore(root=home / "blobs")
        self.ingest = IngestService(engine=self.engine, blobs=self.blobs, keystore=self.keystore)

    def open(self, row: RecordVersion) -> CanonicalRecord:
        """Open and verify a stored version: its blob hash and its plaintext commitment, as a reader does."""
        opened = open_record(
            self.blobs.get(row.blob_key), org_id=OWNER, key_index=row.key_index,
            private_key=self.keystore.private_key(OWNER, row.key_index), expected_hash=row.blob_key,
            expected_commitment=row.commitment, commitment_scheme=RECORD_COMMITMENT,
        )  # fmt: skip
        assert opened.record_id == row.record_id
        return CanonicalRecord.model_validate_json(opened.plaintext)

    def rows(self) -> list[RecordVersion]:
        with Session(self.engine) as session:
            return list(session.exec(select(RecordVersion).order_by(col(RecordVersion.id))).all())


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    made = Gateway(tmp_path / "gw")
    yield made
    made.engine.dispose()


def test_assigned_ids_are_keyed_and_the_unkeyed_guess_matches_none(gateway: Gateway) -> None:
    records = export()
    outcomes = gateway.ingest.push(org_id=OWNER, records=records)
    key = gateway.keystore.record_id_key(OWNER)
    assigned = [o.record_id for o in outcomes]
    assert assigned == [derive_record_id(key, OWNER, r.record_type, r.source.native_id) for r in records]
    guesses = {unkeyed_guess(r) for r in records}
    assert not guesses & set(assigned)
    assert not guesses & {row.record_id for row in gateway.rows()}
    # The blob header, in clear in shared storage, carries the keyed id; the plaintext inside agrees.
    row = gateway.rows()[0]
    assert parse_blob(gateway.blobs.get(row.blob_key)).header.record_id == row.record_id == assigned[0]
    assert gateway.open(row).record_id == assigned[0]


def test_two_gateways_keys_give_two_ids_for_the_same_record(tmp_path: Path) -> None:
    one, two = Gateway(tmp_path / "one"), Gateway(tmp_path / "two")
    records = export(limit=3)
    first = [o.record_id for o in one.ingest.push(org_id=OWNER, records=records)]
    second = [o.record_id for o in two.ingest.push(org_id=OWNER, records=records)]
    assert one.keystore.record_id_key(OWNER) != two.keystore.record_id_key(OWNER)
    assert not set(first) & set(second)
    # And two organisations of one gateway have keys of their own.
    assert one.keystore.record_id_key(OWNER) != one.keystore.record_id_key(OTHER)


def test_the_same_export_pushed_twice_gives_the_same_ids_and_no_new_version(gateway: Gateway) -> None:
    first = gateway.ingest.push(org_id=OWNER, records=export())
    stored = len(gateway.rows())
    again = gateway.ingest.push(org_id=OWNER, records=export())
    assert [o.record_id for o in again] == [o.record_id for o in first]
    assert {o.status for o in again} == {"unchanged"}
    assert len(gateway.rows()) == stored
    # The ids the gateway answered with may be sent back: the same record, nothing new.
    echoed = [r.model_copy(update={"record_id": o.record_id}) for r, o in zip(export(), first, strict=True)]
    assert {o.status for o in gateway.ingest.push(org_id=OWNER, records=echoed)} == {"unchanged"}
    assert len(gateway.rows()) == stored
    # The key survives a restart: a new process over the same keystore assigns the same ids.
    restarted = Gateway.__new__(Gateway)
    restarted.keystore = OrgKeystore.open(gateway.home / "keystore", master_secret=SECRET)
    restarted.engine, restarted.blobs = gateway.engine, gateway.blobs
    restarted.ingest = IngestService(engine=gateway.engine, blobs=gateway.blobs, keystore=restarted.keystore)
    assert [o.record_id for o in restarted.ingest.push(org_id=OWNER, records=export())] == [o.record_id for o in first]
    assert len(gateway.rows()) == stored


def test_an_id_that_is_not_the_assigned_one_is_refused_and_nothing_is_stored(gateway: Gateway) -> None:
    records = export(limit=3)
    forged = [records[0], records[1].model_copy(update={"record_id": unkeyed_guess(records[1])}), records[2]]
    with pytest.raises(IngestError) as refused:
        gateway.ingest.push(org_id=OWNER, records=forged)
    assert [(e["index"], e["field"]) for e in refused.value.errors] == [(1, "record_id")]
    assert "derive_record_id" in str(refused.value.errors[0]["message"])
    assert gateway.rows() == []


def _push_as_before_keyed_ids(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, records: list[CanonicalRecord]
) -> None:
    """Store records the way the code before keyed ids did: under derive_legacy_record_id (scheme v1)."""

    def legacy(*, key: bytes, records: list[CanonicalRecord], stored: object) -> tuple[list[CanonicalRecord], list]:
        ids = [derive_legacy_record_id(r.owner_org, r.record_type, r.source.native_id) for r in records]
        return [r.model_copy(update={"record_id": i}) for r, i in zip(records, ids, strict=True)], []

    with monkeypatch.context() as patch:
        patch.setattr(ingest_module, "assign_record_ids", legacy)
        gateway.ingest.push(org_id=OWNER, records=records)


def test_a_record_stored_under_its_legacy_id_keeps_it(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    records = export(limit=4)
    _push_as_before_keyed_ids(gateway, monkeypatch, records[:2])
    legacy_ids = [unkeyed_guess(r) for r in records[:2]]
    assert [row.record_id for row in gateway.rows()] == legacy_ids

    # Re-importing the same export: the legacy records are found, unchanged; the new ones get keyed ids.
    outcomes = gateway.ingest.push(org_id=OWNER, records=records)
    key = gateway.keystore.record_id_key(OWNER)
    assert [(o.record_id, o.status) for o in outcomes[:2]] == [(i, "unchanged") for i in legacy_ids]
    assert [o.record_id for o in outcomes[2:]] == [
        derive_record_id(key, OWNER, r.record_type, r.source.native_id) for r in records[2:]
    ]
    assert len(gateway.rows()) == 4
    # Its legacy id may be sent back too; a changed record is the next version of the legacy record.
    changed = records[0].model_copy(update={"record_id": legacy_ids[0], "attributes": {"category": "changed"}})
    (outcome,) = gateway.ingest.push(org_id=OWNER, records=[changed])
    assert (outcome.record_id, outcome.version, outcome.status) == (legacy_ids[0], 2, "new_version")
    # Both versions open and verify under the legacy id.
    versions = [row for row in gateway.rows() if row.record_id == legacy_ids[0]]
    assert [row.version for row in versions] == [1, 2]
    assert [gateway.open(row).attributes.get("category") for row in versions] == [
        records[0].attributes.get("category"),
        "changed",
    ]
    # A record that was never stored cannot take a legacy (guessable) id.
    fresh = export(limit=6)[5]
    with pytest.raises(IngestError):
        gateway.ingest.push(org_id=OWNER, records=[fresh.model_copy(update={"record_id": unkeyed_guess(fresh)})])


def test_the_candidates_are_the_keyed_and_the_legacy_id() -> None:
    record = export(limit=1)[0]
    key = bytes(range(32))
    assert id_candidates(key, record) == IdCandidates(
        keyed=derive_record_id(key, OWNER, record.record_type, record.source.native_id), legacy=unkeyed_guess(record)
    )


def test_a_demo_record_id_key_stops_the_gateway_outside_demo_mode(tmp_path: Path) -> None:
    keystore = OrgKeystore.open(tmp_path / "keys", master_secret=SECRET, scrypt_n=FAST)
    keystore.import_record_id_key(OWNER, demo_record_id_key(OWNER))
    keystore.generate(OWNER)
    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    with pytest.raises(InsecureSecretError, match="published demo key"):
        IngestService(engine=engine, blobs=LocalBlobStore(root=tmp_path / "blobs"), keystore=keystore)
    demo = OrgKeystore.open(tmp_path / "keys", master_secret=SECRET, demo=True)
    IngestService(engine=engine, blobs=LocalBlobStore(root=tmp_path / "blobs"), keystore=demo)
    assert demo.record_id_key(OWNER) == demo_record_id_key(OWNER)
    engine.dispose()
