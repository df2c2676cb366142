"""The session's PostgreSQL is a real server: SQLAlchemy/psycopg connect, DDL and transactions work."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import create_engine

from tests.support.postgres import BINDIR_ENV, PostgresNotInstalled, PostgresServer, find_postgres_bindir


def test_missing_binaries_fail_with_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BINDIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(PostgresNotInstalled, match="apt-get install postgresql"):
        find_postgres_bindir()
    with pytest.raises(PostgresNotInstalled), PostgresServer():
        pass


@pytest.mark.postgres
@pytest.mark.xdist_group("postgres")
def test_connect_create_table_and_transactions(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert postgres_url.endswith("/ledger")
    metadata = sa.MetaData()  # a private one: the project's SQLModel metadata is not ours to touch
    table = sa.Table(
        "storage_smoke",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("blob_key", sa.String(64), nullable=False, unique=True),
    )
    engine = create_engine(postgres_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            assert connection.execute(sa.text("SHOW fsync")).scalar_one() == "on"
            assert int(connection.execute(sa.text("SHOW server_version_num")).scalar_one()) >= 150000
            connection.execute(table.insert(), [{"blob_key": "a" * 64}, {"blob_key": "b" * 64}])

        def failing_transaction() -> None:
            with engine.begin() as connection:
                connection.execute(table.insert(), [{"blob_key": "c" * 64}])
                connection.execute(table.insert(), [{"blob_key": "a" * 64}])  # duplicate: all of it rolls back

        with pytest.raises(sa.exc.IntegrityError):
            failing_transaction()

        with engine.connect() as connection:  # a new connection sees exactly the committed rows
            rows = connection.execute(sa.select(table.c.blob_key).order_by(table.c.blob_key)).scalars().all()
        assert rows == ["a" * 64, "b" * 64]
    finally:
        metadata.drop_all(engine)
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.xdist_group("postgres")
def test_create_database_gives_an_isolated_database(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("storage_isolated")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT current_database()")).scalar_one() == "storage_isolated"
    finally:
        engine.dispose()
