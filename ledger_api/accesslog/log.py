"""The access log: one durable, append-only RFC 9162 tree of access entries.

Durability (DESIGN.md invariant 4). :meth:`AccessLog.append` returns only once the entry's row is
committed (SQLite in WAL mode with ``synchronous=FULL``, or PostgreSQL): that commit is the point from
which the entry is "made durable so that it is guaranteed to be anchored even if the gateway dies at
that instant". The tree-head anchorer (:mod:`ledger_api.accesslog.anchorer`) takes every committed
entry into a segment and an anchored tree head, also after a ``kill -9``. A caller releases plaintext
(or a key that opens it) only after ``append`` returned.

Sequence numbers. The row's ``seq`` is the entry's leaf index: unique (primary key) and gap-free.
Appends are serialised by a lock and numbered from the in-memory tree's size, which equals the number
of committed rows. Several gateway instances on one PostgreSQL take turns under a transaction-scoped
advisory lock and first read the rows the others committed; elsewhere a number another process took
fails on the primary key, and this process catches up from the table and numbers again. A failed commit
leaves no row, so it leaves no gap either. A commit whose outcome is unknown (the connection dropped
during COMMIT) makes the log re-read the table before its next append: the entry may be in the log
although its caller saw an error, which only ever logs a read that was not released.

Group commit. Concurrent appends are committed together: a caller queues its entries, and whoever holds
the write lock commits everything queued so far in one transaction (one fsync), then each caller returns
once the transaction that holds its entries is durable. ``append_many`` commits a batch in one go.

Proofs. The tree of leaf hashes is kept in memory (rebuilt from the table at start, every row's leaf
hash checked against its data) and serves roots at any size, inclusion and consistency proofs.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from ledger_api.accesslog.entry import AppendedEntry, Entry
from ledger_api.accesslog.errors import AccessLogCorrupted, AccessLogError
from ledger_api.errors import ConfigurationError
from ledger_api.index.models import AccessLogEntryRow, AccessLogHeadRow
from ledger_api.merkle import MerkleTree, leaf_hash

__all__ = ["ENTRIES_TABLE", "HEADS_TABLE", "AccessLog"]

ENTRIES_TABLE: Table = AccessLogEntryRow.__table__  # type: ignore[attr-defined]
HEADS_TABLE: Table = AccessLogHeadRow.__table__  # type: ignore[attr-defined]

_CLAIM_ATTEMPTS = 20
# pg_advisory_xact_lock key of the access log: the first 8 bytes of SHA-256("ledger/access-log"), signed.
_ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"ledger/access-log").digest()[:8], "big", signed=True)
_LOAD_CHUNK = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Pending:
    """Entries of one caller, waiting for the transaction that makes them durable."""

    rows: list[dict[str, Any]]
    hashes: list[bytes]
    done: bool = False
    result: list[AppendedEntry] = field(default_factory=list)
    error: BaseException | None = None


def _require_durable(engine: Engine) -> None:
    """Refuse a database whose commits are not durable when they return."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            setting = str(connection.execute(text("SHOW synchronous_commit")).scalar_one())
        if setting == "off":
            raise ConfigurationError(
                "the access log needs PostgreSQL synchronous_commit on (it is off): an append must be durable "
                "before the read it covers is released"
            )
        return
    if engine.dialect.name != "sqlite":
        return
    database = engine.url.database or ""
    if database in ("", ":memory:"):
        return  # nothing is durable there anyway: tests only
    with engine.connect() as connection:
        synchronous = int(connection.execute(text("PRAGMA synchronous")).scalar_one())
    if synchronous < 2:
        raise ConfigurationError(
            f"the access log needs SQLite synchronous=FULL (2) or EXTRA (3), got {synchronous}: "
            "an append must be durable before the read it covers is released (use index.database.make_engine)"
        )


