"""The admin scripts end to end against a real anvil: deploy, organisations, grants, policy twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

from ledger_api.chain.client import LedgerChain
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.devnet import Devnet, dev_account
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.transactor import Transactor
from ledger_api.settings import Settings
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.devnet, pytest.mark.xdist_group("devnet")]

KEY = "0020" + "ab" * 32
POLICE, COMMITTEE, PROPERTY = dev_account(5), dev_account(6), dev_account(7)


@pytest.fixture
def run(devnet: Devnet, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "LEDGER_HOME": str(tmp_path / "home"),
        "LEDGER_RPC_URL": devnet.rpc_url,
        "POLICE_KEY": POLICE.key.hex(),
    }
    env.pop("LEDGER_ADMIN_KEY", None)

    def ledger(*args: str, ok: bool = True, script: str | None = None) -> subprocess.CompletedProcess[str]:
        command = (
            [sys.executable, str(REPO_ROOT / "scripts" / script), *args[1:]]  # the script names the command
            if script
            else [sys.executable, "-m", "ledger_api.cli", *args]
        )
        result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        if ok:
            assert result.returncode == 0, result.stderr + result.stdout
        return result

    return ledger


def grants(run) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    return json.loads(run("grants", "list", "--all", "--json").stdout)


def test_admin_scripts_end_to_end(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = json.loads(run("deploy", "--json", script="deploy.py").stdout)
    again = json.loads(run("deploy", "--json").stdout)
    assert first["reused"] is False
    assert again["reused"] is True
    assert first["addresses"] == again["addresses"]

    run(
        "org",
        "register",
        "PS-E2E-01",
        "--kind",
        "police",
        "--signer",
        POLICE.address,
        "--communities",
        "330102001,330102002",
        "--public-key",
        KEY,
        script="org.py",
    )
    run(
        "org",
        "register",
        "CM-E2E-01",
        "--kind",
        "committee",
        "--signer",
        COMMITTEE.address,
        "--communities",
        "330102002",
        "--public-key",
        KEY,
    )
    orgs = {o["org_id"]: o for o in json.loads(run("org", "list", "--json").stdout)}
    assert orgs["PS-E2E-01"]["communities"] == ["330102001", "330102002"]
    assert orgs["CM-E2E-01"]["kind"] == "committee"

    # The owner's own signer grants; then an admin grants on its behalf (recorded as such).
    run(
        "grant",
        "--owner",
        "PS-E2E-01",
        "--grantee",
        "CM-E2E-01",
        "--purpose",
        "elderly_care",
        "--types",
        "incident",
        "--communities",
        "330102002",
        "--days",
        "30",
        "--key-env",
        "POLICE_KEY",
        script="grant.py",
    )
    run("grant", "--owner", "PS-E2E-01", "--grantee", "CM-E2E-01", "--purpose", "fire_safety", "--days", "1")
    listed = grants(run)
    assert [(g["grant_id"], g["by_admin"], g["state"]) for g in listed] == [(1, False, "active"), (2, True, "active")]
    assert listed[0]["record_types"] == ["incident"]
    assert listed[0]["communities"] == ["330102002"]
    table = run("grants", "list", script="grants.py").stdout
    assert "PS-E2E-01" in table
    assert "elderly_care" in table

    run("revoke", "2", script="revoke.py")
    assert [g["state"] for g in grants(run)][1].startswith("revoked@")
    assert len(json.loads(run("grants", "list", "--json").stdout)) == 1

    run("org", "rotate-key", "PS-E2E-01", "--public-key", "0020" + "cd" * 32, "--key-env", "POLICE_KEY")
    assert {o["org_id"]: o for o in json.loads(run("org", "list", "--json").stdout)}["PS-E2E-01"]["key_count"] == 2

    run("org", "suspend", "CM-E2E-01")
    refused = run(
        "grant", "--owner", "PS-E2E-01", "--grantee", "CM-E2E-01", "--purpose", "investigation", "--days", "1", ok=False
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == "ledger: error: GrantRegistryOrganisationSuspended('CM-E2E-01')"

    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""
organisations:
  - id: PS-E2E-01
    kind: police
    signer: "{POLICE.address}"
    communities: ["330102001", "330102002"]
  - id: CM-E2E-01
    kind: committee
    signer: "{COMMITTEE.address}"
    communities: ["330102002"]
  - id: PM-E2E-01
    kind: property
    signer: "{PROPERTY.address}"
    communities: ["330102001"]
    public_key: "{KEY}"
grants:
  - owner: PS-E2E-01
    grantee: CM-E2E-01
    purpose: elderly_care
    record_types: [incident]
    communities: ["330102002"]
    valid_from: 2026-01-01T00:00:00
    valid_until: 2099-01-01T00:00:00
  - owner: PM-E2E-01
    grantee: PS-E2E-01
    purpose: investigation
    record_types: [access_event]
    valid_from: 2026-01-01T00:00:00+08:00
    valid_until: 2099-01-01T00:00:00+08:00
""")
    planned = run("policy", "plan", str(policy), script="policy.py").stdout
    assert "register PM-E2E-01" in planned
    assert "reinstate CM-E2E-01" in planned
    assert "revoke grant #1" in planned  # its validity differs from the policy's: revoke + create
    assert planned.count("create grant") == 2
    applied = run("policy", "apply", str(policy)).stdout
    assert "applied 5 change(s)" in applied
    second = run("policy", "apply", str(policy)).stdout
    assert "nothing to do" in second
    assert "nothing to do" in run("policy", "plan", str(policy)).stdout
    active = json.loads(run("grants", "list", "--json").stdout)
    assert sorted((g["owner"], g["grantee"], g["purpose"]) for g in active) == [
        ("PM-E2E-01", "PS-E2E-01", "investigation"),
        ("PS-E2E-01", "CM-E2E-01", "elderly_care"),
    ]


