"""results.py: aggregation over folds, the fold-stratified bootstrap, per-image rows and the schema from the
registry."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import fake_scores

from hfus_xai_bench.constants import THRESHOLDS
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.loader import Method
from hfus_xai_bench.metrics import bootstrap_ci, fold_bootstrap, registry
from hfus_xai_bench.results import (
    FoldScores,
    aggregate,
    build_result,
    per_image_rows,
    schema,
    schema_file,
    summarize,
    validate,
)

OPTIONS = {
    "models": ["mobilenet_v2"],
    "folds": [0],
    "limit": None,
    "target": "pred",
    "sign": "pos",
    "confidence": "logit",
    "batch_size": 4,
    "seed": 0,
    "precision": "fp32",
    "device": "cpu",
}
DATASET = {"id": "hfus-synth", "revision": "r", "sha256": "s", "n_images": 3}
ENV = {"hfus_xai_bench": "0", "torch": "x", "device": "cpu", "device_name": "test"}


def scores(fold: int, hr1: list[float], labels: list[int], preds: list[int], failed=None) -> FoldScores:
    n = len(hr1)
    t = len(THRESHOLDS)
    hr = np.array(hr1, float)
    values = {
        "hit_rate@1/hr1": hr,
        "hit_rate_binary@1/hr2": hr / 3,
        "slm_coverage@1/cov_top": np.full(n, 0.5),
        "slm_coverage@1/cov_bg": np.full(n, 0.1),
        "mask_iou@1/iou": np.full((n, t, 5), 0.2),
        "confidence@1/s0": np.full(n, 2.0),
        "confidence@1/s_keep": np.linspace(1, 3, n),
        "confidence@1/s_remove": np.full(n, 0.5),
        "confidence@1/s_keep_t": np.full((n, t), 2.5),
        "confidence@1/s_remove_t": np.full((n, t), 1.0),
    }
    return FoldScores(
        arch="mobilenet_v2",
        fold=fold,
        checkpoint={"name": "x", "sha256": "0" * 64},
        image_ids=[f"img{fold}_{i}" for i in range(n)],
        labels=np.array(labels),
        preds=np.array(preds),
        targets=np.array(preds),
        failed=failed or [None] * n,
        values=values,
        seconds=1.0,
        forward_images=n,
    )


def method() -> Method:
    return Method(name="m", source="builtin", kind="map", factory=lambda m, c: None, metadata={"url": "u"})


def test_single_fold_bootstrap_is_the_metrics_bootstrap():
    values = np.random.default_rng(3).normal(size=50)
    assert fold_bootstrap([values]) == pytest.approx(tuple(bootstrap_ci(values)))


def test_mean_of_fold_means_and_breakdowns():
    runs = [
        scores(0, [1.0, 3.0], [0, 1], [0, 0]),
        scores(1, [0.0, 0.0, 0.0, 2.0], [1, 1, 2, 3], [1, 1, 2, 3]),
    ]
    s = summarize(runs, [r.output("hit_rate@1") for r in runs])
    assert s["per_fold"] == {"0": 2.0, "1": 0.5}
    assert s["mean"] == pytest.approx(1.25)  # mean of fold means, not the pooled 1.0
    # the views too are means of the folds' means, over the folds that have such images (PROTOCOL §4):
    # CG = (3.0 + mean(0, 0)) / 2, not the pooled mean(3, 0, 0) = 1.0; correct = (1.0 + 0.5) / 2, not 0.6
    assert s["per_class"] == {"AD": 1.0, "CG": 1.5, "PS": 0.0, "ST": 2.0}
    assert s["correct"] == pytest.approx(0.75) and s["incorrect"] == pytest.approx(3.0)
    assert s["n"] == 6 and s["n_nan"] == 0
    low, high = s["ci95"]
    assert 0.0 <= low <= s["mean"] <= high <= 3.0


def test_the_summary_does_not_depend_on_the_order_the_folds_ran_in():
    """`--folds 1,0` and `--folds 0,1` give the same record: the fold bootstrap draws folds ascending."""
    runs = [fake_scores("mobilenet_v2", f, 2.0, 10 + f) for f in (0, 1, 2)]
    forward, backward = aggregate(runs), aggregate(runs[::-1])
    assert forward["metrics"] == backward["metrics"]
    assert forward["metrics"]["hit_rate@1"]["mobilenet_v2"]["ci95"] == [
        pytest.approx(x) for x in fold_bootstrap([r.output("hit_rate@1") for r in runs])
    ]


def test_nan_values_are_excluded_and_counted():
    run = scores(0, [1.0, float("nan"), 2.0], [0, 1, 2], [0, 1, 2], failed=[None, "empty_map", None])
    s = summarize([run], [run.output("hit_rate@1")])
    assert s["mean"] == pytest.approx(1.5) and s["n"] == 2 and s["n_nan"] == 1


def test_build_result_validates_and_counts():
    run = scores(0, [1.0, float("nan"), 2.0], [0, 1, 2], [0, 1, 3], failed=[None, "empty_map", None])
    rec = build_result(method(), [run], options=OPTIONS, dataset=DATASET, environment=ENV).record
    assert rec["counts"]["total"]["failures"] == {"empty_map": 1}
    assert rec["classification"]["mobilenet_v2"]["accuracy"] == pytest.approx(2 / 3)
    assert rec["metrics"]["confidence@1/dic"]["mobilenet_v2"]["mean"] == pytest.approx(1.5)
    iic = rec["metrics"]["confidence@1/iic"]["mobilenet_v2"]["mean"]
    assert iic == pytest.approx(100 * np.mean(np.linspace(1, 3, 3) > 2.0))
    assert rec["metrics"]["mask_iou@1"]["mobilenet_v2"]["mean"][0] == pytest.approx([0.2] * 5)
    assert rec["metrics"]["confidence@1/thresholds"]["mobilenet_v2"]["dic"] == pytest.approx(
        [1.0] * len(THRESHOLDS)
    )
    bad = copy.deepcopy(rec)
    bad["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"] = "1.5"
    with pytest.raises(HfusError, match=r"metrics/hit_rate@1/mobilenet_v2/mean"):
        validate(bad)
    extra = copy.deepcopy(rec)
    extra["surprise"] = 1
    with pytest.raises(HfusError, match="Additional properties"):
        validate(extra)


def test_every_registry_output_and_value_is_in_the_record():
    runs = [fake_scores("mobilenet_v2", f, 1.0, 1 + f, evidence=True) for f in (0, 1)]
    rec = build_result(
        method(), runs, options={**OPTIONS, "folds": [0, 1]}, dataset=DATASET, environment=ENV
    ).record
    expected = {m.key(p) for m in registry.METRICS.values() for p in (*m.outputs, *m.tables)}
    assert set(rec["metrics"]) == expected
    row = per_image_rows(runs)[0]
    assert set(row) == set(registry.ROW_KEYS) | {v.name for m in registry.METRICS.values() for v in m.values}
    assert (
        len(row["iou"]) == len(THRESHOLDS)
        and len(row["iou"][0]) == 5
        and len(row["s_keep_t"]) == len(THRESHOLDS)
    )


def test_shipped_schema_files_match_the_registry():
    """The schema files carry the registry's metrics section (``results.write_schema_files()`` regenerates
    it)."""
    for name in ("result", "entry"):
        assert schema_file(name)["properties"]["metrics"] == registry.metrics_schema(), name
        assert schema(name) == schema_file(name)


def test_missing_required_metric_is_a_schema_error():
    run = scores(0, [1.0, 2.0], [0, 1], [0, 1])
    rec = build_result(method(), [run], options=OPTIONS, dataset=DATASET, environment=ENV).record
    del rec["metrics"]["slm_coverage@1/bg"]
    with pytest.raises(HfusError, match="slm_coverage@1/bg"):
        validate(rec)
