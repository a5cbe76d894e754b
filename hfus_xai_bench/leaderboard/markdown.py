"""``LEADERBOARD.md``: the tables as GitHub markdown (deterministic: sorted, fixed formats, no timestamps)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..constants import (
    BENCHMARK_VERSION,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    PROTOCOL_VERSION,
    RANDOMISATION_COPIES,
    RANDOMISATION_PASS_BELOW,
)
from ..metrics.registry import HEADLINE
from .entries import slug
from .numbers import fe_text, fmt_num, rank_text
from .ranks import ranks_legend
from .tables import (
    ARCH_LABELS,
    IDENTICAL_TOL,
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

RULES_MD = f"""Headline metric: **`{HEADLINE}` (HR1, range −1…3, higher is better)**; \
ranked rows are sorted by it.
Every score is `mean [95 % CI]`: mean over the evaluated images of each fold, then over folds; the CI is a
bootstrap over images ({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}). ↑ higher is better, \
↓ lower is better.

**Ranking (PROTOCOL §7.4).** A table ranks only the methods whose maps depend on the model: those whose
`randomisation@2/verdict` is *pass* over K = {RANDOMISATION_COPIES} randomised copies of the model
(`randomisation@1/pass` for entries made before v1.2, noted). The verdict is *undetermined* when more than
half of the image × copy pairs are degenerate (a constant map on one side, which has no rank correlation),
else *pass* when at least half are scored and the upper bounds of the 95 % CIs of the mean Spearman ρ and of
the mean Pearson r between the maps of the trained model and of the copies are both below
{RANDOMISATION_PASS_BELOW:g} (the CI resamples the copies, then the images), else *fail*. Below the ranked
rows: *fail* rows (every sanity baseline by construction), marked *maps do not depend enough on the model*;
*undetermined* rows, marked *randomisation undecided* with the degenerate share D; verdicts over another
number of copies; entries without §7 data; and, on tracks with class evidence, the oracle rows (the evidence
mask itself and at the 7×7 grid, PROTOCOL §9): references, never ranked.

**Rank** is a range where confidence intervals overlap: for a ranked method with HR1 CI [l, u] among the
ranked methods of the same table, rank = [1 + #methods whose CI lower bound is above u, #methods whose CI
upper bound is at or above l] (itself included). A single number means no other method's CI overlaps.

**Columns.** `ΔHR1 vs depth_prior` (and, in the second table of each section, ΔHR1 and ΔROAD, on evidence
tracks also Δ evidence hit and mass, each vs `depth_prior`, `random` and, on evidence tracks, `input`;
PROTOCOL §7.3) is the mean over the shared images of the method's per-image value minus the baseline's on the
same image, with a *paired* bootstrap 95 % CI: the rows of a table share the dataset revision and content
hash, the checkpoints and the images. A CI above 0 means the method beats that baseline on these images.
`ROAD` is `road@1/combined` ((LeRF − MoRF) / 2, −0.5…0.5, higher is better). `ρ rand.` is the mean Spearman ρ
between the maps of the trained model and of its randomised copies (lower is better; 1 for any map that does
not depend on the model), with `ρ cross` in parentheses (the ρ between the maps of two different images, a
reference for how much a map changes at all); `r rand.` is the same with Pearson's r, with the degenerate
share D in parentheses. On evidence tracks (PROTOCOL §9) `ev. hit` / `ev. mass` score the map against where
the class evidence is rendered, with their gains over the randomised copies (a model-blind map gains 0),
`class_sensitivity@1` flags maps that ignore the class, and `counterfactual@1` (measured on the model, not the
method) is shown once, next to accuracy.

Sanity baselines (random, center, depth_prior, sobel; PROTOCOL §5; and the `input` map of §9) are always shown
and marked *(sanity)*; a method that does not beat them has not found anything. Rows whose means agree within
{IDENTICAL_TOL:g} on every score of the metric registry are annotated as identical, never hidden (HiRes-CAM =
Grad-CAM is expected on all four architectures: only pooling + linear follows their pinned target layers,
PROTOCOL §5.1). Cost: `FE/img` = model passes per image, (forward rows + 2 × backward rows, the determinism
repeat excluded) / images (PROTOCOL §6; — for entries made before the rows were counted), and explainer
seconds per image on the device shown."""


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _joined(c: Cell) -> str:
    return " ".join(part for part in (c.text, c.ci, c.aside) if part)


def _score_text(row: dict[str, Any], column: Any) -> str:
    return _joined(cell(row, column))


def _method(row: dict[str, Any]) -> str:
    url = row["links"]["url"]
    method = f"[{row['method']}]({url})" if url else row["method"]
    return f"*{method}* (sanity)" if row["sanity"] else method


def _group_row(row: dict[str, Any], previous: dict[str, Any] | None, width: int, first: int = 1) -> list[str]:
    """A separator row before the first unranked row of each kind (the method cell says why)."""
    if row["status"] == "ranked" or (previous is not None and previous["status"] == row["status"]):
        return []
    cells = [""] * width
    cells[first] = f"**{UNRANKED_HEADINGS[row['status']]}**"
    return ["| " + " | ".join(cells) + " |"]


def not_applicable_text(table: dict[str, Any]) -> str:
    """The table's note on the built-ins declared undefined on its architecture ("" when none)."""
    if not table["not_applicable"]:
        return ""
    arch = ARCH_LABELS.get(table["arch"], table["arch"])
    parts = [f"{', '.join(f'*{n}*' for n in names)} — {why}" for why, names in table["not_applicable"]]
    return f"n/a on {arch} (declared undefined there, so never run; PROTOCOL §5): {'; '.join(parts)}."


