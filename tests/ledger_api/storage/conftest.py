"""Storage fixtures: a real SeaweedFS (``s3_server``) and a real PostgreSQL (``postgres_url``), each
started once per test session (per xdist worker), from :mod:`tests.support.servers`."""

from __future__ import annotations

from tests.support.servers import postgres_server, postgres_url, s3_server, seaweed_server  # noqa: F401
