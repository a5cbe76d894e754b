"""Stratified, grouped, seeded folds (PROTOCOL §1 "Splits")."""

import numpy as np
import pytest

from hfus_xai_bench.data.folds import assign_folds, group_key
from hfus_xai_bench.errors import HfusError


def realistic(seed: int = 1, counts=(160, 150, 170, 151)):
    """631 items, groups of 1-5 frames per (date, series), one class per group."""
    rng = np.random.default_rng(seed)
    labels, stems = [], []
    for c, nc in enumerate(counts):
        k = gi = 0
        while k < nc:
            s = min(int(rng.integers(1, 6)), nc - k)
            for j in range(s):
                labels.append(c)
                stems.append(f"2019-0{c + 1}-1{gi % 10}_{gi}_{j}")
            k += s
            gi += 1
    return np.array(labels), [group_key(s) for s in stems]


def test_group_key():
    assert group_key("2018-10-15_11_1") == "2018-10-15_11"
    assert group_key("2018-10-15_11_12") == "2018-10-15_11"
    assert group_key("33PS") == "33PS"
    assert group_key("2018-10-15_11") == "2018-10-15_11"  # no frame part: own group
    assert group_key("scan_1_2") == "scan_1_2"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sizes_groups_and_strata(seed):
    labels, groups = realistic(seed + 10)
    assert labels.size == 631
    folds = assign_folds(labels, groups, n_folds=5, seed=seed)
    assert folds.dtype == np.int64 and folds.shape == (631,)
    assert sorted(np.bincount(folds, minlength=5).tolist()) == [126, 126, 126, 126, 127]
    # no group split across folds
    by_group = {}
    for g, f in zip(groups, folds, strict=True):
        assert by_group.setdefault(g, f) == f
    # per-class count within one (largest) group of ideal
    garr = np.asarray(groups)
    for c in range(4):
        n_c = np.sum(labels == c)
        max_group = max(np.sum(garr == g) for g in set(garr[labels == c]))
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert np.all(np.abs(per_fold - n_c / 5) <= max_group), (c, per_fold)


def test_deterministic_and_seeded():
    labels, groups = realistic()
    a = assign_folds(labels, groups, seed=0)
    b = assign_folds(labels, groups, seed=0)
    np.testing.assert_array_equal(a, b)
    c = assign_folds(labels, groups, seed=1)
    assert not np.array_equal(a, c)


def test_singletons_exact_balance():
    labels = np.repeat(np.arange(4), 25)
    groups = [f"g{i}" for i in range(100)]
    folds = assign_folds(labels, groups, n_folds=5, seed=0)
    counts = np.array([[np.sum((folds == k) & (labels == c)) for c in range(4)] for k in range(5)])
    assert (counts == 5).all()


def test_errors():
    with pytest.raises(HfusError):
        assign_folds([0, 1, 0], ["a", "a", "b"], n_folds=1)
    tiny = assign_folds([0, 1, 0], ["a", "a", "b"], n_folds=5)  # fewer groups than folds
    assert tiny[0] == tiny[1] and len(set(tiny.tolist())) == 2
    with pytest.raises(ValueError):
        assign_folds([0, 1], ["a"])
    assert assign_folds([], []).shape == (0,)


def test_split_rule():
    from hfus_xai_bench.data.folds import split_folds
    from hfus_xai_bench.errors import HfusError

    assert split_folds(0) == {"test": [0], "val": [1], "train": [2, 3, 4]}
    assert split_folds(4) == {"test": [4], "val": [0], "train": [1, 2, 3]}
    with pytest.raises(HfusError, match="fold"):
        split_folds(5)
