"""The leaderboard page in a real headless browser (Debian's ``chromium``): tables, sorting on a header
click, plots.

The page is rendered into a tmp folder (from test entries with §7 scores, and from the committed entries) and
served on localhost by ``http.server`` in a thread. A same-origin harness page loads each leaderboard in an
iframe; its script clicks the column headers, reads the rows back, measures the scatter's label boxes with
``getBBox()`` and writes everything as JSON into the DOM, which ``chromium --headless --dump-dom`` prints.
No Python dependency beyond the standard library; skipped (with the reason) only where chromium is absent,
and an error there when ``HFUS_REQUIRE_BROWSER`` is set (``.ci/run`` sets it: CI must run this test).
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from leaderboard_fixtures import s7_record

from hfus_xai_bench.leaderboard import entry_from_result, load_entries, render_html
from hfus_xai_bench.leaderboard.tables import build_tables

REPO = Path(__file__).resolve().parent.parent


def _chromium() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


CHROMIUM = _chromium()
MISSING = (
    "Debian's chromium is not installed, so the headless-browser test of the leaderboard page cannot run; "
    "`make install` installs it (apt-get install chromium)"
)
if CHROMIUM is None and os.environ.get("HFUS_REQUIRE_BROWSER"):  # CI (.ci/run) must run it
    raise RuntimeError(f"HFUS_REQUIRE_BROWSER is set but {MISSING}")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=MISSING)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--window-size=1500,1000",
)

HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<iframe id="fixture" src="fixture/index.html" width="1500" height="800"></iframe>
<iframe id="committed" src="committed/index.html" width="1500" height="800"></iframe>
<pre id="result">pending</pre>
<script>
function rowsOf(body) {
  return Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains('group'); });
}
function column(table, i) {
  return Array.prototype.map.call(table.tBodies, function (b) {
    return rowsOf(b).map(function (r) { return r.cells[i].getAttribute('data-v'); }); });
}
function boxes(list) {
  return Array.prototype.map.call(list, function (el) {
    var b = el.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; });
}
function overlaps(a, b) {
  return a[0] < b[2] - 0.5 && b[0] < a[2] - 0.5 && a[1] < b[3] - 0.5 && b[1] < a[3] - 0.5;
}
function check(doc) {
  var out = {};
  var main = doc.querySelector('table.main'), detail = doc.querySelector('table.detail');
  out.n_sortable = doc.querySelectorAll('table.sortable').length;
  out.n_sections = doc.querySelectorAll('h2[id]').length;
  out.headers = Array.prototype.map.call(main.tHead.rows[0].cells, function (c) { return c.textContent; });
  out.bodies = Array.prototype.map.call(main.tBodies, function (b) { return b.className; });
  out.group_rows = Array.prototype.map.call(main.querySelectorAll('tr.group'), function (r) {
    return r.textContent; });
  out.methods = column(main, 1);
  var hr1 = out.headers.indexOf('HR1 ↑'), gain = out.headers.indexOf('ΔHR1 vs depth_prior ↑');
  var th = main.tHead.rows[0].cells[hr1];
  out.hr1_before = column(main, hr1);
  th.click(); out.hr1_asc = column(main, hr1); out.hr1_asc_class = th.className;
  out.methods_asc = column(main, 1);
  th.click(); out.hr1_desc = column(main, hr1); out.hr1_desc_class = th.className;
  main.tHead.rows[0].cells[gain].click(); out.gain_asc = column(main, gain);
  main.tHead.rows[0].cells[1].click(); out.methods_by_name = column(main, 1);
  out.group_first = Array.prototype.map.call(main.tBodies, function (b) {
    return b.classList.contains('ranked') || b.rows[0].classList.contains('group'); });
  var dh = Array.prototype.map.call(detail.tHead.rows[0].cells, function (c) { return c.textContent; });
  var road = dh.indexOf('ΔROAD vs random ↑');
  if (road >= 0) { detail.tHead.rows[0].cells[road].click(); out.detail_road_asc = column(detail, road); }
  out.rank_columns = [];
  out.headers.forEach(function (h, i) { if (/ rank/.test(h)) out.rank_columns.push(i); });
  out.rank_titles = out.rank_columns.map(function (i) {
    return main.tHead.rows[0].cells[i].getAttribute('title'); });
  out.rank_sorted = out.rank_columns.map(function (i) {
    main.tHead.rows[0].cells[i].click();
    return {asc: column(main, i), methods: column(main, 1)}; });
  if (out.rank_columns.length) {
    var last = main.tHead.rows[0].cells[out.rank_columns[0]];
    last.click(); last.click();  // the other clicks cleared its class: asc, then desc
    out.rank_desc = column(main, out.rank_columns[0]); out.rank_desc_class = last.className;
  }
  out.n_forest = doc.querySelectorAll('svg.forest').length;
  out.n_scatter = doc.querySelectorAll('svg.scatter').length;
  out.forest_panels = Array.prototype.map.call(doc.querySelectorAll('svg.forest text.panel'), function (t) {
    return t.textContent; });
  out.forest_circles = doc.querySelectorAll('svg.forest circle').length;
  var svg = doc.querySelector('svg.scatter');
  var labels = boxes(svg.querySelectorAll('text.label')), dots = boxes(svg.querySelectorAll('circle'));
  out.n_labels = labels.length; out.n_dots = dots.length;
  var bad = [];
  for (var i = 0; i < labels.length; i++) {
    for (var j = i + 1; j < labels.length; j++) {
      if (overlaps(labels[i], labels[j])) bad.push(['label', i, j]);
    }
    for (var k = 0; k < dots.length; k++) { if (overlaps(labels[i], dots[k])) bad.push(['dot', i, k]); }
  }
  out.label_overlaps = bad;
  out.label_heights = labels.map(function (b) { return b[3] - b[1]; });
  var rules = doc.body.innerHTML.split('<h2')[0];
  out.rules_has_markup_chars = /`|\\*\\*/.test(rules.replace(/<[^>]*>/g, ''));
  out.rules_code = doc.querySelectorAll('p code').length;
  out.rules_strong = doc.querySelectorAll('p strong').length;
  return out;
}
window.addEventListener('load', function () {
  var result = {};
  ['fixture', 'committed'].forEach(function (id) {
    try { result[id] = check(document.getElementById(id).contentDocument); }
    catch (e) { result[id] = {error: String(e) + ' ' + (e.stack || '')}; }
  });
  document.getElementById('result').textContent = JSON.stringify(result);
});
</script></body></html>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _fixture_entries() -> list[dict]:
    recs = [
        s7_record("gradcam", 2.0, 1),
        s7_record("scorecam", 1.2, 2, road=0.05),
        s7_record("saliency", 0.4, 6, road=-0.1),
        s7_record("depth_prior", 2.4, 5, model_dependent=False, road=0.25),
        s7_record("random", 0.2, 3, model_dependent=False, road=0.0),
        s7_record("sobel", 0.9, 4, model_dependent=False),
    ]
    return [entry_from_result(r) for r in recs]


@pytest.fixture(scope="module")
def browser_result() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, entries in (
            ("fixture", _fixture_entries()),
            ("committed", load_entries(REPO / "leaderboard" / "entries")),
        ):
            (root / name).mkdir()
            (root / name / "index.html").write_text(render_html(entries))
        (root / "harness.html").write_text(HARNESS)
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/harness.html"
            cmd = [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={root / 'profile'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
    match = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert proc.returncode == 0 and match, f"chromium exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert match.group(1) != "pending", (
        "the harness did not run (no load event within the virtual time budget)"
    )
    return json.loads(html.unescape(match.group(1)))


def _numbers(values: list) -> list[float]:
    return [float(v) for v in values if v not in ("", None)]


def test_tables_are_there(browser_result: dict) -> None:
    out = browser_result["fixture"]
    assert "error" not in out, out.get("error")
    assert out["n_sortable"] == 2 and out["n_sections"] == 1  # main (with the rank columns), paired gains
    assert out["headers"][:6] == [
        "rank",
        "method",
        "HR1 ↑",
        "ΔHR1 vs depth_prior ↑",
        "ROAD ↑",
        "ρ rand. ↓ (ρ cross)",
    ]
    assert out["bodies"] == ["ranked", "unranked fail"]
    assert out["group_rows"][0].startswith("not ranked — maps do not depend enough on the model")
    assert out["methods"] == [["gradcam", "scorecam", "saliency"], ["depth_prior", "sobel", "random"]]
    committed = browser_result["committed"]
    assert "error" not in committed, committed.get("error")
    assert committed["n_sortable"] == 2 * committed["n_sections"] >= 2
    first = build_tables(load_entries(REPO / "leaderboard" / "entries"))[0]  # the page's first table
    assert sum(len(b) for b in committed["methods"]) == len(first["rows"])


def test_rank_columns_sort(browser_result: dict) -> None:
    """The rank columns sit in the main table after the score columns; a click on one sorts the ranked rows
    by that criterion's mean rank, the unranked ones (no rank) stay below, in their own groups."""
    out = browser_result["fixture"]
    cols = out["rank_columns"]
    assert [out["headers"][i] for i in cols] == ["loc. rank", "faith. rank (spread)", "sanity rank (spread)"]
    assert out["headers"][cols[-1] + 1] == "acc" and out["headers"][cols[0] - 1] == "IiC % ↑"
    assert out["rank_titles"][1].startswith("faithfulness: mean rank over ROAD, DiC, IiC %")
    for name in ("fixture", "committed"):
        res = browser_result[name]
        assert len(res["rank_columns"]) >= 2, name
        for sort in res["rank_sorted"]:
            ranked, *unranked = sort["asc"]
            values = _numbers(ranked)
            assert len(values) == len(ranked) and values == sorted(values), name  # every ranked row has one
            assert all(set(group) == {""} for group in unranked), name  # "—": no rank, nothing to sort by
            assert sorted(sort["methods"][0]) == sorted(res["methods"][0])  # the ranked rows stay together
        desc = _numbers(res["rank_desc"][0])
        assert desc == sorted(desc, reverse=True) and res["rank_desc_class"] == "sorted-desc"
    first = _numbers(out["rank_sorted"][0]["asc"][0])
    assert first == [1.0, 2.0, 3.0]  # localisation = HR1 alone here, levels 2.0 > 1.2 > 0.4


