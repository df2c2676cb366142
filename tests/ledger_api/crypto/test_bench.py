"""The benchmark entry point runs end to end (timings are printed, never asserted)."""

from __future__ import annotations

import pytest

from ledger_api.crypto import bench


def test_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--records", "20", "--size", "1024", "--grantees", "1"])
    out = capsys.readouterr().out
    assert "x25519, 1024 B, 2 recipient(s)" in out
    assert "mlkem768-x25519, 1024 B, 2 recipient(s)" in out
    assert "rec/s" in out
