"""The access log on SQLite: canonical entries, durable gap-free appends, proofs, restart, tampering."""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ledger_api.accesslog import AccessLog, AccessLogCorrupted, Entry, InvalidEntry
from ledger_api.errors import ConfigurationError
from ledger_api.index.database import make_engine
from ledger_api.index.models import AccessLogEntryRow
from ledger_api.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.ledger_api.accesslog.support import make_entry, sqlite_engine
from tests.support.postgres import PostgresServer

# --- entries -----------------------------------------------------------------------------------------


def test_leaf_data_is_canonical_json_with_a_format_tag() -> None:
    entry = Entry(
        accessor_org="PS-XIHU-01",
        record_id="ab" * 32,
        version=2,
        owner_org="CM-CUIYUAN-01",
        grant_id=7,
        purpose="养老照护",
        emergency=False,
        checked_block=812,
        time=datetime(2025, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))),
        request_id="req-1",
        format_version=1,
    )
    data = entry.leaf_data()
    document = json.loads(data)
    assert list(document) == sorted(document)
    assert document["format"] == "ledger-access-entry/v1"
    assert document["time"] == "2025-03-01T00:00:00.000000Z"  # converted to UTC
    assert b" " not in data
    assert "养老照护".encode() in data  # UTF-8, not \\u escapes
    assert entry.leaf_hash() == leaf_hash(data)
    assert Entry.from_leaf_data(data) == entry
    assert entry.time.tzinfo is UTC


def test_entries_refuse_what_an_auditor_could_not_rely_on() -> None:
    good = make_entry(1).model_dump()
    for field, value in [
        ("time", datetime(2025, 3, 1)),  # naive
        ("grant_id", -1),
        ("version", "2"),  # no coercion
        ("accessor_org", ""),
        ("accessor_org", "x" * 33),
    ]:
        with pytest.raises(InvalidEntry):
            Entry.create(**{**good, field: value})
    with pytest.raises(InvalidEntry, match="emergency"):
        Entry.create(**{**good, "emergency": True, "grant_id": 5})
    with pytest.raises(InvalidEntry, match="grant"):
        Entry.create(**{**good, "emergency": False, "grant_id": 0})
    assert Entry.create(**{**good, "emergency": True, "grant_id": 0}).emergency
    with pytest.raises(InvalidEntry, match=r"extra|not permitted"):
        Entry.create(**good, extra_field=1)


def test_leaf_data_in_any_other_spelling_is_refused() -> None:
    data = make_entry(2).leaf_data()
    document = json.loads(data)
    with pytest.raises(InvalidEntry, match="canonical"):
        Entry.from_leaf_data(json.dumps(document, sort_keys=True).encode())  # with spaces
    with pytest.raises(InvalidEntry, match="format"):
        Entry.from_leaf_data(json.dumps({**document, "format": "other"}).encode())
    with pytest.raises(InvalidEntry, match="JSON"):
        Entry.from_leaf_data(b"\xff")


# --- appending -----------------------------------------------------------------------------------------


def test_appends_get_consecutive_indices_and_are_durable_when_they_return(engine: Engine) -> None:
    log = AccessLog(engine)
    first = log.append(make_entry(0))
    assert (first.index, first.leaf_hash) == (0, make_entry(0).leaf_hash())
    batch = log.append_many([make_entry(n) for n in range(1, 11)])
    assert [a.index for a in batch] == list(range(1, 11))
    assert log.append_many([]) == []
    assert log.size == 11
    # Durable: another connection (another process, after a crash) sees every row.
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT seq, data FROM access_log_entries ORDER BY seq")).all()
    assert [seq for seq, _ in rows] == list(range(11))
    assert [bytes(data) for _, data in rows] == [make_entry(n).leaf_data() for n in range(11)]
    assert log.entry(5) == make_entry(5)
    assert log.indexes_of_request("t-7") == [7]
    with engine.connect() as connection:
        appended_at = connection.execute(text("SELECT appended_at FROM access_log_entries")).scalars().first()
    assert appended_at is not None


