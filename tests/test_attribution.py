"""Conformance of the attribution family with unmodified captum 0.9.0 (PROTOCOL §5).

Real architectures with seeded random weights, one small image (48×48; the methods do not assume
224), heads rescaled so the logits are O(1) and the maps are not degenerate. Each method must give
Pearson r >= 0.999 against captum on the same inputs (max abs diff is printed with ``-s``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import GradientShap as CaptumGradientShap
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import Occlusion as CaptumOcclusion
from captum.attr import Saliency as CaptumSaliency
from helpers import pearson
from torch import nn

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers import attribution as A
from hfus_xai_bench.explainers import contract
from hfus_xai_bench.explainers.baselines import image_seeds
from hfus_xai_bench.explainers.contract import ExplainContext
from hfus_xai_bench.models.zoo import ARCHS, get_arch

SIZE = 48  # >= the largest occlusion window (45); grids 5×5, 3×3, 2×2 windows
ARCH_NAMES = tuple(ARCHS)


def _images(n: int = 2, h: int = SIZE, w: int = SIZE, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g)
    x[:, :, h // 3 : h // 2] = 0.9  # a bright band, like the epidermis
    return x


def _context(arch: str, model: nn.Module, seed: int = 0) -> ExplainContext:
    spec = get_arch(arch) if arch in ARCHS else None
    layer = spec.resolve_target_layer(model) if spec else model
    return ExplainContext(arch=arch, target_layer=layer, device=torch.device("cpu"), seed=seed)


def build_models() -> dict[str, nn.Module]:
    """The 4 architectures, seeded, BN-calibrated, heads scaled to max |logit| = 5 on the test images."""
    out = {}
    x = _images()
    for name in ARCH_NAMES:
        torch.manual_seed(0)
        model = get_arch(name).build()
        # random init saturates MobileNetV2/GoogLeNet (ReLU6 / BN at its init stats): the logits do not
        # depend on the input. Calibrate the BN statistics on random images (data-dependent init).
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        head = dict(model.named_modules())[get_arch(name).head_attr]
        with torch.no_grad():
            model.train()(torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)))
            model.eval()
            scale = 5.0 / model(x).abs().max()
            head.weight.mul_(scale)
            head.bias.mul_(scale)
        out[name] = model.eval()
    return out


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return build_models()


def _captum_reference(
    method: str, model: nn.Module, x: torch.Tensor, t: torch.Tensor, seed: int
) -> torch.Tensor:
    if method == "ig":
        return CaptumIG(model).attribute(
            x, baselines=torch.zeros_like(x), target=t, n_steps=50, method="gausslegendre"
        )
    if method == "saliency":
        return CaptumSaliency(model).attribute(x, target=t, abs=True)
    if method.startswith("occlusion"):
        k = int(method.removeprefix("occlusion"))
        # perturbations_per_eval only batches captum's forwards (same result by design), for test speed
        return CaptumOcclusion(model).attribute(
            x,
            strides=(3, 9, 9),
            sliding_window_shapes=(3, k, k),
            baselines=0,
            target=t,
            perturbations_per_eval=64,
        )
    assert method == "gradientshap"
    outs = []
    for i, s in enumerate(image_seeds(x, seed)):  # the documented per-image seeding contract
        np.random.seed(s)
        torch.manual_seed(s)
        baseline = torch.randn(1, *x.shape[1:]) * 0.001
        outs.append(
            CaptumGradientShap(model).attribute(
                x[i : i + 1], baselines=baseline, target=t[i : i + 1], n_samples=5, stdevs=0.09
            )
        )
    return torch.cat(outs)


CLASSES = {
    "ig": A.IntegratedGradients,
    "gradientshap": A.GradientShap,
    "saliency": A.Saliency,
    "occlusion15": A.Occlusion15,
    "occlusion30": A.Occlusion30,
    "occlusion45": A.Occlusion45,
}


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_matches_captum(arch: str, models: dict[str, nn.Module]) -> None:
    model = models[arch]
    x = _images(1)  # one image keeps the file fast; batching is covered by the tiny-model tests
    with torch.no_grad():
        t = model(x).argmax(1)
    # occlusion is model-agnostic code: all three windows on the two light archs, the gradient
    # methods (where the architecture matters) on all four
    methods = CLASSES if arch in ("mobilenet_v2", "googlenet") else ("ig", "gradientshap", "saliency")
    for method in methods:
        ours = CLASSES[method](model, _context(arch, model, seed=7))(x, t)
        ref = _captum_reference(method, model, x, t, seed=7)
        assert ours.shape == ref.shape == x.shape
        assert torch.isfinite(ours).all()
        # non-degenerate: spatial structure, not a constant or all-zero map
        assert ref.std() > 0 and (ref.sum(1).flatten(1).std(1) > 1e-3 * ref.abs().max()).all(), (arch, method)
        r = pearson(ours, ref)
        rel = float((ours - ref).abs().max() / ref.abs().max())
        print(
            f"{arch:12s} {method:12s} r={r:.7f} max|diff|={float((ours - ref).abs().max()):.3g} rel={rel:.3g}"
        )
        assert r >= 0.999, (arch, method, r)
        assert rel < 1e-3, (arch, method, rel)


class _TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 8, 5, padding=2)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.amax((2, 3)))


@pytest.mark.parametrize("size", [(50, 70), (45, 45), (46, 100)])
def test_occlusion_edges_non_square(size: tuple[int, int]) -> None:
    """Windows that run past the border (captum cuts them) and a window equal to the image side."""
    model = _TinyNet().eval()
    x = _images(3, *size, seed=3)
    t = torch.tensor([0, 1, 3])
    for k, cls in ((15, A.Occlusion15), (30, A.Occlusion30), (45, A.Occlusion45)):
        ours = cls(model, _context("tiny", model))(x, t)
        ref = CaptumOcclusion(model).attribute(
            x,
            strides=(3, 9, 9),
            sliding_window_shapes=(3, k, k),
            baselines=0,
            target=t,
            perturbations_per_eval=64,
        )
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_occlusion_known_answer_linear_model() -> None:
    """f(x) = sum of channel 0: a window's score drop is the occluded sum; attribution = mean over windows."""

    class Linear(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x[:, 0].sum((1, 2)), -x[:, 0].sum((1, 2))], 1)

    x = torch.ones(1, 3, 15, 24)  # grid: 1 × 2 windows of 15×15 at x0 = 0, 9
    out = A.Occlusion15(Linear(), _context("lin", Linear()))(x, torch.tensor([0]))
    assert out.shape == (1, 3, 15, 24)
    # every window removes 225 ones; pixels covered by one or two windows both average to 225
    torch.testing.assert_close(out, torch.full_like(out, 225.0))
    assert A.occlusion_grid(224, 15, 9) == 25 and A.occlusion_grid(224, 45, 9) == 21


