"""leaderboard/ranks.py: per-criterion mean ranks with paired-bootstrap intervals (PROTOCOL §7.4), known
answers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from eco_fixtures import leaderboard_entries
from leaderboard_fixtures import s7_record
from scipy.stats import rankdata

from hfus_xai_bench.constants import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.loader import load_builtin
from hfus_xai_bench.leaderboard import (
    entry_from_result,
    load_entries,
    render,
    render_html,
    render_markdown,
    write_entry,
)
from hfus_xai_bench.leaderboard.ranks import (
    CRITERIA,
    criterion_ranks,
    entry_criterion_ranks,
    ranks_legend,
    table_ranks,
)
from hfus_xai_bench.leaderboard.tables import build_tables, column_headers, not_applicable, status


@pytest.fixture(scope="module")
def entries_dir(tmp_path_factory) -> Path:
    return leaderboard_entries(tmp_path_factory.mktemp("entries"))


ONE = {"c": ("a", "b")}
UP = {"a": "higher", "b": "higher"}


def _rows(*per_row: float, n: int = 6) -> np.ndarray:
    return np.array([[v] * n for v in per_row], dtype=float)


def test_constant_rows_rank_exactly_and_metrics_that_disagree() -> None:
    scores = {"a": _rows(3.0, 2.0, 1.0), "b": _rows(1.0, 2.0, 3.0)}
    res = criterion_ranks(scores, [0] * 6, UP, criteria=ONE, n_resamples=50)["c"]
    assert res.metrics == ("a", "b") and res.n_images == {"a": 6, "b": 6}
    np.testing.assert_array_equal(res.ranks["a"], [1, 2, 3])
    np.testing.assert_array_equal(res.ranks["b"], [3, 2, 1])
    np.testing.assert_array_equal(res.mean_rank, [2, 2, 2])
    np.testing.assert_array_equal(res.disagreement, [2, 0, 2])
    # every resample sees the same constant rows: the interval is the point
    np.testing.assert_array_equal(res.low, [2, 2, 2])
    np.testing.assert_array_equal(res.high, [2, 2, 2])
    lower = criterion_ranks(scores, [0] * 6, {"a": "lower", "b": "higher"}, criteria=ONE, n_resamples=5)["c"]
    np.testing.assert_array_equal(lower.ranks["a"], [3, 2, 1])
    np.testing.assert_array_equal(lower.mean_rank, [3, 2, 1])
    np.testing.assert_array_equal(lower.disagreement, [0, 0, 0])


def test_ties_average_and_missing_metrics_are_left_out() -> None:
    res = criterion_ranks({"a": _rows(2.0, 2.0, 1.0)}, [0] * 6, UP, criteria=ONE, n_resamples=5)["c"]
    assert res.metrics == ("a",)  # "b" absent: the criterion uses what the table has
    np.testing.assert_array_equal(res.ranks["a"], [1.5, 1.5, 3])
    np.testing.assert_array_equal(res.disagreement, [0, 0, 0])
    assert criterion_ranks({"a": _rows(1.0, 2.0)}, [0] * 6, {}, criteria=ONE) == {}  # no direction known


def test_only_images_where_every_row_has_a_value() -> None:
    """Image 2 would make row 0 best (mean 34 vs 2); it is missing for row 1, so it counts for no row."""
    a = np.array([[1.0, 1.0, 100.0], [2.0, 2.0, np.nan]])
    res = criterion_ranks({"a": a}, [0, 0, 0], UP, criteria=ONE, n_resamples=20)["c"]
    assert res.n_images == {"a": 2}
    np.testing.assert_array_equal(res.ranks["a"], [2, 1])
    np.testing.assert_array_equal([res.low, res.high], [[2, 1], [2, 1]])


def test_mean_over_folds_of_per_fold_means() -> None:
    """Row 0: fold 0 [10], fold 1 [0, 0, 0] -> (10 + 0) / 2 = 5 (pooled: 2.5); row 1: 4 everywhere."""
    a = np.array([[10.0, 0.0, 0.0, 0.0], [4.0, 4.0, 4.0, 4.0]])
    res = criterion_ranks({"a": a}, [0, 1, 1, 1], UP, criteria=ONE, n_resamples=10)["c"]
    np.testing.assert_array_equal(res.ranks["a"], [1, 2])


def _loop_reference(scores, folds, directions, keys, n_resamples, seed):
    """Explicit per-resample loop with the same draws (one rng; per fold in sorted order an (R, n) index
    matrix)."""
    rng = np.random.default_rng(seed)
    folds = np.asarray(folds)
    draws = {
        g: rng.integers(0, (folds == g).sum(), size=(n_resamples, (folds == g).sum()))
        for g in np.unique(folds)
    }
    means_per_resample = []
    for r in range(n_resamples):
        per_metric = []
        for key in keys:
            values = scores[key]
            common = np.isfinite(values).all(0)
            fold_means = []
            for g in np.unique(folds):
                where = np.flatnonzero(folds == g)[draws[g][r]]
                where = where[common[where]]
                if where.size:
                    fold_means.append(values[:, where].mean(1))
            m = np.mean(fold_means, axis=0)
            per_metric.append(rankdata(-m if directions[key] == "higher" else m, method="average"))
        means_per_resample.append(np.mean(per_metric, axis=0))
    return np.percentile(np.array(means_per_resample), [2.5, 97.5], axis=0)


def test_bootstrap_equals_an_explicit_loop() -> None:
    rng = np.random.default_rng(5)
    n, folds = 30, np.repeat([0, 1, 2], 10)
    scores = {
        "a": rng.normal(size=(4, n)) + np.array([[0.3], [0.2], [0.1], [0.0]]),
        "b": rng.normal(size=(4, n)),
    }
    scores["b"][1, 3] = np.nan  # one image without a value for one row
    directions = {"a": "higher", "b": "lower"}
    res = criterion_ranks(scores, folds, directions, criteria=ONE, n_resamples=200, seed=3)["c"]
    low, high = _loop_reference(scores, folds, directions, ("a", "b"), 200, 3)
    np.testing.assert_allclose(res.low, low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.high, high, rtol=0, atol=1e-12)
    assert (res.low <= res.high).all() and (res.high > res.low).any()  # noisy rows: real intervals
    again = criterion_ranks(scores, folds, directions, criteria=ONE, n_resamples=200, seed=3)["c"]
    np.testing.assert_array_equal(again.low, res.low)  # seeded


def test_errors() -> None:
    with pytest.raises(HfusError, match="per-image values"):
        criterion_ranks({"a": np.ones((2, 3))}, [0, 0], UP, criteria=ONE)
    with pytest.raises(HfusError, match="n_resamples"):
        criterion_ranks({"a": np.ones((2, 3))}, [0, 0, 0], UP, criteria=ONE, n_resamples=0)


def test_committed_entries_localisation_rank_follows_the_hr1_means(entries_dir: Path) -> None:
    entries = load_entries(entries_dir)
    ranked = [e for e in entries if status(e, "mobilenet_v2") == "ranked"]
    rows, ranks = entry_criterion_ranks(ranked, "mobilenet_v2", n_resamples=100)
    assert len(rows) == len(ranked) >= 2 and {"localisation", "faithfulness"} <= set(ranks)
    loc = ranks["localisation"]
    hr1 = np.array([e["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"] for e in rows])
    if all(e["metrics"]["hit_rate@1"]["mobilenet_v2"]["n_nan"] == 0 for e in rows):  # same images for all
        np.testing.assert_array_equal(loc.ranks["hit_rate@1"], rankdata(-hr1, method="average"))
    assert (loc.low <= loc.high).all() and (loc.low >= 1).all() and (loc.high <= len(rows)).all()
    faith = ranks["faithfulness"]
    assert set(faith.metrics) == {"road@1/combined", "confidence@1/dic", "confidence@1/iic"}
    assert (faith.disagreement >= 0).all() and (faith.disagreement <= len(rows) - 1).all()


def test_table_ranks_cells(entries_dir: Path) -> None:
    entries = load_entries(entries_dir)
    ranked = [e for e in entries if status(e, "mobilenet_v2") == "ranked"]
    no_scores = {**ranked[0], "per_image_scores": {}}
    criteria, cells = table_ranks([*ranked, no_scores], "mobilenet_v2", n_resamples=50)
    assert len(cells) == len(ranked) + 1 and cells[-1] is None
    assert [c.criterion for c in criteria] == [k for k in CRITERIA if k in {c.criterion for c in criteria}]
    _, ranks = entry_criterion_ranks(ranked, "mobilenet_v2", n_resamples=50)
    names = [c.criterion for c in criteria]
    for i, row in enumerate(cells[:-1]):
        loc = row[names.index("localisation")]
        assert loc.mean_rank == ranks["localisation"].mean_rank[i]
        assert (
            loc.text == f"{loc.mean_rank:.1f} [{loc.low:.1f}, {loc.high:.1f}]" == f"{loc.mean} {loc.interval}"
        )
        # evidence tracks: HR1 + evidence hit and mass, with their disagreement; one metric: "—"
        n_loc = len(ranks["localisation"].metrics)
        assert loc.spread == (f"{loc.disagreement:.1f}" if n_loc > 1 else "—")
        faith = row[names.index("faithfulness")]
        assert faith.spread == f"{faith.disagreement:.1f}" and len(faith.ranks) == 3


def test_result_records_and_entries_rank_alike() -> None:
    """``compare`` with several records: a record's per_image rows give the ranks its entry gives."""
    from helpers import fake_scores
    from leaderboard_fixtures import record

    from hfus_xai_bench.leaderboard import entry_from_result

    records = [
        record(f"m{k}", [fake_scores("mobilenet_v2", fold, level, seed=10 * k + fold) for fold in (0, 1)])
        for k, level in enumerate((1.8, 1.2, 0.6))
    ]
    _, from_records = entry_criterion_ranks(records, "mobilenet_v2", n_resamples=100)
    entries = [entry_from_result(r) for r in records]
    _, from_entries = entry_criterion_ranks(entries, "mobilenet_v2", n_resamples=100)
    loc = from_records["localisation"]
    np.testing.assert_array_equal(loc.ranks["hit_rate@1"], [1, 2, 3])  # levels 1.8 > 1.2 > 0.6
    assert loc.n_images["hit_rate@1"] == 22  # 2 folds × 12 images, the last of each failed
    assert set(from_records) == set(from_entries) and "faithfulness" in from_records
    for name, c in from_records.items():
        np.testing.assert_array_equal(c.mean_rank, from_entries[name].mean_rank)
        np.testing.assert_array_equal(c.low, from_entries[name].low)


