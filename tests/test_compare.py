"""PROTOCOL §7.3: the paired bootstrap (known answers), comparing two records (`compare.py`) and
`hfus-bench compare`; with more than two records, their per-criterion ranks (§7.4)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from leaderboard_fixtures import better_entry, record, s7_record, s7_scores, shifted, strip_s7

from hfus_xai_bench.cli import main
from hfus_xai_bench.compare import Difference, compare, image_scores, load_record
from hfus_xai_bench.constants import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.leaderboard import entry_from_result
from hfus_xai_bench.leaderboard.ranks import records_ranks
from hfus_xai_bench.metrics.stats import bootstrap_ci, fold_bootstrap, paired_bootstrap

REPO = Path(__file__).resolve().parent.parent
ENTRIES = REPO / "leaderboard" / "entries"


# ------------------------------------------------------------------------------------ paired bootstrap


def test_paired_bootstrap_constant_shift_and_identity() -> None:
    rng = np.random.default_rng(1)
    b = rng.normal(0, 3, 50)
    d = paired_bootstrap(b + 0.25, b)
    assert d.mean == pytest.approx(0.25) and (d.low, d.high) == pytest.approx((0.25, 0.25), abs=1e-12)
    assert d.n == 50 and d.n_nan == 0
    assert tuple(paired_bootstrap(b, b)) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_two_values_known_ci() -> None:
    """d = [0, 1]: resample means are 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so the 2.5 / 97.5 %
    percentiles of 1000 resamples are 0 and 1 (for any seed where each end is drawn more than 25
    times)."""
    for seed in (0, 1, 2):
        d = paired_bootstrap([1.0, 3.0], [1.0, 2.0], seed=seed)
        assert (d.mean, d.low, d.high) == (0.5, 0.0, 1.0)


def test_paired_bootstrap_is_the_documented_resampling() -> None:
    """Same rule as bootstrap_ci (one group) and fold_bootstrap (several), on the differences; a loop
    reference."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(1, 1, 40), rng.normal(0, 1, 40)
    a[3], b[10] = np.nan, np.nan
    d = paired_bootstrap(a, b)
    ok = ~(np.isnan(a) | np.isnan(b))
    ref = bootstrap_ci((a - b)[ok])
    assert (d.low, d.high) == (ref.low, ref.high) and d.n == 38 and d.n_nan == 2
    assert d.mean == pytest.approx(np.mean((a - b)[ok]))
    # an explicit per-resample loop, same draws
    idx = np.random.default_rng(0).integers(0, 38, size=(1000, 38))
    diffs = (a - b)[ok]
    loop = np.array([diffs[row].mean() for row in idx])
    assert (d.low, d.high) == pytest.approx(tuple(np.percentile(loop, [2.5, 97.5])), abs=1e-12)
    # with folds: fold-stratified, exactly fold_bootstrap of the per-fold differences; the mean of fold means
    folds = np.repeat([0, 1, 2], [10, 15, 15])
    s = paired_bootstrap(a, b, strata=folds)
    per_fold = [(a - b)[ok & (folds == f)] for f in range(3)]
    assert (s.low, s.high) == fold_bootstrap(per_fold)
    assert s.mean == pytest.approx(np.mean([x.mean() for x in per_fold]))
    # against zero: the record's own CI of a
    assert (
        paired_bootstrap(a, np.zeros(40), strata=folds).low,
        paired_bootstrap(a, np.zeros(40), strata=folds).high,
    ) == (fold_bootstrap([a[folds == f][~np.isnan(a[folds == f])] for f in range(3)]))
    assert tuple(paired_bootstrap(a, b, seed=1)) != tuple(d)


def test_pairing_narrows_the_ci() -> None:
    """Two methods that differ by a small shift on images of very different difficulty: the paired CI is far
    narrower than the two methods' own CIs (what an unpaired comparison would read)."""
    rng = np.random.default_rng(3)
    difficulty = rng.normal(0, 2, 100)
    a, b = difficulty + 0.3 + rng.normal(0, 0.1, 100), difficulty
    d = paired_bootstrap(a, b)
    own = bootstrap_ci(a)
    assert d.low > 0.2 and d.high < 0.4 and (d.high - d.low) < 0.1 * (own.high - own.low)