def test_a_click_on_a_header_sorts_the_rows(browser_result: dict) -> None:
    for name in ("fixture", "committed"):
        out = browser_result[name]
        for before, asc, desc in zip(out["hr1_before"], out["hr1_asc"], out["hr1_desc"], strict=True):
            b, a, d = _numbers(before), _numbers(asc), _numbers(desc)
            assert sorted(b) == sorted(a) == sorted(d)
            assert a == sorted(a) and d == sorted(d, reverse=True), name  # sorted within each group
        assert out["hr1_asc_class"] == "sorted-asc" and out["hr1_desc_class"] == "sorted-desc"
        assert all(out["group_first"]), name  # the group headings stay on top; unranked rows stay below
        names = out["methods_by_name"]
        assert all(group == sorted(group) for group in names) and sorted(sum(names, [])) == sorted(
            sum(out["methods"], [])
        )
    out = browser_result["fixture"]
    assert out["methods_asc"] == [["saliency", "scorecam", "gradcam"], ["random", "sobel", "depth_prior"]]
    ranked_gain, unranked_gain = out["gain_asc"]
    assert _numbers(ranked_gain) == sorted(_numbers(ranked_gain)) and len(_numbers(ranked_gain)) == 3
    assert unranked_gain[-1] == ""  # the prior's own cell ("—") sorts last
    road = [_numbers(g) for g in out["detail_road_asc"]]
    assert all(g == sorted(g) for g in road)


def test_the_plots_are_there(browser_result: dict) -> None:
    for name in ("fixture", "committed"):
        out = browser_result[name]
        assert out["n_forest"] == out["n_scatter"] == out["n_sections"]
        assert out["forest_panels"][:2] == ["HR1 (hit_rate@1)", "ROAD combined (road@1)"]
        assert out["n_labels"] == out["n_dots"] > 0
        assert out["label_overlaps"] == [], (name, out["label_overlaps"])
        assert all(h > 5 for h in out["label_heights"])  # the labels were laid out (a font was found)
        assert not out["rules_has_markup_chars"] and out["rules_code"] > 3 and out["rules_strong"] >= 3
    assert browser_result["fixture"]["forest_circles"] == 2 * 6
