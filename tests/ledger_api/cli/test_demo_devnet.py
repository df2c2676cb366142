"""``ledger demo`` end to end, as `make demo` runs it: twice on one ledger home, then on a devnet it finds
running with no samples beside the repository, then failing half-way; nothing it started is left behind."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger_api.chain.devnet import free_port
from tests.conftest import SHARED_DIR

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.xdist_group("devnet")]

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ledger-home"


@pytest.fixture
def ports() -> tuple[int, int]:
    """(devnet, gateway): free ports, so the demo touches neither :8545 nor :8000 of this machine."""
    return free_port(), free_port()


@pytest.fixture
def ledger(home: Path, ports: tuple[int, int], tmp_path: Path) -> Run:
    # Only our own LEDGER_* settings: the repository's .ledger/ and any developer setting stay out of it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_HOME=str(home), LEDGER_DEVNET_PORT=str(ports[0]), LEDGER_PORT=str(ports[1]))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ledger_api.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def anvils_of(home: Path) -> list[int]:
    """Pids of anvil processes whose command line names this home's state file."""
    state = str(home / "devnet" / "anvil-state.json").encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes()
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if state in command and b"anvil" in command and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            pids.append(int(proc.name))
    return pids


def gateway_port(output: str) -> int:
    found = re.search(r"serving http://127\.0\.0\.1:(\d+)/v1", output)
    assert found, output
    return int(found.group(1))


def grant_ids(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"^    grant #(\d+): PS-XIHU-01 -> CM-CUIYUAN-01", output, re.MULTILINE)]


def assert_story(output: str) -> None:
    """The story's key lines, each with where it can be checked."""
    for expected in (
        r"PS-XIHU-01 +anchored: batch root [0-9a-f]{64} \(\d+ records\) in block \d+, tx 0x[0-9a-f]{64}",
        r"PM-LVCHENG-01 +anchored: batch root [0-9a-f]{64}",
        r"CM-CUIYUAN-01 +anchored: batch root [0-9a-f]{64}",
        r"signed by the police station's own key, block \d+, tx 0x[0-9a-f]{64}",
        r"200 OK: incident of ",
        # The region code only: the rest is the birth date, the gender digit and a check on both (issue 11).
        r"masked for elderly care: subjects\[\d+\]\.id_number = \d{6}\*{12}\n",
        r"masked for elderly care: subjects\[\d+\]\.birth_date = None",
        r"access-log entry #\d+ \(grant #\d+, purpose elderly_care",
        r"record proof: +GET http://127\.0\.0\.1:\d+/v1/records/[0-9a-f]{64}/proof",
        r"access-entry proof: GET http://127\.0\.0\.1:\d+/v1/access-log/entries/\d+/proof",
        r"included in access-log head #\d+ \(log size \d+\), anchored in block \d+",
        r"refused: 404 Not found: no record [0-9a-f]{64}",
        r"revoked in block \d+, tx 0x[0-9a-f]{64}",
        r"refused at once: 403 Not allowed: grant \d+ does not cover this read: REVOKED",
        r"subscribed: GET http://127\.0\.0\.1:\d+/v1/feed",
        r"the feed delivered incident [0-9a-f]{16}… \(block \d+\) \d+\.\d\d s after the push",
        r"access-log heads \(anchored on chain\): GET http://127\.0\.0\.1:\d+/v1/access-log/heads",
        r"ledger grants list --all",
        r"200 OK, logged as emergency read #\d+ \(emergency=True\)",
        r"Stopped the gateway\.",
        r"emergency reads listed for review: [1-9]",
        r"\$ ledger audit verify --rpc http://127\.0\.0\.1:\d+\n.*\n +records verified: [1-9][\d,]*; access entries "
        r"verified: [1-9][\d,]*; tree heads: [1-9][\d,]*; reads covered: [1-9][\d,]*",
        r"\$ ledger audit export --rpc http://127\.0\.0\.1:\d+ --out \S+demo-audit\.bundle\n +wrote ",
        r"\$ ledger audit verify --bundle \S+demo-audit\.bundle\n(.*\n)+? +OK: no discrepancies",
        r"check: open \S+audit-report\.html",
        # collected twice: the built exports' residents (15- and 18-digit numbers) and flats, counts only
        r"CM-CUIYUAN-01: of its 60 people, PS-XIHU-01 already holds 36 \(60\.0 %\); today no grant covers them",
        r"CM-CUIYUAN-01: of its 60 people, PS-XIHU-01 already holds 36 \(60\.0 %\); today grant #\d+ covers 30",
        r"could ask PM-LVCHENG-01 for a grant \(flats in 330102002\) instead of collecting them again",
        r"\$ ledger audit overlap --rpc http://127\.0\.0\.1:\d+\n(.*\n)+? +CM-CUIYUAN-01 +PS-XIHU-01 +60 +[\d,]+ +36 "
        r"+60\.0 %",
        r"Demo finished\.",
    ):
        assert re.search(expected, output), f"missing {expected!r} in:\n{output}"