class AccessLog:
    """The durable access log and its in-memory RFC 9162 tree. Thread-safe."""

    def __init__(self, engine: Engine, *, verify: bool = True, clock: Callable[[], datetime] = _now) -> None:
        """Open the log stored in ``engine``'s database, rebuilding the tree from the table.

        ``verify`` re-hashes every row's leaf data at start (a few seconds per million entries).
        """
        self._engine = engine
        self._clock = clock
        _require_durable(engine)
        SQLModel.metadata.create_all(engine, tables=[ENTRIES_TABLE, HEADS_TABLE])
        self._tree = MerkleTree()
        self._tree_lock = threading.RLock()  # guards the tree: taken briefly by readers and by the writer
        self._write_lock = threading.Lock()  # one writer of the table and the tree at a time
        self._queue_cond = threading.Condition()  # guards _queue and _committing
        self._queue: list[_Pending] = []
        self._committing = False
        self._stale = False  # True: the table may hold rows the tree lacks; catch up before numbering
        self._verify = verify
        self._serialise_in_database = engine.dialect.name == "postgresql"
        with self._write_lock:
            self._catch_up()

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- appending ---------------------------------------------------------------------------------

    def append(self, entry: Entry) -> AppendedEntry:
        """Commit ``entry`` durably and return its leaf index and leaf hash."""
        return self._submit([entry])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[AppendedEntry]:
        """Commit several entries in one transaction; they get consecutive indices, in order."""
        if not entries:
            return []
        return self._submit(entries)

    def _submit(self, entries: Sequence[Entry]) -> list[AppendedEntry]:
        pending = _prepare(entries)
        batch: list[_Pending] | None = None
        with self._queue_cond:
            self._queue.append(pending)
            while not pending.done:
                if not self._committing:
                    # Nobody is committing: commit these entries and everything queued with them.
                    self._committing = True
                    batch, self._queue = self._queue, []
                    break
                self._queue_cond.wait()
        if batch is not None:
            try:
                with self._write_lock:
                    self._commit(batch)
            finally:
                with self._queue_cond:
                    self._committing = False
                    self._queue_cond.notify_all()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _commit(self, batch: list[_Pending]) -> None:
        rows = [row for pending in batch for row in pending.rows]
        hashes = [h for pending in batch for h in pending.hashes]
        try:
            start = self._insert(rows)
        except BaseException as exc:
            for pending in batch:
                pending.error = exc
                pending.done = True
            if not isinstance(exc, Exception):
                raise
            return
        with self._tree_lock:
            self._tree.extend(hashes)
        position = start
        for pending in batch:
            pending.result = [AppendedEntry(position + i, h) for i, h in enumerate(pending.hashes)]
            position += len(pending.hashes)
            pending.done = True

    def _insert(self, rows: list[dict[str, Any]]) -> int:
        """Insert ``rows`` at the next sequence numbers (committed when this returns); the first one.

        On PostgreSQL the instances sharing the database take turns under a transaction-scoped advisory
        lock and read what the others committed before numbering, so numbers never collide. Elsewhere
        (SQLite: one gateway process, as a rule) a collision fails on the primary key and is retried.
        """
        for attempt in range(_CLAIM_ATTEMPTS):
            if self._stale:
                self._catch_up()
            try:
                with self._engine.begin() as connection:
                    if self._serialise_in_database:
                        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
                        self._catch_up(connection)
                    start = self._tree.size
                    appended_at = self._clock()
                    for offset, row in enumerate(rows):
                        row["seq"] = start + offset
                        row["appended_at"] = appended_at
                    connection.execute(insert(ENTRIES_TABLE), rows)
            except IntegrityError:
                self._stale = True  # another process took these numbers: read its rows and number again
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            except BaseException:
                self._stale = True  # the commit may or may not have happened
                raise
            return start
        raise AccessLogError(f"could not claim sequence numbers for {len(rows)} entries in {_CLAIM_ATTEMPTS} tries")

    # --- the table -----------------------------------------------------------------------------------

    def refresh(self) -> int:
        """Take in rows committed by other processes; returns the size."""
        with self._write_lock:
            self._catch_up()
            return self._tree.size

    def _catch_up(self, connection: Connection | None = None) -> None:
        """Append to the tree every row at or after its size, checking order and (if set) leaf hashes."""
        if connection is None:
            with self._engine.connect() as own:
                self._catch_up(own)
            return
        expected = self._tree.size
        hashes: list[bytes] = []
        query = (
            select(ENTRIES_TABLE.c.seq, ENTRIES_TABLE.c.leaf_hash, ENTRIES_TABLE.c.data)
            .where(ENTRIES_TABLE.c.seq >= expected)
            .order_by(ENTRIES_TABLE.c.seq)
        )
        for seq, stored_hash, data in connection.execute(query, execution_options={"yield_per": _LOAD_CHUNK}):
            if seq != expected:
                raise AccessLogCorrupted(f"access log table has a gap: entry {expected} is missing (next is {seq})")
            stored = bytes(stored_hash)
            if self._verify and leaf_hash(bytes(data)) != stored:
                raise AccessLogCorrupted(f"access log entry {seq}: stored leaf hash does not match its data")
            hashes.append(stored)
            expected += 1
        with self._tree_lock:
            if self._tree.size == 0 and len(hashes) > 1:
                self._tree = MerkleTree.from_leaf_hashes(hashes)
            else:
                self._tree.extend(hashes)
        self._stale = False

    def leaf_data(self, start: int, stop: int) -> list[bytes]:
        """Leaf data of entries ``[start, stop)`` from the table, checked against the tree's leaf hashes."""
        if not 0 <= start <= stop <= self.size:
            raise ValueError(f"range [{start}, {stop}) out of range 0..{self.size}")
        query = (
            select(ENTRIES_TABLE.c.seq, ENTRIES_TABLE.c.data)
            .where(ENTRIES_TABLE.c.seq >= start, ENTRIES_TABLE.c.seq < stop)
            .order_by(ENTRIES_TABLE.c.seq)
        )
        out: list[bytes] = []
        with self._engine.connect() as connection:
            result = connection.execute(query, execution_options={"yield_per": _LOAD_CHUNK})
            for seq, raw in result:
                data = bytes(raw)
                if seq != start + len(out) or leaf_hash(data) != self.leaf_hash(seq):
                    raise AccessLogCorrupted(f"access log entry {seq} no longer matches the tree")
                out.append(data)
        if len(out) != stop - start:
            raise AccessLogCorrupted(f"access log entries [{start}, {stop}) are missing from the table")
        return out

    def entry(self, index: int) -> Entry:
        """Entry ``index``, read from the table."""
        (data,) = self.leaf_data(index, index + 1)
        return Entry.from_leaf_data(data)

    def indexes_of_request(self, request_id: str) -> list[int]:
        """Leaf indices of the entries logged for ``request_id``."""
        query = (
            select(ENTRIES_TABLE.c.seq).where(ENTRIES_TABLE.c.request_id == request_id).order_by(ENTRIES_TABLE.c.seq)
        )
        with self._engine.connect() as connection:
            return [int(seq) for seq in connection.execute(query).scalars()]

    # --- the tree ------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of committed entries this process knows (see :meth:`refresh`)."""
        with self._tree_lock:
            return self._tree.size

    def root(self, size: int | None = None) -> bytes:
        """RFC 9162 root of the first ``size`` entries (default: all)."""
        with self._tree_lock:
            return self._tree.root(size)

    def leaf_hash(self, index: int) -> bytes:
        with self._tree_lock:
            return self._tree.leaf_hash_at(index)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.3 inclusion proof of entry ``index`` in the tree of ``tree_size`` entries."""
        with self._tree_lock:
            return self._tree.inclusion_proof(index, tree_size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.4 proof that the tree of ``new_size`` entries extends the one of ``old_size``."""
        with self._tree_lock:
            return self._tree.consistency_proof(old_size, new_size)


def _prepare(entries: Sequence[Entry]) -> _Pending:
    """Encode and hash outside the write lock: the committer only numbers and inserts."""
    rows: list[dict[str, Any]] = []
    hashes: list[bytes] = []
    for entry in entries:
        if not isinstance(entry, Entry):
            raise TypeError(f"the access log takes Entry objects, got {type(entry).__name__}")
        data = entry.leaf_data()
        digest = leaf_hash(data)
        hashes.append(digest)
        rows.append({
            "leaf_hash": digest,
            "data": data,
            "accessor_org": entry.accessor_org,
            "record_id": entry.record_id,
            "request_id": entry.request_id,
        })  # fmt: skip
    return _Pending(rows=rows, hashes=hashes)