def test_paired_bootstrap_edge_cases() -> None:
    empty = paired_bootstrap([np.nan, 1.0], [1.0, np.nan])
    assert np.isnan(empty.mean) and np.isnan(empty.low) and empty.n == 0 and empty.n_nan == 2
    with pytest.raises(HfusError, match="pair the same images"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(HfusError, match="strata"):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], strata=[0])
    with pytest.raises(HfusError, match="n_resamples"):
        paired_bootstrap([1.0], [1.0], n_resamples=0)


# ------------------------------------------------------------------------------------ compare records


def _pair() -> tuple[dict, dict]:
    """B, and A = B with HR1 + 0.5 and cov bg + 0.1 on every image (cov bg: lower is better)."""
    runs = [s7_scores("mobilenet_v2", f, 1.0, 5 + 10 * f) for f in (0, 1)]
    a_runs = shifted(shifted(runs, "hit_rate@1/hr1", 0.5), "slm_coverage@1/cov_bg", 0.1)
    return record("plus", a_runs), record("base", runs)


def test_compare_known_differences() -> None:
    a, b = _pair()
    c = compare(a, b)
    assert (c.a, c.b) == ("plus", "base") and list(c.differences) == ["mobilenet_v2"] and c.paired
    d = {x.key: x for x in c.differences["mobilenet_v2"]}
    hr1 = d["hit_rate@1"]
    assert hr1.diff == pytest.approx(0.5) and hr1.ci95 == pytest.approx((0.5, 0.5)) and hr1.better == "A"
    assert hr1.mean_a - hr1.mean_b == pytest.approx(hr1.diff) and hr1.n == 22 and hr1.n_excluded == 2
    assert hr1.mean_b == pytest.approx(b["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"])
    bg = d["slm_coverage@1/bg"]
    assert bg.diff == pytest.approx(0.1) and bg.direction == "lower" and bg.better == "B"
    assert d["road@1/combined"].diff == 0.0 and d["road@1/combined"].better == "neither"
    assert d["randomisation@2/cross_image"].better is None  # descriptive
    # every registry output with per-image values is compared, in registry order
    assert list(d)[:3] == ["hit_rate@1", "hit_rate_binary@1", "slm_coverage@1/top"]
    assert {
        "confidence@1/dic",
        "confidence@1/iic",
        "randomisation@2/rho",
        "randomisation@2/pearson",
        "road@1/morf",
        "road@1/lerf",
    } <= set(d)
    assert "randomisation@1/rho" not in d  # v1.2 records carry randomisation@2 only
    ga, gb = c.gates["mobilenet_v2"]
    assert (ga.status, ga.verdict, ga.copies, ga.degenerate) == ("ranked", "pass", 3, 0.0)
    assert ga.text == "pass (K = 3, D = 0.00)" and c.fe["mobilenet_v2"] == (
        0.0,
        0.0,
    )  # fake runs make no passes
    flipped = {x.key: x for x in compare(b, a).differences["mobilenet_v2"]}
    assert flipped["hit_rate@1"].diff == pytest.approx(-0.5) and flipped["hit_rate@1"].better == "B"


def test_compare_entries_equals_compare_records() -> None:
    a, b = _pair()
    from_records = compare(a, b)
    from_entries = compare(entry_from_result(a), entry_from_result(b))
    # records are read at the precision entries keep, so the two agree exactly
    assert from_records.differences == from_entries.differences
    mixed = compare(a, entry_from_result(b))
    assert mixed.differences["mobilenet_v2"][0].diff == pytest.approx(0.5)


def test_entries_without_per_image_values_give_unpaired_means() -> None:
    a, b = _pair()
    old = strip_s7(entry_from_result(b))
    assert image_scores(old) is None
    c = compare(entry_from_result(a), old)
    assert not c.paired and any("B keeps no per-image values" in n for n in c.notes)
    d = {x.key: x for x in c.differences["mobilenet_v2"]}
    assert "road@1/combined" not in d  # B has no §7 scores
    hr1 = d["hit_rate@1"]
    assert hr1.ci95 == (None, None) and hr1.better is None and hr1.n == 0
    assert hr1.diff == pytest.approx(
        a["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"]
        - b["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"]
    )


