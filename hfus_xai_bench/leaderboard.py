"""Leaderboard entries and the rendered tables (LEADERBOARD.md + a self-contained index.html).

An entry (``leaderboard/entries/<method>.json``; ``<method>.<track>.json`` for tracks other than
``hfus-synth``) is a result record without ``per_image``, plus ``track`` and ``links``; it follows
``schemas/entry.schema.json``. The pages are generated from the entries alone and deterministically
(sorted, fixed number formats, no render-time timestamps), so CI can fail when the committed pages
differ from a fresh render.

Tables: one per (track, dataset revision, architecture, evaluation setting). Headline metric
``hit_rate@1``. Rank rule (higher is better, CI = the 95 % bootstrap CI of HR1): the rank range of a
method is ``[1 + #methods whose CI lower bound is above its CI upper bound,
#methods whose CI upper bound is at or above its CI lower bound]`` (itself included), i.e. the best
and worst rank it could take among methods whose CIs overlap with it. Two rows are "identical" when
all six headline means agree within ``IDENTICAL_TOL``; expected identities (HiRes-CAM = Grad-CAM on
ResNet101 / MobileNetV2 / GoogLeNet, PROTOCOL §5.1) are annotated, never hidden.
"""

from __future__ import annotations

import argparse
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .constants import BENCHMARK_VERSION, PROTOCOL_VERSION, SYNTH_DATASET
from .errors import HfusError
from .explainers.registry import BUILTIN_METHODS, SANITY_METHODS
from .results import HEADLINE, validate

HEADLINE_KEY = "hit_rate@1"
ENTRIES_DIR = Path("leaderboard/entries")
OUT_DIR = Path("leaderboard")
#: Headline means closer than this (all six) make two rows "identical" (= equal as displayed).
IDENTICAL_TOL = 5e-4
#: (method, same-as) -> architectures where the two are expected to be identical (PROTOCOL §5.1): the
#: target layer is followed only by pooling + linear. With the pinned post-ReLU DenseNet201 target
#: (models/zoo.py) that holds for DenseNet201 too (tests/test_cam.py checks all four).
EXPECTED_IDENTICAL: dict[tuple[str, str], frozenset[str]] = {
    ("hirescam", "gradcam"): frozenset({"resnet101", "mobilenet_v2", "googlenet", "densenet201"}),
}
ARCH_LABELS = {"densenet201": "DenseNet201", "googlenet": "GoogLeNet", "mobilenet_v2": "MobileNetV2", "resnet101": "ResNet101"}
_DIGITS = {"confidence@1/iic": 1}


# ------------------------------------------------------------------------------------------ entries

def default_links(record: dict[str, Any]) -> dict[str, str | None]:
    """Links for an entry from the record's method metadata, falling back to the built-in references."""
    from .citation import METHOD_REFERENCES

    method = record["method"]
    name, source = method["name"], method.get("source", "")
    ref_url, ref_bib = METHOD_REFERENCES.get(name, (None, None)) if source == "builtin" else (None, None)
    code: str | None = None
    if source == "builtin" and name in BUILTIN_METHODS:
        code = BUILTIN_METHODS[name].partition(":")[0].replace(".", "/") + ".py"
    elif source.startswith("file:"):
        path = Path(source[5:])
        try:
            code = path.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            code = path.name
    elif source:
        code = source
    return {"url": method.get("url") or ref_url, "citation": method.get("citation") or ref_bib, "code": code}


def entry_from_result(
    record: dict[str, Any],
    *,
    track: str | None = None,
    url: str | None = None,
    citation: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """A leaderboard entry: the record minus ``per_image``, plus ``track`` (default: the dataset id) and ``links``."""
    validate(record, source="result")
    entry = {k: v for k, v in record.items() if k != "per_image"}
    links = default_links(record)
    links.update({k: v for k, v in (("url", url), ("citation", citation), ("code", code)) if v is not None})
    entry["track"] = track or record["dataset"]["id"]
    entry["links"] = links
    entry = json.loads(json.dumps(entry))
    validate_entry(entry)
    return entry


def validate_entry(entry: dict[str, Any], source: str = "entry") -> None:
    """Raise HfusError naming the first field that breaks ``schemas/entry.schema.json``."""
    validate(entry, source=source, name="entry")


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "-", text).strip("-") or "x"


