"""The HTML report: self-contained, escaped, and showing the right things in a real browser (headless Chromium)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ledger_api.audit.html import render_html
from ledger_api.audit.model import AuditResult, Discrepancy, DiscrepancyKind
from ledger_api.audit.report import build_report
from tests.ledger_api.audit.report_samples import COMMITTEE, POLICE, PROPERTY, local, make_read, week_reads, week_result

SECTIONS = (
    "summary", "organisations", "timeline", "matrix", "emergency", "refusals", "admin-reads", "admin-grants",
    "signer-changes", "discrepancies", "anomalies",
)  # fmt: skip
SCRIPT_ORG = '<script>document.body.setAttribute("data-pwned", "script")</script>'
IMG_ORG = "<img src=x onerror=\"document.body.setAttribute('data-pwned', 'img')\">"
HOSTILE_DETAIL = "\"><svg onload=\"document.body.setAttribute('data-pwned', 'svg')\">"
CHROMIUM = shutil.which("chromium")


class Dom(HTMLParser):
    """Elements by tag, their attributes, and the text inside each element with an id (or ``data-org``)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text_by_id: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("td", "th"):  # table cells read "|a|b|c"
            for _, key in self._open:
                if key:
                    self.text_by_id[key] += "|"
        self.elements.append((tag, attributes))
        if tag not in ("meta", "br", "img", "input", "link", "rect", "line"):
            key = attributes.get("id") or (f"org:{attributes['data-org']}" if attributes.get("data-org") else None)
            self._open.append((tag, key))
            if key:
                self.text_by_id.setdefault(key, "")

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id:
                self.text_by_id[element_id] += data

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]


def hostile_result() -> AuditResult:
    reads = (
        *week_reads(),
        make_read(SCRIPT_ORG, local(4, 10), entry_index=100),
        make_read(IMG_ORG, local(4, 11), emergency=True, entry_index=101),
    )
    discrepancy = Discrepancy(
        kind=DiscrepancyKind.LOG_SEGMENT_INVALID, subject="segment <b>7</b>", detail=HOSTILE_DETAIL, where="a&b"
    )
    result = week_result(reads=reads)
    return replace(result, discrepancies=(*result.discrepancies, discrepancy))


def hostile_html() -> str:
    report = build_report(hostile_result(), generated_at=datetime(2026, 3, 9, tzinfo=UTC))
    return render_html(report)


def test_sections_have_stable_ids_and_the_page_needs_nothing_from_outside() -> None:
    html = render_html(build_report(week_result()))
    dom = Dom(html)
    assert [s["id"] for s in dom.tags("section")] == list(SECTIONS)
    assert not dom.tags("script")
    assert not dom.tags("link")
    assert not dom.tags("img")
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    [csp] = [m for m in dom.tags("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in (csp["content"] or "")


def test_untrusted_text_is_escaped_and_never_becomes_markup() -> None:
    html = hostile_html()
    dom = Dom(html)
    assert not dom.tags("script")
    assert not dom.tags("img")
    assert [tag for tag, attrs in dom.elements if any(name.startswith("on") for name in attrs)] == []
    assert "&lt;script&gt;document.body.setAttribute(&quot;data-pwned&quot;" in html
    assert SCRIPT_ORG in dom.text_by_id["matrix"]  # shown as text, verbatim
    assert IMG_ORG in dom.text_by_id["emergency"]
    assert HOSTILE_DETAIL in dom.text_by_id["discrepancies"]
    assert "segment <b>7</b>" in dom.text_by_id["discrepancies"]


def test_the_timeline_svg_has_one_bar_per_day_with_its_counts() -> None:
    dom = Dom(render_html(build_report(week_result())))
    bars = [(b["data-start"], b["data-reads"], b["data-emergency"]) for b in dom.tags("g") if b.get("class") == "bar"]
    assert [(start[:10] if start else None, reads, emergency) for start, reads, emergency in bars] == [
        ("2026-03-02", "8", "0"),
        ("2026-03-03", "8", "0"),
        ("2026-03-04", "10", "2"),
        ("2026-03-05", "28", "2"),
        ("2026-03-06", "5", "5"),
        ("2026-03-07", "1", "0"),
    ]
    heights = [float(r["height"] or 0) for r in dom.tags("rect") if r.get("class") == "reads"]
    assert heights[3] == max(heights)  # the busiest day is the tallest bar
    assert heights[5] == pytest.approx(heights[3] / 28, abs=0.01)  # drawn to 1/100 of a unit


def test_an_empty_audit_renders_every_section() -> None:
    report = build_report(week_result(reads=(), discrepancies=()))
    dom = Dom(render_html(report))
    assert [s["id"] for s in dom.tags("section")] == list(SECTIONS)
    assert "No read logged." in dom.text_by_id["timeline"]
    assert "No discrepancy" in dom.text_by_id["discrepancies"]


# ---- in a real browser ------------------------------------------------------------------------------


def run_chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (.ci/run installs it)")
def test_headless_chromium_shows_the_report_and_runs_no_injected_script(tmp_path: Path) -> None:
    page = tmp_path / "audit-report.html"
    page.write_text(hostile_html(), encoding="utf-8")

    dumped = run_chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    dom = Dom(dumped)
    [body] = dom.tags("body")
    assert "data-pwned" not in body  # neither the <script> nor the onerror/onload handlers ran
    assert not dom.tags("script")
    assert not dom.tags("img")
    assert [s["id"] for s in dom.tags("section")] == list(SECTIONS)

    assert dom.text_by_id["read-count"] == "62"
    summary = dom.text_by_id["summary"]
    assert "3 discrepancies" in summary
    assert "bundle week.zip" in summary
    matrix = dom.text_by_id["matrix"]
    for name in (COMMITTEE, POLICE, PROPERTY, SCRIPT_ORG):
        assert name in matrix
    # Matrix rows read: organisation, incident, resident, unknown, total.
    assert dom.text_by_id[f"org:{COMMITTEE}"] == f"|{COMMITTEE}|43|0|0|43"
    assert dom.text_by_id[f"org:{POLICE}"] == f"|{POLICE}|0|11|0|11"
    assert dom.text_by_id[f"org:{SCRIPT_ORG}"] == f"|{SCRIPT_ORG}|1|0|0|1"
    assert "Emergency reads awaiting review (10)" in dom.text_by_id["emergency"]
    assert IMG_ORG in dom.text_by_id["emergency"]
    assert "log-segment-invalid" in dom.text_by_id["discrepancies"]
    assert HOSTILE_DETAIL in dom.text_by_id["discrepancies"]
    anomalies = dom.text_by_id["anomalies"]
    assert "rate-spike" in anomalies
    assert "CM-CUIYUAN-01 made 25 reads" in anomalies
    assert "emergency-burst" in anomalies
    assert len([b for b in dom.tags("g") if b.get("class") == "bar"]) == 6

    screenshot = tmp_path / "report.png"
    run_chromium("--window-size=1280,2400", f"--screenshot={screenshot}", page.as_uri(), profile=tmp_path / "profile")
    image = screenshot.read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(image[16:20], "big") == 1280  # IHDR width: the page rendered at the asked size
