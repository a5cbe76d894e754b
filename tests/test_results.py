"""Aggregation over folds, the fold-stratified bootstrap, and the result schema."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from hfus_xai_bench.constants import THRESHOLDS
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.evaluate import FoldRun
from hfus_xai_bench.explainers.loader import Method
from hfus_xai_bench.metrics import bootstrap_ci
from hfus_xai_bench.results import build_result, fold_bootstrap, summarize, validate


def fake_run(fold: int, hr1: list[float], labels: list[int], preds: list[int], failed=None) -> FoldRun:
    n = len(hr1)
    t = len(THRESHOLDS)
    hr = np.array(hr1, float)
    return FoldRun(
        arch="mobilenet_v2", fold=fold, checkpoint={"name": "x", "sha256": "0" * 64},
        image_ids=[f"img{fold}_{i}" for i in range(n)], labels=np.array(labels), preds=np.array(preds),
        targets=np.array(preds), failed=failed or [None] * n, hr1=hr, hr2=hr / 3, cov_top=np.full(n, 0.5),
        cov_bg=np.full(n, 0.1), iou=np.full((n, t, 5), 0.2), s0=np.full(n, 2.0), s_keep=np.linspace(1, 3, n),
        s_remove=np.full(n, 0.5), s_keep_t=np.full((n, t), 2.5), s_remove_t=np.full((n, t), 1.0),
        seconds=1.0, forward_images=n,
    )


def test_single_fold_bootstrap_is_the_metrics_bootstrap():
    values = np.random.default_rng(3).normal(size=50)
    assert fold_bootstrap([values]) == pytest.approx(tuple(bootstrap_ci(values)))


def test_mean_of_fold_means_and_breakdowns():
    runs = [fake_run(0, [1.0, 3.0], [0, 1], [0, 0]), fake_run(1, [0.0, 0.0, 0.0, 2.0], [1, 1, 2, 3], [1, 1, 2, 3])]
    s = summarize(runs, [r.hr1 for r in runs])
    assert s["per_fold"] == {"0": 2.0, "1": 0.5}
    assert s["mean"] == pytest.approx(1.25)  # mean of fold means, not the pooled 1.0
    assert s["per_class"] == {"AD": 1.0, "CG": 1.0, "PS": 0.0, "ST": 2.0}
    assert s["correct"] == pytest.approx(0.6) and s["incorrect"] == pytest.approx(3.0)
    low, high = s["ci95"]
    assert 0.0 <= low <= s["mean"] <= high <= 3.0


def test_nan_values_are_excluded_and_counted():
    run = fake_run(0, [1.0, float("nan"), 2.0], [0, 1, 2], [0, 1, 2], failed=[None, "empty_map", None])
    s = summarize([run], [run.hr1])
    assert s["mean"] == pytest.approx(1.5) and s["n"] == 2 and s["n_nan"] == 1


def test_build_result_validates_and_counts():
    run = fake_run(0, [1.0, float("nan"), 2.0], [0, 1, 2], [0, 1, 3], failed=[None, "empty_map", None])
    method = Method(name="m", source="builtin", kind="map", factory=lambda m, c: None, metadata={"url": "u"})
    options = {"models": ["mobilenet_v2"], "folds": [0], "limit": None, "target": "pred", "sign": "pos",
               "confidence": "logit", "batch_size": 4, "seed": 0, "precision": "fp32", "device": "cpu"}
    import torch

    result = build_result(method, [run], options=options, device=torch.device("cpu"),
                          dataset={"id": "hfus-synth", "revision": "r", "sha256": "s", "n_images": 3})
    rec = result.record
    assert rec["counts"]["total"]["failures"] == {"empty_map": 1}
    assert rec["classification"]["mobilenet_v2"]["accuracy"] == pytest.approx(2 / 3)
    assert rec["metrics"]["confidence@1/dic"]["mobilenet_v2"]["mean"] == pytest.approx(1.5)
    iic = rec["metrics"]["confidence@1/iic"]["mobilenet_v2"]["mean"]
    assert iic == pytest.approx(100 * np.mean(np.linspace(1, 3, 3) > 2.0))
    assert rec["metrics"]["mask_iou@1"]["mobilenet_v2"]["mean"][0] == pytest.approx([0.2] * 5)
    bad = copy.deepcopy(rec)
    bad["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"] = "1.5"
    with pytest.raises(HfusError, match=r"metrics/hit_rate@1/mobilenet_v2/mean"):
        validate(bad)
    extra = copy.deepcopy(rec)
    extra["surprise"] = 1
    with pytest.raises(HfusError, match="Additional properties"):
        validate(extra)
