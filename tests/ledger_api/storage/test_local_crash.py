"""Crash safety of the local store: a writer SIGKILLed at random moments never loses an acknowledged
blob and never exposes a partial one under a valid key.

SIGKILL stops the process at any instruction (inside ``write``, between temp file and rename, inside
``put_many``'s barrier); it does not drop the page cache as a power cut would. It therefore checks
atomicity and the "acknowledged means stored" contract; the fsync ordering that carries them across a
power cut is argued in ``ledger_api/storage/local.py``.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger_api.storage import LocalBlobStore, is_valid_key

REPO_ROOT = Path(__file__).resolve().parents[3]
WRITER = Path(__file__).with_name("crash_writer.py")
ROUNDS = 10


def _run_and_kill(root: Path, seed: int, barrier: str, delay_s: float) -> set[str]:
    """Start the writer, let it write for ``delay_s``, SIGKILL it; return the keys it acknowledged."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    with subprocess.Popen(
        [sys.executable, str(WRITER), str(root), str(seed), barrier],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    ) as child:
        try:
            assert child.stdout is not None
            ready = child.stdout.readline()
            assert ready == b"ready\n", f"writer failed to start: {ready!r}"
            time.sleep(delay_s)
            child.send_signal(signal.SIGKILL)
            output = child.stdout.read()
        finally:
            child.kill()
    assert child.returncode == -signal.SIGKILL, "the writer must die by SIGKILL, not by an error of its own"
    # A line cut short by the kill has no newline, or is not 64 hex digits: it was never acknowledged.
    lines = output.split(b"\n")[:-1]
    return {text for text in (line.decode(errors="replace") for line in lines) if is_valid_key(text)}


def _files_under_valid_names(root: Path) -> list[Path]:
    return [Path(d) / name for d, _, names in os.walk(root) for name in names if is_valid_key(name)]


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path: Path) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    root = tmp_path / "blobs"
    acknowledged: set[str] = set()
    temp_files_seen = 0
    for round_no in range(ROUNDS):
        barrier = ("fsync", "syncfs")[round_no % 2]
        keys = _run_and_kill(root, rng.randrange(1 << 32), barrier, delay_s=rng.uniform(0.0, 0.4))
        acknowledged |= keys

        store = LocalBlobStore(root=root)  # a fresh process's view, as after a restart
        context = f"seed {seed}, round {round_no} ({barrier})"
        for key in acknowledged:
            assert store.verify(key), f"{context}: acknowledged blob {key} is damaged"
        for path in _files_under_valid_names(root):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest == path.name, f"{context}: partial or foreign content visible under {path}"
            assert path == store.path_for(path.name), f"{context}: blob at the wrong place: {path}"
        assert acknowledged <= set(store.iter_keys()), context

        temp_files_seen += len(list(store.iter_temp_files()))
        store.remove_stale_temp_files(older_than_s=0)  # the writer is dead: every temp file is stray
        assert list(store.iter_temp_files()) == [], context

    assert acknowledged, f"seed {seed}: the writer never acknowledged a blob; the test proved nothing"
    print(f"crash test: seed {seed}, {len(acknowledged)} blobs acknowledged, {temp_files_seen} stray temp files")
