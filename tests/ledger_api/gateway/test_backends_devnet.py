"""The write path on the real backends: a PostgreSQL index and an S3 store (SeaweedFS), in each combination.

For each of PostgreSQL + local directory, SQLite + S3 and PostgreSQL + S3: provision a ledger home on the
session devnet, push records through the HTTP API (a duplicate push and a new version included), wait
until every record is anchored, check that each blob in that backend hashes to its ``ciphertext_hash``
and that the rows are in that index, then rebuild the index with ``reindex`` and compare before/after.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from web3 import Web3

from adapters.canonical import CanonicalRecord
from ledger_api.chain.devnet import Devnet
from ledger_api.chain.transactor import Transactor
from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from ledger_api.index.models import AnchorBatch, RecordVersion, SubjectLink
from ledger_api.provision import provision
from ledger_api.records.reindex import reindex
from ledger_api.settings import Settings
from ledger_api.storage import LocalBlobStore, S3BlobStore
from tests.ledger_api.gateway.conftest import COMMITTEE, POLICE, Ledger, make_settings, wait_until
from tests.ledger_api.gateway.records import payload, sample_records
from tests.support.postgres import PostgresServer
from tests.support.seaweedfs import SeaweedS3Server
from tests.support.servers import postgres_server, seaweed_server  # noqa: F401

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.xdist_group("devnet")]

PROPERTY = "PM-LVCHENG-01"

BACKENDS = [
    pytest.param(("postgres", "local"), marks=[pytest.mark.postgres], id="postgres+local"),
    pytest.param(("sqlite", "s3"), marks=[pytest.mark.s3], id="sqlite+s3"),
    pytest.param(("postgres", "s3"), marks=[pytest.mark.postgres, pytest.mark.s3], id="postgres+s3"),
]


@dataclass(frozen=True, kw_only=True)
class Backend:
    index: str
    store: str
    ledger: Ledger
    postgres: PostgresServer | None
    database: str | None
    s3: SeaweedS3Server | None
    bucket: str | None

    @property
    def settings(self) -> Settings:
        return self.ledger.settings


@pytest.fixture
def backend(
    request: pytest.FixtureRequest,
    devnet: Devnet,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Backend:
    """A freshly provisioned ledger home whose index and blob store are the requested backends."""
    index, store = request.param
    suffix = secrets.token_hex(4)
    overrides: dict[str, object] = {}
    postgres: PostgresServer | None = None
    database = bucket = None
    s3: SeaweedS3Server | None = None
    if index == "postgres":  # fixtures fetched only when used: `-m "not s3"` starts no SeaweedFS
        postgres = request.getfixturevalue("postgres_server")
        database = f"backends_{suffix}"
        overrides["database_url"] = postgres.create_database(database)
    if store == "s3":
        s3 = request.getfixturevalue("seaweed_server")
        bucket = f"ledger-{suffix}"  # created by the gateway at start-up (GatewayServices.from_settings)
        overrides["blob_store"] = f"s3://{bucket}/blobs/?endpoint={s3.endpoint_url}"
        # Credentials come from the environment only, never from the URL.
        monkeypatch.setenv("LEDGER_S3_ACCESS_KEY", s3.access_key)
        monkeypatch.setenv("LEDGER_S3_SECRET_KEY", s3.secret_key)
    settings = make_settings(tmp_path_factory.mktemp(f"backend-{index}-{store}"), devnet.rpc_url, **overrides)
    transactor = Transactor(w3=Web3(Web3.HTTPProvider(devnet.rpc_url)))
    ledger = Ledger(settings=settings, provisioned=provision(settings=settings, transactor=transactor))
    if s3 is not None:  # the gateway, not provisioning, makes the bucket
        assert bucket not in {b["Name"] for b in s3.client().list_buckets()["Buckets"]}
    return Backend(index=index, store=store, ledger=ledger, postgres=postgres, database=database, s3=s3, bucket=bucket)


@pytest.fixture
def services(backend: Backend) -> Iterator[GatewayServices]:
    built = GatewayServices.from_settings(backend.settings)
    yield built
    built.close()


def push(client: TestClient, ledger: Ledger, org: str, records: list[CanonicalRecord]) -> dict[str, Any]:
    answer = client.post("/v1/records", json=payload(records), headers=ledger.auth(org))
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def status(client: TestClient, ledger: Ledger, org: str, record_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/records/{record_id}/status", headers=ledger.auth(org))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def snapshot(services: GatewayServices) -> dict[tuple[str, int], tuple[object, ...]]:
    """Every record version with its batch, all but the receive time (which reindex cannot know)."""
    with Session(services.engine) as session:
        rows = session.exec(
            select(RecordVersion, AnchorBatch).join(
                AnchorBatch, col(RecordVersion.batch_id) == col(AnchorBatch.id), isouter=True
            )
        ).all()
        return {
            (r.record_id, r.version): (
                r.owner_org, r.record_type, r.community_code, r.occurred_at, r.fingerprint, r.blob_key, r.commitment,
                r.key_index, r.leaf_index, b.root if b else None, b.state if b else None,
                b.tx_hash if b else None, b.block_number if b else None,
            )
            for r, b in rows
        }  # fmt: skip


def links(services: GatewayServices) -> set[tuple[str, str, str]]:
    with Session(services.engine) as session:
        return {(x.blind_index, x.kind, x.record_id) for x in session.exec(select(SubjectLink)).all()}


def blob_reader(backend: Backend) -> Callable[[str], bytes]:
    """Reads a blob straight from the backend, around the gateway's store classes."""
    if backend.store == "s3":
        assert backend.s3 is not None
        client, bucket = backend.s3.client(), str(backend.bucket)
        return lambda key: client.get_object(Bucket=bucket, Key=f"blobs/{key}")["Body"].read()
    store = LocalBlobStore(root=backend.settings.home / "blobs")
    return lambda key: store.path_for(key).read_bytes()


