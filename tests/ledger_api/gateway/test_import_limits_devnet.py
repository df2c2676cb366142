"""A decompression bomb uploaded to the real gateway: a clear 422 at once, and the gateway's peak memory
stays where it was (issue: a 4 MiB upload holding 1.5 GB of shared strings cost the gateway 30 s and
1.7 GB before its 422; a handful at once exhausted the machine).

The peak is the kernel's high-water mark of the gateway process's resident memory (``VmHWM`` in
/proc/PID/status, proc(5)), read before and after the uploads.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from web3 import Web3

from ledger_api.chain.devnet import Devnet
from ledger_api.chain.transactor import Transactor
from ledger_api.provision import provision
from tests.ledger_api.gateway.conftest import PROPERTY, make_settings
from tests.support.gateway_process import GatewayProcess
from tests.support.xlsx_bombs import shared_strings_bomb

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

UPLOADS = 3


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def test_a_bomb_upload_is_refused_with_422_and_costs_the_gateway_no_memory(devnet: Devnet, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "ledger", devnet.rpc_url)
    keys = provision(settings=settings, transactor=Transactor(w3=Web3(Web3.HTTPProvider(devnet.rpc_url)))).api_keys
    bomb = shared_strings_bomb(tmp_path / "bomb.xlsx", expanded_bytes=400_000_000).read_bytes()
    with GatewayProcess(home=settings.home, rpc_url=devnet.rpc_url) as gateway:
        assert gateway.pid is not None
        before = _peak_kib(gateway.pid)
        answers = [
            httpx.post(
                f"{gateway.url}/v1/import/property.fire_inspections",
                params={"community": "330102002", "file_name": f"inspections-{i}.xlsx"},
                content=bomb,
                headers={"Authorization": f"Bearer {keys[PROPERTY]}"},
                timeout=120,
            )
            for i in range(UPLOADS)
        ]
        after = _peak_kib(gateway.pid)
    for i, answer in enumerate(answers):
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        assert f"inspections-{i}.xlsx: part xl/sharedStrings.xml expands to" in problem["detail"]
        assert "at most 67,108,864" in problem["detail"]
    # Unbounded, each upload decompressed 400 MB of shared strings into the gateway (+450 MB peak).
    assert after - before < 48 * 1024, f"peak {before} KiB before the uploads, {after} KiB after"
