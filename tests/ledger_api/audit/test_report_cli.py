"""``ledger audit report`` and ``ledger audit subject`` through the real CLI, with the audit itself stubbed.

The audit (``obtain_result``) is replaced by the synthetic week; everything after it is the real command:
argument parsing, files written, output, exit status, one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger_api.audit.model import AuditResult
from ledger_api.cli import main
from tests.ledger_api.audit.report_samples import COMMITTEE, week_result
from tests.ledger_api.audit.test_subject import KEY, WANG, ZHANG_15, people_result


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch) -> list[AuditResult]:
    """What the stubbed audit returns: append a result before running a command."""
    results: list[AuditResult] = []

    def obtain_result(args: object) -> AuditResult:
        assert getattr(args, "bundle", None) == Path("week.bundle")  # the shared source options were parsed
        return results[-1]

    monkeypatch.setattr("ledger_api.cli.audit_source.obtain_result", obtain_result)
    return results


def test_report_writes_both_files_prints_their_paths_and_exits_1_on_discrepancies(
    audit: list[AuditResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit.append(week_result())
    out = tmp_path / "out"
    assert main(["audit", "report", "--bundle", "week.bundle", "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert printed.out.splitlines() == [str(out / "audit-report.json"), str(out / "audit-report.html")]
    assert "2 discrepancies" in printed.err
    document = json.loads((out / "audit-report.json").read_text(encoding="utf-8"))
    assert document["matrix"]["total"] == 60
    assert document["summary"]["ok"] is False
    html = (out / "audit-report.html").read_text(encoding="utf-8")
    assert '<section id="matrix">' in html
    assert COMMITTEE in html


def test_a_clean_audit_exits_0_and_format_json_writes_only_json(
    audit: list[AuditResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit.append(week_result(discrepancies=()))
    assert main(["audit", "report", "--bundle", "week.bundle", "--out", str(tmp_path), "--format", "json"]) == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "audit-report.json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit-report.json"]


def test_an_unwritable_out_dir_is_one_line_and_exit_2(
    audit: list[AuditResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit.append(week_result())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(SystemExit) as exited:
        main(["audit", "report", "--bundle", "week.bundle", "--out", str(blocker / "report")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ledger: error: cannot write the report to")
    assert "Traceback" not in err


def test_subject_prints_the_persons_reads(
    audit: list[AuditResult], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    audit.append(people_result())
    monkeypatch.setenv("AUDIT_KEY", KEY.hex())
    argv = ["audit", "subject", "--bundle", "week.bundle", "--id-number", ZHANG_15, "--consortium-key-env", "AUDIT_KEY"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith("Subject 330102**********3X: 2 record versions, 4 reads")
    assert text.count(" read ") == 4

    assert main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [read["entry_index"] for read in document["reads"]] == [0, 2, 4, 5]

    monkeypatch.setenv("LEDGER_CONSORTIUM_KEY", "0x" + KEY.hex())  # the default variable, 0x accepted
    assert main(["audit", "subject", "--bundle", "week.bundle", "--id-number", WANG, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["reads"]) == 1


def test_subject_exits_1_with_a_warning_when_the_audit_found_discrepancies(
    audit: list[AuditResult], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    audit.append(week_result())
    monkeypatch.setenv("LEDGER_CONSORTIUM_KEY", KEY.hex())
    assert main(["audit", "subject", "--bundle", "week.bundle", "--id-number", WANG]) == 1
    assert "may be incomplete" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "id_number", "message"),
    [
        (None, WANG, "set LEDGER_CONSORTIUM_KEY to the consortium key"),
        ("zz" * 32, WANG, "LEDGER_CONSORTIUM_KEY is not hexadecimal"),
        ("ab" * 16, WANG, "LEDGER_CONSORTIUM_KEY holds 16 bytes, the consortium key has 32"),
        (KEY.hex(), "330102197512310027", "invalid --id-number: ID number check character is 7"),
    ],
)
def test_subject_usage_errors_are_one_line_and_exit_2(
    audit: list[AuditResult],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key: str | None,
    id_number: str,
    message: str,
) -> None:
    audit.append(people_result())
    if key is None:
        monkeypatch.delenv("LEDGER_CONSORTIUM_KEY", raising=False)
    else:
        monkeypatch.setenv("LEDGER_CONSORTIUM_KEY", key)
    with pytest.raises(SystemExit) as exited:
        main(["audit", "subject", "--bundle", "week.bundle", "--id-number", id_number])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"ledger: error: {message}")
    assert id_number not in err
    if key:
        assert key not in err
