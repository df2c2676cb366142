"""Session fixtures for the real servers; a conftest re-exports the ones its tests need::

    from tests.support.servers import postgres_server, postgres_url  # noqa: F401

``postgres_server`` / ``seaweed_server`` yield the server objects; ``postgres_url`` (SQLAlchemy URL
of database ``ledger``) and ``s3_server`` are the short forms most tests want and share the same
servers. Tests using them carry the ``postgres`` / ``s3`` markers, so ``-m "not postgres and not s3"``
runs without either.

Session scope is per pytest-xdist worker: every worker that runs such a test starts its own server
(on its own free ports, so workers never clash). Mark the tests with ``pytest.mark.xdist_group("postgres")``
/ ``xdist_group("seaweedfs")`` so that ``--dist loadgroup`` (the Makefile's mode) keeps them on one
worker and starts each server once. (With pytest 9.2 and pytest-xdist 3.8 that grouping silently does
nothing, pytest-xdist issue #1386; the tests still pass, each worker just starts its own server.)
A missing PostgreSQL fails the fixture with the install command; it is never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer
from tests.support.seaweedfs import SeaweedS3Server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster with database ``ledger``; ``.url`` is its SQLAlchemy URL."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://postgres@127.0.0.1:PORT/ledger``) of the session's server."""
    return postgres_server.url


@pytest.fixture(scope="session")
def seaweed_server() -> Iterator[SeaweedS3Server]:
    """SeaweedFS with its S3 gateway; ``.endpoint_url``, ``.access_key``, ``.secret_key``, ``.client()``."""
    with SeaweedS3Server() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(seaweed_server: SeaweedS3Server) -> SeaweedS3Server:
    """The session's SeaweedFS S3 gateway (the same server as ``seaweed_server``)."""
    return seaweed_server


__all__ = ["postgres_server", "postgres_url", "s3_server", "seaweed_server"]
