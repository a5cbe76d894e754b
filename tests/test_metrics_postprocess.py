"""PROTOCOL §3.1: normalize_attribution (vs captum) and quantize (floor semantics).

Bitwise asserts here are exact by construction: uint8 results, or one IEEE division / floor per element
(captum's reference makes the same operations); comments mark the others.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr._utils.visualization import _normalize_attr

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import normalize_attribution, quantize

CAPTUM_SIGN = {"pos": "positive", "abs": "absolute_value", "neg": "negative"}


def _captum(attr_nchw: np.ndarray, sign: str) -> np.ndarray:
    """captum's own path: HWC, channel sum (visualize_image_attr), _normalize_attr(outlier_perc=2)."""
    out = []
    for a in attr_nchw:
        hwc = np.transpose(a, (1, 2, 0))
        out.append(_normalize_attr(np.sum(hwc, axis=2), CAPTUM_SIGN[sign], 2))
    return np.stack(out)


@pytest.mark.parametrize("sign", ["pos", "abs", "neg"])
def test_normalize_matches_captum_float64(sign: str) -> None:
    rng = np.random.default_rng(1)
    attr = rng.standard_normal((5, 3, 20, 17)) * rng.uniform(0.01, 10, (5, 1, 1, 1))
    attr[1, :, :5] = 0.0  # zero rows
    attr[2] = np.round(attr[2] * 2) / 2  # many exact ties / plateaus
    ours = normalize_attribution(attr, sign)
    ref = _captum(attr, sign)
    assert ours.dtype == np.float32 and ours.shape == (5, 20, 17)
    np.testing.assert_array_equal(ours, ref.astype(np.float32))
    assert ours.min() >= 0 and ours.max() <= 1


@pytest.mark.parametrize("sign", ["pos", "abs", "neg"])
def test_normalize_close_to_captum_float32(sign: str) -> None:
    # captum accumulates in float32 here, we in float64: equal up to float32 rounding
    rng = np.random.default_rng(2)
    attr = rng.standard_normal((3, 3, 24, 24)).astype(np.float32)
    np.testing.assert_allclose(normalize_attribution(attr, sign), _captum(attr, sign), rtol=1e-6, atol=1e-7)


def test_normalize_hand_computed_threshold_below_max() -> None:
    # 100 ones + one 1.5: total 101.5, 98 % = 99.47, reached at the 100th one -> threshold 1 -> all 1
    a = np.ones((1, 1, 101))
    a[0, 0, 50] = 1.5
    np.testing.assert_array_equal(normalize_attribution(a), np.ones((1, 1, 101), np.float32))
    # 0,1,2,3,4: cumsum 0,1,3,6,10; 98 % of 10 = 9.8 first reached at 4 -> divide by 4
    b = np.arange(5.0).reshape(1, 1, 5)
    np.testing.assert_array_equal(normalize_attribution(b), (b / 4).astype(np.float32))


def test_normalize_sign_policies_and_channel_sum() -> None:
    # channel sum: (+3, -1, +1) + (0, 0, -4) = (3, -1, -3)
    a = np.array([[3.0, -1.0, 1.0], [0.0, 0.0, -4.0]]).reshape(1, 2, 1, 3)
    pos = normalize_attribution(a, "pos")  # kept (3, 0, 0): threshold 3
    np.testing.assert_array_equal(pos, np.array([[[1.0, 0.0, 0.0]]], np.float32))
    neg = normalize_attribution(a, "neg")  # kept (0, 1, 3): cumsum 0,1,4; 3.92 reached at 3
    np.testing.assert_allclose(neg, np.array([[[0.0, 1 / 3, 1.0]]]), rtol=1e-7)
    ab = normalize_attribution(a, "abs")  # (3, 1, 3): sorted 1,3,3 cumsum 1,4,7; 6.86 -> 3
    np.testing.assert_allclose(ab, np.array([[[1.0, 1 / 3, 1.0]]]), rtol=1e-7)


def test_normalize_nothing_kept_gives_zeros() -> None:
    a = -np.ones((2, 3, 4, 4))
    assert not normalize_attribution(a, "pos").any()
    np.testing.assert_array_equal(normalize_attribution(a, "neg"), np.ones((2, 4, 4), np.float32))
    assert not normalize_attribution(np.zeros((1, 4, 4)), "abs").any()


def test_normalize_torch_in_torch_out_same_values() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    t = normalize_attribution(torch.from_numpy(a), "abs")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), normalize_attribution(a, "abs"))


def test_normalize_chunks_do_not_change_results() -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal((70, 8, 8))  # > one internal chunk of 64
    full = normalize_attribution(a)
    np.testing.assert_array_equal(
        full[65:], normalize_attribution(a[65:])
    )  # per-image max, elementwise: exact


@pytest.mark.parametrize(
    ("attr", "sign"),
    [
        (np.zeros((4, 4)), "pos"),
        (np.zeros((1, 1, 1, 4, 4)), "pos"),
        (np.zeros((1, 4, 4)), "all"),
        (np.full((1, 4, 4), np.nan), "pos"),
        (np.full((1, 4, 4), np.inf), "abs"),
    ],
)
def test_normalize_errors(attr: np.ndarray, sign: str) -> None:
    with pytest.raises(HfusError):
        normalize_attribution(attr, sign)  # type: ignore[arg-type]


def test_quantize_floor_semantics() -> None:
    m = np.array([[[1.0, 0.999999, 0.5, 0.0], [1 / 255, 0.99 / 255, 2 / 255, 1.0]]])
    q = quantize(m)
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q, [[[255, 254, 127, 0], [1, 0, 2, 255]]])  # ties at the max all 255


def test_quantize_scales_by_max_and_only_exact_max_reaches_255() -> None:
    below = np.nextafter(np.float32(3.0), np.float32(0))  # the float32 just below the max
    m = np.array([[[3.0, below, 1.5, 0.0]]], dtype=np.float32)
    np.testing.assert_array_equal(quantize(m), [[[255, 254, 127, 0]]])


def test_quantize_all_zero_map_and_torch() -> None:
    m = torch.zeros(2, 5, 5)
    m[1, 2, 3] = 7.0
    q = quantize(m)
    assert isinstance(q, torch.Tensor) and q.dtype == torch.uint8
    assert int(q[0].max()) == 0
    assert int(q[1].sum()) == 255
    np.testing.assert_array_equal(q.numpy(), quantize(m.numpy()))  # IEEE division and floor in both: exact


def test_quantize_round_trips_m255_given_as_float() -> None:
    m255 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    np.testing.assert_array_equal(quantize(m255.astype(np.float64)), m255)
    np.testing.assert_array_equal(quantize(m255.astype(np.float32)), m255)
    np.testing.assert_array_equal(quantize(m255), m255)


@pytest.mark.parametrize("maps", [np.full((1, 2, 2), -0.1), np.full((1, 2, 2), np.nan), np.zeros((2, 2))])
def test_quantize_errors(maps: np.ndarray) -> None:
    with pytest.raises(HfusError):
        quantize(maps)
