"""randomisation@1 (PROTOCOL §7.1): Spearman on m255, derangement, randomised model — known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers import baselines as B
from hfus_xai_bench.explainers.contract import ExplainContext
from hfus_xai_bench.metrics.postprocess import quantize
from hfus_xai_bench.metrics.randomisation import (
    PASS_THRESHOLD,
    cross_image_rho,
    derangement,
    randomisation_pass,
    randomised_model,
    spearman_maps,
)


def _maps(n: int, size: int = 32, seed: int = 0, levels: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, levels, (n, size, size)) * (255 // (levels - 1))).astype(np.uint8)


# ------------------------------------------------------------------------------------------- Spearman


def test_spearman_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(1)
    a = _maps(6, 24, seed=2, levels=8)  # heavy ties
    b = np.clip(a.astype(int) // 2 + rng.integers(0, 90, a.shape), 0, 255).astype(np.uint8)
    b[3] = _maps(1, 24, seed=5)[0]  # independent
    a[4] = (rng.random((24, 24)) < 0.05) * 255  # 95 % zeros
    ours = spearman_maps(a, b)
    ref = [spearmanr(a[i].ravel(), b[i].ravel()).statistic for i in range(6)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert ours.dtype == np.float64 and ours.shape == (6,)


def test_spearman_self_and_reverse() -> None:
    a = _maps(4, 32, seed=3, levels=20)
    np.testing.assert_array_equal(spearman_maps(a, a), np.ones(4))
    np.testing.assert_array_equal(spearman_maps(a, 255 - a), -np.ones(4))  # reversed ranking, same ties
    # torch input, any device, same answer
    np.testing.assert_array_equal(spearman_maps(torch.from_numpy(a), torch.from_numpy(255 - a)), -np.ones(4))


def test_spearman_constant_rules() -> None:
    a = _maps(3, 16, seed=4)
    const_a = np.full_like(a, 255)
    const_b = np.zeros_like(a)
    np.testing.assert_array_equal(spearman_maps(const_a, a), np.zeros(3))  # exactly one constant: 0
    np.testing.assert_array_equal(spearman_maps(a, const_b), np.zeros(3))
    np.testing.assert_array_equal(spearman_maps(const_a, const_b), np.ones(3))  # both constant: 1


def test_spearman_input_errors() -> None:
    a = _maps(2, 8)
    with pytest.raises(HfusError, match="quantize"):
        spearman_maps(a.astype(np.float32), a)
    with pytest.raises(HfusError, match="shapes differ"):
        spearman_maps(a, a[:1])
    with pytest.raises(HfusError):
        spearman_maps(a[0], a[0])
    assert spearman_maps(a[:0], a[:0]).shape == (0,)


# ---------------------------------------------------------------------------------------- derangement


def test_derangement_has_no_fixed_points_and_is_seeded() -> None:
    for n in range(2, 40):
        p = derangement(n, seed=0)
        assert sorted(p.tolist()) == list(range(n))
        assert (p != np.arange(n)).all()
    assert np.array_equal(derangement(10, 0), derangement(10, 0))
    assert not np.array_equal(derangement(10, 0), derangement(10, 1))
    # integer arithmetic only: the same permutation on every machine (golden value)
    assert derangement(10, 0).tolist() == [2, 5, 8, 0, 9, 6, 7, 4, 1, 3]
    assert derangement(2, 7).tolist() == [1, 0]


def test_derangement_is_roughly_uniform() -> None:
    # n = 3 has two derangements, (1 2 0) and (2 0 1)
    seen = [tuple(derangement(3, s).tolist()) for s in range(200)]
    assert set(seen) == {(1, 2, 0), (2, 0, 1)}
    assert 60 < seen.count((1, 2, 0)) < 140


def test_derangement_small_n() -> None:
    assert derangement(0).shape == (0,)
    with pytest.raises(HfusError, match="at least 2"):
        derangement(1)
    with pytest.raises(HfusError):
        derangement(-1)


def test_cross_image_rho() -> None:
    m = _maps(7, 16, seed=6)
    perm = derangement(7, 0)
    np.testing.assert_array_equal(cross_image_rho(m, seed=0), spearman_maps(m, m[perm]))
    same = np.repeat(m[:1], 5, axis=0)  # a model-independent map: identical for every image
    np.testing.assert_array_equal(cross_image_rho(same), np.ones(5))
    assert np.isnan(cross_image_rho(m[:1])).all() and cross_image_rho(m[:0]).shape == (0,)


def test_pass_rule() -> None:
    assert PASS_THRESHOLD == 0.5
    assert randomisation_pass(0.4999) and not randomisation_pass(0.5) and not randomisation_pass(0.9)
    assert not randomisation_pass(float("nan"))


# ----------------------------------------------------------------------------------- randomised model


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _trained(seed: int = 11) -> _Tiny:
    """A tiny model with non-default weights, BN affine parameters and running statistics."""
    torch.manual_seed(seed)
    model = _Tiny()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(17)
    return model.eval()


def _manual_reset(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    import copy

    ref = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in ref.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.reset_parameters()
    return ref.state_dict()


def test_randomised_model_known_answer() -> None:
    model = _trained()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_before = torch.get_rng_state()
    rand = randomised_model(model, seed=3)
    assert torch.equal(torch.get_rng_state(), rng_before)  # global RNG untouched
    for k, v in model.state_dict().items():  # original untouched
        assert torch.equal(v, before[k]), k
    assert not rand.training and rand is not model
    manual = _manual_reset(model, 3)
    state = rand.state_dict()
    for name, m in rand.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            for p in ("weight", "bias"):
                if getattr(m, p) is None:
                    continue
                key = f"{name}.{p}"
                assert torch.equal(state[key], manual[key]), key  # = reset_parameters() under the seed
                assert not torch.equal(state[key], before[key]), key  # differs from the trained weights
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(
                m.bias, torch.zeros_like(m.bias)
            )
            for buf in ("running_mean", "running_var", "num_batches_tracked"):
                assert torch.equal(state[f"{name}.{buf}"], before[f"{name}.{buf}"]), buf  # statistics kept


def test_randomised_model_seeded_and_dtype() -> None:
    model = _trained()
    a, b, c = randomised_model(model, 0), randomised_model(model, 0), randomised_model(model, 1)
    w = "features.0.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])
    # another dtype: the same float32 CPU draw, cast (so every machine and device gets the same copy)
    d = randomised_model(model.double(), 0)
    assert d.state_dict()[w].dtype == torch.float64
    assert torch.equal(d.state_dict()[w], a.state_dict()[w].double())
    with pytest.raises(HfusError):
        randomised_model("not a model")  # type: ignore[arg-type]


def test_sanity_baselines_have_rho_one() -> None:
    """Every sanity baseline ignores the model, so its maps on the randomised copy are the same: ρ = 1."""
    model = _trained()
    rand = randomised_model(model, 0)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    prior = torch.linspace(0, 1, 32)[:, None].expand(32, 32).contiguous()
    targets = torch.zeros(3, dtype=torch.long)
    for cls in (B.RandomMap, B.CenterGaussian, B.DepthPrior, B.SobelEdges):
        maps = []
        for m in (model, rand):
            ctx = ExplainContext(
                arch="tiny",
                target_layer=m.features[-1],
                device=torch.device("cpu"),
                seed=0,
                depth_prior=prior,
            )
            maps.append(quantize(cls(m, ctx)(images, targets)))
        rho = spearman_maps(maps[0], maps[1])
        np.testing.assert_array_equal(rho, np.ones(3), err_msg=cls.__name__)
