"""kill -9 of a process that appends access entries while its anchorer runs: nothing durable is lost.

DESIGN.md invariant 4: once ``append`` returned (the gateway may release the read), the entry is
"made durable so that it is guaranteed to be anchored even if the gateway dies at that instant". A
child process (``crash_appender``) appends from two threads and prints every entry whose append
returned; the test SIGKILLs it at random moments (while it is starting, right after start, while a
tree head is formed or its transaction signed but not yet anchored, or at a random instant) and
starts it again on the same database and storage. At the end an anchorer drains what is left, and
every printed entry must be, at its index, in a tree head anchored on chain and in a segment that the
auditor opens from storage, checked from the chain and the storage only (``audit_access_log``), not
from the index.

The RNG is seeded; the seed is printed (``-s``) and ``LEDGER_CRASH_SEED`` replays one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from ledger_api.accesslog import AccessLog, TreeHeadAnchorer, TreeHeadSettings, audit_access_log
from ledger_api.index.database import make_engine, sqlite_url
from ledger_api.merkle import leaf_hash
from ledger_api.provision import demo_private_key
from ledger_api.storage.local import LocalBlobStore
from tests.conftest import REPO_ROOT
from tests.ledger_api.accesslog.chain_support import AUDITOR, GATEWAY_ID, Chain

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.xdist_group("devnet")]

KILLS = 12
MOMENTS = ("while_starting", "right_after_ready", "during_anchoring", "random", "during_anchoring", "random")


class Child:
    """One life of the appender; collects the ``index hash`` lines it printed before it died."""

    def __init__(self, config: dict[str, object]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.ledger_api.accesslog.crash_appender", json.dumps(config)],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.acked: dict[int, str] = {}
        self.ready = threading.Event()
        self.stderr = ""
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in _complete_lines(stream):
            if line.startswith("ready"):
                self.ready.set()
                continue
            index, digest = line.split()
            self.acked[int(index)] = digest

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the child's own process group, by its id
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()[-4000:]


def _complete_lines(stream: IO[str]) -> Iterator[str]:
    """Lines that ended with a newline: a line cut by the kill was never fully reported."""
    for line in stream:
        if line.endswith("\n"):
            yield line.rstrip("\n")


def _wait_for_head_in_flight(db: Path, state: str, timeout_s: float = 5.0) -> bool:
    """Until a head is formed (segment stored or not) or its transaction signed, not yet anchored."""
    connection = sqlite3.connect(db, timeout=30)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                row = connection.execute("SELECT 1 FROM access_log_heads WHERE state = ? LIMIT 1", (state,)).fetchone()
            except sqlite3.OperationalError:
                row = None  # not created yet
            if row is not None:
                return True
            time.sleep(0.001)
        return False
    finally:
        connection.close()


def crash_seed() -> int:
    configured = os.environ.get("LEDGER_CRASH_SEED")
    return int(configured) if configured else random.SystemRandom().randrange(2**32)


def test_kill_9_while_appending_and_anchoring_loses_no_entry(
    chain: Chain, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    seed = crash_seed()
    record_property("crash_seed", seed)
    print(f"\naccess-log crash test: seed {seed} (replay with LEDGER_CRASH_SEED={seed})")
    rng = random.Random(seed)
    db, blob_root = tmp_path / "index.db", tmp_path / "blobs"
    config: dict[str, object] = {
        "db": str(db),
        "blobs": str(blob_root),
        "rpc_url": chain.rpc.url,
        "contract": chain.contract,
        "gateway_key": [GATEWAY_ID, 0, chain.gateway_public.hex()],
        "auditors": {org: [index, key.hex()] for org, (index, key) in chain.auditors.items()},
    }
    acked: dict[int, str] = {}
    moments: list[str] = []
    started = time.monotonic()
    for life in range(KILLS):
        moment = MOMENTS[life] if life < len(MOMENTS) else rng.choice(MOMENTS)
        child = Child(config)
        if moment == "while_starting":
            time.sleep(rng.uniform(0.0, 1.5))  # mid-import, mid-rebuild, or just as it begins
        else:
            assert child.ready.wait(60), "the appender did not start"
            if moment == "random":
                time.sleep(rng.uniform(0.05, 1.2))
            elif moment == "during_anchoring":
                time.sleep(rng.uniform(0.05, 0.5))
                state = ("assigned", "signed")[sum(m.startswith("during_anchoring") for m in moments) % 2]
                if _wait_for_head_in_flight(db, state):
                    moment = f"{moment}:{state}"
        child.kill()
        moments.append(moment)
        for index, digest in child.acked.items():
            assert acked.setdefault(index, digest) == digest, f"seed {seed}: index {index} was handed out twice"
        assert child.process.returncode == -signal.SIGKILL, f"seed {seed}: the appender died by itself:\n{child.stderr}"

    # A last life of the gateway: the anchorer finishes whatever was durable.
    engine = make_engine(sqlite_url(db))
    log = AccessLog(engine)
    blobs = LocalBlobStore(root=blob_root)
    anchorer = TreeHeadAnchorer(
        log=log,
        blobs=blobs,
        writer=chain.writer(),
        gateway_key=(GATEWAY_ID, 0, chain.gateway_public),
        auditors=chain.auditors,
        settings=TreeHeadSettings(max_wait_s=0.0, poll_s=0.01, backoff_max_s=0.2),
    )
    assert anchorer.drain(timeout_s=60), f"seed {seed}: {anchorer.status()}"

    # Checked from the chain and the storage alone.
    writer = chain.writer()
    heads = writer.heads()
    audit = audit_access_log(
        writer, blobs, org_id=AUDITOR.org_id, key_index=0, private_key=demo_private_key(AUDITOR.org_id)
    )
    assert audit.ok, f"seed {seed}: {audit.problems}"
    assert heads[-1].size == audit.size == log.size
    assert max(acked) < audit.size
    missing = [i for i, digest in acked.items() if leaf_hash(audit.leaf_data[i]).hex() != digest]
    assert not missing, f"seed {seed}: acknowledged entries not anchored as acknowledged: {missing[:10]}"
    elapsed = time.monotonic() - started
    print(
        f"access-log crash test: seed {seed}, {KILLS} kills {moments}, {len(acked)} acknowledged entries, "
        f"{log.size} durable, {len(heads)} heads on chain, {len(audit.extra_segments)} spare segments, {elapsed:.0f}s"
    )
    assert len(acked) > 200, f"seed {seed}: too few acknowledged entries to mean anything"
    engine.dispose()
