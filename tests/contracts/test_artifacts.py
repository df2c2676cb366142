"""Committed artifacts must match the contract sources; regenerate with `make artifacts`."""

from __future__ import annotations

import pytest

from ledger_api.chain import compiler
from ledger_api.chain.artifacts import load_artifacts


def test_artifacts_say_what_generated_them() -> None:
    document = load_artifacts()
    assert "ledger compile" in document["_generated"]
    assert document["compiler"]["version"].startswith("0.8.")
    assert set(document["contracts"]) == set(compiler.DEPLOYABLE)


def test_artifacts_match_the_sources() -> None:
    assert compiler.artifact_drift(load_artifacts()) is None


@pytest.mark.slow
def test_recompiling_reproduces_the_committed_bytecode() -> None:
    fresh = compiler.compile_contracts()
    committed = load_artifacts()
    for name in compiler.DEPLOYABLE:
        assert fresh["contracts"][name]["bytecode"] == committed["contracts"][name]["bytecode"], name
        assert fresh["contracts"][name]["abi"] == committed["contracts"][name]["abi"], name


def test_drift_is_reported_when_a_source_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    real = compiler.contract_sources

    def edited() -> dict[str, str]:
        sources = real()
        sources["contracts/GrantRegistry.sol"] += "\n// edited\n"
        return sources

    monkeypatch.setattr(compiler, "contract_sources", edited)
    message = compiler.artifact_drift(load_artifacts())
    assert message is not None
    assert "make artifacts" in message