def test_means_equal_as_shown_tie() -> None:
    """Rows whose means differ only below the shown digits (floating-point noise between identical
    methods) tie; without ``digits`` they would not."""
    a = np.array([[0.5] * 4, [0.5 + 1e-9] * 4, [0.2] * 4])
    exact = criterion_ranks({"a": a}, [0] * 4, UP, criteria=ONE, n_resamples=5)["c"]
    np.testing.assert_array_equal(exact.ranks["a"], [2, 1, 3])
    shown = criterion_ranks({"a": a}, [0] * 4, UP, criteria=ONE, n_resamples=5, digits={"a": 3})["c"]
    np.testing.assert_array_equal(shown.ranks["a"], [1.5, 1.5, 3])
    np.testing.assert_array_equal([shown.low, shown.high], [[1.5, 1.5, 3], [1.5, 1.5, 3]])


# ---------------------------------------------------------------------------- the rank columns of the pages


@pytest.fixture(scope="module")
def page_entries() -> list[dict]:
    recs = [
        s7_record("gradcam", 2.0, 1),
        s7_record("hirescam", 2.0, 1),  # = Grad-CAM (PROTOCOL §5.1): same per-image values
        s7_record("scorecam", 1.2, 2, road=0.05),
        s7_record("saliency", 0.6, 6, road=-0.1),
        s7_record("depth_prior", 2.4, 5, model_dependent=False, road=0.25),
        s7_record("random", 0.2, 3, model_dependent=False, road=0.0),
    ]
    return [entry_from_result(r) for r in recs]