def test_incomparable_records_name_what_differs() -> None:
    a, b = _pair()
    other = copy.deepcopy(b)
    other["dataset"]["revision"] = "synth-v1-seed0"
    other["dataset"]["sha256"] = "b" * 64
    with pytest.raises(
        HfusError,
        match=r"dataset revision differs \(A synth-v2-seed0, B synth-v1-seed0\); "
        r"dataset content hash differs \(A aaaaaaaaaaaa…, B bbbbbbbbbbbb…\)",
    ):
        compare(a, other)
    other = copy.deepcopy(b)
    other["checkpoints"]["mobilenet_v2"]["1"]["sha256"] = "e" * 64
    with pytest.raises(
        HfusError,
        match=r"mobilenet_v2 fold 1: checkpoint sha256 differs \(A 000000000000…, B eeeeeeeeeeee…\)",
    ):
        compare(a, other)
    other = copy.deepcopy(b)
    for row in other["per_image"]:
        if row["fold"] == 0 and row["image_id"].endswith("_0_1"):
            row["image_id"] = "2020-09-09_0_1"
    with pytest.raises(
        HfusError, match=r"mobilenet_v2 fold 0: images differ \(11 shared, 1 only in A, 1 only in B\)"
    ):
        compare(a, other)
    one_fold = record("base", [s7_scores("mobilenet_v2", 0, 1.0, 5)], folds=(0,))
    with pytest.raises(HfusError, match=r"mobilenet_v2: folds differ \(A 0,1, B 0\)"):
        compare(a, one_fold)
    resnet = record("r", [s7_scores("resnet101", f, 1.0, 5 + 10 * f) for f in (0, 1)])
    with pytest.raises(HfusError, match="no architecture in common"):
        compare(a, resnet)


def test_difference_better_rule() -> None:
    def diff(direction: str, lo: float | None, hi: float | None) -> Difference:
        return Difference("k", "k", direction, 1.0, 0.0, 1.0, (lo, hi), 10, 0, lo is not None)

    assert diff("higher", 0.1, 0.3).better == "A" and diff("higher", -0.3, -0.1).better == "B"
    assert diff("lower", 0.1, 0.3).better == "B" and diff("lower", -0.3, -0.1).better == "A"
    assert diff("higher", -0.1, 0.3).better == "neither" and diff("higher", 0.0, 0.3).better == "neither"
    assert diff("none", 0.1, 0.3).better is None and diff("higher", None, None).better is None


# ------------------------------------------------------------------------------------ the command