def test_ig_completeness_and_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    """IG sums to f(x) - f(0) (approx.), and the chunk size does not change the result."""
    model = _TinyNet().eval()
    x = _images(3, 32, 32)
    t = torch.tensor([2, 0, 1])
    ig = A.IntegratedGradients(model, _context("tiny", model))
    a16 = ig(x, t)
    monkeypatch.setattr(contract, "CPU_POINTS_GRAD", 7)  # chunks that straddle images
    a7 = ig(x, t)
    torch.testing.assert_close(a16, a7, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        f = model(x).gather(1, t[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(a16.sum((1, 2, 3)), f, rtol=2e-2, atol=2e-3)


def test_gradientshap_reproducible_and_batch_independent() -> None:
    model = _TinyNet().eval()
    x = _images(3, 32, 32)
    t = torch.tensor([1, 1, 2])
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    gs = A.GradientShap(model, _context("tiny", model, seed=5))
    full = gs(x, t)
    torch.testing.assert_close(gs(x, t), full, rtol=0, atol=0)  # same call, same result
    # image 2 alone and in a reversed batch: identical (seeded per image, not per batch)
    torch.testing.assert_close(gs(x[2:], t[2:])[0], full[2], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gs(x.flip(0), t.flip(0)).flip(0), full, rtol=1e-5, atol=1e-7)
    # another seed gives other draws; the caller's global RNGs are untouched
    other = A.GradientShap(model, _context("tiny", model, seed=6))(x, t)
    assert not torch.allclose(other, full)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)


def test_eval_mode_frozen_params_restored() -> None:
    model = _TinyNet().train()
    flags = [p.requires_grad for p in model.parameters()]
    x = _images(2, 32, 32)
    t = torch.tensor([0, 1])
    with torch.no_grad():  # the methods must work even if the caller disabled grad
        for cls in (A.Saliency, A.IntegratedGradients, A.GradientShap, A.Occlusion15):
            out = cls(model, _context("tiny", model))(x, t)
            assert out.shape == x.shape and torch.isfinite(out).all()
            assert cls.kind == "attribution"
    assert not model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert (A.Saliency(model, _context("tiny", model))(x, t) >= 0).all()  # abs=True


def test_user_errors() -> None:
    model = _TinyNet().eval()
    ctx = _context("tiny", model)
    with pytest.raises(HfusError, match="one target class per image"):
        A.Saliency(model, ctx)(_images(2, 32, 32), torch.tensor([0]))
    with pytest.raises(HfusError, match="smaller than the occlusion window"):
        A.Occlusion45(model, ctx)(_images(1, 32, 32), torch.tensor([0]))
    with pytest.raises(HfusError, match="float tensor"):
        A.Saliency(model, ctx)(torch.zeros(3, 32, 32), torch.tensor([0]))