def test_concurrent_appends_are_gap_free_and_each_caller_gets_its_own_index(engine: Engine) -> None:
    log = AccessLog(engine)
    threads, per_thread = 8, 60
    results: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(t: int) -> None:
        rng = random.Random(t)
        try:
            n = 0
            while n < per_thread:
                size = rng.choice([1, 1, 1, 5, 17])
                entries = [make_entry(t * 1000 + n + i, tag=f"c{t}") for i in range(size)]
                appended = log.append_many(entries) if size > 1 else [log.append(entries[0])]
                assert [a.leaf_hash for a in appended] == [e.leaf_hash() for e in entries]
                assert [a.index for a in appended] == list(range(appended[0].index, appended[0].index + size))
                with lock:
                    for entry, a in zip(entries, appended, strict=True):
                        results[entry.request_id] = a.index
                n += size
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    total = len(results)
    assert sorted(results.values()) == list(range(total))  # unique and gap-free
    assert log.size == total
    with engine.connect() as connection:
        seqs = connection.execute(text("SELECT seq FROM access_log_entries ORDER BY seq")).scalars().all()
    assert seqs == list(range(total))
    for request_id, index in random.Random(1).sample(sorted(results.items()), 50):
        assert log.entry(index).request_id == request_id


def test_two_logs_on_one_database_never_share_an_index(tmp_path: Path) -> None:
    """Two processes (here two instances) appending to one database: numbers are claimed, not assumed."""
    engines = [sqlite_engine(tmp_path / "shared.db"), sqlite_engine(tmp_path / "shared.db")]
    logs = [AccessLog(engines[0]), AccessLog(engines[1])]
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            for n in range(40):
                appended = logs[t % 2].append(make_entry(t * 1000 + n))
                with lock:
                    got.append(appended.index)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert sorted(got) == list(range(240))
    assert logs[0].refresh() == logs[1].refresh() == 240
    assert logs[0].root() == logs[1].root()
    for engine in engines:
        engine.dispose()


# --- proofs and restart ------------------------------------------------------------------------------


def test_proofs_verify_with_the_rfc9162_verifiers(engine: Engine) -> None:
    log = AccessLog(engine)
    appended = log.append_many([make_entry(n) for n in range(70)])
    rng = random.Random(3)
    for size in [1, 2, 3, 7, 8, 9, 31, 32, 33, 64, 70]:
        root = log.root(size)
        for index in {0, size - 1, rng.randrange(size)}:
            verify_inclusion(appended[index].leaf_hash, index, size, log.inclusion_proof(index, size), root)
        for old in {1, size // 2 or 1, size}:
            verify_consistency(old, size, log.root(old), root, log.consistency_proof(old, size))


def test_a_restart_rebuilds_the_same_tree_and_carries_on(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    engine = sqlite_engine(path)
    log = AccessLog(engine)
    log.append_many([make_entry(n) for n in range(200)])
    roots = {size: log.root(size) for size in range(0, 201, 7)}
    engine.dispose()

    engine = sqlite_engine(path)
    again = AccessLog(engine)
    assert again.size == 200
    assert {size: again.root(size) for size in roots} == roots
    assert again.append(make_entry(200)).index == 200
    engine.dispose()


def test_a_tampered_or_gapped_table_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    engine = sqlite_engine(path)
    AccessLog(engine).append_many([make_entry(n) for n in range(10)])
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE access_log_entries SET data = :d WHERE seq = 4"), {"d": make_entry(99).leaf_data()}
        )
    with pytest.raises(AccessLogCorrupted, match="entry 4"):
        AccessLog(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM access_log_entries WHERE seq = 4"))
    with pytest.raises(AccessLogCorrupted, match="gap"):
        AccessLog(engine)
    engine.dispose()


def test_a_sqlite_database_without_durable_commits_is_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'lax.db'}")

    @event.listens_for(engine, "connect")
    def _lax(connection: object, _record: object) -> None:
        connection.execute("PRAGMA synchronous=OFF")  # type: ignore[attr-defined]

    with pytest.raises(ConfigurationError, match="synchronous"):
        AccessLog(engine)
    engine.dispose()


# --- throughput ------------------------------------------------------------------------------------


def test_append_throughput_on_sqlite(engine: Engine, record_property: Callable[[str, object], None]) -> None:
    """Durable appends (WAL, synchronous=FULL): one caller, 16 concurrent callers (group commit), batches.

    One caller alone is bound by the disk's fsync latency (each append waits for its own commit); callers
    that append at the same time share a commit, so the rate grows with concurrency. The disk is shared
    with whatever else runs, so the concurrent rate is the best of three rounds.
    """
    log = AccessLog(engine)
    entries = iter([make_entry(n, tag="bench") for n in range(300 + 3 * 1600 + 3000)])

    started = time.perf_counter()
    for _ in range(300):
        log.append(next(entries))
    single = 300 / (time.perf_counter() - started)

    def work(chunk: list[Entry]) -> None:
        for entry in chunk:
            log.append(entry)

    concurrent = 0.0
    for _round in range(3):
        chunks = [[next(entries) for _ in range(100)] for _ in range(16)]
        workers = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        concurrent = max(concurrent, 1600 / (time.perf_counter() - started))

    started = time.perf_counter()
    for _ in range(30):
        log.append_many([next(entries) for _ in range(100)])
    batched = 3000 / (time.perf_counter() - started)

    assert log.size == 300 + 3 * 1600 + 3000
    rates = {"single": round(single), "threads_16": round(concurrent), "append_many_100": round(batched)}
    record_property("appends_per_s", rates)
    print(f"\naccess log appends/s on SQLite (WAL, synchronous=FULL): {rates}")
    assert concurrent >= 1000, rates
    assert batched >= 1000, rates


def test_timestamps_come_back_timezone_aware(engine: Engine) -> None:
    log = AccessLog(engine, clock=lambda: datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=8))))
    log.append(make_entry(1))
    with Session(engine) as session:
        row = session.exec(select(AccessLogEntryRow)).one()
    assert row.appended_at == datetime(2025, 1, 1, 4, tzinfo=UTC)
    assert row.appended_at.tzinfo is not None