def test_cli_compare_prints_paired_differences(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = _pair()
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(entry_from_result(b)))  # a record against an entry
    assert main(["compare", str(pa), str(pb)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"A = plus  ({pa})" and lines[1] == f"B = base  ({pb})"
    assert (
        "same dataset hfus-synth rev synth-v2-seed0 (content sha256 aaaaaaaaaaaa…), checkpoints and images"
        in out
    )
    assert (
        "mobilenet_v2 · fold 0 (checkpoint 000000000000…), fold 1 (checkpoint 000000000000…) · 24 images"
        in out
    )
    header = next(line for line in lines if line.startswith("score "))
    assert header.split() == ["score", "dir", "A", "B", "A", "−", "B", "95", "%", "CI", "n", "better"]
    hr1 = next(line for line in lines if line.startswith("HR1 (hit_rate@1)")).split()
    assert hr1[2:] == ["↑", "1.422", "0.922", "+0.500", "[+0.500,", "+0.500]", "22", "A"]
    bg = next(line for line in lines if line.startswith("cov bg")).split()
    assert bg[-5:] == ["+0.100", "[+0.100,", "+0.100]", "22", "B"]
    hr2 = next(line for line in lines if line.startswith("HR2")).split()
    assert hr2[-5:] == ["0.000", "[0.000,", "0.000]", "22", "neither"]  # same maps: exactly 0
    cross = next(line for line in lines if line.startswith("ρ cross")).split()
    assert cross[-1] == "descriptive"
    assert (
        "randomisation verdict (PROTOCOL §7.4 ranks only pass): "
        "A pass (K = 3, D = 0.00); B pass (K = 3, D = 0.00)" in out
    )
    assert "FE/img (model passes per image, PROTOCOL §6): A 0.0; B 0.0" in out  # fake runs: no passes
    assert main(["compare", str(pa), str(pb), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["randomisation_verdict"]["mobilenet_v2"]["ranked"] == [True, True]
    assert data["fe_per_image"]["mobilenet_v2"] == [0.0, 0.0]
    first = data["differences"]["mobilenet_v2"][0]
    assert first["key"] == "hit_rate@1" and first["better"] == "A" and first["diff"] == pytest.approx(0.5)


def test_cli_compare_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = _pair()
    b["dataset"]["revision"] = "synth-v1-seed0"
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    assert main(["compare", str(pa), str(pb)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "hfus-bench: error: A and B are not comparable: dataset revision differs"
    )
    assert main(["compare", str(pa), str(tmp_path / "nope.json")]) == 2
    assert "file not found" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({"schema_version": 1}))
    assert main(["compare", str(pa), str(tmp_path / "bad.json")]) == 2
    assert "invalid at" in capsys.readouterr().err


def test_cli_compare_on_two_committed_entries(capsys: pytest.CaptureFixture) -> None:
    gradcam, prior = ENTRIES / "gradcam.json", ENTRIES / "depth_prior.json"
    load_record(gradcam), load_record(prior)
    assert main(["compare", str(gradcam), str(prior)]) == 0
    out = capsys.readouterr().out
    assert "A = gradcam" in out and "B = depth_prior" in out and "HR1 (hit_rate@1)" in out
    assert "A v1.1 pass; B v1.1 fail" in out or "A pass" in out  # the committed entries' gate
    hr1 = next(line for line in out.splitlines() if line.startswith("HR1 (hit_rate@1)"))
    if "keeps no per-image values" not in out:  # entries regenerated with per-image values: paired, with a CI
        assert "[" in hr1 and hr1.split()[-1] in ("A", "B", "neither")


# ------------------------------------------------------------------------- more than two records: ranks


def _three(tmp_path: Path) -> tuple[dict, list[Path]]:
    """Entries A (better by 1 on every directed score, every image), B (the base), C (worse by 1)."""
    base = entry_from_result(s7_record("base", 1.0, 5))
    trio = [better_entry(base, "best", 1.0), base, better_entry(base, "worst", -1.0)]
    paths = []
    for e in trio:
        paths.append(tmp_path / f"{e['method']['name']}.json")
        paths[-1].write_text(json.dumps(e))
    return base, paths


def _ranks_json(paths: list[Path], capsys: pytest.CaptureFixture) -> dict:
    assert main(["compare", *map(str, paths), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_many_known_ranks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A method better on every metric and image ranks 1 everywhere with no disagreement; since the
    shifts are paired, every resample keeps the order, so the interval is the point (small integers:
    exact)."""
    base, paths = _three(tmp_path)
    data = _ranks_json(paths, capsys)
    assert [r["method"] for r in data["records"]] == ["best", "base", "worst"]
    criteria = data["ranks"]["mobilenet_v2"]["criteria"]
    assert set(criteria) == {"localisation", "faithfulness", "sanity"}
    assert criteria["faithfulness"]["metrics"] == ["road@1/combined", "confidence@1/dic", "confidence@1/iic"]
    for c in criteria.values():
        for label, rank in zip("ABC", (1.0, 2.0, 3.0), strict=True):
            row = c["rows"][label]
            assert row["mean_rank"] == rank and row["ci95"] == [rank, rank] and row["disagreement"] == 0.0
            assert set(row["ranks"].values()) == {rank}
    # D: best on ROAD by far, worst on DiC and IiC: faithfulness ranks 1, 4, 4 -> mean 3, spread 3
    odd = better_entry(
        base, "odd", {"road@1/combined": 2.0, "confidence@1/dic": -2.0, "confidence@1/iic": -2.0}
    )
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    faith = _ranks_json([*paths, tmp_path / "odd.json"], capsys)["ranks"]["mobilenet_v2"]["criteria"]
    d, a = faith["faithfulness"]["rows"]["D"], faith["faithfulness"]["rows"]["A"]
    assert d["ranks"] == {"road@1/combined": 1.0, "confidence@1/dic": 4.0, "confidence@1/iic": 4.0}
    assert d["mean_rank"] == 3.0 and d["disagreement"] == 3.0 and d["ci95"] == [3.0, 3.0]
    assert a["mean_rank"] == pytest.approx(4 / 3) and a["disagreement"] == 1.0
    loc = faith["localisation"]["rows"]
    assert loc["D"]["mean_rank"] == loc["B"]["mean_rank"] == 2.5  # elsewhere D = B: tied, average rank
    # the text output: one line per record with its verdict and "mean [low, high]" cells
    assert main(["compare", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:3] == [f"A = best  ({paths[0]})", f"B = base  ({paths[1]})", f"C = worst  ({paths[2]})"]
    row_a = next(line for line in lines if line.startswith("A ") and "best" in line and "[" in line)
    assert row_a.split()[:2] == ["A", "best"] and row_a.count("1.0 [1.0, 1.0]") == 3
    assert "localisation (HR1)" in out and "faithfulness (ROAD, DiC, IiC %)" in out
    assert "images where every record has a value: HR1 22;" in out  # 2 folds × 12 images, 1 failed each


def test_compare_many_intervals_are_seeded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Noisy records: real intervals, from BOOTSTRAP_RESAMPLES / BOOTSTRAP_SEED, identical on a rerun."""
    records = [s7_record(f"m{k}", level, k + 1) for k, level in enumerate((1.3, 1.2, 1.1))]
    ranks = records_ranks(records)
    again = records_ranks(records, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    other = records_ranks(records, seed=BOOTSTRAP_SEED + 1)
    cells = [c for row in ranks["mobilenet_v2"][1] for c in row]
    assert any(c.low < c.high for c in cells)  # noisy: not a point
    assert [(c.low, c.high) for c in cells] == [
        (c.low, c.high) for row in again["mobilenet_v2"][1] for c in row
    ]  # same draws, same arithmetic
    assert [(c.low, c.high) for c in cells] != [
        (c.low, c.high) for row in other["mobilenet_v2"][1] for c in row
    ]
    paths = []
    for r in records:
        paths.append(tmp_path / f"{r['method']['name']}.json")
        paths[-1].write_text(json.dumps(r))
    assert _ranks_json(paths, capsys) == _ranks_json(paths, capsys)


def test_compare_many_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base, paths = _three(tmp_path)
    other = copy.deepcopy(json.loads(paths[2].read_text()))
    other["dataset"]["revision"] = "synth-v1-seed0"
    paths[2].write_text(json.dumps(other))
    assert main(["compare", *map(str, paths)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "hfus-bench: error: the records are not comparable: dataset revision differs "
        "(A synth-v2-seed0, C synth-v1-seed0); "
    )
    resnet = entry_from_result(record("r", [s7_scores("resnet101", f, 1.0, 5 + 10 * f) for f in (0, 1)]))
    paths[2].write_text(json.dumps(resnet))
    assert main(["compare", *map(str, paths)]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "no architecture in common (A mobilenet_v2; B mobilenet_v2; C resnet101)" in err
    )
    assert main(["compare", str(paths[0])]) == 2
    assert "compare needs two or more" in capsys.readouterr().err
    with pytest.raises(HfusError, match=r"mobilenet_v2 fold 1: checkpoint sha256 differs \(A 0+…, B e+…\)"):
        moved = copy.deepcopy(base)
        moved["checkpoints"]["mobilenet_v2"]["1"]["sha256"] = "e" * 64
        records_ranks([base, moved, base])


def test_cli_compare_on_three_committed_entries(capsys: pytest.CaptureFixture) -> None:
    paths = [ENTRIES / f"{name}.json" for name in ("gradcam", "saliency", "depth_prior")]
    if not all(p.is_file() for p in paths):
        pytest.skip("the committed entries are being regenerated")
    assert main(["compare", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line[:2] in ("A ", "B ", "C ") and "[" in line]
    assert [r[1] for r in rows] == ["gradcam", "saliency", "depth_prior"]
    assert "depth_prior" in rows[2] and "fail" in rows[2]  # every record is ranked here, its verdict shown
