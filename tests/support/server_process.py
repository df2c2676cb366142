"""How the tests run a real server process: one way for PostgreSQL, SeaweedFS and the gateway.

Every server the tests start goes through the same life cycle:

1. **Ports** below the kernel's ephemeral range (:mod:`tests.support.ports`), chosen by the caller.
   Another process (a parallel pytest-xdist worker: each worker starts its own servers) can take a port
   between the probe and the bind; the server then fails with :class:`PortTaken` and
   :func:`retry_on_port_taken` starts it again on fresh ports.
2. **Start** (:func:`spawn`): its own process group (a Ctrl-C in the terminal reaches pytest, not the
   server; stopping reaches every child), output into a log file, and a parent-death signal so that a
   server never outlives a killed test run.
3. **Wait until ready** (:func:`wait_until_ready`): a probe the server must pass, the process watched
   meanwhile (an early exit is reported with the end of its log, a bind failure as :class:`PortTaken`).
4. **Stop** (:func:`stop_process`): signals in turn, each given time to work, then SIGKILL to the group.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


class PortTaken(Exception):
    """The server could not bind a port: another process took it after we chose it."""


def retry_on_port_taken(
    launch: Callable[[], None],
    *,
    attempts: int,
    cleanup: Callable[[], None] = lambda: None,
    error: Callable[[str], Exception],
) -> None:
    """Run ``launch`` (which chooses fresh ports each time) until it does not raise :class:`PortTaken`;
    ``cleanup`` undoes a failed attempt. After ``attempts`` failures raise ``error(message)``."""
    for attempt in range(1, attempts + 1):
        try:
            launch()
            return
        except PortTaken:
            cleanup()
            if attempt == attempts:
                raise error(f"no free port after {attempt} attempts") from None


def spawn(
    command: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str],
    parent_death_signal: str | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own process group, appending its output to ``log_path``.

    ``parent_death_signal`` (e.g. ``"KILL"``) is sent to the server if the test process dies (kill -9, a CI
    timeout), through ``setpriv --pdeathsig`` when the machine has it.
    """
    argv = list(command)
    setpriv = shutil.which("setpriv") if parent_death_signal else None
    if setpriv:
        argv = [setpriv, f"--pdeathsig={parent_death_signal}", "--", *argv]
    with log_path.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            **popen,
        )


def wait_until_ready(
    process: subprocess.Popen[bytes] | None,
    *,
    name: str,
    ready: Callable[[], bool],
    not_yet: tuple[type[Exception], ...],
    log_path: Path,
    timeout_s: float,
    error: Callable[[str], Exception],
    bind_failure: re.Pattern[str] | None = None,
    interval_s: float = 0.1,
    state: str = "ready",
) -> None:
    """Return once ``ready()`` is true. ``ready`` raising one of ``not_yet`` means "try again"; the process
    exiting first raises :class:`PortTaken` when its log matches ``bind_failure``, else ``error(...)``, as
    does the timeout. Messages carry the end of the server's log."""
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while True:
        code = None if process is None else process.poll()
        if process is None or code is not None:
            log = log_tail(log_path)
            if bind_failure is not None and bind_failure.search(log):
                raise PortTaken
            raise error(f"{name} exited with status {code}:\n{log}")
        try:
            if ready():
                return
        except not_yet as exc:
            last_error = str(exc)
        if time.monotonic() > deadline:
            why = f" ({last_error})" if last_error else ""
            raise error(f"{name} was not {state} within {timeout_s:.0f} s{why}:\n{log_tail(log_path)}")
        time.sleep(interval_s)


def stop_process(
    process: subprocess.Popen[bytes] | None,
    *,
    signals: Sequence[tuple[signal.Signals, float]],
    group: bool = True,
    kill_wait_s: float = 10.0,
) -> None:
    """Send each ``(signal, seconds)`` in turn (to the process group, or with ``group=False`` to the process
    alone) and wait that long for the exit; then SIGKILL the whole group."""
    if process is None or process.poll() is not None:
        return
    for signum, timeout_s in signals:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
        try:
            process.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=kill_wait_s)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a server's log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
