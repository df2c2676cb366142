"""The committed, compiled contract artifacts (ABI and bytecode), loaded once."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ledger_api.chain.errors import ChainError

ARTIFACT_PATH = Path(__file__).with_name("artifacts") / "ledger-contracts.json"


@cache
def load_artifacts() -> dict[str, Any]:
    """The artifact document written by :mod:`ledger_api.chain.compiler`."""
    try:
        document: dict[str, Any] = json.loads(ARTIFACT_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ChainError(f"contract artifacts missing at {ARTIFACT_PATH}: run `make artifacts`") from exc
    return document


def contract_abi(name: str) -> list[dict[str, Any]]:
    abi: list[dict[str, Any]] = load_artifacts()["contracts"][name]["abi"]
    return abi


def contract_bytecode(name: str) -> str:
    bytecode: str = load_artifacts()["contracts"][name]["bytecode"]
    return bytecode


def compiler_version() -> str:
    version: str = load_artifacts()["compiler"]["version"]
    return version
