"""The human form of the auditor's report: one self-contained HTML page.

No script, no external asset, no network: inline CSS and an inline SVG timeline, and a Content Security
Policy (``default-src 'none'``) that forbids anything else, so the page opens the same offline, from a
mail attachment or an archive. Every value from the chain or the log (organisation ids, details,
purposes) is untrusted text and goes through :func:`html.escape` (quotes included, for attributes).

Sections carry stable ids: ``#summary``, ``#organisations``, ``#timeline``, ``#matrix``, ``#emergency``,
``#refusals``, ``#admin-reads``, ``#admin-grants``, ``#signer-changes``, ``#discrepancies``, ``#anomalies``.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from ledger_api.audit.anomalies import local_time
from ledger_api.audit.report import EmergencyRead, Report, Timeline, block_time

__all__ = ["render_html"]

_CSS = """
body { font: 14px/1.45 system-ui, "Noto Sans CJK SC", sans-serif; margin: 0 auto; max-width: 1200px; padding: 1rem 2rem;
       color: #1d232a; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
.verdict { display: inline-block; padding: .2rem .6rem; border-radius: 4px; font-weight: 600; }
.verdict.ok { background: #dafbe1; color: #116329; }
.verdict.fail { background: #ffebe9; color: #a40e26; }
table { border-collapse: collapse; margin: .5rem 0; }
.wide { overflow-x: auto; }
td.time { white-space: nowrap; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.zero { color: #8c959f; }
tr.total td { font-weight: 600; background: #f6f8fa; }
.muted { color: #57606a; }
code { font-size: .9em; white-space: nowrap; }
svg.timeline { max-width: 100%; height: auto; background: #fbfcfd; border: 1px solid #d0d7de; }
svg .reads { fill: #0969da; }
svg .emergency { fill: #cf222e; }
svg text { font-size: 10px; fill: #57606a; }
.legend span { display: inline-block; width: .8em; height: .8em; margin: 0 .3em 0 1em; vertical-align: middle; }
"""

_MATRIX_TITLE = "Reads by organisation × record type"
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def _num(value: int) -> str:
    return f'<td class="n{" zero" if value == 0 else ""}">{value:,}</td>'


def _record(record_id: str) -> str:
    """A record id shortened for the table; the full id stays in the title (hover) and the JSON report."""
    short = record_id if len(record_id) <= 16 else record_id[:12] + "…"
    return f'<code title="{_e(record_id)}">{_e(short)}</code>'


def _table(headers: list[str], rows: list[str], *, empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _summary(report: Report) -> str:
    s = report.summary
    verdict = (
        '<span class="verdict ok">verified: no discrepancy</span>'
        if s.ok
        else f'<span class="verdict fail">{s.discrepancies:,} discrepancies</span>'
    )
    facts = [
        ("Source", _e(s.source)),
        ("Chain id", _e(s.chain_id)),
        ("Checkpoint block", _e(s.checkpoint_block)),
        ("Generated", _e(_time(s.generated_at)) + " (Asia/Shanghai)"),
        ("Record versions anchored", f"{s.records:,} ({s.distinct_records:,} records)"),
        ("Reads logged", f'<span id="read-count">{s.reads:,}</span>'),
        ("Emergency reads", f"{s.emergency_reads:,}"),
        ("Reads no grant covered", f"{s.uncovered_reads:,}"),
        ("Reads not yet anchored", f"{s.unanchored_reads:,}"),
        ("Reads from – to", f"{_e(_time(s.first_read))} – {_e(_time(s.last_read))}"),
        ("Organisations / grants / tree heads", f"{s.organisations:,} / {s.grants:,} / {s.tree_heads:,}"),
        (
            "Refused attempts (of them break-glass)",
            f'<span id="refusal-count">{s.refusals:,}</span> ({s.emergency_refusals:,})',
        ),
        ("Anomaly flags", f"{s.anomalies:,}"),
        ("Reads under admin-made grants", f"{s.admin_granted_reads:,}"),
        (
            "Admin grant actions / signer-change steps",
            f"{s.admin_grant_actions:,} / {s.signer_change_steps:,}"
            + ("" if s.admin_events_known else " (not in this evidence: a v1 bundle)"),
        ),
    ]
    rows = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in facts)
    return f'<section id="summary"><h2>Summary</h2><p>{verdict}</p><table>{rows}</table></section>'


def _organisations(report: Report) -> str:
    rows = [
        f"<tr><td>{_e(o.org_id)}</td><td>{_e(o.kind or '?')}{' (suspended)' if o.suspended else ''}</td>"
        f"{_num(o.records_owned)}{_num(o.reads_made)}{_num(o.reads_of_its_records)}{_num(o.emergency_reads)}"
        f"{_num(o.uncovered_reads)}{_num(o.grants_given)}{_num(o.grants_received)}{_num(o.anomalies)}"
        f'<td class="time">{_e(_time(o.first_read))}</td><td class="time">{_e(_time(o.last_read))}</td>'
        f"{_num(o.refusals)}{_num(o.refusals_of_its_records)}</tr>"
        for o in report.organisations
    ]
    headers = [
        "Organisation", "Kind", "Records owned", "Reads made", "Reads of its records", "Emergency reads",
        "Uncovered reads", "Grants given", "Grants received", "Anomalies", "First read", "Last read",
        "Attempts refused", "Refused attempts at its records",
    ]  # fmt: skip
    table = _table(headers, rows, empty="No organisation.")
    return f'<section id="organisations"><h2>Organisations</h2>{table}</section>'


def _svg(timeline: Timeline) -> str:
    # Bars of a readable width whatever the number of buckets: the SVG keeps its natural pixel size and
    # only shrinks (CSS max-width) when a long audit would not fit the page.
    count = len(timeline.buckets)
    gap, height, top, bottom, left = 2, 200, 10, 44, 36
    bar = max(4, min(40, 960 // count - gap))
    plot = height - top - bottom
    peak = max(timeline.peak, 1)
    width = left + count * (bar + gap) + gap
    label_every = max(1, -(-56 // (bar + gap)))  # ceil: at least 56 units between labels
    label_format = "%m-%d %H:00" if timeline.granularity == "hour" else "%m-%d"
    parts = [
        f'<svg class="timeline" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>Reads per {timeline.granularity}, Asia/Shanghai</title>",
        f'<text x="2" y="{top + 8}">{peak}</text><text x="2" y="{top + plot}">0</text>',
        f'<line x1="{left - 2}" y1="{top + plot}" x2="{width}" y2="{top + plot}" stroke="#8c959f"/>',
    ]
    for i, bucket in enumerate(timeline.buckets):
        x = left + gap + i * (bar + gap)
        total_h = round(plot * bucket.reads / peak, 2)
        emergency_h = round(plot * bucket.emergency / peak, 2)
        label = f"{bucket.start.strftime(label_format)}: {bucket.reads} reads, {bucket.emergency} emergency"
        parts.append(
            f'<g class="bar" data-start="{_e(bucket.start.isoformat())}" data-reads="{bucket.reads}" '
            f'data-emergency="{bucket.emergency}"><title>{_e(label)}</title>'
            f'<rect class="reads" x="{x}" y="{top + plot - total_h}" width="{bar}" height="{total_h}"/>'
            f'<rect class="emergency" x="{x}" y="{top + plot - emergency_h}" width="{bar}" height="{emergency_h}"/>'
            "</g>"
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x}" y="{top + plot + 12}" transform="rotate(30 {x} {top + plot + 12})">'
                f"{_e(bucket.start.strftime(label_format))}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _timeline(report: Report) -> str:
    timeline = report.timeline
    if not timeline.buckets:
        return '<section id="timeline"><h2>Timeline of reads</h2><p class="muted">No read logged.</p></section>'
    rows = [
        f"<tr><td>{_e(_time(b.start))}</td>{_num(b.reads)}{_num(b.emergency)}<td>"
        + ", ".join(f"{_e(org)}: {n}" for org, n in b.by_organisation)
        + "</td></tr>"
        for b in timeline.buckets
        if b.reads
    ]
    table = _table(
        [f"{timeline.granularity.capitalize()} from", "Reads", "Emergency", "By organisation"], rows, empty=""
    )
    legend = (
        f'<p class="legend muted">Reads per {_e(timeline.granularity)}, Asia/Shanghai'
        '<span style="background:#0969da"></span>reads<span style="background:#cf222e"></span>emergency reads</p>'
    )
    return (
        f'<section id="timeline"><h2>Timeline of reads</h2>{legend}'
        f"{_svg(timeline)}<details><summary>As a table (non-empty {_e(timeline.granularity)}s)</summary>"
        f"{table}</details></section>"
    )


def _matrix(report: Report) -> str:
    matrix = report.matrix
    if not matrix.org_ids:
        return f'<section id="matrix"><h2>{_MATRIX_TITLE}</h2><p class="muted">No read logged.</p></section>'
    header = "".join(f'<th class="n">{_e(t)}</th>' for t in matrix.record_types)
    rows = "".join(
        f'<tr data-org="{_e(org_id)}"><th>{_e(org_id)}</th>{"".join(_num(n) for n in row)}{_num(sum(row))}</tr>'
        for org_id, row in zip(matrix.org_ids, matrix.counts, strict=True)
    )
    totals = "".join(_num(matrix.column_total(t)) for t in matrix.record_types)
    return (
        f'<section id="matrix"><h2>{_MATRIX_TITLE}</h2><table>'
        f'<thead><tr><th>Organisation</th>{header}<th class="n">Total</th></tr></thead><tbody>{rows}'
        f'<tr class="total"><td>Total</td>{totals}{_num(matrix.total)}</tr></tbody></table></section>'
    )


def _review_table(reads: tuple[EmergencyRead, ...], *, empty: str) -> str:
    rows = [
        f'<tr data-entry="{r.entry_index}"><td class="time">{_e(_time(r.time))}</td><td>{_e(r.accessor_org)}</td>'
        f"<td>{_e(r.owner_org)}</td><td>{_record(r.record_id)} v{r.version}</td><td>{_e(r.record_type)}</td>"
        f"<td>{_e(r.purpose)}</td><td>{r.grant_id}</td><td>{'yes' if r.covered else 'NO'}: {_e(r.basis)}</td>"
        f"<td>{r.entry_index}</td><td>{_stated(r.reason_class, r.reason, r.incident_ref)}</td></tr>"
        for r in reads
    ]
    headers = ["Time", "Accessor", "Owner", "Record", "Type", "Purpose", "Grant", "Covered", "Log entry", "Stated"]
    return _table(headers, rows, empty=empty)


def _emergency(report: Report) -> str:
    table = _review_table(report.emergency_reads, empty="No emergency read.")
    return (
        f'<section id="emergency"><h2>Emergency reads awaiting review ({len(report.emergency_reads):,})</h2>'
        f"{table}</section>"
    )


def _stated(reason_class: str | None, reason: str | None, incident_ref: str | None) -> str:
    if (reason_class, reason, incident_ref) == (None, None, None):
        return ""
    return f"{_e(reason_class or '?')}: {_e(reason or '?')} (incident {_e(incident_ref or '?')})"


def _refusals(report: Report) -> str:
    rows = [
        f'<tr data-entry="{r.entry_index}"><td class="time">{_e(_time(local_time(r.time)))}</td>'
        f"<td>{_e(r.accessor_org)}</td><td>{_record(r.record_id)} v{r.version or 'newest'}</td>"
        f"<td>{_e(r.owner_org or '(no such record)')}</td><td>{_e(r.purpose)}</td><td>{r.grant_id or ''}</td>"
        f"<td>{_e(r.refusal)}</td><td>{_stated(r.reason_class, r.reason, r.incident_ref)}</td>"
        f"<td>{r.entry_index}</td></tr>"
        for r in report.refusals
    ]
    headers = ["Time", "Accessor", "Record asked for", "Owner", "Purpose", "Grant", "Refused because", "Stated",
               "Log entry"]  # fmt: skip
    table = _table(headers, rows, empty="No refused attempt.")
    return (
        f'<section id="refusals"><h2>Refused attempts ({len(report.refusals):,})</h2>'
        '<p class="muted">Every refused read is logged and anchored like a release; the caller got the answer '
        f"of a missing record unless the grant it presented covered the record.</p>{table}</section>"
    )


def _admin_reads(report: Report) -> str:
    table = _review_table(report.admin_granted_reads, empty=_unknown_or(report, "No read under a grant an admin made."))
    return (
        f'<section id="admin-reads"><h2>Reads under admin-made grants, for review '
        f"({len(report.admin_granted_reads):,})</h2>"
        '<p class="muted">The owner\'s signer did not make these grants: an organisation admin did, on its '
        f"behalf.</p>{table}</section>"
    )


def _chain_ref(block: int, transaction: str) -> str:
    return f'<td class="n">{block}</td><td><code title="{_e(transaction)}">{_e(transaction[:12])}…</code></td>'


def _admin_grants(report: Report) -> str:
    rows = [
        f'<tr data-grant="{a.grant_id}"><td class="time">{_e(_time(block_time(a.timestamp)))}</td>'
        f"<td>{a.grant_id}</td><td>{_e(a.action)}</td><td>{_e(a.owner_org)}</td><td>{_e(a.grantee_org)}</td>"
        f"<td><code>{_e(a.by)}</code></td>{_chain_ref(a.block_number, a.transaction)}</tr>"
        for a in report.admin_grants
    ]
    headers = ["Time", "Grant", "Action", "Owner", "Grantee", "Admin", "Block", "Transaction"]
    table = _table(headers, rows, empty=_unknown_or(report, "No grant made or revoked by an admin."))
    title = f"Grants an admin made or revoked ({len(report.admin_grants):,})"
    return f'<section id="admin-grants"><h2>{title}</h2>{table}</section>'


def _signer_changes(report: Report) -> str:
    rows = [
        f'<tr data-signer-org="{_e(c.org_id)}" data-step="{_e(c.step)}">'
        f'<td class="time">{_e(_time(block_time(c.timestamp)))}</td><td>{_e(c.org_id)}</td>'
        f"<td>{_e(_STEP_LABELS.get(c.step, c.step))}</td><td><code>{_e(c.by)}</code></td>"
        f"<td><code>{_e(c.previous_signer or '—')}</code></td><td><code>{_e(c.new_signer or '—')}</code></td>"
        f"<td>{_e(_time(block_time(c.effective_at)))}</td>{_chain_ref(c.block_number, c.transaction)}</tr>"
        for c in report.signer_changes
    ]
    headers = ["Time", "Organisation", "Step", "By", "Previous signer", "New signer", "Effective at", "Block",
               "Transaction"]  # fmt: skip
    table = _table(headers, rows, empty=_unknown_or(report, "No signer change."))
    return f'<section id="signer-changes"><h2>Signer changes ({len(report.signer_changes):,})</h2>{table}</section>'


_STEP_LABELS = {"proposed": "proposed", "accepted": "accepted", "cancelled": "cancelled", "changed": "took effect"}


def _unknown_or(report: Report, empty: str) -> str:
    return empty if report.summary.admin_events_known else "Not in this evidence (a v1 bundle holds no admin actions)."


def _discrepancies(report: Report) -> str:
    rows = [
        f"<tr><td><code>{_e(d.kind.value)}</code></td><td>{_e(d.subject)}</td><td>{_e(d.detail)}</td>"
        f"<td>{_e(d.where)}</td></tr>"
        for d in report.discrepancies
    ]
    table = _table(["Kind", "Subject", "Detail", "Where"], rows, empty="No discrepancy: chain, storage and log agree.")
    return f'<section id="discrepancies"><h2>Discrepancies ({len(report.discrepancies):,})</h2>{table}</section>'


def _anomalies(report: Report) -> str:
    rows = [
        f"<tr><td><code>{_e(a.kind.value)}</code></td><td>{_e(a.org_id)}</td><td>{_e(_time(a.window_start))}</td>"
        f"<td>{_e(_time(a.window_end))}</td>{_num(a.count)}<td>{_e(a.detail)}</td></tr>"
        for a in report.anomalies
    ]
    table = _table(["Kind", "Organisation", "From", "To", "Reads", "Detail"], rows, empty="No anomaly flagged.")
    return (
        f'<section id="anomalies"><h2>Anomaly flags ({len(report.anomalies):,})</h2>'
        '<p class="muted">Patterns worth a look (rate spikes, reads outside working hours, emergency bursts), '
        f"not findings.</p>{table}</section>"
    )


def render_html(report: Report) -> str:
    """The report as one HTML5 document (UTF-8 text)."""
    s = report.summary
    title = f"Audit report — chain {s.chain_id}, block {s.checkpoint_block}"
    body = "".join(
        (
            _summary(report), _organisations(report), _timeline(report), _matrix(report), _emergency(report),
            _refusals(report), _admin_reads(report), _admin_grants(report), _signer_changes(report),
            _discrepancies(report), _anomalies(report),
        )
    )  # fmt: skip
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
        f'<p class="muted">{_e(s.source)}</p>{body}</body></html>\n'
    )