def _table_lines(
    headers: Sequence[str],
    rows: Sequence[dict[str, Any]],
    cells_of: Callable[[dict[str, Any]], list[str]],
    first: int,
) -> list[str]:
    """A markdown table: the header, then each row's cells, a separator row before each kind of unranked
    rows (its heading in column ``first``)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    previous = None
    for row in rows:
        lines += _group_row(row, previous, len(headers), first)
        previous = row
        lines.append("| " + " | ".join(_md_cell(c) for c in cells_of(row)) + " |")
    return lines


def _links(row: dict[str, Any]) -> str:
    links = []
    if row["links"]["citation"]:
        links.append(f"[BibTeX](#cite-{slug(row['method']).lower()})")
    if row["links"]["code"]:
        links.append(f"[code]({code_href(row['links']['code'])})")
    return " · ".join(links)


def _main_cells(row: dict[str, Any], table: dict[str, Any]) -> list[str]:
    """A row of the ranked table: rank, method, scores, rank columns, accuracy, cost, links, notes."""
    ev = table["evidence"]
    return [
        rank_text(row["rank"]),
        _method(row),
        *(_score_text(row, c) for c in main_columns(ev)),
        *(_joined(rank_cell(row, i)) for i in range(len(table["criteria"]))),
        fmt_num(row["accuracy"]),
        *(_score_text(row, c) for c in accuracy_columns(ev)),
        row["evaluated"],
        fe_text(row["fe"]),
        fmt_num(row["seconds"], 4),
        row["device"],
        _links(row),
        "; ".join(row["notes"]),
    ]


def _detail_cells(row: dict[str, Any], columns: Sequence[Column]) -> list[str]:
    """A row of the table of gains and other scores: method, then a score per column."""
    return [_method(row), *(_score_text(row, c) for c in columns)]


def _section(table: dict[str, Any]) -> list[str]:
    """One table's section: the ranked table, its legend and notes, the table of gains and other scores."""
    ev, criteria = table["evidence"], table["criteria"]
    lines = [f"## {table['title']}", ""]
    lines += _table_lines(column_headers(ev, criteria), table["rows"], lambda r: _main_cells(r, table), 1)
    legend, na = ranks_legend(criteria), not_applicable_text(table)
    lines += [text for part in (legend, na) if part for text in ("", part)]
    lines += ["", "Paired gains over the sanity baselines (PROTOCOL §7.3) and the other scores:", ""]
    detail = detail_columns(ev)
    lines += _table_lines(detail_headers(ev), table["rows"], lambda r: _detail_cells(r, detail), 0)
    return [*lines, ""]


def _citation_lines(entries: Sequence[dict[str, Any]]) -> list[str]:
    """The citations section (an anchor and the BibTeX of each cited method); none without citations."""
    cites = citations(entries)
    if not cites:
        return []
    lines = ["## Citations", ""]
    for name, bib in cites:
        anchor = f'<a id="cite-{slug(name).lower()}"></a>'
        lines += [anchor, "", f"**{name}**", "", "```bibtex", bib.strip(), "```", ""]
    return lines


def render_markdown(entries: Sequence[dict[str, Any]]) -> str:
    """LEADERBOARD.md from the entries (deterministic)."""
    lines = [
        "# hfus-xai-bench leaderboard",
        "",
        "<!-- generated by `hfus-bench leaderboard render` from leaderboard/entries/*.json; "
        "do not edit by hand -->",
        "",
        f"hfus-xai-bench {BENCHMARK_VERSION}, protocol v{PROTOCOL_VERSION}. "
        "Interactive version: [index.html](index.html). "
        "How to submit: [CONTRIBUTING.md](../CONTRIBUTING.md).",
        "",
        RULES_MD,
        "",
    ]
    tables = build_tables(entries)
    if not tables:
        lines += [
            "_No entries yet: run `leaderboard/make_baselines.sh`, then `hfus-bench leaderboard render`._",
            "",
        ]
    for table in tables:
        lines += _section(table)
    lines += _citation_lines(entries)
    return "\n".join(lines).rstrip() + "\n"
