"""A real, throw-away PostgreSQL server for the tests: the Debian binaries, a fresh cluster per use.

``PostgresServer`` runs ``initdb`` into a private temporary directory and starts ``postgres`` on a
free loopback port (fsync on, trust authentication on loopback only), creates one database and
exposes its SQLAlchemy ``url``. Stopping shuts the server down and deletes the cluster.

PostgreSQL refuses to run as root, and the sandbox and CI run the tests as root. Then both
``initdb`` and ``postgres`` run as the ``postgres`` OS user (created by the Debian package) via
``subprocess``'s ``user=``/``group=`` (no ``su``/``runuser`` process in between, so the process we
signal is the postmaster itself), and the cluster directory is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg

from tests.support.ports import free_port
from tests.support.server_process import log_tail, retry_on_port_taken, spawn, stop_process, wait_until_ready

BINDIR_ENV = "LEDGER_TEST_PG_BINDIR"
_DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
_INSTALL_HINT = (
    "install the PostgreSQL server: `apt-get install postgresql` (CI's .ci/run does this), "
    f"or point {BINDIR_ENV} at a directory holding initdb and postgres"
)
_BIND_FAILURE = re.compile(r"could not (bind|create listen socket)|Address already in use", re.IGNORECASE)


class PostgresNotInstalled(RuntimeError):
    """The PostgreSQL server binaries are not on this machine."""


class PostgresStartError(RuntimeError):
    """initdb or the server failed; the message carries the end of its log."""


def find_postgres_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``: $LEDGER_TEST_PG_BINDIR, else the newest Debian one."""
    candidates: list[Path] = []
    if configured := os.environ.get(BINDIR_ENV):
        candidates.append(Path(configured))
    else:
        candidates.extend(sorted(Path("/").glob(_DEBIAN_GLOB.lstrip("/")), key=_major_version, reverse=True))
        if on_path := shutil.which("initdb"):
            candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres")):
            return bindir
    looked = ", ".join(str(c) for c in candidates) or _DEBIAN_GLOB
    raise PostgresNotInstalled(f"PostgreSQL server binaries not found (looked in {looked}): {_INSTALL_HINT}")


def _major_version(bindir: Path) -> int:
    try:
        return int(bindir.parent.name)
    except ValueError:
        return -1


class PostgresServer:
    """One PostgreSQL cluster on 127.0.0.1; use as a context manager or call ``start``/``stop``."""

    def __init__(
        self,
        *,
        database: str = "ledger",
        bindir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout_s: float = 30.0,
        start_attempts: int = 3,
    ) -> None:
        self.database = database
        self.host = "127.0.0.1"
        self.port = 0
        self._bindir = bindir
        self._settings = dict(settings or {})
        self._startup_timeout_s = startup_timeout_s
        self._start_attempts = start_attempts
        self._base: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- addresses -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database (psycopg 3 driver), e.g. for ``sqlmodel.create_engine``."""
        return self.url_for(self.database)

    @property
    def dsn(self) -> str:
        """libpq connection string of the database, for ``psycopg.connect``."""
        return self.dsn_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        if self._base is None:
            raise RuntimeError("the server is not started")
        return self._base / "data"

    @property
    def log_path(self) -> Path:
        if self._base is None:
            raise RuntimeError("the server is not started")
        return self._base / "postgres.log"

    # -- life cycle ----------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("the server is already started")
        bindir = self._bindir or find_postgres_bindir()
        run_as = _run_as_kwargs()
        base = Path(tempfile.mkdtemp(prefix="ledger-pg-", dir=_temp_parent(for_other_user=bool(run_as))))
        self._base = base
        try:
            if run_as:
                os.chown(base, run_as["user"], run_as["group"])
            self._initdb(bindir, run_as)
            retry_on_port_taken(
                lambda: self._launch(bindir, run_as),
                attempts=self._start_attempts,
                error=lambda message: PostgresStartError(f"{message}:\n{self._log_tail()}"),
            )
            self.create_database(self.database)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        # SIGINT is PostgreSQL's "fast" shutdown (roll back open sessions, checkpoint, exit), SIGQUIT its
        # "immediate" one; both to the postmaster alone, which stops its backends itself.
        stop_process(process, signals=((signal.SIGINT, 15), (signal.SIGQUIT, 5)), group=False)
        base, self._base = self._base, None
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """Create database ``name`` (owned by ``postgres``); return its SQLAlchemy URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name must be a plain lowercase identifier: {name!r}")
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # a checked identifier, not user input
        return self.url_for(name)

    # -- internals -----------------------------------------------------------------------------------

    def _initdb(self, bindir: Path, run_as: dict[str, Any]) -> None:
        assert self._base is not None
        log = self._base / "initdb.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username=postgres",
                    "--auth=trust",  # the server only listens on loopback and its own socket directory
                    "--encoding=UTF8",
                    "--locale=C",
                    # The cluster is thrown away after the session; syncing its template files only costs
                    # time. The server itself runs with fsync=on.
                    "--no-sync",
                    "--no-instructions",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._base,
                env=_child_env(self._base),
                timeout=120,
                check=False,
                **run_as,
            )
        if result.returncode != 0:
            raise PostgresStartError(f"initdb failed ({result.returncode}):\n{log_tail(log)}")

    def _launch(self, bindir: Path, run_as: dict[str, Any]) -> None:
        assert self._base is not None
        self.port = free_port()
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self._base),  # not /var/run/postgresql: may be absent or shared
            "fsync": "on",
            "synchronous_commit": "on",
            "shared_buffers": "32MB",  # modest: several workers may each run a server
            "max_connections": "50",
            "logging_collector": "off",
            **self._settings,
        }
        command = [str(bindir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        env = _child_env(self._base)
        self._process = spawn(
            command, log_path=self.log_path, cwd=self._base, env=env, parent_death_signal="INT", **run_as
        )
        wait_until_ready(
            self._process,
            name="postgres",
            ready=self._accepts_connections,
            not_yet=(psycopg.OperationalError,),
            log_path=self.log_path,
            timeout_s=self._startup_timeout_s,
            error=PostgresStartError,
            bind_failure=_BIND_FAILURE,
        )

    def _accepts_connections(self) -> bool:
        with psycopg.connect(self.dsn_for("postgres"), connect_timeout=2) as connection:
            connection.execute("SELECT 1")
        return True

    def _log_tail(self) -> str:
        return log_tail(self.log_path) if self._base is not None else ""


def _run_as_kwargs() -> dict[str, Any]:
    """``subprocess`` arguments that drop root to the ``postgres`` user; empty when not root."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresNotInstalled(
            f"running as root, PostgreSQL needs the 'postgres' OS user, which does not exist: {_INSTALL_HINT}"
        ) from None
    # extra_groups=[] drops root's supplementary groups too.
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _temp_parent(*, for_other_user: bool) -> str | None:
    """Where to create the cluster: the usual temp directory, unless the postgres user cannot reach it."""
    parent = Path(tempfile.gettempdir()).resolve()
    if not for_other_user:
        return None
    # Every ancestor must be searchable by "other" (TMPDIR=/root/tmp, say, is not): else use /tmp.
    reachable = all(path.stat().st_mode & 0o001 for path in (parent, *parent.parents))
    return None if reachable else "/tmp"


def _child_env(home: Path) -> dict[str, str]:
    # A clean environment: PG* variables of the developer's shell must not redirect the test server.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C", "TZ": "UTC"}
