"""The real gateway (``ledger serve``) as a child process, for crash tests.

``GatewayProcess`` runs ``python -m ledger_api.cli serve --port P`` on a ledger home with its own
environment (``LEDGER_HOME``, ``LEDGER_RPC_URL``, a short ``LEDGER_ANCHOR_MAX_WAIT_S``), waits until
``/v1/ready`` answers, and can ``kill()`` it the hard way — SIGKILL to its whole process group, as a
power cut or the OOM killer would — and ``start()`` it again on the same home. The same port is kept
across restarts when it is still free, so clients need not follow it; ``url`` always tells.

Everything the process prints goes to ``log_path`` (appended across restarts), and start-up failures
quote its end.

Also here, for the crash tests: ``Pusher`` threads that keep pushing fresh records and new versions
and log every acknowledged (record_id, version) in an ``AckLog``, and ``check_anchored_exactly_once``,
which checks DESIGN.md invariant 5 from the chain's ``BatchAnchored`` events and the stored manifests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx
from sqlmodel import Session, select

from adapters.canonical import CanonicalRecord, derive_record_id
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.devnet import free_port
from ledger_api.chain.events import iter_events
from ledger_api.chain.rpc import JsonRpc
from ledger_api.crypto.keystore import demo_record_id_key
from ledger_api.index.database import make_engine
from ledger_api.index.models import RecordVersion
from ledger_api.records.leaves import BatchManifest
from ledger_api.settings import Settings
from ledger_api.storage import blob_store_from_settings
from tests.support.server_process import log_tail, spawn, stop_process, wait_until_ready

REPO_ROOT = Path(__file__).resolve().parents[2]

WaitFor = Literal["ready", "listening", "nothing"]


class GatewayStartError(RuntimeError):
    """The gateway exited or did not answer in time; the message carries the end of its log."""


class GatewayProcess:
    """One ``ledger serve`` child process on ``home``; use as a context manager or start/stop it."""

    def __init__(
        self,
        *,
        home: Path,
        rpc_url: str,
        port: int | None = None,
        anchor_max_wait_s: float = 0.2,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.home = Path(home).resolve()
        self.rpc_url = rpc_url
        self.host = host
        self.port = port or free_port()
        self.anchor_max_wait_s = anchor_max_wait_s
        self.extra_env = dict(env or {})
        self.log_path = log_path or self.home / "gateway-process.log"
        self.starts = 0
        self.kills = 0
        self._process: subprocess.Popen[bytes] | None = None

    # --- addresses -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def environment(self) -> dict[str, str]:
        """The child's environment: ours minus any other ``LEDGER_*`` setting, plus this gateway's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update(
            {
                "LEDGER_HOME": str(self.home),
                "LEDGER_RPC_URL": self.rpc_url,
                "LEDGER_ANCHOR_MAX_WAIT_S": str(self.anchor_max_wait_s),
                "LEDGER_DEMO": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    # --- life cycle ----------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, *, wait: WaitFor = "ready", timeout_s: float = 60.0) -> None:
        """Spawn the gateway; return once it is ready (``wait="ready"``), merely answers HTTP
        (``"listening"``: the chain may be down) or at once (``"nothing"``)."""
        if self.running:
            raise RuntimeError(f"the gateway already runs (pid {self.pid})")
        if not _port_free(self.host, self.port):
            self.port = free_port()  # a stray connection or another test took it meanwhile
        self.home.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "ledger_api.cli", "serve", "--host", self.host, "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start #{self.starts + 1}: {' '.join(command)}\n".encode())
        self._process = spawn(command, log_path=self.log_path, cwd=REPO_ROOT, env=self.environment())
        self.starts += 1
        if wait != "nothing":
            self.wait(wait, timeout_s=timeout_s)

    def wait(self, what: Literal["ready", "listening"] = "ready", *, timeout_s: float = 60.0) -> None:
        """Wait until ``/v1/ready`` answers 200 (or, for ``"listening"``, answers at all)."""
        with httpx.Client(timeout=2.0) as client:

            def answers() -> bool:
                return what == "listening" or client.get(f"{self.url}/v1/ready").status_code == 200

            wait_until_ready(
                self._process,
                name="the gateway",
                ready=answers,
                not_yet=(httpx.HTTPError,),
                log_path=self.log_path,
                timeout_s=timeout_s,
                error=GatewayStartError,
                interval_s=0.05,
                state=what,
            )

    def kill(self) -> None:
        """SIGKILL the gateway's process group, as a crash would; nothing runs its shutdown code."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            stop_process(process, signals=(), kill_wait_s=30)
            self.kills += 1
        process.wait(timeout=30)
        self._note(f"--- killed (SIGKILL) pid {process.pid}")

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """Stop the gateway gracefully (SIGTERM: uvicorn stops the worker), SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        stop_process(process, signals=((signal.SIGTERM, timeout_s),), kill_wait_s=30)
        self._note(f"--- stopped pid {process.pid} (status {process.returncode})")

    def restart(self, *, wait: WaitFor = "ready", timeout_s: float = 60.0) -> None:
        """Kill (SIGKILL) if running, then start again on the same home."""
        self.kill()
        self.start(wait=wait, timeout_s=timeout_s)

    # --- diagnostics ---------------------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _note(self, line: str) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"{line}\n".encode())


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# --- pushing while the gateway crashes -----------------------------------------------------------------


class AckLog:
    """Every (record_id, version) the gateway acknowledged with a 2xx, from any pusher thread."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._versions: dict[tuple[str, int], str] = {}  # -> owner organisation
        self._pushes = 0

    def add(self, owner: str, outcomes: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            for outcome in outcomes:
                self._versions[(str(outcome["record_id"]), int(outcome["version"]))] = owner
            self._pushes += 1
            self._lock.notify_all()

    @property
    def pushes(self) -> int:
        with self._lock:
            return self._pushes

    def versions(self) -> dict[tuple[str, int], str]:
        with self._lock:
            return dict(self._versions)

    def wait_for_next(self, *, timeout_s: float) -> bool:
        """Block until one more push is acknowledged; False on timeout."""
        with self._lock:
            seen = self._pushes
            return self._lock.wait_for(lambda: self._pushes > seen, timeout=timeout_s)


class RecordFactory:
    """Fresh canonical records (distinct native ids) made from sample templates, and new versions of
    records already pushed, as JSON documents ready for ``POST /v1/records``."""

    def __init__(self, *, templates: Sequence[CanonicalRecord], tag: str, rng: random.Random) -> None:
        if not templates:
            raise ValueError("no template records")
        self._templates = [t.to_json_dict() for t in templates]
        self._tag = tag
        self._rng = rng
        self._made = 0
        self._known: dict[str, dict[str, Any]] = {}  # record_id -> latest document pushed
        self._revisions: dict[str, int] = {}

    def fresh(self) -> dict[str, Any]:
        template = self._templates[self._made % len(self._templates)]
        document = json.loads(json.dumps(template))
        native_id = f"{template['source']['native_id']}~{self._tag}-{self._made}"
        self._made += 1
        document["source"]["native_id"] = native_id
        owner = document["owner_org"]
        # Provisioned organisations have the demo's published record-id keys: the gateway assigns this id.
        document["record_id"] = derive_record_id(demo_record_id_key(owner), owner, document["record_type"], native_id)
        self._known[document["record_id"]] = document
        return document

    def new_version(self, exclude: set[str]) -> dict[str, Any] | None:
        """A changed copy of a record made earlier (so the gateway stores the next version)."""
        for record_id in self._rng.sample(sorted(self._known), min(8, len(self._known))):
            if record_id in exclude:
                continue
            revision = self._revisions.get(record_id, 0) + 1
            self._revisions[record_id] = revision
            document = json.loads(json.dumps(self._known[record_id]))
            document["attributes"]["crash_test_revision"] = revision
            self._known[record_id] = document
            return document
        return None

    def batch(self, size: int, *, update_share: float) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = []
        ids: set[str] = set()
        for _ in range(size):
            document = self.new_version(ids) if self._rng.random() < update_share else None
            document = document or self.fresh()
            ids.add(document["record_id"])
            documents.append(document)
        return documents


@dataclass
class PushStats:
    acknowledged_pushes: int = 0
    acknowledged_records: int = 0
    failed_pushes: int = 0
    retried_pushes: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    """Why pushes failed: an exception class name or an HTTP status."""


class Pusher(threading.Thread):
    """Pushes batches of 1..max_batch records for one organisation until told to stop.

    A failed push (connection refused or reset, timeout, 5xx) is sometimes retried with the very same
    batch, as a department system would, and sometimes abandoned: then its records may or may not be
    stored, and only a later 2xx (``unchanged`` included) makes them acknowledged.
    """

    def __init__(
        self,
        *,
        gateway: GatewayProcess,
        owner: str,
        token: str,
        factory: RecordFactory,
        rng: random.Random,
        acks: AckLog,
        stop: threading.Event,
        max_batch: int = 200,
        update_share: float = 0.2,
        retry_share: float = 0.5,
        pause_s: float = 0.0,
    ) -> None:
        super().__init__(name=f"pusher-{owner}", daemon=True)
        self.gateway = gateway
        self.owner = owner
        self.token = token
        self.factory = factory
        self.rng = rng
        self.acks = acks
        self.stop_event = stop
        self.max_batch = max_batch
        self.update_share = update_share
        self.retry_share = retry_share
        self.pause_s = pause_s
        self.stats = PushStats()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, never swallowed
            self.error = exc

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        batch: list[dict[str, Any]] | None = None
        with httpx.Client(timeout=30.0, headers=headers) as client:
            while not self.stop_event.is_set():
                if batch is None:
                    batch = self.factory.batch(self.rng.randint(1, self.max_batch), update_share=self.update_share)
                try:
                    answer = client.post(f"{self.gateway.url}/v1/records", json={"records": batch})
                    reason = str(answer.status_code)
                except httpx.HTTPError as exc:
                    answer = None
                    reason = type(exc).__name__
                if answer is not None and 200 <= answer.status_code < 300:
                    outcomes = answer.json()["records"]
                    self.acks.add(self.owner, outcomes)
                    self.stats.acknowledged_pushes += 1
                    self.stats.acknowledged_records += len(outcomes)
                    for outcome in outcomes:
                        self.stats.statuses[outcome["status"]] = self.stats.statuses.get(outcome["status"], 0) + 1
                    batch = None
                    if self.pause_s:
                        self.stop_event.wait(self.pause_s)
                    continue
                if answer is not None and answer.status_code not in (409, 500, 502, 503, 504):
                    raise AssertionError(f"push refused with {answer.status_code}: {answer.text[:500]}")
                self.stats.failed_pushes += 1
                self.stats.failures[reason] = self.stats.failures.get(reason, 0) + 1
                if self.rng.random() < self.retry_share:
                    self.stats.retried_pushes += 1
                else:
                    batch = None
                self.stop_event.wait(self.rng.uniform(0.02, 0.15))


# --- checking the outcome against the chain and storage ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AnchorCheck:
    batches: int
    anchored_versions: int
    acknowledged: int
    indexed: int


def _owner_name(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("ascii")


def check_anchored_exactly_once(
    *,
    settings: Settings,
    deployment: Deployment,
    acknowledged: Mapping[tuple[str, int], str],
    owners: Sequence[str],
) -> AnchorCheck:
    """DESIGN.md invariant 5, from the chain and the storage (the index is only used to find blobs).

    * every acknowledged (record_id, version) is in the index, and its blob is in storage and hashes
      to the index's ``blob_key``;
    * every ``BatchAnchored`` event of the owners (``eth_getLogs`` over the whole deployment) names a
      manifest in storage that rebuilds the anchored RFC 9162 root and size;
    * no owner anchored one root twice, no (record_id, version) is in two anchored manifests, and every
      acknowledged one is in exactly one; so is every version the index holds (the outbox drained).
    """
    engine = make_engine(settings.index_url)
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(RecordVersion.record_id, RecordVersion.version, RecordVersion.owner_org, RecordVersion.blob_key)
            ).all()
    finally:
        engine.dispose()
    indexed = {(rid, ver): (owner, key) for rid, ver, owner, key in rows}
    missing = sorted(set(acknowledged) - set(indexed))
    assert not missing, f"{len(missing)} acknowledged record versions are not in the index, e.g. {missing[:5]}"
    wrong_owner = [k for k, owner in acknowledged.items() if indexed[k][0] != owner]
    assert not wrong_owner, f"acknowledged versions indexed under another owner: {wrong_owner[:5]}"

    blobs = blob_store_from_settings(settings.blob_store_url)
    for key in acknowledged:
        blob_key = indexed[key][1]
        data = blobs.get(blob_key, verify=False)
        assert hashlib.sha256(data).hexdigest() == blob_key, f"blob of {key} does not hash to {blob_key}"

    rpc = JsonRpc(url=settings.rpc_url)
    try:
        events = list(
            iter_events(
                rpc,
                contract="RecordAnchors",
                address=deployment.address("RecordAnchors"),
                from_block=deployment.block_number,
                names=("BatchAnchored",),
            )
        )
    finally:
        rpc.close()
    wanted = set(owners)
    roots: Counter[tuple[str, str]] = Counter()
    anchored: Counter[tuple[str, int]] = Counter()
    for event in events:
        owner = _owner_name(event.args["ownerOrg"])
        if owner not in wanted:
            continue
        root = bytes(event.args["root"]).hex()
        roots[(owner, root)] += 1
        manifest = BatchManifest.from_bytes(blobs.get(bytes(event.args["manifestHash"]).hex()))
        assert manifest.owner_org == owner, f"manifest of {root} names {manifest.owner_org}, anchored by {owner}"
        assert manifest.root().hex() == root, f"manifest of batch {root} rebuilds another root"
        assert len(manifest.leaves) == int(event.args["size"]), f"batch {root}: size differs from the manifest"
        for leaf in manifest.leaves:
            key = (leaf.record_id, leaf.version)
            anchored[key] += 1
            if key in indexed:
                assert indexed[key][1] == leaf.ciphertext_hash, f"{key}: anchored hash differs from the blob key"
    twice = [r for r, n in roots.items() if n > 1]
    assert not twice, f"roots anchored twice by the same owner: {twice[:5]}"
    duplicated = {k: n for k, n in anchored.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} record versions anchored more than once: {list(duplicated.items())[:5]}"
    not_anchored = sorted(k for k in acknowledged if anchored[k] != 1)
    assert not not_anchored, (
        f"{len(not_anchored)} of {len(acknowledged)} acknowledged record versions are not anchored on chain, "
        f"e.g. {not_anchored[:5]}"
    )
    stray = sorted(k for k in indexed if anchored[k] != 1)
    assert not stray, f"{len(stray)} indexed record versions are not anchored on chain, e.g. {stray[:5]}"
    return AnchorCheck(
        batches=sum(roots.values()),
        anchored_versions=len(anchored),
        acknowledged=len(acknowledged),
        indexed=len(indexed),
    )


def outbox_drained(settings: Settings) -> tuple[int, int]:
    """(record versions not yet in a batch, batches not yet anchored), read straight from the index."""
    path = settings.index_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        (unbatched,) = db.execute("SELECT count(*) FROM record_versions WHERE batch_id IS NULL").fetchone()
        (unanchored,) = db.execute("SELECT count(*) FROM anchor_batches WHERE state != 'anchored'").fetchone()
    return int(unbatched), int(unanchored)


def batches_in_flight(settings: Settings) -> int:
    """Batches formed or sent but not yet anchored (the worker is busy anchoring)."""
    path = settings.index_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        (count,) = db.execute("SELECT count(*) FROM anchor_batches WHERE state != 'anchored'").fetchone()
    return int(count)


def outbox_report(settings: Settings) -> str:
    """The batches not yet anchored and their signers' nonces on chain: what to look at when the outbox
    does not drain."""
    path = settings.index_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        rows = db.execute(
            "SELECT id, owner_org, signer, state, nonce, attempts, tx_hash, sent_at FROM anchor_batches "
            "WHERE state != 'anchored' ORDER BY signer, nonce"
        ).fetchall()
        (unbatched,) = db.execute("SELECT count(*) FROM record_versions WHERE batch_id IS NULL").fetchone()
    lines = [f"{unbatched} record versions in no batch; batches not anchored:"]
    rpc = JsonRpc(url=settings.rpc_url, timeout_s=2)
    try:
        for row in rows:
            try:
                nonces = f"chain nonce {rpc.nonce(row[2], 'latest')}/{rpc.nonce(row[2], 'pending')}"
            except Exception as exc:
                nonces = f"chain: {exc}"
            lines.append(f"  {row} {nonces}")
    finally:
        rpc.close()
    return "\n".join(lines)
