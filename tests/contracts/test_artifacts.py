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


def test_artifacts_target_the_evm_every_supported_chain_runs() -> None:
    # geth Clique stops at London; a newer target emits PUSH0/MCOPY, which such a chain rejects.
    assert compiler.EVM_VERSION == "london"
    assert load_artifacts()["settings"]["evmVersion"] == "london"


def test_bytecode_has_no_opcode_newer_than_london() -> None:
    # PUSH0 (0x5f, Shanghai), MCOPY (0x5e), TLOAD/TSTORE (0x5c/0x5d, Cancun), walking the code so that
    # PUSH data is skipped; the CBOR metadata at the end (its length in the last two bytes) is not code.
    for name, contract in load_artifacts()["contracts"].items():
        code = bytes.fromhex(contract["deployedBytecode"][2:])
        code = code[: -(int.from_bytes(code[-2:], "big") + 2)]
        pc = 0
        while pc < len(code):
            op = code[pc]
            assert op not in (0x5C, 0x5D, 0x5E, 0x5F), f"{name}: opcode {op:#04x} at {pc}"
            pc += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)


def test_drift_is_reported_when_the_recorded_evm_version_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    document = dict(load_artifacts())
    document["settings"] = {**document["settings"], "evmVersion": "cancun"}
    message = compiler.artifact_drift(document)
    assert message is not None
    assert "make artifacts" in message


def test_an_unknown_evm_version_is_refused_by_name() -> None:
    with pytest.raises(compiler.CompilerError, match="unknown EVM version 'istanbulx'"):
        compiler.compile_contracts(evm_version="istanbulx")


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
