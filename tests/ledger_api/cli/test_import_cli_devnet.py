"""``ledger import --json`` against a real gateway: how many records were created, got a new version or
were unchanged, so that re-importing an export shows at a glance that it created nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from ledger_api.chain.devnet import Devnet
from ledger_api.chain.transactor import Transactor
from ledger_api.provision import provision
from tests.conftest import REPO_ROOT, SHARED_DIR
from tests.ledger_api.gateway.conftest import POLICE, make_settings
from tests.support.gateway_process import GatewayProcess

pytestmark = [pytest.mark.devnet, pytest.mark.slow]


def _import(gateway: GatewayProcess, api_key: str, export: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "ledger_api.cli", "import", "--adapter", "police.key_persons", str(export),
         "--community", "330102001", "--gateway", gateway.url, "--json"],
        cwd=REPO_ROOT, env={**gateway.environment(), "LEDGER_API_KEY": api_key},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_import_json_counts_created_new_version_and_unchanged(devnet: Devnet, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "ledger", devnet.rpc_url)
    keys = provision(settings=settings, transactor=Transactor(w3=Web3(Web3.HTTPProvider(devnet.rpc_url)))).api_keys
    export = SHARED_DIR / "samples" / "police" / "key_persons.json"
    changed = tmp_path / "key_persons.json"
    document = json.loads(export.read_text(encoding="utf-8"))
    first_person = document["数据"][0]
    first_person["管控级别"] = "一级" if first_person["管控级别"] != "一级" else "二级"
    changed.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    with GatewayProcess(home=settings.home, rpc_url=devnet.rpc_url) as gateway:
        first = _import(gateway, keys[POLICE], export)
        again = _import(gateway, keys[POLICE], export)
        edited = _import(gateway, keys[POLICE], changed)
    valid = first["valid"]
    assert first["outcomes"] == {"created": valid, "new_version": 0, "unchanged": 0}
    assert again["outcomes"] == {"created": 0, "new_version": 0, "unchanged": valid}
    assert edited["outcomes"] == {"created": 0, "new_version": 1, "unchanged": valid - 1}  # type: ignore[operator]
