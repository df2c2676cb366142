"""Static analysis gate for the contracts (run by `make test`): Slither with the npm solc.

Slither finds `solc` on PATH and drives it with --standard-json, so a temporary directory holding a
`solc` link to hardhat-free-devnet/solc-standard-json goes first on PATH. OpenZeppelin's own code is
filtered out. The gate fails on any high or medium finding that is not triaged in
contracts/slither-triage.json (a list of {"check", "element", "reason"}), and prints a summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WRAPPER = REPO / "hardhat-free-devnet" / "solc-standard-json"
TRIAGE = REPO / "contracts" / "slither-triage.json"
BLOCKING = {"High", "Medium"}


def main() -> int:
    triaged = {(t["check"], t["element"]) for t in json.loads(TRIAGE.read_text())}
    with tempfile.TemporaryDirectory() as shim:
        (Path(shim) / "solc").symlink_to(WRAPPER)
        report = Path(shim) / "slither.json"
        env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"}
        subprocess.run(
            [
                str(Path(sys.executable).with_name("slither")),
                "contracts",
                "--solc-standard-json",
                "--solc-remaps", "@openzeppelin/=hardhat-free-devnet/node_modules/@openzeppelin/",
                "--filter-paths", "node_modules",
                "--json", str(report),
            ],
            cwd=REPO, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if not report.is_file():
            print("slither: produced no report (did the contracts compile?)", file=sys.stderr)
            return 1
        document = json.loads(report.read_text())
    if not document.get("success"):
        print(f"slither: failed: {document.get('error')}", file=sys.stderr)
        return 1
    findings = document.get("results", {}).get("detectors", [])
    counts = Counter(f["impact"] for f in findings)
    untriaged = [f for f in findings if f["impact"] in BLOCKING and (f["check"], _element(f)) not in triaged]
    summary = ", ".join(
        f"{counts.get(level, 0)} {level.lower()}" for level in ("High", "Medium", "Low", "Informational")
    )
    print(f"slither: {len(findings)} findings in contracts/ ({summary}); {len(untriaged)} untriaged high/medium")
    for finding in untriaged:
        print(f"  [{finding['impact']}] {finding['check']}: {finding['description'].strip().splitlines()[0]}")
    return 1 if untriaged else 0


def _element(finding: dict[str, object]) -> str:
    elements = finding.get("elements") or [{}]
    first = elements[0] if isinstance(elements, list) else {}
    return str(first.get("name", "")) if isinstance(first, dict) else ""


if __name__ == "__main__":
    sys.exit(main())