def entry_filename(entry: dict[str, Any]) -> str:
    """``<method>.json`` on the synthetic track, ``<method>.<track>.json`` on others."""
    name = _slug(entry["method"]["name"])
    return f"{name}.json" if entry["track"] == SYNTH_DATASET else f"{name}.{_slug(entry['track'])}.json"


def write_entry(entry: dict[str, Any], entries_dir: str | Path = ENTRIES_DIR) -> Path:
    validate_entry(entry)
    path = Path(entries_dir) / entry_filename(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n")
    return path


def load_entries(entries_dir: str | Path = ENTRIES_DIR) -> list[dict[str, Any]]:
    """Every ``*.json`` in ``entries_dir``, validated, sorted by file name; one entry per method and track."""
    folder = Path(entries_dir)
    if not folder.is_dir():
        raise HfusError(f"entries folder not found: {folder}; pass --entries")
    entries, seen = [], {}
    for path in sorted(folder.glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise HfusError(f"{path} is not valid JSON: {err}") from err
        validate_entry(entry, source=str(path))
        if path.name != entry_filename(entry):
            raise HfusError(f"{path}: an entry for {entry['method']['name']!r} on {entry['track']!r} must be named "
                            f"{entry_filename(entry)}; rename it")
        key = (entry["method"]["name"], entry["track"])
        if key in seen:
            raise HfusError(f"{path}: a second entry for {key[0]!r} on {key[1]!r} (first: {seen[key]}); keep one")
        seen[key] = path.name
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------------------- ranking

def rank_ranges(cis: Sequence[tuple[float | None, float | None]]) -> list[tuple[int, int] | None]:
    """Rank range of each CI (higher is better): [1 + #{lower_j > upper_i}, #{upper_j >= lower_i}].

    Rows with a missing bound get None and do not count for the others.
    """
    valid = [(lo, hi) for lo, hi in cis if lo is not None and hi is not None]
    out: list[tuple[int, int] | None] = []
    for lo, hi in cis:
        if lo is None or hi is None:
            out.append(None)
            continue
        best = 1 + sum(1 for lo_j, _ in valid if lo_j > hi)
        worst = sum(1 for _, hi_j in valid if hi_j >= lo)
        out.append((best, worst))
    return out


def _rank_text(rank: tuple[int, int] | None) -> str:
    if rank is None:
        return "–"
    return str(rank[0]) if rank[0] == rank[1] else f"{rank[0]}–{rank[1]}"


# ---------------------------------------------------------------------------------------- tables

def _setting(entry: dict[str, Any]) -> tuple:
    o = entry["options"]
    return (tuple(o["folds"]), o["limit"], o["target"], o["sign"], o["confidence"])


def _setting_text(setting: tuple) -> str:
    folds, limit, target, sign, confidence = setting
    parts = [f"fold{'s' if len(folds) > 1 else ''} {','.join(map(str, folds))}",
             "all test images" if limit is None else f"first {limit} test images per fold"]
    if (target, sign, confidence) != ("pred", "pos", "logit"):
        parts.append(f"target {target}, sign {sign}, confidence {confidence}")
    return " · ".join(parts)


def _num(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _identical(a: dict[str, Any], b: dict[str, Any], arch: str) -> bool:
    for key in HEADLINE:
        x, y = a["metrics"][key][arch]["mean"], b["metrics"][key][arch]["mean"]
        if (x is None) != (y is None) or (x is not None and abs(x - y) > IDENTICAL_TOL):
            return False
    return True


def build_tables(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group entries into ranked tables: ``{"title", "anchor", "track", "arch", "rows": [...]}``."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for entry in entries:
        for arch in entry["options"]["models"]:
            key = (entry["track"], entry["dataset"]["revision"] or "", arch, _setting(entry))
            groups.setdefault(key, []).append(entry)
    tables = []
    for (track, revision, arch, setting), members in sorted(groups.items(), key=lambda kv: repr(kv[0])):
        def sort_key(e: dict[str, Any], arch: str = arch) -> tuple:
            mean = e["metrics"][HEADLINE_KEY][arch]["mean"]
            return (mean is None, -(mean or 0.0), e["method"]["name"])

        members = sorted(members, key=sort_key)
        ranks = rank_ranges([tuple(e["metrics"][HEADLINE_KEY][arch]["ci95"]) for e in members])
        by_name = {e["method"]["name"]: e for e in members}
        rows = []
        for entry, rank in zip(members, ranks, strict=True):
            name = entry["method"]["name"]
            notes = []
            for (m, same), archs in EXPECTED_IDENTICAL.items():
                if name == m and same in by_name and arch in archs:
                    if _identical(entry, by_name[same], arch):
                        notes.append(f"identical to {same} (expected: PROTOCOL §5.1)")
                    else:
                        notes.append(f"expected identical to {same} (PROTOCOL §5.1) but differs")
            expected = {m for (m, s), a in EXPECTED_IDENTICAL.items() if s == name and arch in a} | {
                s for (m, s), a in EXPECTED_IDENTICAL.items() if m == name and arch in a}
            for other in members:
                o = other["method"]["name"]
                if o != name and o not in expected and _identical(entry, other, arch):
                    notes.append(f"identical to {o}")
            n = entry["counts"][arch]
            cost = entry["cost"][arch]
            env = entry["environment"]
            rows.append({
                "rank": rank,
                "method": name,
                "sanity": name in SANITY_METHODS,
                "scores": {k: (entry["metrics"][k][arch]["mean"], entry["metrics"][k][arch]["ci95"]) for k in HEADLINE},
                "accuracy": entry["classification"][arch]["accuracy"],
                "evaluated": f"{n['n_evaluated']}/{n['n_images']}",
                "failed": n["n_failed"],
                "seconds": cost["seconds_per_image"],
                "forwards": cost["forward_images_per_image"],
                "device": f"{env.get('device_name') or ''} ({entry['options']['device']})".strip(),
                "links": entry["links"],
                "notes": notes,
            })
        rev = revision[:12] if re.fullmatch(r"[0-9a-f]{40}", revision) else revision
        title = f"{track} · {ARCH_LABELS.get(arch, arch)} · {_setting_text(setting)}"
        if rev:
            title += f" · rev {rev}"
        tables.append({"title": title, "anchor": _slug(f"{track}-{arch}-{rev}-{_setting_text(setting)}").lower(),
                       "track": track, "arch": arch, "rows": rows})
    return tables


def _citations(entries: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    out = {}
    for entry in entries:
        bib = entry["links"]["citation"]
        if bib:
            out.setdefault(entry["method"]["name"], bib)
    return sorted(out.items())


def _code_href(code: str | None) -> str | None:
    if not code:
        return None
    return code if re.match(r"^[a-z]+://", code) else f"../{code}"


# -------------------------------------------------------------------------------------- markdown

RULES_MD = f"""Headline metric: **`{HEADLINE_KEY}` (HR1, range −1…3, higher is better)**; tables are sorted by it.
Every score is `mean [95 % CI]`: mean over the evaluated images of each fold, then over folds; the CI is a
bootstrap over images (1000 resamples, seed 0). ↑ higher is better, ↓ lower is better.

**Rank** is a range where confidence intervals overlap: for a method with HR1 CI [l, u] among the methods of
the same table, rank = [1 + #methods whose CI lower bound is above u, #methods whose CI upper bound is at or
above l] (itself included). A single number means no other method's CI overlaps.

Sanity baselines (random, center, depth_prior, sobel; PROTOCOL §5) are always shown and marked *(sanity)*; a
method that does not beat them has not found anything. Rows whose six headline means agree within
{IDENTICAL_TOL:g} are annotated as identical, never hidden (HiRes-CAM = Grad-CAM is expected on all four
architectures: only pooling + linear follows their pinned target layers, PROTOCOL §5.1). Cost: explainer seconds per image and model forward passes
(images) per image, on the device shown."""


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(entries: Sequence[dict[str, Any]]) -> str:
    """LEADERBOARD.md from the entries (deterministic)."""
    lines = [
        "# hfus-xai-bench leaderboard",
        "",
        "<!-- generated by `hfus-bench leaderboard render` from leaderboard/entries/*.json; do not edit by hand -->",
        "",
        f"hfus-xai-bench {BENCHMARK_VERSION}, protocol v{PROTOCOL_VERSION}. Interactive version: [index.html](index.html). "
        "How to submit: [CONTRIBUTING.md](../CONTRIBUTING.md).",
        "",
        RULES_MD,
        "",
    ]
    tables = build_tables(entries)
    if not tables:
        lines += ["_No entries yet: run `leaderboard/make_baselines.sh`, then `hfus-bench leaderboard render`._", ""]
    head = ["rank", "method", *(f"{label} {'↑' if d == 'higher' else '↓'}" for label, d in HEADLINE.values()),
            "acc", "evaluated", "s/img", "fwd/img", "device", "links", "notes"]
    for table in tables:
        lines += [f"## {table['title']}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in table["rows"]:
            url = row["links"]["url"]
            method = f"[{row['method']}]({url})" if url else row["method"]
            if row["sanity"]:
                method = f"*{method}* (sanity)"
            scores = []
            for key, (mean, ci) in row["scores"].items():
                d = _DIGITS.get(key, 3)
                scores.append(_num(mean, d) if ci[0] is None else f"{_num(mean, d)} [{_num(ci[0], d)}, {_num(ci[1], d)}]")
            links = []
            if row["links"]["citation"]:
                links.append(f"[BibTeX](#cite-{_slug(row['method']).lower()})")
            if row["links"]["code"]:
                links.append(f"[code]({_code_href(row['links']['code'])})")
            cells = [_rank_text(row["rank"]), method, *scores, _num(row["accuracy"]), row["evaluated"],
                     _num(row["seconds"], 4), _num(row["forwards"], 1), row["device"], " · ".join(links), "; ".join(row["notes"])]
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        lines.append("")
    cites = _citations(entries)
    if cites:
        lines += ["## Citations", ""]
        for name, bib in cites:
            lines += [f'<a id="cite-{_slug(name).lower()}"></a>', "", f"**{name}**", "", "```bibtex", bib.strip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------ html

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
        mean, (lo, hi) = row["scores"][HEADLINE_KEY]
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
    pts = [(r["method"], r["sanity"], r["scores"]["confidence@1/dic"][0], r["scores"]["confidence@1/iic"][0])
           for r in table["rows"]]
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
    head = ["rank", "method", *(f"{label} {'↑' if d == 'higher' else '↓'}" for label, d in HEADLINE.values()),
            "acc", "evaluated", "s/img", "fwd/img", "device", "links", "notes"]
    for table in tables:
        out.append(f'<h2 id="{_e(table["anchor"])}">{_e(table["title"])}</h2>')
        out.append('<table class="sortable"><thead><tr>' + "".join(
            f'<th class="{"l" if h in ("method", "device", "links", "notes") else ""}">{_e(h)}</th>' for h in head)
            + "</tr></thead><tbody>")
        for row in table["rows"]:
            cells = []
            rank = row["rank"]
            cells.append(f'<td data-v="{rank[0] if rank else 999}">{_e(_rank_text(rank))}</td>')
            url = row["links"]["url"]
            name = _e(row["method"])
            label = f'<a href="{_e(url)}">{name}</a>' if url else name
            cells.append(f'<td class="l m" data-v="{name}">{label}</td>')
            for key, (mean, ci) in row["scores"].items():
                d = _DIGITS.get(key, 3)
                ci_text = "" if ci[0] is None else f'<br><span class="ci">[{_num(ci[0], d)}, {_num(ci[1], d)}]</span>'
                cells.append(f'<td data-v="{"" if mean is None else repr(mean)}">{_num(mean, d)}{ci_text}</td>')
            cells.append(f'<td data-v="{row["accuracy"]}">{_num(row["accuracy"])}</td>')
            cells.append(f'<td data-v="{_e(row["evaluated"])}">{_e(row["evaluated"])}</td>')
            cells.append(f'<td data-v="{row["seconds"]}">{_num(row["seconds"], 4)}</td>')
            cells.append(f'<td data-v="{row["forwards"]}">{_num(row["forwards"], 1)}</td>')
            cells.append(f'<td class="l" data-v="{_e(row["device"])}">{_e(row["device"])}</td>')
            links = []
            if row["links"]["citation"]:
                links.append(f'<a href="#cite-{_e(_slug(row["method"]).lower())}">BibTeX</a>')
            if row["links"]["code"]:
                links.append(f'<a href="{_e(_code_href(row["links"]["code"]))}">code</a>')
            cells.append(f'<td class="l" data-v="">{" · ".join(links)}</td>')
            notes = "; ".join(row["notes"])
            cells.append(f'<td class="note" data-v="{_e(notes)}">{_e(notes)}</td>')
            out.append(f'<tr class="{"sanity" if row["sanity"] else ""}">' + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
        out.append(f'<div class="plots">{_svg_hr1(table)}{_svg_scatter(table)}</div>')
    cites = _citations(entries)
    if cites:
        out.append("<h2>Citations</h2>")
        for name, bib in cites:
            slug = _e(_slug(name).lower())
            out.append(f'<h3 id="cite-{slug}">{_e(name)}</h3><pre>{_e(bib.strip())}</pre>')
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"


def render(entries_dir: str | Path = ENTRIES_DIR, out_dir: str | Path = OUT_DIR) -> list[Path]:
    """Regenerate ``LEADERBOARD.md`` and ``index.html`` in ``out_dir`` from ``entries_dir``."""
    entries = load_entries(entries_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "LEADERBOARD.md", out / "index.html"
    md.write_text(render_markdown(entries))
    page.write_text(render_html(entries))
    return [md, page]


def stale_files(entries_dir: str | Path = ENTRIES_DIR, out_dir: str | Path = OUT_DIR) -> list[str]:
    """Pages in ``out_dir`` that differ from a fresh render (empty list: up to date)."""
    entries = load_entries(entries_dir)
    out = Path(out_dir)
    stale = []
    for name, text in (("LEADERBOARD.md", render_markdown(entries)), ("index.html", render_html(entries))):
        path = out / name
        if not path.is_file() or path.read_text() != text:
            stale.append(str(path))
    return stale


# ------------------------------------------------------------------------------------------- CLI

def _cmd_render(args: argparse.Namespace) -> int:
    if args.check:
        stale = stale_files(args.entries, args.out)
        if stale:
            print(f"out of date: {', '.join(stale)}; run `hfus-bench leaderboard render`")
            return 1
        print("leaderboard pages are up to date")
        return 0
    for path in render(args.entries, args.out):
        print(f"wrote {path}")
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    from .results import Result

    record = Result.load(args.result).record
    if not record["command"]:
        raise HfusError(f"{args.result} records no command; leaderboard entries come from `hfus-bench evaluate` "
                        "(or `hfus-bench submit`) runs, re-run it from the command line")
    citation = Path(args.citation).read_text() if args.citation else None
    entry = entry_from_result(record, track=args.track, url=args.url, citation=citation, code=args.code)
    print(f"wrote {write_entry(entry, args.entries)}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .submission import verify_submission

    report = verify_submission(args.folder, check_model=not args.no_model, confidence_limit=args.confidence_limit,
                               rerun=args.rerun, rerun_limit=args.limit, device=args.device, progress=not args.quiet)
    print(report.render())
    return 0 if report.ok else 1


def _cmd_submit(args: argparse.Namespace) -> int:
    from .submission import submit

    folder = submit(args.method, out=args.out, dataset=args.dataset, models=args.models, folds=args.folds,
                    device=args.device, batch_size=args.batch_size, progress=not args.quiet)
    print(f"submission folder: {folder}")
    return 0


def _cmd_cite(args: argparse.Namespace) -> int:
    from .citation import cite

    if args.benchmark_only:
        print(cite(dataset=False, study=False, paper=False), end="")
    else:
        print(cite(dataset=not args.no_dataset, study=not args.no_study, paper=not args.no_paper), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `leaderboard render|add`, `verify`, `submit` and `cite`."""
    lb = sub.add_parser("leaderboard", help="leaderboard entries and pages")
    lb_sub = lb.add_subparsers(dest="leaderboard_command", metavar="ACTION", required=True)
    rd = lb_sub.add_parser("render", help="regenerate LEADERBOARD.md and index.html from the entries")
    rd.add_argument("--entries", default=str(ENTRIES_DIR), help="entries folder (default: leaderboard/entries)")
    rd.add_argument("--out", default=str(OUT_DIR), help="output folder (default: leaderboard)")
    rd.add_argument("--check", action="store_true", help="only check that the pages are up to date (exit 1 if not)")
    rd.set_defaults(func=_cmd_render)
    ad = lb_sub.add_parser("add", help="turn a result JSON (from `hfus-bench evaluate`) into a leaderboard entry")
    ad.add_argument("result", help="result JSON written by `hfus-bench evaluate`")
    ad.add_argument("--entries", default=str(ENTRIES_DIR))
    ad.add_argument("--track", default=None, help="track name (default: the dataset id of the record)")
    ad.add_argument("--url", default=None, help="the method's paper or home page")
    ad.add_argument("--citation", default=None, help="a file holding the method's BibTeX")
    ad.add_argument("--code", default=None, help="where the method's code lives (path or URL)")
    ad.set_defaults(func=_cmd_add)

    vf = sub.add_parser("verify", help="re-score a submission folder's maps and compare every number and hash")
    vf.add_argument("folder", help="submissions/<method>")
    vf.add_argument("--rerun", action="store_true", help="also re-run the method on a sample and compare the maps")
    vf.add_argument("--limit", type=int, default=4, help="images per (arch, fold) for --rerun (default 4)")
    vf.add_argument("--confidence-limit", type=int, default=None,
                    help="re-check confidence on the first N evaluated images per (arch, fold) only (default: all)")
    vf.add_argument("--no-model", action="store_true", help="skip the checkpoint (predictions, confidence) checks")
    vf.add_argument("--device", default="cpu")
    vf.add_argument("--quiet", action="store_true")
    vf.set_defaults(func=_cmd_verify)

    sm = sub.add_parser("submit", help="prepare submissions/<name>/ for a method file (evaluate + maps + README)")
    sm.add_argument("method", help="your method file (my_method.py)")
    sm.add_argument("--out", default=None, help="submission folder (default: submissions/<method name>)")
    sm.add_argument("--dataset", default=SYNTH_DATASET)
    sm.add_argument("--models", default="mobilenet_v2")
    sm.add_argument("--folds", default="0")
    sm.add_argument("--device", default="auto")
    sm.add_argument("--batch-size", type=int, default=None)
    sm.add_argument("--quiet", action="store_true")
    sm.set_defaults(func=_cmd_submit)

    ct = sub.add_parser("cite", help="print BibTeX for the benchmark, the dataset and the study")
    ct.add_argument("--benchmark-only", action="store_true", help="only the benchmark (with its version)")
    ct.add_argument("--no-dataset", action="store_true")
    ct.add_argument("--no-study", action="store_true")
    ct.add_argument("--no-paper", action="store_true")
    ct.set_defaults(func=_cmd_cite)
