"""PROTOCOL §4 ``confidence@1``: perturbations in the image's orientation, logit vs prob, masks, chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import confidence_change, drop_in_confidence, increase_in_confidence


class RegionModel(nn.Module):
    """Logits from two regions of an 8×8 image: a = sum over the top-right 4×4 block, b = bottom-left.

    logits = (a, b, a − b) via a fixed linear layer, so every score is hand-computable and a transposed
    map (top-right <-> bottom-left) changes the numbers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]))
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        a = x[:, :, :4, 4:].sum(dim=(1, 2, 3))
        b = x[:, :, 4:, :4].sum(dim=(1, 2, 3))
        return self.fc(torch.stack([a, b], dim=1))


def _case() -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    images = torch.full((2, 3, 8, 8), 0.5)  # each 4×4 block sums to 3·16·0.5 = 24
    m = np.zeros((2, 8, 8), np.uint8)
    m[:, :4, 4:] = 255  # bright block top-right (not symmetric under transpose)
    m[:, 4:, :4] = 102  # 0.4 bottom-left; 102/255 = 0.4 exactly -> not in M_40 (strict)
    return images, m, torch.tensor([0, 1])


def test_heat_map_orientation_and_logits() -> None:
    images, m, targets = _case()
    r = confidence_change(RegionModel().eval(), images, m, targets, thresholds=(35, 40, 50))
    # target 0 = a (top-right, h = 1): keep 24, remove 0.
    # target 1 = b (bottom-left, h = 0.4): keep 9.6, remove 14.4
    np.testing.assert_allclose(r.s0, [24.0, 24.0], rtol=1e-6)
    np.testing.assert_allclose(r.s_keep, [24.0, 9.6], rtol=1e-6)
    np.testing.assert_allclose(r.s_remove, [0.0, 14.4], atol=1e-5)
    # masks: t=35 keeps both blocks; t=40 (strict at 0.4) and t=50 keep only the top-right block
    np.testing.assert_allclose(r.s_keep_t, [[24, 24, 24], [24, 0, 0]], atol=1e-5)
    np.testing.assert_allclose(r.s_remove_t, [[0, 0, 0], [0, 24, 24]], atol=1e-5)
    assert r.s_keep_t.dtype == np.float64 and r.s_keep_t.shape == (2, 3)
    assert r.unit == "logit" and r.thresholds == (35, 40, 50)
    # the transposed map (the study's bug) swaps the blocks: s_keep would be (9.6, 24), not (24, 9.6)
    rt = confidence_change(RegionModel().eval(), images, np.ascontiguousarray(m.transpose(0, 2, 1)), targets)
    np.testing.assert_allclose(rt.s_keep, [9.6, 24.0], rtol=1e-6)


def test_prob_unit() -> None:
    images, m, targets = _case()
    r = confidence_change(RegionModel().eval(), images, m, targets, unit="prob", thresholds=(50,))

    def p(a: float, b: float, k: int) -> float:
        return float(torch.softmax(torch.tensor([a, b, a - b], dtype=torch.float64), 0)[k])

    np.testing.assert_allclose(r.s0, [p(24, 24, 0), p(24, 24, 1)], rtol=1e-6)
    np.testing.assert_allclose(r.s_keep, [p(24, 9.6, 0), p(24, 9.6, 1)], rtol=1e-5)
    np.testing.assert_allclose(r.s_remove, [p(0, 14.4, 0), p(0, 14.4, 1)], rtol=1e-5)
    np.testing.assert_allclose(r.s_remove_t[:, 0], [p(0, 24, 0), p(0, 24, 1)], rtol=1e-5)
    assert r.unit == "prob"


def test_dic_iic_helpers() -> None:
    s0 = np.array([24.0, 24.0, 1.0, np.nan])
    # values exactly representable and one IEEE subtraction / division each: exact
    np.testing.assert_array_equal(drop_in_confidence(s0, [0.0, 30.0, 0.5, 1.0]), [24.0, 0.0, 0.5, np.nan])
    np.testing.assert_array_equal(increase_in_confidence(s0, [24.0, 30.0, 0.5, 1.0]), [0.0, 1.0, 0.0, np.nan])
    # s0 (N,) broadcasts against per-threshold (N, T)
    np.testing.assert_array_equal(
        drop_in_confidence([2.0, 1.0], [[1.0, 3.0], [0.0, 1.0]]), [[1.0, 0.0], [1.0, 0.0]]
    )
    images, m, targets = _case()
    r = confidence_change(RegionModel().eval(), images, m, targets, thresholds=(50,))
    np.testing.assert_allclose(r.dic(), [24.0, 24.0 - 14.4], rtol=1e-6)
    np.testing.assert_array_equal(r.iic(), [0.0, 0.0])
    np.testing.assert_allclose(r.dic_t(), [[24.0], [0.0]], atol=1e-5)
    assert r.iic_t().shape == (2, 1)
    with pytest.raises(HfusError):
        drop_in_confidence([1.0, 2.0], [1.0])


def test_batching_chunks_and_input_types_agree() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (5, 3, 8, 8)).astype(np.float32)
    maps = rng.uniform(0, 1, (5, 8, 8))  # float maps: quantised first
    targets = np.array([0, 1, 2, 0, 1])
    model = RegionModel().eval()
    ref = confidence_change(model, images, maps, targets, batch_size=1000)
    assert max(model.calls) == 5 * (3 + 2 * 10)  # one forward for all 1 + 2 + 2·T inputs per image
    model.calls.clear()
    got = confidence_change(
        model, torch.from_numpy(images), torch.from_numpy(maps), torch.from_numpy(targets), batch_size=7
    )
    assert max(model.calls) <= 7
    for f in ("s0", "s_keep", "s_remove", "s_keep_t", "s_remove_t"):
        np.testing.assert_allclose(getattr(got, f), getattr(ref, f), rtol=1e-6, atol=1e-6)
    # s0 is the plain forward
    direct = model(torch.from_numpy(images)).detach().numpy()[np.arange(5), targets]
    np.testing.assert_allclose(ref.s0, direct, rtol=1e-6)


def test_training_mode_model_is_refused() -> None:
    i, m, t = _case()
    with pytest.raises(HfusError, match="eval"):
        confidence_change(RegionModel().train(), i, m, t)


@pytest.mark.parametrize(
    ("kwargs", "images", "maps", "targets"),
    [
        ({"unit": "percent"}, None, None, None),
        ({"batch_size": 0}, None, None, None),
        ({}, torch.zeros(2, 8, 8), None, None),  # images without channels
        ({}, None, np.zeros((2, 8, 7), np.uint8), None),  # map shape
        ({}, None, None, torch.tensor([0, 3])),  # class index out of range
        ({}, None, None, torch.tensor([0])),  # one target for two images
        ({"thresholds": (120,)}, None, None, None),
    ],
)
def test_errors(kwargs: dict, images, maps, targets) -> None:
    i, m, t = _case()
    with pytest.raises(HfusError):
        confidence_change(
            RegionModel().eval(),
            i if images is None else images,
            m if maps is None else maps,
            t if targets is None else targets,
            **kwargs,
        )
