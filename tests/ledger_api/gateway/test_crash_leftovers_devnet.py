"""kill -9 of the gateway between a push's blob write and its index commit leaves nothing behind.

The real gateway (``ledger serve``) runs as a child process. The test holds SQLite's write lock on the
gateway's index (``BEGIN IMMEDIATE`` from another connection: a slow or contended database, nothing
injected into the gateway), pushes a record, waits until the record's ciphertext is durable in the
storage directory while the push waits for the lock, and SIGKILLs the gateway's process group there.
The gateway starts again on the same home (its recovery sweep runs), the client retries the push, the
record is anchored and the owner erases it. Then:

* ``ledger audit verify`` (chain + storage, never the index) is clean both before and after the erasure:
  the dead push's ciphertext is not a ``blob-unanchored`` finding;
* no file anywhere under the storage directory (shared area, staging area, temp files) opens with any
  key of the owner's keystore to the erased record: the dead push's copy went with the erasure.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from web3 import Web3

from ledger_api.chain.devnet import Devnet
from ledger_api.chain.transactor import Transactor
from ledger_api.cli import main as ledger_main
from ledger_api.crypto.envelope import open_record, parse_blob
from ledger_api.crypto.keystore import DEMO_MASTER_SECRET, OrgKeystore
from ledger_api.errors import LedgerError
from ledger_api.provision import provision
from ledger_api.storage.local import TEMP_PREFIX
from tests.ledger_api.gateway.conftest import POLICE, make_settings, wait_until
from tests.ledger_api.gateway.records import payload, sample_records
from tests.support.gateway_process import GatewayProcess

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.xdist_group("devnet")]


def _files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def _audit_verify(rpc_url: str, storage: Path, deployment_file: Path, capsys: pytest.CaptureFixture[str]) -> str:
    status = ledger_main(
        ["audit", "verify", "--rpc", rpc_url, "--storage", str(storage), "--deployment", str(deployment_file)]
    )
    output = capsys.readouterr().out
    assert status == 0, output
    return output


def _openings(path: Path, keys: list[tuple[int, bytes]]) -> list[str]:
    """The record ids ``path`` opens to with any of the owner's keys (none for anything else)."""
    opened: list[str] = []
    data = path.read_bytes()
    for key_index, private_key in keys:
        try:
            opened.append(open_record(data, org_id=POLICE, key_index=key_index, private_key=private_key).record_id)
        except (LedgerError, ValueError):
            continue
    return opened


def test_a_push_killed_before_its_index_commit_leaves_no_unanchored_blob_and_no_copy_after_erasure(
    devnet: Devnet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path / "ledger", devnet.rpc_url)
    provisioned = provision(settings=settings, transactor=Transactor(w3=Web3(Web3.HTTPProvider(devnet.rpc_url))))
    storage = settings.home / "blobs"
    deployment_file = settings.deployments_dir / f"{provisioned.deployment.chain_id}.json"
    index_path = settings.index_url.removeprefix("sqlite:///")
    headers = {"Authorization": f"Bearer {provisioned.api_keys[POLICE]}"}
    target = sample_records("police.incidents", POLICE)[7]
    gateway = GatewayProcess(home=settings.home, rpc_url=devnet.rpc_url, anchor_max_wait_s=0.2)
    gateway.start()
    try:
        before = _files(storage)
        lock = sqlite3.connect(index_path, timeout=30, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the gateway's commit now waits for this lock (busy_timeout 30 s)
        answers: list[object] = []

        def push() -> None:
            try:
                with httpx.Client(timeout=60.0, headers=headers) as client:
                    answers.append(client.post(f"{gateway.url}/v1/records", json=payload([target])).status_code)
            except httpx.HTTPError as exc:
                answers.append(type(exc).__name__)

        pusher = threading.Thread(target=push, daemon=True)
        pusher.start()
        try:
            # The ciphertext is durable (renamed into place, not a temp file) while the commit waits.
            wait_until(
                lambda: any(not p.name.startswith(TEMP_PREFIX) for p in _files(storage) - before),
                timeout_s=20,
                interval_s=0.01,
            )
            gateway.kill()
        finally:
            lock.rollback()
            lock.close()
        pusher.join(timeout=60)
        (answer,) = answers
        assert answer not in (200, 201, 202), f"the killed push was answered: {answer}"
        (leftover,) = [p for p in _files(storage) - before if not p.name.startswith(TEMP_PREFIX)]
        assert parse_blob(leftover.read_bytes()).header.record_id == target.record_id

        gateway.start()  # recovery at start-up
        with httpx.Client(base_url=gateway.url, timeout=60.0, headers=headers) as client:
            retried = client.post("/v1/records", json=payload([target]))
            assert retried.status_code == 202, retried.text
            assert [r["status"] for r in retried.json()["records"]] == ["created"]

            def anchored() -> bool:
                return bool(client.get(f"/v1/records/{target.record_id}/status").json()["state"] == "anchored")

            wait_until(anchored, timeout_s=60)
            verified = _audit_verify(devnet.rpc_url, storage, deployment_file, capsys)
            assert "blob-unanchored" not in verified

            erased = client.delete(f"/v1/records/{target.record_id}")
            assert erased.status_code == 200, erased.text
    finally:
        gateway.stop()

    keystore = OrgKeystore.open(settings.keystore_dir, master_secret=DEMO_MASTER_SECRET, demo=True)
    keys = [(index, keystore.private_key(POLICE, index)) for index in keystore.public_keys(POLICE)]
    assert keys
    files = sorted(_files(storage))
    assert files  # the shredded blob, the manifest and log segments are still there
    opened = {str(path.relative_to(storage)): ids for path in files if (ids := _openings(path, keys))}
    assert all(target.record_id not in ids for ids in opened.values()), opened
    assert not leftover.exists()
    assert "blob-unanchored" not in _audit_verify(devnet.rpc_url, storage, deployment_file, capsys)
