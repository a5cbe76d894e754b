"""Seeded, stratified, grouped fold assignment (PROTOCOL §1 "Splits").

``assign_folds`` places whole groups (patient / session) into folds:

1. groups are shuffled with ``seed`` and sorted by size, largest first (stable, so the shuffle
   breaks ties);
2. per class (a group's class = its majority label), each group goes to the fold with the fewest
   items of that class, ties broken by fewest items overall, then by a seeded order of the folds;
3. a repair pass moves (or swaps) groups from the largest to the smallest fold until all fold
   sizes differ by at most one, preferring the move that disturbs the class balance least.

With 631 items and small groups this gives fold sizes 126/127 and per-class counts within one
group of the ideal. Pure numpy, deterministic for a given (labels, groups, n_folds, seed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..constants import NUM_FOLDS
from ..errors import HfusError

_STEM_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})_([^_]+)_([^_]+)$")


def group_key(stem: str) -> str:
    """``YYYY-MM-DD_<series>_<frame>`` → ``YYYY-MM-DD_<series>``; any other stem is its own group."""
    m = _STEM_RE.match(stem)
    return f"{m.group(1)}_{m.group(2)}" if m else stem


@dataclass
class _Folds:
    """Groups and the running fold contents during the assignment."""

    counts: np.ndarray  # (groups, classes) items per class of each group
    sizes: np.ndarray  # (groups,) items per group
    g_fold: np.ndarray  # (groups,) fold of each group
    fold_cls: np.ndarray  # (folds, classes) items per class in each fold
    fold_tot: np.ndarray  # (folds,) items in each fold
    target: np.ndarray  # (classes,) ideal per-class count per fold

    def class_dev(self, fc: np.ndarray) -> float:
        return float(np.abs(fc - self.target).sum())


def _greedy(counts: np.ndarray, n_folds: int, rng: np.random.Generator) -> _Folds:
    """Steps 1–2: whole groups, largest first, each to the fold with the fewest items of its class."""
    n_groups = counts.shape[0]
    sizes = counts.sum(axis=1)
    major = counts.argmax(axis=1)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    st = _Folds(
        counts,
        sizes,
        np.empty(n_groups, dtype=np.int64),
        np.zeros((n_folds, counts.shape[1]), dtype=np.int64),
        np.zeros(n_folds, dtype=np.int64),
        counts.sum(axis=0) / n_folds,
    )
    tie = rng.permutation(n_folds)  # seeded tie order between equally good folds
    for g in order:
        c = major[g]
        key = np.lexsort((tie, st.fold_tot, st.fold_cls[:, c]))
        f = key[0]
        st.g_fold[g] = f
        st.fold_cls[f] += counts[g]
        st.fold_tot[f] += sizes[g]
    return st


def _best_change(st: _Folds, big: int, small: int, diff: int) -> tuple[float, int, int, int] | None:
    """The change that balances ``big`` and ``small`` and disturbs the class balance least:
    (cost, size gap after, group out of big, group in from small or -1)."""
    base = st.class_dev(st.fold_cls[big]) + st.class_dev(st.fold_cls[small])
    best: tuple[float, int, int, int] | None = None
    in_big = np.flatnonzero(st.g_fold == big)
    in_small = np.flatnonzero(st.g_fold == small)
    for g in in_big:  # plain moves
        s = st.sizes[g]
        if 0 < s < diff:
            cost = st.class_dev(st.fold_cls[big] - st.counts[g]) + st.class_dev(
                st.fold_cls[small] + st.counts[g]
            )
            cand = (cost - base, abs(diff - 2 * s), int(g), -1)
            if best is None or cand < best:
                best = cand
    if best is not None:
        return best
    for g in in_big:  # swaps: a larger group out of `big` for a smaller one from `small`
        for h in in_small:
            s = st.sizes[g] - st.sizes[h]
            if 0 < s < diff:
                delta = st.counts[g] - st.counts[h]
                cost = st.class_dev(st.fold_cls[big] - delta) + st.class_dev(st.fold_cls[small] + delta)
                cand = (cost - base, abs(diff - 2 * s), int(g), int(h))
                if best is None or cand < best:
                    best = cand
    return best


def _repair(st: _Folds) -> None:
    """Step 3: move or swap groups from the largest to the smallest fold until sizes differ by ≤ 1."""
    for _ in range(4 * st.sizes.size):
        big, small = int(np.argmax(st.fold_tot)), int(np.argmin(st.fold_tot))
        diff = st.fold_tot[big] - st.fold_tot[small]
        if diff <= 1:
            break
        best = _best_change(st, big, small, diff)
        if best is None:
            break  # groups do not allow a better balance
        _, _, g, h = best
        delta = st.counts[g] - (st.counts[h] if h >= 0 else 0)
        st.fold_cls[big] -= delta
        st.fold_cls[small] += delta
        st.fold_tot[big] -= delta.sum()
        st.fold_tot[small] += delta.sum()
        st.g_fold[g] = small
        if h >= 0:
            st.g_fold[h] = big


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
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    if labels.min() < 0:
        raise ValueError("labels must be >= 0")
    uniq, inv = np.unique(groups, return_inverse=True)
    counts = np.zeros((uniq.size, int(labels.max()) + 1), dtype=np.int64)  # per-group class histogram
    np.add.at(counts, (inv, labels), 1)
    st = _greedy(counts, n_folds, np.random.default_rng(seed))
    _repair(st)
    return st.g_fold[inv]


def split_folds(fold: int, n_folds: int = NUM_FOLDS) -> dict[str, list[int]]:
    """The fold split rule: for training fold k, test = [k], val = [(k+1) % n], train = the other folds."""
    if not 0 <= int(fold) < n_folds:
        raise HfusError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    fold = int(fold)
    val = (fold + 1) % n_folds
    return {"test": [fold], "val": [val], "train": [f for f in range(n_folds) if f not in (fold, val)]}