RANK_HEADS = ["loc. rank", "faith. rank (spread)", "sanity rank (spread)"]


def _table(md: str, header_start: str) -> tuple[list[str], list[list[str]]]:
    """(header cells, body rows) of the first markdown table whose header starts with ``header_start``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    block = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        block.append([c.strip() for c in line.strip("|").split(" | ")])
    return [c.strip() for c in lines[start].strip("|").split(" | ")], block


def test_rank_columns_of_the_main_table(page_entries: list[dict]) -> None:
    """One column per criterion after the score columns: ranked rows get ``mean [interval] (spread)``, the
    others —; the order stays HR1's; one legend per table."""
    md = render_markdown(page_entries)
    table = build_tables(page_entries)[0]
    legend = ranks_legend(table["criteria"])
    assert md.count(legend) == 1 and f"({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}" in legend
    assert "localisation: HR1; faithfulness: ROAD, DiC, IiC %;" in legend and "never set" in legend
    head, rows = _table(md, "| rank | method | HR1")
    assert head == column_headers(False, table["criteria"])
    at = head.index(RANK_HEADS[0])
    assert head[at - 1] == "IiC % ↑" and head[at : at + 4] == [*RANK_HEADS, "acc"]
    ranked = [r for r in rows if r[0] not in ("", "–")]
    assert [r[1].split("]")[0].strip("[") for r in ranked] == ["gradcam", "hirescam", "scorecam", "saliency"]
    one = re.compile(r"^\d+\.\d \[\d+\.\d, \d+\.\d\]$")  # localisation has one metric here: no spread
    several = re.compile(r"^\d+\.\d \[\d+\.\d, \d+\.\d\] \(\d+\.\d\)$")
    for row in ranked:
        assert one.match(row[at]) and several.match(row[at + 1]) and several.match(row[at + 2]), row
    unranked = [r for r in rows if r[0] == "–"]
    assert len(unranked) == 2 and all(r[at : at + 3] == ["—"] * 3 for r in unranked)  # the sanity rows
    by_name = {r[1].split("]")[0].strip("["): r for r in ranked}
    assert by_name["hirescam"][at : at + 3] == by_name["gradcam"][at : at + 3]  # identical rows tie
    assert by_name["saliency"][at] == "4.0 [4.0, 4.0]"  # HR1 level 0.6 vs ≥ 1.2: last on every resample
    assert "Ranks by criterion" not in md and "| rank | method | localisation" not in md  # no second table


