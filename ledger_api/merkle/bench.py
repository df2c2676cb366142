"""Micro-benchmark: ``python -m ledger_api.merkle.bench [--leaves N] [--proofs N]``.

Builds a tree of synthetic leaves, then times inclusion and consistency proof generation and verification
at random indices and sizes. Prints rates only; nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterator

from ledger_api.merkle.rfc9162 import MerkleTree, leaf_hash, verify_consistency, verify_inclusion


def _leaves(n: int) -> Iterator[bytes]:
    for i in range(n):
        yield leaf_hash(i.to_bytes(8, "big"))


def _rate(label: str, count: int, run: Callable[[], None]) -> None:
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    print(f"{label:<40} {count:>10,} in {elapsed:7.3f} s = {count / elapsed:>12,.0f}/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=20_000)
    parser.add_argument("--appends", type=int, default=200_000, help="leaves to time with append()")
    args = parser.parse_args(argv)
    n: int = args.leaves
    count: int = args.proofs
    rng = random.Random(9162)

    holder: list[MerkleTree] = []
    _rate(
        "build (from_leaf_hashes, incl. leaf hash)",
        n,
        lambda: holder.append(MerkleTree.from_leaf_hashes(_leaves(n))),
    )
    tree = holder[0]

    appended = MerkleTree()
    extra = list(_leaves(args.appends))
    _rate("append", len(extra), lambda: appended.extend(extra))

    sizes = [rng.randint(1, n) for _ in range(count)]

    def roots() -> None:
        for s in sizes:
            tree.root(s)

    _rate("root(size)", count, roots)
    root_of = {s: tree.root(s) for s in sizes}

    indices = [rng.randrange(s) for s in sizes]
    proofs: list[list[bytes]] = []
    _rate(
        "inclusion proofs generated",
        count,
        lambda: proofs.extend(tree.inclusion_proof(i, s) for i, s in zip(indices, sizes, strict=True)),
    )
    leaves = [tree.leaf_hash_at(i) for i in indices]

    def verify_all_inclusion() -> None:
        for leaf, i, s, proof in zip(leaves, indices, sizes, proofs, strict=True):
            verify_inclusion(leaf, i, s, proof, root_of[s])

    _rate("inclusion proofs verified", count, verify_all_inclusion)

    pairs = [(min(a, b), max(a, b)) for a, b in ((rng.randint(1, n), s) for s in sizes)]
    for pair in pairs:
        for s in pair:
            if s not in root_of:
                root_of[s] = tree.root(s)
    cproofs: list[list[bytes]] = []
    _rate(
        "consistency proofs generated",
        count,
        lambda: cproofs.extend(tree.consistency_proof(old, new) for old, new in pairs),
    )

    def verify_all_consistency() -> None:
        for (old, new), proof in zip(pairs, cproofs, strict=True):
            verify_consistency(old, new, root_of[old], root_of[new], proof)

    _rate("consistency proofs verified", count, verify_all_consistency)
    print(f"tree size {tree.size:,}, root {tree.root().hex()}")


if __name__ == "__main__":
    main()