def test_errors_are_one_clear_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("deploy")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "grants:\n  - owner: PS-X\n    grantee: CM-X\n    purpose: gossip\n"
        "    valid_from: 2026-01-01\n    valid_until: 2027-01-01\n"
    )
    result = run("policy", "plan", str(bad), ok=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert "grants[0]" in result.stderr
    assert "unknown purpose 'gossip'" in result.stderr

    missing = run("revoke", "999", ok=False)
    assert missing.stderr.strip() == "ledger: error: GrantRegistryUnknownGrant(999)"

    unreachable = run("grants", "list", "--rpc-url", "http://127.0.0.1:9", ok=False)
    assert unreachable.returncode == 1
    assert "Traceback" not in unreachable.stderr


def test_a_grant_past_its_until_lists_as_expired_on_an_idle_chain(run, devnet: Devnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The read path refuses a grant whose ``until`` passed by the gateway's clock even when no block was
    mined since; before, ``grants list`` followed the newest block's time and still showed it active."""
    run("deploy")
    for org, kind, signer in (("PS-IDLE-01", "police", POLICE), ("CM-IDLE-01", "committee", COMMITTEE)):
        run("org", "register", org, "--kind", kind, "--signer", signer.address, "--public-key", KEY)
    # Granted in this process, at once: a CLI start on a loaded machine could outlast a short grant.
    transactor = Transactor(w3=Web3(Web3.HTTPProvider(devnet.rpc_url)))
    deployment = Settings(home=tmp_path / "home").deployments_dir / f"{transactor.chain_id}.json"
    chain = LedgerChain(transactor=transactor, deployment=Deployment(**json.loads(deployment.read_text())))
    now = chain.latest_timestamp()
    until = max(now, int(time.time())) + 4
    chain.create_grant(signer=POLICE, spec=GrantSpec(owner_org="PS-IDLE-01", grantee_org="CM-IDLE-01",
                       purpose=Purpose.ELDERLY_CARE, valid_from=now - 10, valid_until=until))  # fmt: skip
    while time.time() < until + 1:  # no transaction meanwhile: the newest block keeps its old time
        time.sleep(0.2)
    assert chain.latest_timestamp() < until  # the chain itself has not seen the expiry
    assert [g["state"] for g in grants(run)] == ["expired"]
    assert json.loads(run("grants", "list", "--json").stdout) == []


def test_a_signer_change_takes_two_steps_from_the_command_line(run) -> None:  # type: ignore[no-untyped-def]
    run("deploy")
    run("org", "register", "PS-SIG-01", "--kind", "police", "--signer", POLICE.address, "--public-key", KEY)
    proposed = run("org", "change-signer", "PS-SIG-01", "--signer", PROPERTY.address).stdout
    assert proposed.startswith(f"proposed signer {PROPERTY.address} for PS-SIG-01: effective when PS-SIG-01 accepts")

    def signer() -> str:
        return next(o["signer"] for o in json.loads(run("org", "list", "--json").stdout) if o["org_id"] == "PS-SIG-01")

    assert signer() == POLICE.address  # proposed, not yet effective
    early = run("org", "complete-signer", "PS-SIG-01", ok=False)  # the admin, before the delay
    assert early.returncode == 1
    assert "OrganisationRegistrySignerChangeNotDue" in early.stderr
    accepted = run("org", "accept-signer", "PS-SIG-01", "--key-env", "POLICE_KEY").stdout
    assert accepted.strip() == f"accepted: PS-SIG-01 now signs with {PROPERTY.address}"
    assert signer() == PROPERTY.address