def test_rank_columns_in_the_html(page_entries: list[dict]) -> None:
    """The HTML cells sort by the mean rank; tooltips name the metrics and the row's rank per metric."""
    page = render_html(page_entries)
    assert page.count('class="sortable') == 2 and "sortable ranks" not in page  # main and paired gains
    main = page[page.index('<table class="sortable main">') :].split("</table>")[0]
    assert 'title="faithfulness: mean rank over ROAD, DiC, IiC %' in main
    cells = re.findall(r'<td data-v="([^"]*)" title="rank per metric: ([^"]*)">', main)
    assert len(cells) == 4 * 3  # every ranked row, every criterion
    for value, per_metric in cells:
        ranks = [float(x.rsplit(" ", 1)[1]) for x in per_metric.split(", ")]
        assert float(value) == pytest.approx(np.mean(ranks), abs=1e-12)  # the mean of the metric ranks
    assert re.search(r'<td data-v="[0-9.]+" title="rank per metric: HR1 4">4\.0<br>', main)  # saliency


def test_a_ranked_row_without_per_image_values_gets_na(page_entries: list[dict]) -> None:
    entries = [{k: v for k, v in e.items() if k != "per_image_scores"} for e in page_entries[:1]]
    entries += page_entries[1:]
    head, rows = _table(render_markdown(entries), "| rank | method | HR1")
    at = head.index(RANK_HEADS[0])
    gradcam = next(r for r in rows if "gradcam" in r[1] and "hirescam" not in r[1])
    assert gradcam[at : at + 3] == ["n/a"] * 3
    assert sum(r[at] == "n/a" for r in rows) == 1 and sum(r[at] == "—" for r in rows) == 2


def test_two_renders_are_byte_identical(page_entries: list[dict], tmp_path: Path) -> None:
    """Seeded intervals (BOOTSTRAP_SEED): re-rendering gives the same bytes."""
    entries_dir = tmp_path / "entries"
    for e in page_entries:
        write_entry(e, entries_dir)
    first = [p.read_bytes() for p in render(entries_dir, tmp_path / "one")]
    second = [p.read_bytes() for p in render(entries_dir, tmp_path / "two")]
    assert first == second and b"Rank columns" in first[0] and b"rank per metric" in first[1]


def test_not_applicable_builtins_are_noted(page_entries: list[dict]) -> None:
    relu6 = load_builtin("deeplift").not_applicable("mobilenet_v2")
    assert relu6 and load_builtin("guidedbackprop").not_applicable("mobilenet_v2") == relu6
    md = render_markdown(page_entries)
    assert (
        "n/a on MobileNetV2 (declared undefined there, so never run; PROTOCOL §5): "
        f"*deeplift*, *guidedbackprop* — {relu6}." in md
    )
    assert not_applicable("mobilenet_v2", shown=["deeplift"]) == [(relu6, ["guidedbackprop"])]
    reused = load_builtin("deeplift").not_applicable("resnet101")
    assert not_applicable("resnet101") == [(reused, ["deeplift"])]  # Guided Backprop hooks every call
    assert not_applicable("densenet201") == []
