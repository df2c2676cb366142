"""Replay the transparency-dev/merkle RFC 6962/9162 proof vectors (see /work/shared/testdata/rfc9162).

Every JSON file is its own test id; a case must be rejected exactly when its ``wantErr`` is true.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ledger_api.merkle import (
    ConsistencyProofError,
    InclusionProofError,
    MerkleProofError,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

# tests/ledger_api/merkle/<this file>: parents[3] is the repository, parents[4] holds it and shared/.
VECTORS = Path(__file__).resolve().parents[4] / "shared" / "testdata" / "rfc9162"

# The leaves behind the generated vectors (folders 0-4): the classic CT test tree of
# certificate-transparency's merkle_tree_test, whose roots the vectors carry.
CT_LEAF_DATA = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]


def _cases(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    if not files:
        # An empty parameter set would be skipped silently; make a missing checkout fail instead.
        return [pytest.param(None, id="vectors-missing")]
    return [pytest.param(f, id=f.relative_to(VECTORS / kind).as_posix()) for f in files]


def _load(path: Path | None) -> dict[str, Any]:
    assert path is not None, f"no test vectors under {VECTORS}"
    data: dict[str, Any] = json.loads(path.read_text())
    assert isinstance(data["wantErr"], bool)
    return data


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _proof(value: list[str] | None) -> list[bytes]:
    # The Go generator writes a nil slice as JSON null.
    return [_b64(h) for h in value or []]


@pytest.mark.parametrize("path", _cases("inclusion"))
def test_inclusion_vector(path: Path | None) -> None:
    case = _load(path)
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _proof(case["proof"]),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(InclusionProofError) as info:
            verify_inclusion(*args)
        assert isinstance(info.value, MerkleProofError)
        assert info.value.reason
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _cases("consistency"))
def test_consistency_vector(path: Path | None) -> None:
    case = _load(path)
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), _proof(case["proof"]))
    if case["wantErr"]:
        with pytest.raises(ConsistencyProofError) as info:
            verify_consistency(*args)
        assert isinstance(info.value, MerkleProofError)
        assert info.value.reason
    else:
        verify_consistency(*args)


def test_vector_folders_are_all_present() -> None:
    for kind, folders in {
        "inclusion": ["0", "1", "2", "3", "4", "additional", "single-entry"],
        "consistency": ["0", "1", "2", "3", "4", "additional"],
    }.items():
        for folder in folders:
            assert list((VECTORS / kind / folder).rglob("*.json")), f"{kind}/{folder} has no vectors"


def _happy_paths(kind: str) -> list[Any]:
    return [
        pytest.param(f, id=f.relative_to(VECTORS).as_posix())
        for f in sorted(VECTORS.glob(f"{kind}/[0-9]/happy-path.json"))
    ] or [pytest.param(None, id="vectors-missing")]


@pytest.mark.parametrize("path", _happy_paths("inclusion"))
def test_generated_inclusion_proof_matches_vector(path: Path | None) -> None:
    case = _load(path)
    tree = MerkleTree.from_leaf_hashes(leaf_hash(d) for d in CT_LEAF_DATA)
    size, index = case["treeSize"], case["leafIdx"]
    assert tree.leaf_hash_at(index) == _b64(case["leafHash"])
    assert tree.root(size) == _b64(case["root"])
    assert tree.inclusion_proof(index, size) == _proof(case["proof"])


@pytest.mark.parametrize("path", _happy_paths("consistency"))
def test_generated_consistency_proof_matches_vector(path: Path | None) -> None:
    case = _load(path)
    tree = MerkleTree.from_leaf_hashes(leaf_hash(d) for d in CT_LEAF_DATA)
    old, new = case["size1"], case["size2"]
    assert tree.root(old) == _b64(case["root1"])
    assert tree.root(new) == _b64(case["root2"])
    assert tree.consistency_proof(old, new) == _proof(case["proof"])
