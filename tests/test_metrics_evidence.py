"""PROTOCOL §9, maps only: evidence@1 (hit, mass, |P|, gains over the randomised copies) and
class_sensitivity@1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import registry
from hfus_xai_bench.metrics.evidence import (
    PAIR_DEGENERATE,
    PAIR_FAILED,
    PAIR_SCORED,
    class_sensitivity,
    copy_evidence_scores,
    evidence_count_table,
    evidence_gains,
    evidence_scores,
    pair_count_table,
)
from hfus_xai_bench.metrics.inputs import ScoringInputs
from hfus_xai_bench.metrics.postprocess import quantize
from hfus_xai_bench.results import FoldScores, aggregate
from hfus_xai_bench.scoring import score_fold, select_metrics


def _mask(rows: slice, cols: slice, size: int = 8) -> np.ndarray:
    e = np.zeros((size, size), np.uint8)
    e[rows, cols] = 255
    return e


def test_hit_and_mass_known_answers() -> None:
    """4 tied peak pixels, one inside E → hit 1/4; mass = Σ_E m255 / Σ m255, exact integer counts."""
    m = np.zeros((2, 8, 8), np.uint8)
    m[0, 0, 0:4] = 255  # a plateau of 4 peak pixels (ties kept, each weighs 1/4)
    m[0, 5, 5] = 100
    m[1, 2:4, 2:4] = 255  # all 4 peak pixels inside E
    m[1, 7, 7] = 51
    e = np.stack(
        [_mask(slice(0, 1), slice(3, 8)) | _mask(slice(5, 6), slice(5, 6)), _mask(slice(2, 4), slice(2, 4))]
    )
    hit, mass, peak = evidence_scores(m, e)
    np.testing.assert_array_equal(peak, [4, 4])
    assert hit[0] == 0.25 and hit[1] == 1.0  # exact: a count over a power of two
    assert mass[0] == (255 + 100) / (4 * 255 + 100)  # one peak pixel and the 100 pixel inside E
    assert mass[1] == (4 * 255) / (4 * 255 + 51)
    # bool masks and torch inputs give the same; float maps are quantised first (§3.1)
    hb, mb, _ = evidence_scores(torch.from_numpy(m), torch.from_numpy(e > 0))
    np.testing.assert_array_equal(hb, hit)
    np.testing.assert_array_equal(mb, mass)
    hf, _, pf = evidence_scores(m.astype(np.float32) / 255.0 * 3.0, e)
    np.testing.assert_array_equal(hf, hit)
    np.testing.assert_array_equal(pf, peak)


def test_not_applicable_and_empty_maps_are_nan_never_zero() -> None:
    m = np.zeros((3, 8, 8), np.uint8)
    m[0, 1, 1] = 255
    m[1, 1, 1] = 255
    e = np.stack(
        [np.zeros((8, 8), np.uint8), _mask(slice(1, 2), slice(1, 2)), _mask(slice(0, 8), slice(0, 8))]
    )
    hit, mass, peak = evidence_scores(m, e)
    assert np.isnan(hit[0]) and np.isnan(mass[0]) and peak[0] == 1  # empty E (a CG image): not applicable
    assert hit[1] == 1.0 and mass[1] == 1.0
    assert np.isnan(hit[2]) and np.isnan(mass[2]) and peak[2] == 0  # all-zero map: no peak, no mass
    with pytest.raises(HfusError, match="0/255"):
        evidence_scores(m, e // 2)
    with pytest.raises(HfusError, match="shape"):
        evidence_scores(m, e[:, :4])
    with pytest.raises(HfusError, match="max 7"):
        evidence_scores(np.full((1, 8, 8), 7, np.uint8), e[:1])  # uint8 maps are m255 (max 255)


def test_copies_and_gains() -> None:
    """gain = mean over the copies with a value of (trained − copy); failed and all-zero copies are left
    out."""
    e = np.stack([_mask(slice(0, 2), slice(0, 8))] * 3)
    trained = np.zeros((3, 8, 8), np.uint8)
    trained[:, 0, 0] = 255  # peak inside E: hit 1, mass 1
    copies = np.zeros((3, 3, 8, 8), np.uint8)
    copies[0, 0, 0, 0] = copies[0, 0, 7, 7] = 255  # hit 0.5
    copies[0, 1, 7, 7] = 255  # hit 0
    copies[0, 2, 0, 0] = 255  # would be hit 1, but this copy failed
    copies[1] = trained[1]  # a model-blind map: every copy equals the trained map
    # image 2: every copy map is all zero (no value): no gain
    ok = np.array([[True, True, False], [True, True, True], [True, True, True]])
    chit, cmass = copy_evidence_scores(copies, ok, e)
    np.testing.assert_array_equal(chit[0], [0.5, 0.0, np.nan])
    assert np.isnan(chit[2]).all() and np.isnan(cmass[2]).all()
    hit, _, _ = evidence_scores(trained, e)
    gain, mean, used = evidence_gains(hit, chit)
    assert gain[0] == 0.75 and mean[0] == 0.25 and used[0] == 2
    assert gain[1] == 0.0 and used[1] == 3  # exactly 0 for a map that does not depend on the model
    assert np.isnan(gain[2]) and np.isnan(mean[2]) and used[2] == 0
    # a trained value of NaN (not applicable) has no gain whatever the copies hold
    assert np.isnan(evidence_gains(np.array([np.nan]), np.array([[0.5]]))[0][0])
    with pytest.raises(HfusError, match=r"\(N, K, H, W\)"):
        copy_evidence_scores(copies[0], ok, e)
    with pytest.raises(HfusError, match="randomised_ok"):
        copy_evidence_scores(copies, ok[:, :2], e)


def _inputs(n: int = 6, seed: int = 0, k: int = 3) -> ScoringInputs:
    rng = np.random.default_rng(seed)
    m = quantize(rng.random((n, 224, 224)))
    e = np.zeros((n, 224, 224), np.uint8)
    e[: n - 1, 50:120, 30:200] = 255  # the last image has no evidence (a CG image)
    labels = np.array([0, 2, 3, 0, 2, 1][:n])
    rand = np.stack([quantize(rng.random((n, 224, 224))) for _ in range(k)], 1)
    extras = {
        "evidence": e,
        "m255_randomised": rand,
        "randomised_ok": np.ones((n, k), bool),
        "m255_runner_up": m.copy(),
        "runner_up_ok": np.ones(n, bool),
        "runner_up": np.full(n, 1, np.int64),
    }
    slms = np.zeros((n, 224, 224), np.uint8)
    return ScoringInputs(m, slms, [f"i{i}" for i in range(n)], labels, labels, extras=extras)


def test_registry_entries_through_the_scoring_core() -> None:
    ev, cs = registry.METRICS["evidence@1"], registry.METRICS["class_sensitivity@1"]
    assert (ev.needs, ev.scope, ev.extras, ev.required) == ("maps", "image", ("evidence",), False)
    assert (cs.needs, cs.extras) == ("maps", ("m255_runner_up", "runner_up_ok", "runner_up"))
    assert [ev.key(o) for o in ev.outputs] == [
        "evidence@1/hit",
        "evidence@1/mass",
        "evidence@1/hit_gain",
        "evidence@1/mass_gain",
        "evidence@1/peak_pixels",
    ]
    assert [cs.key(o) for o in cs.outputs] == ["class_sensitivity@1/rho"] and cs.primary.direction == "lower"
    inp = _inputs()
    inp.ok[2] = False  # the trained map failed (or is empty): not scored
    values = score_fold(inp, [ev, cs])
    hit, mass, peak = evidence_scores(inp.m255, inp.extras["evidence"])
    for name, want in (("ev_hit", hit), ("ev_mass", mass), ("ev_peak_pixels", peak)):
        got = values[f"evidence@1/{name}"]
        np.testing.assert_array_equal(got[[0, 1, 3, 4]], want[[0, 1, 3, 4]].astype(np.float64))
        assert np.isnan(got[2])
    assert values["evidence@1/ev_evidence_pixels"][5] == 0  # a CG image: not applicable, no value at all
    assert np.isnan(
        [values[f"evidence@1/{v}"][5] for v in ("ev_hit", "ev_mass", "ev_peak_pixels", "ev_hit_gain")]
    ).all()
    chit, _ = copy_evidence_scores(
        inp.extras["m255_randomised"], inp.extras["randomised_ok"], inp.extras["evidence"]
    )
    np.testing.assert_allclose(
        values["evidence@1/ev_hit_gain"][0], hit[0] - chit[0].mean(), rtol=0, atol=1e-15
    )
    # runner-up map = the trained map: ρ = 1 exactly (a map that ignores the class)
    np.testing.assert_array_equal(np.delete(values["class_sensitivity@1/cs_rho"], 2), 1.0)
    per_fold = [{v.name: values[ev.key(v)] for v in ev.values}]
    assert evidence_count_table(per_fold) == {
        "n_scored": 4,
        "n_not_applicable": 1,
        "n_no_map": 1,
        "n_no_gain": 0,
    }
    # without randomised copies the gains are NaN (hit and mass still scored)
    bare = _inputs()
    del bare.extras["m255_randomised"], bare.extras["randomised_ok"]
    v2 = score_fold(bare, [ev])
    assert np.isnan(v2["evidence@1/ev_hit_gain"]).all() and np.isfinite(v2["evidence@1/ev_hit"][:5]).all()
    # a track without an evidence column: the metric is not selected, and demanded it is a clear error
    assert ev not in select_metrics(model=False, extras=("m255_randomised", "randomised_ok"))
    with pytest.raises(HfusError, match=r"evidence@1 needs extras \['evidence'\]"):
        score_fold(ScoringInputs(inp.m255, inp.slms, inp.image_ids, inp.labels, inp.targets), [ev])


def test_per_class_strata_in_the_record() -> None:
    """The results layer summarises evidence@1 per class from the per-image values (CG: not applicable, no
    value)."""
    inp = _inputs()
    ev = registry.METRICS["evidence@1"]
    values = score_fold(inp, [ev])
    run = FoldScores(
        arch="mobilenet_v2",
        fold=0,
        checkpoint={},
        image_ids=list(inp.image_ids),
        labels=inp.labels,
        preds=inp.labels,
        targets=inp.targets,
        failed=[None] * len(inp),
        values=values,
    )
    summary = aggregate([run])["metrics"]["evidence@1/hit"]["mobilenet_v2"]
    hit = values["evidence@1/ev_hit"]
    assert summary["n"] == 5 and summary["n_nan"] == 1
    assert summary["per_class"]["CG"] is None and summary["per_class"]["PS"] == pytest.approx(
        np.mean(hit[[1, 4]])
    )
    assert summary["ci95"][0] <= summary["mean"] <= summary["ci95"][1]


def test_class_sensitivity_rules() -> None:
    rng = np.random.default_rng(1)
    a = quantize(rng.random((5, 16, 16)))
    b = a.copy()
    b[1] = quantize(256.0 - a[1:2].astype(np.float64))[0]  # reversed ranking (up to the quantisation)
    b[2] = quantize(rng.random((1, 16, 16)))[0]  # an unrelated map
    b[3] = 0  # an all-zero runner-up map: constant → degenerate (no ρ, not 0)
    b[4] = 0  # failed: reported as failed, not degenerate
    ok = np.array([True, True, True, True, False])
    rho, pair = class_sensitivity(a, b, ok)
    np.testing.assert_array_equal(pair, [PAIR_SCORED, PAIR_SCORED, PAIR_SCORED, PAIR_DEGENERATE, PAIR_FAILED])
    assert rho[0] == 1.0 and np.isnan(rho[3]) and np.isnan(rho[4])
    for i in (1, 2):  # Spearman with average ranks (scipy's tie rule)
        assert rho[i] == pytest.approx(spearmanr(a[i].ravel(), b[i].ravel()).statistic, abs=1e-12)
    assert rho[1] < -0.99
    # a constant (non-zero) trained map is degenerate too
    c = np.full((1, 16, 16), 255, np.uint8)
    assert class_sensitivity(c, a[:1], [True])[1][0] == PAIR_DEGENERATE
    per_fold = [{"cs_pair": pair.astype(float)}, {"cs_pair": np.array([np.nan, 0.0])}]
    assert pair_count_table(per_fold) == {"n_scored": 4, "n_degenerate": 1, "n_failed": 1}
    with pytest.raises(HfusError, match="runner_up_ok"):
        class_sensitivity(a, b, ok[:2])
