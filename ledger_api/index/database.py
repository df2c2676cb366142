"""Engines for the index: SQLite in WAL mode (default) or PostgreSQL, chosen by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, create_engine

from ledger_api.index import models  # noqa: F401  (registers the tables on SQLModel.metadata)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    """An engine with the durability settings the write path relies on, tables created."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A file database gets a pool as large as the gateway's concurrency: past the pool size every
        # checkout opens a new connection (and runs the pragmas below), costlier than the read it serves.
        on_file = url.startswith("sqlite:///") and path not in ("", ":memory:")
        pool: dict[str, Any] = {"pool_size": 32, "max_overflow": 32} if on_file else {}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    SQLModel.metadata.create_all(engine)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets readers run beside the writer; synchronous=FULL makes a commit durable before it
    # returns, which the 2xx answer to a push depends on (DESIGN.md invariant 5).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