def rows_in_postgres(backend: Backend) -> int:
    """Record versions counted with psycopg on the test's own database, not through the gateway."""
    assert backend.postgres is not None
    assert backend.database is not None
    with psycopg.connect(backend.postgres.dsn_for(backend.database)) as connection:
        row = connection.execute("SELECT count(*) FROM record_versions").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_write_path_anchor_and_reindex(backend: Backend, services: GatewayServices) -> None:
    ledger = backend.ledger
    incidents = sample_records("police.incidents", POLICE, limit=40)
    hazards = sample_records("committee.hazard_reports", COMMITTEE, limit=20)
    original = incidents[0]
    changed = original.model_copy(update={"attributes": {**original.attributes, "处理结果": "已结案"}})

    assert isinstance(services.blobs, S3BlobStore if backend.store == "s3" else LocalBlobStore)
    if backend.s3 is not None:  # made at start-up by GatewayServices.from_settings
        backend.s3.client().head_bucket(Bucket=str(backend.bucket))
    if backend.index == "postgres":
        assert services.engine.dialect.name == "postgresql"
        assert not (backend.settings.home / "index.db").exists()

    with TestClient(create_app(services)) as client:
        first = push(client, ledger, POLICE, incidents)
        assert (first["accepted"], first["stored"]) == (40, 40)
        assert {(r["version"], r["status"]) for r in first["records"]} == {(1, "created")}
        assert push(client, ledger, COMMITTEE, hazards)["stored"] == 20

        again = push(client, ledger, POLICE, incidents)  # the same export twice: nothing new
        assert again["stored"] == 0
        assert {(r["version"], r["status"]) for r in again["records"]} == {(1, "unchanged")}

        newer = push(client, ledger, POLICE, [changed])  # same native id, changed content: version 2
        assert newer["records"] == [{"record_id": original.record_id, "version": 2, "status": "new_version"}]

        expected = [(POLICE, r.record_id) for r in incidents] + [(COMMITTEE, r.record_id) for r in hazards]

        def all_anchored() -> bool:
            return all(status(client, ledger, org, rid)["state"] == "anchored" for org, rid in expected)

        wait_until(all_anchored, timeout_s=60)
        answers = [status(client, ledger, org, rid) for org, rid in expected]

    assert answers[0]["version"] == 2
    assert len({a["ciphertext_hash"] for a in answers}) == len(answers)
    read_blob = blob_reader(backend)
    for answer in answers:
        blob = read_blob(answer["ciphertext_hash"])
        assert hashlib.sha256(blob).hexdigest() == answer["ciphertext_hash"]
        assert answer["transaction"].startswith("0x")
        assert answer["block_number"] > 0

    # A push acknowledged while no worker runs: stored and indexed, not yet anchored.
    pending = sample_records("property.access_events", PROPERTY, limit=10)
    with TestClient(create_app(services, run_worker=False)) as client:
        assert push(client, ledger, PROPERTY, pending)["stored"] == 10

    before, before_links = snapshot(services), links(services)
    assert len(before) == 40 + 1 + 20 + 10
    assert sum(1 for row in before.values() if row[-3] == "anchored") == 40 + 1 + 20
    assert before_links  # the incidents name people and places
    if backend.index == "postgres":
        assert rows_in_postgres(backend) == len(before)

    report = reindex(
        engine=services.engine,
        blobs=services.blobs,
        keystore=services.keystore,
        rpc=services.rpc,
        deployment=services.deployment,
    )

    assert report.skipped == ()
    assert (report.anchored_records, report.pending_records) == (40 + 1 + 20, 10)
    after = snapshot(services)
    assert set(after) == set(before)
    for key, row in before.items():
        assert after[key] == row, key
    assert links(services) == before_links
    if backend.index == "postgres":
        assert rows_in_postgres(backend) == len(before)


# Valid canonical records the PostgreSQL index cannot hold (VARCHAR(32), no NUL): they answered 500 there.
COMMUNITY_ODDITIES = {"nul": "3301\x0002001", "too-long": "3" * 33}


@pytest.mark.parametrize("backend", BACKENDS[:1], indirect=True)
@pytest.mark.parametrize("community", COMMUNITY_ODDITIES.values(), ids=COMMUNITY_ODDITIES.keys())
def test_community_codes_the_index_cannot_hold_are_refused(
    backend: Backend, services: GatewayServices, community: str
) -> None:
    record = sample_records("police.incidents", POLICE, limit=1)[0].model_copy(update={"community_code": community})
    with TestClient(create_app(services, run_worker=False), raise_server_exceptions=False) as client:
        answer = client.post("/v1/records", json=payload([record]), headers=backend.ledger.auth(POLICE))
    assert answer.status_code == 422, answer.text
    assert [(e["index"], e["field"]) for e in answer.json()["errors"]] == [(0, "community_code")]
    assert rows_in_postgres(backend) == 0
