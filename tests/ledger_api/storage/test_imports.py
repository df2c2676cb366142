"""Auditors and tools use the storage package on its own: it must not pull in web3 or FastAPI."""

from __future__ import annotations

import subprocess
import sys


def test_storage_imports_neither_web3_nor_fastapi() -> None:
    code = (
        "import sys, ledger_api.storage, ledger_api.storage.bench\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('web3', 'fastapi', 'starlette'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
