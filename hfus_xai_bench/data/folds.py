"""Seeded, stratified, grouped fold assignment (PROTOCOL §1 "Splits").

``assign_folds`` places whole groups (patient / session) into folds:

1. groups are shuffled with ``seed`` and sorted by size, largest first (stable, so the shuffle
   breaks ties);
2. per class (a group's class = its majority label), each group goes to the fold with the fewest
   items of that class, ties broken by fewest items overall, then by fold index;
3. a repair pass moves (or swaps) groups from the largest to the smallest fold until all fold
   sizes differ by at most one, preferring the move that disturbs the class balance least.

With 631 items and small groups this gives fold sizes 126/127 and per-class counts within one
group of the ideal. Pure numpy, deterministic for a given (labels, groups, n_folds, seed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..constants import NUM_FOLDS
from ..errors import HfusError

_STEM_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})_([^_]+)_([^_]+)$")


def group_key(stem: str) -> str:
    """``YYYY-MM-DD_<series>_<frame>`` → ``YYYY-MM-DD_<series>``; any other stem is its own group."""
    m = _STEM_RE.match(stem)
    return f"{m.group(1)}_{m.group(2)}" if m else stem


def assign_folds(
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[str] | np.ndarray,
    n_folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Fold index (0..n_folds-1, int64) of every item; no group is split across folds.

    With fewer groups than folds some folds stay empty (tiny test sets).
    """
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray([str(g) for g in groups])
    if labels.ndim != 1 or labels.shape != groups.shape:
        raise ValueError("labels and groups must be 1-D and of the same length")
    if n_folds < 2:
        raise HfusError(f"n_folds must be >= 2, got {n_folds}")
    n = labels.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if labels.min() < 0:
        raise ValueError("labels must be >= 0")
    n_classes = int(labels.max()) + 1
    uniq, inv = np.unique(groups, return_inverse=True)
    n_groups = uniq.size

    # Per-group class histogram, size, and majority class.
    counts = np.zeros((n_groups, n_classes), dtype=np.int64)
    np.add.at(counts, (inv, labels), 1)
    sizes = counts.sum(axis=1)
    major = counts.argmax(axis=1)

    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]

    fold_cls = np.zeros((n_folds, n_classes), dtype=np.int64)
    fold_tot = np.zeros(n_folds, dtype=np.int64)
    g_fold = np.empty(n_groups, dtype=np.int64)
    tie = rng.permutation(n_folds)  # seeded tie order between equally good folds
    for g in order:
        c = major[g]
        key = np.lexsort((tie, fold_tot, fold_cls[:, c]))
        f = key[0]
        g_fold[g] = f
        fold_cls[f] += counts[g]
        fold_tot[f] += sizes[g]

    target = counts.sum(axis=0) / n_folds  # ideal per-class count per fold

    def class_dev(fc: np.ndarray) -> float:
        return float(np.abs(fc - target).sum())

    for _ in range(4 * n_groups):
        big, small = int(np.argmax(fold_tot)), int(np.argmin(fold_tot))
        diff = fold_tot[big] - fold_tot[small]
        if diff <= 1:
            break
        base = class_dev(fold_cls[big]) + class_dev(fold_cls[small])
        best: tuple[float, int, int, int] | None = None  # (cost, size gap after, g_out, g_in)
        in_big = np.flatnonzero(g_fold == big)
        in_small = np.flatnonzero(g_fold == small)
        for g in in_big:  # plain moves
            s = sizes[g]
            if 0 < s < diff:
                cost = class_dev(fold_cls[big] - counts[g]) + class_dev(fold_cls[small] + counts[g]) - base
                cand = (cost, abs(diff - 2 * s), int(g), -1)
                if best is None or cand < best:
                    best = cand
        if best is None:  # swaps: a larger group out of `big` for a smaller one from `small`
            for g in in_big:
                for h in in_small:
                    s = sizes[g] - sizes[h]
                    if 0 < s < diff:
                        delta = counts[g] - counts[h]
                        cost = class_dev(fold_cls[big] - delta) + class_dev(fold_cls[small] + delta) - base
                        cand = (cost, abs(diff - 2 * s), int(g), int(h))
                        if best is None or cand < best:
                            best = cand
        if best is None:
            break  # groups do not allow a better balance
        _, _, g, h = best
        delta = counts[g] - (counts[h] if h >= 0 else 0)
        fold_cls[big] -= delta
        fold_cls[small] += delta
        fold_tot[big] -= delta.sum()
        fold_tot[small] += delta.sum()
        g_fold[g] = small
        if h >= 0:
            g_fold[h] = big
    return g_fold[inv]


def split_folds(fold: int, n_folds: int = NUM_FOLDS) -> dict[str, list[int]]:
    """The fold split rule: for training fold k, test = [k], val = [(k+1) % n], train = the other folds."""
    if not 0 <= int(fold) < n_folds:
        raise HfusError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    fold = int(fold)
    val = (fold + 1) % n_folds
    return {"test": [fold], "val": [val], "train": [f for f in range(n_folds) if f not in (fold, val)]}
