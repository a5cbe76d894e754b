"""``index.html``: a self-contained static page (inline CSS, JS and SVG; no network), deterministic."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ..constants import BENCHMARK_VERSION, PROTOCOL_VERSION
from ..metrics.registry import HEADLINE
from .entries import slug
from .markdown import RULES_MD
from .tables import build_tables, citations, code_href, column_digits, column_headers, fmt_num, rank_text

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.l,th.l{text-align:left}tr.sanity{background:#fff7e0}tr.sanity td.m::after{content:" (sanity)";color:#a60}
.ci{color:#777;font-size:11px}.note{color:#555;white-space:normal;min-width:12em;text-align:left}pre{background:#f6f6f6;padding:.5em;overflow:auto}
.plots{display:flex;flex-wrap:wrap;gap:1em}svg text{font-family:inherit}"""

_JS = """document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
  var asc=!th.classList.contains('sorted-asc');t.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc')});
  th.classList.add(asc?'sorted-asc':'sorted-desc');var b=t.tBodies[0];var rows=Array.prototype.slice.call(b.rows);
  rows.sort(function(r1,r2){var a=r1.cells[i].getAttribute('data-v'),c=r2.cells[i].getAttribute('data-v');
   var x=parseFloat(a),y=parseFloat(c);var r=(isNaN(x)||isNaN(y))?String(a).localeCompare(String(c)):x-y;return asc?r:-r});
  rows.forEach(function(r){b.appendChild(r)})})})});"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _f1(x: float) -> str:
    return f"{x:.1f}"


def _svg_hr1(table: dict[str, Any]) -> str:
    """Dot-and-whisker plot of HR1 with its 95 % CI per method (axis −1…3)."""
    rows = table["rows"]
    w, left, right, top, step = 520, 130, 20, 24, 18
    h = top + step * len(rows) + 30
    lo_v, hi_v = -1.0, 3.0

    def x(v: float) -> float:
        return left + (min(max(v, lo_v), hi_v) - lo_v) / (hi_v - lo_v) * (w - left - right)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
             f'aria-label="HR1 with 95% CI, {_e(table["title"])}">',
             f'<text x="{left}" y="14" font-size="12">HR1 (hit_rate@1) mean and 95 % CI</text>']
    for tick in range(-1, 4):
        parts.append(f'<line x1="{_f1(x(tick))}" y1="{top - 4}" x2="{_f1(x(tick))}" y2="{h - 24}" stroke="#ddd"/>'
                     f'<text x="{_f1(x(tick))}" y="{h - 10}" font-size="11" text-anchor="middle">{tick}</text>')
    for i, row in enumerate(rows):
        y = top + step * i + step / 2
        mean, (lo, hi) = row["scores"][HEADLINE]
        colour = "#b07000" if row["sanity"] else "#1f5fa8"
        parts.append(f'<text x="{left - 6}" y="{_f1(y + 4)}" font-size="11" text-anchor="end">{_e(row["method"])}</text>')
        if lo is not None and hi is not None:
            parts.append(f'<line x1="{_f1(x(lo))}" y1="{_f1(y)}" x2="{_f1(x(hi))}" y2="{_f1(y)}" stroke="{colour}" stroke-width="2"/>')
        if mean is not None:
            parts.append(f'<circle cx="{_f1(x(mean))}" cy="{_f1(y)}" r="4" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_scatter(table: dict[str, Any]) -> str:
    """DiC (x) vs IiC % (y), one labelled point per method."""
    none = (None, [None, None])
    pts = [(r["method"], r["sanity"], r["scores"].get("confidence@1/dic", none)[0],
            r["scores"].get("confidence@1/iic", none)[0]) for r in table["rows"]]
    pts = [p for p in pts if p[2] is not None and p[3] is not None]
    w, h, pad = 420, 300, 44
    xmax = max([p[2] for p in pts] + [1e-9]) * 1.1

    def x(v: float) -> float:
        return pad + v / xmax * (w - 2 * pad)

    def y(v: float) -> float:
        return h - pad - v / 100.0 * (h - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
             f'aria-label="DiC vs IiC, {_e(table["title"])}">',
             f'<text x="{pad}" y="16" font-size="12">DiC (x, higher better) vs IiC % (y, higher better)</text>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#888"/>']
    for k in range(5):
        xv, yv = xmax / 1.1 * k / 4, 25 * k
        parts.append(f'<text x="{_f1(x(xv))}" y="{h - pad + 14}" font-size="10" text-anchor="middle">{xv:.2f}</text>'
                     f'<text x="{pad - 4}" y="{_f1(y(yv) + 3)}" font-size="10" text-anchor="end">{yv}</text>')
    for name, sanity, dic, iic in pts:
        colour = "#b07000" if sanity else "#1f5fa8"
        parts.append(f'<circle cx="{_f1(x(dic))}" cy="{_f1(y(iic))}" r="4" fill="{colour}"/>'
                     f'<text x="{_f1(x(dic) + 6)}" y="{_f1(y(iic) - 4)}" font-size="10">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(entries: Sequence[dict[str, Any]]) -> str:
    """A self-contained static page (inline CSS, JS and SVG; no network)."""
    tables = build_tables(entries)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>hfus-xai-bench {_e(BENCHMARK_VERSION)} leaderboard</title>", f"<style>{_CSS}</style></head><body>",
           "<!-- generated by `hfus-bench leaderboard render` from leaderboard/entries/*.json; do not edit by hand -->",
           f"<h1>hfus-xai-bench leaderboard</h1><p>hfus-xai-bench {_e(BENCHMARK_VERSION)}, protocol v{_e(PROTOCOL_VERSION)}. "
           "Click a column header to sort. Markdown version: <a href=\"LEADERBOARD.md\">LEADERBOARD.md</a>.</p>"]
    rules = _e(RULES_MD).replace("\n\n", "</p><p>").replace("**", "")
    out.append(f"<p>{rules}</p>")
    if not tables:
        out.append("<p><em>No entries yet.</em></p>")
    head = column_headers()
    for table in tables:
        out.append(f'<h2 id="{_e(table["anchor"])}">{_e(table["title"])}</h2>')
        out.append('<table class="sortable"><thead><tr>' + "".join(
            f'<th class="{"l" if h in ("method", "device", "links", "notes") else ""}">{_e(h)}</th>' for h in head)
            + "</tr></thead><tbody>")
        for row in table["rows"]:
            cells = []
            rank = row["rank"]
            cells.append(f'<td data-v="{rank[0] if rank else 999}">{_e(rank_text(rank))}</td>')
            url = row["links"]["url"]
            name = _e(row["method"])
            label = f'<a href="{_e(url)}">{name}</a>' if url else name
            cells.append(f'<td class="l m" data-v="{name}">{label}</td>')
            for key, (mean, ci) in row["scores"].items():
                d = column_digits(key)
                ci_text = "" if ci[0] is None else f'<br><span class="ci">[{fmt_num(ci[0], d)}, {fmt_num(ci[1], d)}]</span>'
                cells.append(f'<td data-v="{"" if mean is None else repr(mean)}">{fmt_num(mean, d)}{ci_text}</td>')
            cells.append(f'<td data-v="{row["accuracy"]}">{fmt_num(row["accuracy"])}</td>')
            cells.append(f'<td data-v="{_e(row["evaluated"])}">{_e(row["evaluated"])}</td>')
            cells.append(f'<td data-v="{row["seconds"]}">{fmt_num(row["seconds"], 4)}</td>')
            cells.append(f'<td data-v="{row["forwards"]}">{fmt_num(row["forwards"], 1)}</td>')
            cells.append(f'<td class="l" data-v="{_e(row["device"])}">{_e(row["device"])}</td>')
            links = []
            if row["links"]["citation"]:
                links.append(f'<a href="#cite-{_e(slug(row["method"]).lower())}">BibTeX</a>')
            if row["links"]["code"]:
                links.append(f'<a href="{_e(code_href(row["links"]["code"]))}">code</a>')
            cells.append(f'<td class="l" data-v="">{" · ".join(links)}</td>')
            notes = "; ".join(row["notes"])
            cells.append(f'<td class="note" data-v="{_e(notes)}">{_e(notes)}</td>')
            out.append(f'<tr class="{"sanity" if row["sanity"] else ""}">' + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
        out.append(f'<div class="plots">{_svg_hr1(table)}{_svg_scatter(table)}</div>')
    cites = citations(entries)
    if cites:
        out.append("<h2>Citations</h2>")
        for name, bib in cites:
            anchor = _e(slug(name).lower())
            out.append(f'<h3 id="cite-{anchor}">{_e(name)}</h3><pre>{_e(bib.strip())}</pre>')
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"


