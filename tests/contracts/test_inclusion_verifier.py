"""InclusionVerifier against RFC 9162 inclusion proofs computed in Python (``ledger_api.merkle``) and
against the transparency-dev/merkle test vectors.

Parametrisation and cost (eth-tester runs a verification in ~6 ms of py-evm, whatever the client path,
so the number of EVM calls is the budget):

* every tree size 1–64 (one test per size) and every leaf index: the proof verifies (2,080 calls);
* for every (size, index), one call per corruption (14,827 calls): index +1 and −1; size +1 and −1
  together with the *root of the claimed size* (a proof for one tree head replayed against the next or
  the previous one); a flipped bit in every proof element for sizes ≤ 16 and in one deterministically
  chosen element (and bit) for larger sizes; a missing element and an extra element at deterministic
  positions.
  (With the *original* root, a size change that keeps the proof's path shape verifies under any
  RFC 9162 verifier — the size is bound only through that shape; ``test_size_is_bound_by_the_path_shape``
  pins this down.)

Calls go to ``ethereum_tester.call`` with calldata encoded once per case by ``eth_abi`` (web3's contract
layer would double the cost); ``test_raw_calls_agree_with_the_contract_function`` shows both paths give
the same answers. Every expectation is also checked against the Python reference verifier. The 64 size
tests are marked slow; the file takes about 60 s on one core (16,907 EVM calls) and splits evenly under
xdist.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode, encode
from web3 import Web3

from ledger_api.chain.client import LedgerChain
from ledger_api.merkle import EMPTY_ROOT, InclusionProofError, MerkleTree, leaf_hash, verify_inclusion
from tests.conftest import SHARED_DIR
from tests.contracts.conftest import Actors, call

MAX_SIZE = 64
EVERY_ELEMENT_UP_TO = 16  # a bit is flipped in every proof element for sizes up to this, else in one
TREE = MerkleTree.from_leaf_hashes(leaf_hash(f"access entry {i}".encode()) for i in range(MAX_SIZE + 1))
VERIFY_TYPES = ["bytes32", "uint256", "uint256", "bytes32[]", "bytes32"]
VERIFY_SELECTOR = Web3.keccak(text=f"verifyInclusion({','.join(VERIFY_TYPES)})")[:4]
VECTORS_DIR = Path("testdata") / "rfc9162" / "inclusion"


def root_of(size: int) -> bytes:
    return TREE.root(size) if size > 0 else EMPTY_ROOT


def reference(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    try:
        verify_inclusion(leaf, index, size, proof, root)
    except InclusionProofError:
        return False
    return True


@dataclass(frozen=True)
class Case:
    name: str
    leaf: bytes
    index: int
    size: int
    proof: list[bytes]
    root: bytes

    def expected(self) -> bool:
        return reference(self.leaf, self.index, self.size, self.proof, self.root)


def flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def cases_for(size: int) -> Iterator[tuple[Case, bool]]:
    """(case, should verify) for every index of a tree of ``size`` leaves, with its corruptions."""
    for index in range(size):
        leaf, proof, root = TREE.leaf_hash_at(index), TREE.inclusion_proof(index, size), TREE.root(size)
        n = len(proof)
        yield Case("valid", leaf, index, size, proof, root), True
        yield Case("index+1", leaf, index + 1, size, proof, root), False
        if index > 0:
            yield Case("index-1", leaf, index - 1, size, proof, root), False
        yield Case("size+1", leaf, index, size + 1, proof, root_of(size + 1)), False
        yield Case("size-1", leaf, index, size - 1, proof, root_of(size - 1)), False
        yield (
            Case(
                "extra element", leaf, index, size, [*proof[: index % (n + 1)], leaf, *proof[index % (n + 1) :]], root
            ),
            False,
        )
        if n:
            chosen = (size * 7 + index) % n
            elements = range(n) if size <= EVERY_ELEMENT_UP_TO else [chosen]
            for element in elements:
                bit = (size * 31 + index * 7 + element) % 256
                corrupted = [flip(p, bit) if i == element else p for i, p in enumerate(proof)]
                yield Case(f"bit {bit} of element {element}", leaf, index, size, corrupted, root), False
            yield (
                Case(f"missing element {chosen}", leaf, index, size, proof[:chosen] + proof[chosen + 1 :], root),
                False,
            )


class RawVerifier:
    """``verifyInclusion`` through ``ethereum_tester.call`` with calldata from ``eth_abi``."""

    def __init__(self, ledger: LedgerChain, sender: str) -> None:
        self._tester = ledger.w3.provider.ethereum_tester  # type: ignore[attr-defined]
        self._to = ledger.verifier.address
        self._sender = sender

    def __call__(self, case: Case) -> bool:
        args = [case.leaf, case.index, case.size, case.proof, case.root]
        data = VERIFY_SELECTOR + encode(VERIFY_TYPES, args)
        out = self._tester.call({"from": self._sender, "to": self._to, "data": "0x" + data.hex()}, "latest")
        (verified,) = decode(["bool"], bytes.fromhex(out[2:]))
        return bool(verified)


@pytest.fixture(scope="module")
def raw_verifier(deployed: LedgerChain, actors: Actors) -> RawVerifier:
    # The verifier is pure: the session deployment serves without a snapshot.
    return RawVerifier(deployed, actors.stranger.address)


def test_the_selector_is_the_contracts(deployed: LedgerChain) -> None:
    encoded = deployed.verifier.encode_abi("verifyInclusion", [b"\x00" * 32, 0, 1, [], b"\x00" * 32])
    assert bytes.fromhex(encoded[2:])[:4] == VERIFY_SELECTOR


def test_raw_calls_agree_with_the_contract_function(deployed: LedgerChain, raw_verifier: RawVerifier) -> None:
    for case, _ in list(cases_for(7))[:40]:
        args = (case.leaf, case.index, case.size, case.proof, case.root)
        assert call(deployed, deployed.verifier.functions.verifyInclusion(*args)) is raw_verifier(case), case


@pytest.mark.slow
@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_inclusion_proofs_for_every_index(raw_verifier: RawVerifier, size: int) -> None:
    wrong: list[str] = []
    count = 0
    for case, should_verify in cases_for(size):
        assert case.expected() is should_verify, f"test generator: {case}"  # the reference agrees
        count += 1
        if raw_verifier(case) is not should_verify:
            wrong.append(f"index {case.index}, {case.name}: expected {'accept' if should_verify else 'reject'}")
    assert wrong == [], f"{len(wrong)} of {count} cases wrong for size {size}:\n" + "\n".join(wrong)


def test_size_is_bound_by_the_path_shape(raw_verifier: RawVerifier) -> None:
    # Index 0 of sizes 5 and 6 has the same path shape (right, right, right): the size-5 proof against
    # the size-5 root "verifies" for size 6 too, in the contract as in the reference verifier.
    proof, root = TREE.inclusion_proof(0, 5), TREE.root(5)
    stale = Case("size 6 with the size-5 root", TREE.leaf_hash_at(0), 0, 6, proof, root)
    assert stale.expected() is True
    assert raw_verifier(stale) is True
    # Against the real size-6 root it fails.
    assert raw_verifier(Case("size 6", TREE.leaf_hash_at(0), 0, 6, proof, TREE.root(6))) is False


@pytest.mark.parametrize("index", [2**64, 2**255, 2**256 - 1])
def test_huge_indices_and_sizes_are_rejected(raw_verifier: RawVerifier, index: int) -> None:
    leaf, proof, root = TREE.leaf_hash_at(3), TREE.inclusion_proof(3, 8), TREE.root(8)
    assert raw_verifier(Case("huge index", leaf, index, 8, proof, root)) is False
    assert raw_verifier(Case("huge size", leaf, 3, index, proof, root)) is False


def test_leaf_hash(deployed: LedgerChain) -> None:
    for data in (b"", b"\x00", b"access entry 1", bytes(range(256)) * 3):
        assert call(deployed, deployed.verifier.functions.leafHash(data)) == leaf_hash(data)
    assert leaf_hash(b"access entry 3") == TREE.leaf_hash_at(3)


# --- transparency-dev/merkle test vectors through verifyInclusionRaw ---------------------------------


def _vector_ids() -> list[str]:
    folder = SHARED_DIR / VECTORS_DIR
    if not folder.is_dir():
        return ["<missing: ../shared/testdata/rfc9162/inclusion>"]
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.json"))


def test_all_vector_folders_are_found(shared_dir: Path) -> None:
    ids = _vector_ids()
    assert len(ids) == len(list((shared_dir / VECTORS_DIR).rglob("*.json"))) >= 98
    assert {i.split("/")[0] for i in ids} >= {"0", "1", "2", "3", "4", "additional", "single-entry"}


@pytest.mark.parametrize("vector", _vector_ids())
def test_rfc9162_inclusion_vector(deployed: LedgerChain, shared_dir: Path, vector: str) -> None:
    case: dict[str, Any] = json.loads((shared_dir / VECTORS_DIR / f"{vector}.json").read_text())
    leaf = base64.b64decode(case["leafHash"])
    root = base64.b64decode(case["root"])
    proof = [base64.b64decode(p) for p in case["proof"] or []]
    fn = deployed.verifier.functions.verifyInclusionRaw(leaf, case["leafIdx"], case["treeSize"], proof, root)
    accepted = call(deployed, fn)
    assert accepted is (not case["wantErr"]), f"{vector}: {case['desc']}"
    assert reference(leaf, case["leafIdx"], case["treeSize"], proof, root) is accepted