def test_demo_runs_twice_on_one_home_and_leaves_nothing_running(
    ledger: Run, home: Path, ports: tuple[int, int]
) -> None:
    if not (SHARED_DIR / "samples").is_dir():
        pytest.fail(f"the shared samples are missing ({SHARED_DIR / 'samples'})")
    first = ledger("demo")
    assert first.returncode == 0, first.stderr + first.stdout
    assert_story(first.stdout)
    assert re.search(r"started devnet at http://127\.0\.0\.1:\d+, chain 31337", first.stdout)
    assert "from their sample exports in" in first.stdout
    assert "POST /v1/records: 294 created" in first.stdout  # the police's valid, unique incidents
    assert "POST /v1/records: 2000 created" in first.stdout
    assert "Stopped the devnet this demo started" in first.stdout
    assert "Traceback" not in first.stderr
    assert not listening(gateway_port(first.stdout))
    assert not listening(ports[0])
    assert anvils_of(home) == []

    second = ledger("demo")
    assert second.returncode == 0, second.stderr + second.stdout
    assert_story(second.stdout)
    assert "reused: " in second.stdout
    assert "nothing to change: already registered" in second.stdout
    # The exports come back unchanged; the grants are new ones.
    for count in (294, 2000, 120):
        assert f"POST /v1/records: {count} unchanged" in second.stdout
    assert min(grant_ids(second.stdout)) > max(grant_ids(first.stdout))
    assert not listening(gateway_port(second.stdout))
    assert not listening(ports[0])
    assert anvils_of(home) == []
    # The auditor's commands ran on both runs' trail and found it clean; the report is where it says.
    assert (home / "demo-audit.bundle").is_file()
    assert (home / "audit-report" / "audit-report.html").is_file()


def test_demo_leaves_a_running_devnet_running_and_falls_back_to_built_in_exports(
    ledger: Run, home: Path, ports: tuple[int, int], tmp_path: Path
) -> None:
    assert ledger("devnet", "up").returncode == 0
    try:
        result = ledger("demo", "--samples", str(tmp_path / "no-samples-here"))
        assert result.returncode == 0, result.stderr + result.stdout
        assert_story(result.stdout)
        assert re.search(r"reusing running devnet at http://127\.0\.0\.1:\d+", result.stdout)
        assert "from built-in exports" in result.stdout
        assert "POST /v1/records: 3 created" in result.stdout
        assert "Left the devnet running, as it was found." in result.stdout
        assert not listening(gateway_port(result.stdout))
        assert listening(ports[0])
        assert len(anvils_of(home)) == 1
    finally:
        ledger("devnet", "down")
    assert anvils_of(home) == []


def test_a_failing_step_is_one_line_and_everything_is_stopped(
    ledger: Run, home: Path, ports: tuple[int, int], tmp_path: Path
) -> None:
    broken = tmp_path / "broken-samples"
    for path, content in (
        ("police/incidents_2025Q1.csv", b"not,an,incident,export\r\n1,2,3,4\r\n"),
        ("property/access_events.jsonl", b""),
        ("committee/hazard_reports.json", b"[]"),
    ):
        (broken / path).parent.mkdir(parents=True, exist_ok=True)
        (broken / path).write_bytes(content)
    result = ledger("demo", "--samples", str(broken))
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.match(r"ledger: error: demo step \d+ \(The three organisations push records .*\) failed: ", lines[0])
    assert "incidents_2025Q1.csv" in lines[0]
    assert "Stopped the gateway." in result.stdout
    assert "Stopped the devnet this demo started" in result.stdout
    assert not listening(ports[1])
    assert not listening(ports[0])
    assert anvils_of(home) == []
