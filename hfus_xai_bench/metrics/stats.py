"""Aggregation with uncertainty (PROTOCOL §4): bootstrap CI of the mean, per-class, correct/incorrect views;
also the paired bootstrap of §7.3 and the copies-then-images bootstrap of §7.1.1.

Every headline number carries a bootstrap 95 % CI (``constants.BOOTSTRAP_RESAMPLES`` resamples of images,
seed ``constants.BOOTSTRAP_SEED``: every function's defaults) and ``n_evaluated`` / ``n_failed``. NaN
values (undefined per-image metrics) are excluded and counted.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..constants import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CLASSES
from ..errors import HfusError
from ..jsonio import json_number


class BootstrapCI(tuple):
    """``(low, high)`` of a percentile bootstrap: unpacks like a pair; undefined bounds are NaN.

    Also carries ``n`` (finite values used) and ``n_nan`` (values left out: NaN), and ``kept`` and
    ``dropped``: the resamples with and without any value (:func:`copy_image_bootstrap` drops a resample
    whose drawn copies and images have no value; :func:`bootstrap_ci` keeps every resample).
    """

    n: int
    n_nan: int
    kept: int
    dropped: int

    def __new__(
        cls, low: float, high: float, n: int, n_nan: int, kept: int = 0, dropped: int = 0
    ) -> BootstrapCI:
        obj = super().__new__(cls, (float(low), float(high)))
        obj.n, obj.n_nan, obj.kept, obj.dropped = int(n), int(n_nan), int(kept), int(dropped)
        return obj

    @property
    def low(self) -> float:
        return self[0]

    @property
    def high(self) -> float:
        return self[1]

    def __repr__(self) -> str:
        return (
            f"BootstrapCI(low={self[0]!r}, high={self[1]!r}, n={self.n}, n_nan={self.n_nan}, "
            f"kept={self.kept}, dropped={self.dropped})"
        )


def _as_values(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise HfusError(f"values: expected one value per image (N,), got shape {v.shape}")
    return v


def bootstrap_ci(
    values: Any, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> BootstrapCI:
    """Percentile-bootstrap 95 % CI of the mean: resample images with replacement (PROTOCOL §4).

    One (n_resamples, n) index matrix from ``np.random.default_rng(seed)``, the mean of each
    resample, percentiles 2.5 / 97.5 (numpy's linear interpolation). NaNs are excluded before
    resampling and counted in ``n_nan``. No finite value: (nan, nan); one value: (v, v).
    """
    v = _as_values(values)
    finite = v[~np.isnan(v)]
    n_nan = int(v.size - finite.size)
    n = int(finite.size)
    if n_resamples < 1:
        raise HfusError(f"n_resamples must be >= 1, got {n_resamples}")
    if n == 0:
        return BootstrapCI(np.nan, np.nan, 0, n_nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_resamples), n))
    means = finite[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return BootstrapCI(low, high, n, n_nan, kept=int(n_resamples))


def _mean_or_none(v: np.ndarray) -> float | None:
    f = v[~np.isnan(v)]
    return float(f.mean()) if f.size else None


def summarize(
    values: Any,
    labels: Any = None,
    correct: Any = None,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    classes: tuple[str, ...] = CLASSES,
) -> dict[str, Any]:
    """Dataset-level summary of one per-image metric (JSON-ready; undefined numbers are ``None``).

    Keys: ``mean``, ``ci95`` [low, high] (:func:`bootstrap_ci`), ``n`` (finite values), ``n_nan``
    (excluded); with ``labels`` (N,) class indices: ``per_class`` {"AD": mean, ...} and
    ``per_class_n``; with ``correct`` (N,) bool: ``correct`` / ``incorrect`` means and
    ``n_correct`` / ``n_incorrect`` (finite values in each group). "Stratified views: every metric also
    per class and for correctly vs incorrectly classified images."
    """
    v = _as_values(values)
    ci = bootstrap_ci(v, n_resamples=n_resamples, seed=seed)
    out: dict[str, Any] = {
        "mean": _mean_or_none(v),
        "ci95": [json_number(ci.low), json_number(ci.high)],
        "n": ci.n,
        "n_nan": ci.n_nan,
    }
    if labels is not None:
        lab = np.asarray(labels).reshape(-1)
        if lab.shape != v.shape:
            raise HfusError(f"labels: expected shape {v.shape}, got {lab.shape}")
        if lab.size and (lab.min() < 0 or lab.max() >= len(classes)):
            raise HfusError(f"labels: class indices must be in 0..{len(classes) - 1}")
        out["per_class"] = {c: _mean_or_none(v[lab == i]) for i, c in enumerate(classes)}
        out["per_class_n"] = {
            c: int(np.count_nonzero((lab == i) & ~np.isnan(v))) for i, c in enumerate(classes)
        }
    if correct is not None:
        ok = np.asarray(correct).reshape(-1)
        if ok.shape != v.shape:
            raise HfusError(f"correct: expected shape {v.shape}, got {ok.shape}")
        ok = ok.astype(bool)
        out["correct"] = _mean_or_none(v[ok])
        out["incorrect"] = _mean_or_none(v[~ok])
        out["n_correct"] = int(np.count_nonzero(ok & ~np.isnan(v)))
        out["n_incorrect"] = int(np.count_nonzero(~ok & ~np.isnan(v)))
    return out


def nanmean(values: Any, axis: int = 0) -> np.ndarray:
    """Mean over ``axis`` ignoring NaNs (numpy's ``nanmean``); NaN, without a warning, where a slice has
    none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


#: the name confidence.py, localisation.py and metrics/__init__.py import (one helper: :func:`nanmean`)
nanmean0 = nanmean


def fold_bootstrap(
    per_fold: Sequence[np.ndarray], n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """95 % CI of the mean of fold means, resampling images within each fold; NaNs excluded.

    Args:
        per_fold: per fold, the per-image values (N_f,), folds in the record's order.
        n_resamples: bootstrap resamples.
        seed: one ``np.random.default_rng(seed)`` draws every fold's resamples, folds in order.

    Returns:
        (low, high); with a single fold exactly :func:`bootstrap_ci`'s.
    """
    finite = [v[np.isfinite(v)] for v in (np.asarray(x, dtype=np.float64) for x in per_fold)]
    finite = [v for v in finite if v.size]
    if len(finite) <= 1:
        ci = bootstrap_ci(finite[0] if finite else np.array([]), n_resamples=n_resamples, seed=seed)
        return float(ci.low), float(ci.high)
    rng = np.random.default_rng(seed)
    means = np.mean(
        [v[rng.integers(0, v.size, size=(n_resamples, v.size))].mean(axis=1) for v in finite], axis=0
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


class PairedDifference(tuple):
    """``(mean, low, high)`` of a paired difference a − b; also carries ``n`` (pairs used) and ``n_nan``
    (pairs left out because either side is NaN). Undefined numbers (no pair) are NaN."""

    n: int
    n_nan: int

    def __new__(cls, mean: float, low: float, high: float, n: int, n_nan: int) -> PairedDifference:
        obj = super().__new__(cls, (float(mean), float(low), float(high)))
        obj.n = int(n)
        obj.n_nan = int(n_nan)
        return obj

    @property
    def mean(self) -> float:
        return self[0]

    @property
    def low(self) -> float:
        return self[1]

    @property
    def high(self) -> float:
        return self[2]

    def __repr__(self) -> str:
        return (
            f"PairedDifference(mean={self[0]!r}, low={self[1]!r}, high={self[2]!r}, n={self.n}, "
            f"n_nan={self.n_nan})"
        )


def paired_bootstrap(
    a: Any,
    b: Any,
    strata: Any = None,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedDifference:
    """Mean per-image difference ``a − b`` with a percentile-bootstrap 95 % CI that resamples the shared
    images as pairs (PROTOCOL §7.3: the §4 resamples and seed, of the shared images).

    ``a[i]`` and ``b[i]`` are two methods' values on the same image ``i``; a pair with a NaN on either side
    is left out (counted in ``n_nan``). ``strata`` (N,), optional: the fold of each image; the mean is the
    mean of the per-fold means (as the record's means are) and the images are resampled within each fold.
    The resampling rule is :func:`bootstrap_ci`'s (one fold: exactly ``bootstrap_ci(a − b)``) and
    :func:`fold_bootstrap`'s (several folds, taken in sorted order): one ``np.random.default_rng(seed)``,
    an ``(n_resamples, n)`` index matrix per fold, percentiles 2.5 / 97.5. Vectorised: no loop over
    images or resamples.
    """
    x, y = _as_values(a), _as_values(b)
    if x.shape != y.shape:
        raise HfusError(f"paired values: a has {x.size} images, b has {y.size}; pair the same images")
    if n_resamples < 1:
        raise HfusError(f"n_resamples must be >= 1, got {n_resamples}")
    groups_of = np.zeros(x.shape, dtype=np.int64) if strata is None else np.asarray(strata).reshape(-1)
    if groups_of.shape != x.shape:
        raise HfusError(f"strata: expected shape {x.shape}, got {groups_of.shape}")
    ok = ~(np.isnan(x) | np.isnan(y))
    d = x - y
    groups = [d[ok & (groups_of == g)] for g in np.unique(groups_of[ok])]
    n, n_nan = int(np.count_nonzero(ok)), int(x.size - np.count_nonzero(ok))
    if not groups:
        return PairedDifference(np.nan, np.nan, np.nan, 0, n_nan)
    mean = float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    means = np.mean(
        [g[rng.integers(0, g.size, size=(int(n_resamples), g.size))].mean(axis=1) for g in groups], axis=0
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return PairedDifference(mean, low, high, n, n_nan)


def _copy_values(per_fold: Sequence[Any]) -> tuple[list[np.ndarray], int]:
    """(n_f, K) float64 arrays with one K for every fold."""
    arrays = [np.asarray(v, dtype=np.float64) for v in per_fold]
    if any(a.ndim != 2 for a in arrays):
        raise HfusError("per-copy values: expected one (images, copies) array per fold")
    ks = {a.shape[1] for a in arrays}
    if len(ks) > 1:
        raise HfusError(f"per-copy values: the folds have different numbers of copies {sorted(ks)}")
    return arrays, (ks.pop() if ks else 0)


def copy_image_mean(per_fold: Sequence[Any]) -> float:
    """The point value of a per-copy score (PROTOCOL §7.1.1): an image's value = the mean of its finite
    per-copy values, a fold's = the mean over its images with a value, then the mean over the folds with
    one."""
    arrays, _ = _copy_values(per_fold)
    folds = [nanmean(nanmean(a, axis=1), axis=0) for a in arrays if a.shape[0]]
    means = np.array([float(m) for m in folds if np.isfinite(m)])
    return float(means.mean()) if means.size else float("nan")


def copy_image_bootstrap(
    per_fold: Sequence[Any], n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> BootstrapCI:
    """Two-level percentile-bootstrap 95 % CI of :func:`copy_image_mean` (PROTOCOL §7.1.1).

    ``per_fold``: per fold, in ascending fold order, an (images, K) array of per-copy values (NaN where
    the pair has no value: degenerate, failed). One ``np.random.default_rng(seed)``; each resample draws K
    copy indices with replacement (shared by every fold: a copy is one model), then each fold's images
    with replacement, folds in the order given. An image's value is the mean of its finite values over
    the drawn copies (a copy drawn twice counts twice); a fold's value the mean over its drawn images
    with a value; the resample's value the mean over the folds with one. A resample with no value at all
    is dropped and counted (``dropped``). Percentiles 2.5 / 97.5 (linear) of the kept ones.

    Vectorised: the draws of all resamples come from one ``integers`` call whose bounds repeat
    ``[K]*K + [n_0]*n_0 + [n_1]*n_1 + ...`` per resample, which numpy draws element by element in that
    order (the same stream as one call per resample and fold; tested).
    """
    arrays, k = _copy_values(per_fold)
    if n_resamples < 1:
        raise HfusError(f"n_resamples must be >= 1, got {n_resamples}")
    n_values = sum(int(np.isfinite(a).sum()) for a in arrays)
    n_nan = sum(int(a.size) for a in arrays) - n_values
    if k == 0 or not any(a.shape[0] for a in arrays):
        return BootstrapCI(np.nan, np.nan, n_values, n_nan)
    r = int(n_resamples)
    sizes = [a.shape[0] for a in arrays]
    highs = np.concatenate([np.full(k, k)] + [np.full(n, n) for n in sizes])
    draws = np.random.default_rng(seed).integers(0, np.broadcast_to(highs, (r, highs.size)))
    weights = (draws[:, :k, None] == np.arange(k)).sum(axis=1).astype(np.float64)  # (R, K) copy multiplicity
    fold_means = []
    start = k
    for a, n in zip(arrays, sizes, strict=True):
        idx = draws[:, start : start + n]
        start += n
        if n == 0:
            continue
        finite = np.isfinite(a)
        num = np.where(finite, a, 0.0) @ weights.T  # (n, R)
        den = finite.astype(np.float64) @ weights.T
        with np.errstate(invalid="ignore", divide="ignore"):
            image = np.where(den > 0, num / np.maximum(den, 1e-300), np.nan).T  # (R, n)
        fold_means.append(nanmean(np.take_along_axis(image, idx, axis=1), axis=1))
    means = nanmean(np.stack(fold_means), axis=0)
    keep = np.isfinite(means)
    if not keep.any():
        return BootstrapCI(np.nan, np.nan, n_values, n_nan, kept=0, dropped=r)
    low, high = np.percentile(means[keep], [2.5, 97.5])
    return BootstrapCI(low, high, n_values, n_nan, kept=int(keep.sum()), dropped=int(r - keep.sum()))
