"""``index.html``: a self-contained static page (inline CSS, JS and SVG; no network), deterministic.

Each section has the ranked table (PROTOCOL §7.4 columns, with one rank column per criterion: its header's
and each cell's ``title`` name the metrics and the row's rank per metric) and the table of paired gains and
other scores;
in both, the ranked rows and each kind of unranked rows are separate ``<tbody>`` elements, so a click on
a column header sorts the rows within each group and the unranked ones stay below the ranked ones. Texts
written in Markdown (the rules, the notes) go through :func:`.mdtext.markdown_to_html`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from ..constants import BENCHMARK_VERSION, PROTOCOL_VERSION
from .entries import slug
from .markdown import RULES_MD, not_applicable_text
from .mdtext import inline_html, markdown_to_html
from .numbers import fe_text, fmt_num, rank_text
from .plots import svg_forest, svg_scatter
from .ranks import CriterionRanks, metric_label, rank_header, ranks_legend
from .tables import (
    UNRANKED_HEADINGS,
    Cell,
    Column,
    accuracy_columns,
    build_tables,
    cell,
    citations,
    code_href,
    column_headers,
    detail_columns,
    detail_headers,
    main_columns,
    rank_cell,
)

_CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;"
    "max-width:1400px;padding:0 1em;color:#222}\n"
    "table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;"
    "padding:3px 6px;text-align:right;white-space:nowrap}\n"
    'th{background:#f3f3f3;cursor:pointer;user-select:none}th.sorted-asc::after{content:" ▲"}'
    'th.sorted-desc::after{content:" ▼"}\n'
    "td.l,th.l{text-align:left}tr.sanity{background:#fff7e0}tr.sanity td.m::after{"
    'content:" (sanity)";color:#a60}\n'
    "tbody.unranked tr{color:#666}tr.group td{background:#eee;color:#333;font-weight:600;"
    "text-align:left}\n"
    ".ci,.aside{color:#777;font-size:11px}.note{color:#555;white-space:normal;min-width:12em;"
    "text-align:left}pre{background:#f6f6f6;padding:.5em;overflow:auto}\n"
    "code{background:#f3f3f3;padding:0 .2em}.plots{display:flex;flex-wrap:wrap;gap:1em}svg text{"
    "font-family:inherit}"
)

_JS = (
    "function hfusValue(c){var v=c.getAttribute('data-v');return v===null?'':v}\n"
    "document.querySelectorAll('table.sortable').forEach(function(t){\n"
    " t.tHead.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){\n"
    "  var asc=!th.classList.contains('sorted-asc');"
    "t.tHead.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc',"
    "'sorted-desc')});\n"
    "  th.classList.add(asc?'sorted-asc':'sorted-desc');\n"
    "  Array.prototype.forEach.call(t.tBodies,function(b){\n"
    "   var rows=Array.prototype.filter.call(b.rows,function(r){"
    "return !r.classList.contains('group')});\n"
    "   rows.sort(function(r1,r2){var a=hfusValue(r1.cells[i]),c=hfusValue(r2.cells[i]);"
    "var x=parseFloat(a),y=parseFloat(c);\n"
    "    var na=isNaN(x),nb=isNaN(y);if(na!==nb){return na?1:-1}"
    "var r=(na&&nb)?a.localeCompare(c):x-y;return asc?r:-r});\n"
    "   rows.forEach(function(r){b.appendChild(r)})})})})});"
)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cell_td(c: Cell, title: str = "") -> str:
    """A score cell: sorted by ``c.sort``; ``title``: its tooltip (none when empty)."""
    sort = "" if c.sort is None else repr(float(c.sort))
    ci = f'<br><span class="ci">{_e(c.ci)}</span>' if c.ci else ""
    aside = f' <span class="aside">{_e(c.aside)}</span>' if c.aside else ""
    tip = f' title="{_e(title)}"' if title else ""
    return f'<td data-v="{sort}"{tip}>{_e(c.text)}{aside}{ci}</td>'


def _score_td(row: dict[str, Any], column: Column) -> str:
    return _cell_td(cell(row, column))


def _method_td(row: dict[str, Any]) -> str:
    url = row["links"]["url"]
    name = _e(row["method"])
    label = f'<a href="{_e(url)}">{name}</a>' if url else name
    return f'<td class="l m" data-v="{name}">{label}</td>'


def _bodies(
    rows: Sequence[dict[str, Any]], width: int, render_row: Callable[[dict[str, Any]], list[str]]
) -> str:
    """One ``<tbody>`` per row status (ranked first), each unranked one led by a heading row."""
    out, current = [], None
    for row in rows:
        if row["status"] != current:
            if current is not None:
                out.append("</tbody>")
            current = row["status"]
            if current == "ranked":
                out.append('<tbody class="ranked">')
            else:
                out.append(
                    f'<tbody class="unranked {_e(current)}"><tr class="group"><td colspan="{width}">'
                    f"{_e(UNRANKED_HEADINGS[current])}</td></tr>"
                )
        cls = "sanity" if row["sanity"] else ""
        out.append(f'<tr class="{cls}">' + "".join(render_row(row)) + "</tr>")
    if current is not None:
        out.append("</tbody>")
    return "".join(out)


def _head(headers: Sequence[str], left: Sequence[str], titles: dict[str, str] | None = None) -> str:
    titles = titles or {}
    return (
        "<thead><tr>"
        + "".join(
            f'<th class="{"l" if h in left else ""}"'
            + (f' title="{_e(titles[h])}"' if h in titles else "")
            + f">{_e(h)}</th>"
            for h in headers
        )
        + "</tr></thead>"
    )


def _rank_titles(criteria: Sequence[CriterionRanks]) -> dict[str, str]:
    """Header -> its tooltip: the criterion, the metrics its mean rank averages and what the spread is."""
    spread = "; in parentheses the spread, max − min of the row's ranks across them"
    return {
        rank_header(c): f"{c.criterion}: mean rank over {', '.join(metric_label(k) for k in c.metrics)} "
        f"[95 % interval]{spread if len(c.metrics) > 1 else ''} (PROTOCOL §7.4; never sets the order)"
        for c in criteria
    }


def _rank_td(row: dict[str, Any], i: int) -> str:
    """A rank column's cell; its tooltip gives the row's rank per metric."""
    c = rank_cell(row, i)
    ranks = row["criterion_ranks"][i].ranks if c.sort is not None else None
    per_metric = ", ".join(f"{metric_label(k)} {v:g}" for k, v in ranks.items()) if ranks else ""
    return _cell_td(c, f"rank per metric: {per_metric}" if per_metric else "")


def _links_td(row: dict[str, Any]) -> str:
    links = []
    if row["links"]["citation"]:
        links.append(f'<a href="#cite-{_e(slug(row["method"]).lower())}">BibTeX</a>')
    if row["links"]["code"]:
        links.append(f'<a href="{_e(code_href(row["links"]["code"]))}">code</a>')
    return f'<td class="l" data-v="">{" · ".join(links)}</td>'


def _main_row(row: dict[str, Any], table: dict[str, Any]) -> list[str]:
    """A row of the ranked table: rank, method, scores, rank columns, accuracy, cost, links, notes."""
    ev = table["evidence"]
    rank = row["rank"]
    cells = [f'<td data-v="{rank[0] if rank else ""}">{_e(rank_text(rank))}</td>', _method_td(row)]
    cells += [_score_td(row, c) for c in main_columns(ev)]
    cells += [_rank_td(row, i) for i in range(len(table["criteria"]))]
    cells.append(f'<td data-v="{row["accuracy"]}">{fmt_num(row["accuracy"])}</td>')
    cells += [_score_td(row, c) for c in accuracy_columns(ev)]
    cells.append(f'<td data-v="{_e(row["evaluated"])}">{_e(row["evaluated"])}</td>')
    fe = "" if row["fe"] is None else repr(float(row["fe"]))
    cells.append(f'<td data-v="{fe}">{_e(fe_text(row["fe"]))}</td>')
    cells.append(f'<td data-v="{row["seconds"]}">{fmt_num(row["seconds"], 4)}</td>')
    cells.append(f'<td class="l" data-v="{_e(row["device"])}">{_e(row["device"])}</td>')
    cells.append(_links_td(row))
    notes = "; ".join(row["notes"])
    cells.append(f'<td class="note" data-v="{_e(notes)}">{inline_html(notes)}</td>')
    return cells


def _detail_row(row: dict[str, Any], ev: bool) -> list[str]:
    """A row of the table of gains and other scores: method, then a score per column."""
    return [_method_td(row), *(_score_td(row, c) for c in detail_columns(ev))]


def _section(table: dict[str, Any]) -> list[str]:
    """One table's section: heading, ranked table, legend and notes, table of gains and other scores,
    plots."""
    ev = table["evidence"]
    criteria = table["criteria"]
    head, dhead = column_headers(ev, criteria), detail_headers(ev)
    out = [f'<h2 id="{_e(table["anchor"])}">{_e(table["title"])}</h2>']
    out.append(
        '<table class="sortable main">'
        + _head(head, ("method", "device", "links", "notes"), _rank_titles(criteria))
        + _bodies(table["rows"], len(head), lambda row: _main_row(row, table))
        + "</table>"
    )
    out += [markdown_to_html(t) for t in (ranks_legend(criteria), not_applicable_text(table)) if t]
    out.append("<p>Paired gains over the sanity baselines (PROTOCOL §7.3) and the other scores:</p>")
    out.append(
        '<table class="sortable detail">'
        + _head(dhead, ("method",))
        + _bodies(table["rows"], len(dhead), lambda row: _detail_row(row, ev))
        + "</table>"
    )
    out.append(f'<div class="plots">{svg_forest(table)}{svg_scatter(table)}</div>')
    return out


def _citations(entries: Sequence[dict[str, Any]]) -> list[str]:
    """The citations section (a heading with an anchor and the BibTeX of each cited method); none without."""
    cites = citations(entries)
    if not cites:
        return []
    out = ["<h2>Citations</h2>"]
    for name, bib in cites:
        anchor = _e(slug(name).lower())
        out.append(f'<h3 id="cite-{anchor}">{_e(name)}</h3><pre>{_e(bib.strip())}</pre>')
    return out


def render_html(entries: Sequence[dict[str, Any]]) -> str:
    """A self-contained static page (inline CSS, JS and SVG; no network)."""
    tables = build_tables(entries)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>hfus-xai-bench {_e(BENCHMARK_VERSION)} leaderboard</title>",
        f"<style>{_CSS}</style></head><body>",
        "<!-- generated by `hfus-bench leaderboard render` from leaderboard/entries/*.json; "
        "do not edit by hand -->",
        f"<h1>hfus-xai-bench leaderboard</h1><p>hfus-xai-bench {_e(BENCHMARK_VERSION)}, "
        f"protocol v{_e(PROTOCOL_VERSION)}. "
        "Click a column header to sort (ranked and unranked rows separately). "
        'Markdown version: <a href="LEADERBOARD.md">LEADERBOARD.md</a>.</p>',
        markdown_to_html(RULES_MD),
    ]
    if not tables:
        out.append("<p><em>No entries yet.</em></p>")
    for table in tables:
        out += _section(table)
    out += _citations(entries)
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"
