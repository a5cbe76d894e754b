"""PROTOCOL §4 localisation metrics on hand-computed cases, plus a per-image reference cross-check.

Bitwise asserts here are exact by construction: integer masks and counts of uint8 maps, ratios of small
integers (one IEEE division each).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hfus_xai_bench.constants import SLM_LEVELS, THRESHOLDS
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import (
    hit_rate,
    joint_histogram,
    localisation_metrics,
    mask_iou,
    quantize,
    slm_coverage,
)

# 8×8 SLM, one level per row (top = gel side): 0 | 32 | 255 | 255 | 128 | 64 | 32 | 0
ROW_LEVELS = (0, 32, 255, 255, 128, 64, 32, 0)
SLM = np.repeat(np.array(ROW_LEVELS, dtype=np.uint8)[:, None], 8, axis=1)


def _slms(n: int) -> np.ndarray:
    return np.repeat(SLM[None], n, axis=0)


def test_hit_rate_hand_computed() -> None:
    maps = np.zeros((6, 8, 8), np.uint8)
    maps[0, 2, 5] = 255  # single peak in the 255 region -> 3 / 1
    maps[1, 2, 0] = maps[1, 7, 7] = 255  # tie: 255 region (+3/+1) and background (-1/-1) -> 1 / 0
    maps[2, 4, :] = 255  # plateau: 8 px on 128 (+2) and 2 px on 64 (+1) -> 18/10 = 1.8, HR2 0
    maps[2, 5, :2] = 255
    maps[3, 0, 3] = 255  # only peak in the background -> -1 / -1
    maps[3, 2:4, :] = 254  # 254 is not a peak
    maps[4] = 0  # all-zero map: no peak -> NaN
    maps[5, 1, :] = 255  # 32 band above the skin: score 0 / 0
    hr1, hr2 = hit_rate(maps, _slms(6))
    assert hr1.dtype == np.float64 and hr1.shape == (6,)
    np.testing.assert_array_equal(hr1, [3.0, 1.0, 1.8, -1.0, np.nan, 0.0])
    np.testing.assert_array_equal(hr2, [1.0, 0.0, 0.0, -1.0, np.nan, 0.0])
    assert int(np.isnan(hr1).sum()) == 1


def test_slm_coverage_hand_computed() -> None:
    m = np.zeros((1, 8, 8), np.uint8)
    m[0, 2] = 255  # top region rows 2-3: (8·1 + 8·0.2) / 16 = 0.6
    m[0, 3] = 51
    m[0, 7, :4] = 102  # background rows 0 and 7: 4·0.4 / 16 = 0.1
    cov_top, cov_bg = slm_coverage(m, SLM[None])
    np.testing.assert_allclose(cov_top, [0.6], rtol=1e-15)
    np.testing.assert_allclose(cov_bg, [0.1], rtol=1e-15)


def test_slm_coverage_empty_region_is_nan() -> None:
    slm = np.full((1, 8, 8), 128, np.uint8)
    m = np.full((1, 8, 8), 255, np.uint8)
    cov_top, cov_bg = slm_coverage(m, slm)
    assert np.isnan(cov_top[0]) and np.isnan(cov_bg[0])


def test_mask_iou_strict_threshold_hand_computed() -> None:
    m = np.zeros((1, 8, 8), np.uint8)
    m[0, 2] = 255
    m[0, 3] = 153  # exactly 0.6 · 255: NOT in M_60 (strict >), in M_55
    m[0, 4] = 154
    iou = mask_iou(m, SLM[None], thresholds=(55, 60, 95))
    assert iou.shape == (1, 3, 5) and iou.dtype == np.float64
    # t=55: M = rows 2,3,4 (24 px); 255 region rows 2-3 (16): 16/24; 128 row 4 (8): 8/24
    np.testing.assert_allclose(iou[0, 0], [2 / 3, 1 / 3, 0, 0, 0])
    # t=60: M = rows 2,4 (16 px); 255: 8/(16+16-8) = 1/3; 128: 8/16
    np.testing.assert_allclose(iou[0, 1], [1 / 3, 1 / 2, 0, 0, 0])
    # t=95 (242.25): M = row 2; 255: 8/16
    np.testing.assert_allclose(iou[0, 2], [1 / 2, 0, 0, 0, 0])


def test_mask_iou_empty_union_is_nan() -> None:
    slm = np.zeros((2, 8, 8), np.uint8)
    slm[:, :4] = 255  # levels 128, 64, 32 absent
    maps = np.zeros((2, 8, 8), np.uint8)  # image 0: all-zero map -> every mask empty
    maps[1, 0, 0] = 255
    iou = mask_iou(maps, slm)
    assert iou.shape == (2, len(THRESHOLDS), 5)
    # image 0: 255 and 0 regions non-empty -> IoU 0; absent levels with an empty mask -> NaN
    np.testing.assert_array_equal(iou[0, 0], [0.0, np.nan, np.nan, np.nan, 0.0])
    # image 1: a non-empty mask makes every union non-empty -> 0 for the absent levels, not NaN
    np.testing.assert_array_equal(iou[1, 0], [1 / 32, 0.0, 0.0, 0.0, 0.0])
    assert int(np.isnan(iou[:, :, 1]).sum()) == len(THRESHOLDS)


def _reference(m255: np.ndarray, slm: np.ndarray, thresholds) -> tuple:
    """Per-image, per-definition implementation (floats, as the study's MATLAB)."""
    score1 = {255: 3, 128: 2, 64: 1, 32: 0}
    score2 = {255: 1}
    hr1, hr2, top, bg, iou = [], [], [], [], []
    for m, s in zip(m255, slm, strict=True):
        peak = s[m == 255]
        hr1.append(np.mean([score1.get(int(v), -1) for v in peak]) if peak.size else np.nan)
        hr2.append(np.mean([score2.get(int(v), 0 if v else -1) for v in peak]) if peak.size else np.nan)
        mn = m.astype(np.float64) / 255
        top.append(mn[s == 255].mean() if (s == 255).any() else np.nan)
        bg.append(mn[s == 0].mean() if (s == 0).any() else np.nan)
        rows = []
        for t in thresholds:
            mask = mn > t / 100
            row = []
            for lv in SLM_LEVELS:
                r = s == lv
                union = (mask | r).sum()
                row.append((mask & r).sum() / union if union else np.nan)
            rows.append(row)
        iou.append(rows)
    return tuple(np.array(x, dtype=np.float64) for x in (hr1, hr2, top, bg, iou))


def _random_case(n: int = 20, size: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # coarse float maps with plateaus and exact ties (CAM-like), upsampled by repetition
    coarse = rng.integers(0, 6, (n, size // 4, size // 4)).astype(np.float64) ** 2
    maps = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2) + rng.uniform(0, 0.3, (n, size, size))
    maps[::5] = np.round(maps[::5])  # exact ties at the max
    maps[3] = 0.0  # all-zero
    slm = np.array(SLM_LEVELS, np.uint8)[rng.integers(0, 5, (n, size, size))]
    slm[4] = 255  # single-level SLM (empty regions)
    return quantize(maps), slm


def test_matches_per_image_reference_implementation() -> None:
    m255, slm = _random_case()
    thresholds = (*THRESHOLDS, 0, 100, 37.5)
    ref = _reference(m255, slm, thresholds)
    res = localisation_metrics(m255, slm, thresholds)
    for got, want in zip((res.hr1, res.hr2, res.cov_top, res.cov_bg, res.iou), ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True)
    np.testing.assert_array_equal(res.n_peak, (m255 == 255).sum(axis=(1, 2)))
    np.testing.assert_array_equal(res.hr1, hit_rate(m255, slm)[0])


def test_integer_threshold_rule_equals_float_rule() -> None:
    v = np.arange(256)
    for t in range(101):
        np.testing.assert_array_equal(100 * v > 255 * t, (v / 255) > (t / 100))


def test_numpy_torch_float_and_int_inputs_agree() -> None:
    m255, slm = _random_case(n=7, seed=3)
    base = localisation_metrics(m255, slm)
    variants = [
        (torch.from_numpy(m255), torch.from_numpy(slm)),
        (torch.from_numpy(m255).long(), slm.astype(np.int64)),
    ]
    for maps, slms in variants:
        got = localisation_metrics(maps, slms)
        for a, b in zip((got.hr1, got.cov_top, got.iou), (base.hr1, base.cov_top, base.iou), strict=True):
            np.testing.assert_array_equal(a, b)
    # a float map is quantised first: equal to quantize() + uint8 path
    f = np.random.default_rng(5).uniform(0, 3, (4, 24, 24))
    np.testing.assert_array_equal(hit_rate(f, slm[:4])[0], hit_rate(quantize(f), slm[:4])[0])
    np.testing.assert_array_equal(mask_iou(torch.from_numpy(f), slm[:4]), mask_iou(quantize(f), slm[:4]))


def test_joint_histogram_counts_every_pixel_once() -> None:
    m255, slm = _random_case(n=40, seed=7)  # > one internal chunk
    h = joint_histogram(m255, slm)
    assert h.shape == (40, 256, 5) and h.dtype == np.int64
    np.testing.assert_array_equal(h.sum(axis=(1, 2)), np.full(40, 24 * 24))
    np.testing.assert_array_equal(h[:, :, 0].sum(axis=1), (slm == 255).sum(axis=(1, 2)))


@pytest.mark.parametrize(
    ("maps", "slms"),
    [
        (np.full((1, 8, 8), 200, np.uint8), SLM[None]),  # uint8 but not max-normalised
        (np.zeros((8, 8), np.uint8), SLM),  # no batch dimension
        (np.zeros((1, 8, 8), np.uint8), np.full((1, 8, 8), 100, np.uint8)),  # not an SLM level
        (np.zeros((1, 8, 8), np.uint8), np.zeros((1, 8, 7), np.uint8)),  # shape mismatch
        (np.full((1, 8, 8), 300, np.int64), SLM[None]),  # int map outside 0..255
        (np.zeros((1, 8, 8), bool), SLM[None]),
    ],
)
def test_input_errors(maps: np.ndarray, slms: np.ndarray) -> None:
    with pytest.raises(HfusError):
        hit_rate(maps, slms)


@pytest.mark.parametrize("thresholds", [(), (101,), (-5,), (float("nan"),)])
def test_threshold_errors(thresholds: tuple) -> None:
    with pytest.raises(HfusError):
        mask_iou(np.zeros((1, 8, 8), np.uint8), SLM[None], thresholds)
