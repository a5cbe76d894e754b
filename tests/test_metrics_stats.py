"""Bootstrap CI, summaries and the classification report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import (
    bootstrap_ci,
    classification_report,
    confusion_matrix,
    summarize,
)


def test_bootstrap_is_the_documented_procedure_and_deterministic() -> None:
    v = np.array([0.5, 1.0, np.nan, 2.0, 3.5, -1.0])
    ci = bootstrap_ci(v, n_resamples=1000, seed=0)
    finite = v[~np.isnan(v)]
    idx = np.random.default_rng(0).integers(0, 5, size=(1000, 5))
    want = np.percentile(finite[idx].mean(axis=1), [2.5, 97.5])
    assert (ci.low, ci.high) == tuple(want)
    low, high = ci  # unpacks as a pair
    assert (low, high) == (ci[0], ci[1]) and ci.n == 5 and ci.n_nan == 1
    assert tuple(bootstrap_ci(v)) == tuple(ci)  # defaults: 1000 resamples, seed 0
    assert tuple(bootstrap_ci(v, seed=1)) != tuple(ci)


def test_bootstrap_edge_cases() -> None:
    assert tuple(bootstrap_ci([2.0, 2.0, 2.0])) == (2.0, 2.0)
    assert tuple(bootstrap_ci([7.0])) == (7.0, 7.0)
    empty = bootstrap_ci([np.nan, np.nan])
    assert np.isnan(empty.low) and np.isnan(empty.high) and empty.n == 0 and empty.n_nan == 2
    with pytest.raises(HfusError):
        bootstrap_ci(np.zeros((2, 2)))


def test_bootstrap_covers_the_true_mean() -> None:
    rng = np.random.default_rng(123)
    hits = 0
    trials = 200
    for k in range(trials):
        sample = rng.normal(1.0, 2.0, 60)
        lo, hi = bootstrap_ci(sample, n_resamples=400, seed=k)
        hits += lo <= 1.0 <= hi
    assert 0.88 <= hits / trials <= 0.99  # nominal 95 %


def test_summarize_views() -> None:
    values = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    labels = np.array([0, 0, 1, 2, 2, 0])
    correct = np.array([True, True, False, False, True, True])
    s = summarize(values, labels, correct)
    assert s["mean"] == pytest.approx(3.6)
    assert s["n"] == 5 and s["n_nan"] == 1
    assert s["ci95"] == list(bootstrap_ci(values))
    assert s["per_class"] == {"AD": 3.0, "CG": None, "PS": 4.5, "ST": None}
    assert s["per_class_n"] == {"AD": 3, "CG": 0, "PS": 2, "ST": 0}
    assert s["correct"] == pytest.approx(14 / 4) and s["incorrect"] == 4.0
    assert (s["n_correct"], s["n_incorrect"]) == (4, 1)
    json.dumps(s, allow_nan=False)  # JSON-ready
    assert set(summarize(values)) == {"mean", "ci95", "n", "n_nan"}
    assert summarize([np.nan])["ci95"] == [None, None]
    with pytest.raises(HfusError):
        summarize(values, labels[:3])
    with pytest.raises(HfusError):
        summarize(values, labels + 3)


def test_classification_report_hand_computed() -> None:
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2, 0, 0]
    r = classification_report(y_true, y_pred)
    # TP (2,1,3,0); predicted (4,2,4,0); support (3,2,4,1)
    # precision (.5, .5, .75, 0) recall (2/3, .5, .75, 0) f1 (4/7, .5, .75, 0)
    assert r["accuracy"] == pytest.approx(0.6)
    assert r["precision"] == pytest.approx((3 * 0.5 + 2 * 0.5 + 4 * 0.75) / 10)
    assert r["recall"] == pytest.approx(0.6)
    assert r["f1"] == pytest.approx((3 * 4 / 7 + 2 * 0.5 + 4 * 0.75) / 10)
    assert r["support"] == [3, 2, 4, 1] and r["n"] == 10
    assert r["confusion"][3] == [1, 0, 0, 0]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred).sum(axis=0), [4, 2, 4, 0])


def test_classification_report_matches_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(5):
        t = rng.integers(0, 4, 50)
        p = np.where(rng.uniform(size=50) < 0.7, t, rng.integers(0, 3, 50))  # class 3 never predicted
        r = classification_report(t, p)
        pr, rc, f1, _ = metrics.precision_recall_fscore_support(t, p, average="weighted", zero_division=0)
        assert (r["precision"], r["recall"], r["f1"]) == pytest.approx((pr, rc, f1), abs=1e-12)
        assert r["accuracy"] == pytest.approx(metrics.accuracy_score(t, p))


def test_classification_report_errors_and_empty() -> None:
    assert classification_report([], [])["accuracy"] == 0.0
    with pytest.raises(HfusError):
        classification_report([0, 4], [0, 1])
    with pytest.raises(HfusError):
        classification_report([0, 1], [0])
    with pytest.raises(HfusError):
        classification_report([0.5], [0])