# --- PostgreSQL (several gateway instances) ---------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.xdist_group("postgres")
def test_two_instances_on_postgresql_append_gap_free_and_rebuild(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database(f"accesslog_{secrets.token_hex(6)}")
    engines = [make_engine(url), make_engine(url)]
    logs = [AccessLog(engines[0]), AccessLog(engines[1])]
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        log = logs[t % 2]
        try:
            for n in range(40):
                entries = [make_entry(t * 1000 + n * 10 + i, tag=f"pg{t}") for i in range(1 + n % 3)]
                appended = log.append(entries[0]) if len(entries) == 1 else log.append_many(entries)
                with lock:
                    got.extend(a.index for a in (appended if isinstance(appended, list) else [appended]))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert len(got) == 6 * (14 * 1 + 13 * 2 + 13 * 3)
    assert sorted(got) == list(range(len(got)))
    assert logs[0].refresh() == logs[1].refresh() == len(got)
    assert logs[0].root() == logs[1].root()
    again = AccessLog(make_engine(url))
    assert again.root() == logs[0].root()
    with Session(again.engine) as session:
        row = session.exec(select(AccessLogEntryRow).where(AccessLogEntryRow.seq == 0)).one()
    assert row.appended_at.tzinfo is not None
    for engine in [*engines, again.engine]:
        engine.dispose()


def test_v2_entries_carry_refusals_and_break_glass_statements_and_v1_ones_keep_their_encoding() -> None:
    read = make_entry(3)
    document = json.loads(read.leaf_data())
    assert document["format"] == "ledger-access-entry/v2"
    assert {k: document[k] for k in ("kind", "refusal", "revealed", "reason_class", "reason", "incident_ref")} == {
        "kind": "read", "refusal": None, "revealed": None, "reason_class": None, "reason": None, "incident_ref": None,
    }  # fmt: skip
    refusal = Entry.create(**{**read.model_dump(), "kind": "refusal", "refusal": "not_found", "owner_org": ""})
    assert Entry.from_leaf_data(refusal.leaf_data()) == refusal
    assert refusal.is_refusal
    with pytest.raises(InvalidEntry, match="a read names the record's owner"):
        Entry.create(**{**read.model_dump(), "owner_org": ""})
    with pytest.raises(InvalidEntry, match="refusal"):
        Entry.create(**{**read.model_dump(), "kind": "refusal"})  # says why
    with pytest.raises(InvalidEntry, match="only an emergency read"):
        Entry.create(**{**read.model_dump(), "reason": "curious"})
    old = Entry.create(**{**read.model_dump(), "format_version": 1})
    data = old.leaf_data()
    assert json.loads(data)["format"] == "ledger-access-entry/v1"
    assert b"kind" not in data  # byte for byte what a gateway wrote before: its leaf hash is unchanged
    assert Entry.from_leaf_data(data) == old
    smuggled = json.loads(data)
    smuggled["kind"] = "refusal"
    with pytest.raises(InvalidEntry, match="v2 keys"):
        Entry.from_leaf_data(json.dumps(smuggled, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(InvalidEntry, match="lacks"):
        Entry.from_leaf_data(data.replace(b"ledger-access-entry/v1", b"ledger-access-entry/v2"))
