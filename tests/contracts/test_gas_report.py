"""``python -m ledger_api.chain.gas_report`` measures everything it promises (it starts its own anvil)."""

from __future__ import annotations

import json

import pytest

from ledger_api.chain import gas_report
from ledger_api.chain.artifacts import contract_abi
from ledger_api.chain.deploy import CONTRACTS

pytestmark = [pytest.mark.devnet]


def test_gas_report_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert gas_report.main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert {row["contract"] for row in report["deployments"]} == set(CONTRACTS)
    state_changing = {
        f"{name}.{item['name']}"
        for name in CONTRACTS
        for item in contract_abi(name)
        if item["type"] == "function" and item["stateMutability"] not in {"view", "pure"}
    }
    assert {f"{r['contract']}.{r['function']}" for r in report["transactions"]} == state_changing
    assert all(row["gas"] > 21_000 for row in report["transactions"] + report["views"] + report["deployments"])
    views = {(r["contract"], r["function"]) for r in report["views"]}
    assert {
        ("GrantRegistry", "accessDecision"),
        ("RecordAnchors", "isRecordAnchored"),
        ("InclusionVerifier", "verifyInclusion"),
    } <= views

    batches = report["anchor_batch_per_record"]
    assert [b["size"] for b in batches] == [100, 500, 1000]
    # A batch anchors a root: its gas does not grow with the batch, so the cost per record falls.
    assert max(b["gas"] for b in batches) - min(b["gas"] for b in batches) < 100
    assert [b["gas_per_record"] for b in batches] == sorted((b["gas_per_record"] for b in batches), reverse=True)


def test_gas_report_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert gas_report.main([]) == 0
    text = capsys.readouterr().out
    for heading in ("Deployment (gasUsed)", "Transactions (gasUsed)", "Views", "anchorBatch gas per record"):
        assert heading in text
    assert "GrantRegistry.createGrant" in text
