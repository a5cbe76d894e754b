"""randomisation@1 (PROTOCOL §7.1) and randomisation@2 (§7.1.1): Spearman / Pearson on m255, pairs, verdict,
derangement, randomised model — known answers."""

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
    PAIR_SCORED,
    PASS_THRESHOLD,
    VERDICTS,
    copy_pairs,
    copy_seed,
    cross_image_rho,
    derangement,
    pairs_table,
    per_copy_table,
    randomisation_pass,
    randomisation_verdict,
    randomised_model,
    rho_values,
    spearman_maps,
    verdict_table,
)
from hfus_xai_bench.metrics.stats import copy_image_bootstrap, copy_image_mean


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


# ------------------------------------------------------------------------------- randomisation@2 (§7.1.1)


def _copies(trained: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """(N, K, H, W) independent random copies' maps."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (trained.shape[0], k, *trained.shape[1:])).astype(np.uint8)


def test_copy_pairs_match_scipy_and_status() -> None:
    a = _maps(4, 24, seed=7, levels=12)  # ties
    b = _copies(a, 3, seed=8)
    b[:, 1] = np.clip(a.astype(int) + np.random.default_rng(9).integers(-30, 30, a.shape), 0, 255)
    b[2, 0] = 0  # the copy's map is all zero: degenerate
    a[3] = 40  # a constant trained map: every pair of the image degenerate
    ok = np.ones((4, 3), bool)
    ok[1, 2] = False  # the copy's map failed (its saved m255 is zeros): failed, not degenerate
    b[1, 2] = 0
    pairs = copy_pairs(a, b, ok)
    want = np.array([[0, 0, 0], [0, 0, 2], [1, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(pairs.status, want)
    scored = want == PAIR_SCORED
    assert np.isnan(pairs.rho[~scored]).all() and np.isnan(pairs.pearson[~scored]).all()  # no value, not 0
    for i, j in zip(*np.nonzero(scored), strict=True):
        x, y = a[i].ravel(), b[i, j].ravel()
        assert abs(pairs.rho[i, j] - spearmanr(x, y).statistic) < 1e-12
        assert abs(pairs.pearson[i, j] - np.corrcoef(x / 255, y / 255)[0, 1]) < 1e-12
    # the same Spearman as randomisation@1's function, bit for bit (the same exact integer sums)
    np.testing.assert_array_equal(pairs.rho[:2, 1], spearman_maps(a[:2], b[:2, 1]))


def test_copy_pairs_input_errors() -> None:
    a = _maps(2, 8)
    with pytest.raises(HfusError, match=r"\(N=2, K, H, W\)"):
        copy_pairs(a, a, np.ones((2, 1), bool))
    with pytest.raises(HfusError, match="randomised_ok"):
        copy_pairs(a, a[:, None], np.ones(2, bool))
    assert copy_pairs(a[:0], np.zeros((0, 3, 8, 8), np.uint8), np.zeros((0, 3), bool)).rho.shape == (0, 3)


def _values(pairs, cross=None) -> dict[str, np.ndarray]:
    n = pairs.rho.shape[0]
    return {
        "rand2_rho": pairs.rho,
        "rand2_pearson": pairs.pearson,
        "rand2_pair": pairs.status.astype(float),
        "rand2_cross": np.zeros(n) if cross is None else cross,
    }


def test_a_copy_that_leaves_the_map_in_place_fails() -> None:
    """Two copies change the map completely, the third leaves it as it is: ρ = 1 on that copy, and with
    K = 3 resamples drawing it three times (1/27 > 2.5 %) the CI's upper bound is 1: fail, though the mean
    is ~1/3."""
    a = _maps(12, 32, seed=1)
    b = _copies(a, 3, seed=2)
    b[:, 2] = a
    pairs = copy_pairs(a, b, np.ones((12, 3), bool))
    assert (pairs.rho[:, 2] == 1).all()
    table = verdict_table([_values(pairs)])
    assert table["verdict"] == "fail" and table["rho_ci95_high"] == 1.0
    per_copy = per_copy_table([_values(pairs)])
    assert per_copy["rho"][2] == 1.0 and abs(per_copy["rho"][0]) < 0.05 and per_copy["scored"] == [12, 12, 12]
    # without that copy (every copy changes the map) the same images pass
    b[:, 2] = _copies(a, 1, seed=3)[:, 0]
    assert verdict_table([_values(copy_pairs(a, b, np.ones((12, 3), bool)))])["verdict"] == "pass"


def test_model_blind_blob_fails_through_pearson() -> None:
    """A blob at 255 (the same on every model) over a low background whose order comes from the model:
    Spearman ≈ 0.24 (passes on its own) but Pearson ≈ 1 (PROTOCOL §7.1.1's example): fail."""
    rng = np.random.default_rng(4)
    n, k = 6, 3

    def blob_map() -> np.ndarray:
        m = rng.integers(0, 51, (n, 224, 224)).astype(np.uint8)  # background: model-dependent noise
        m[:, 80:147, 80:147] = 255  # 67 × 67 px: 8.9 % of the map
        return m

    a = blob_map()
    b = np.stack([blob_map() for _ in range(k)], axis=1)
    pairs = copy_pairs(a, b, np.ones((n, k), bool))
    assert 0.2 < np.mean(pairs.rho) < 0.3 and np.mean(pairs.pearson) > 0.9
    table = verdict_table([_values(pairs)])
    assert table["rho_ci95_high"] < 0.5 <= table["pearson_ci95_high"]
    assert table["verdict"] == "fail" and table["degenerate_share"] == 0.0 and table["scored_share"] == 1.0


def test_verdict_rule() -> None:
    assert VERDICTS == ("pass", "fail", "undetermined")
    assert randomisation_verdict(0.4, 0.49, 0.0, 1.0) == "pass"
    assert randomisation_verdict(0.4, 0.5, 0.0, 1.0) == "fail"  # Pearson's bound reaches 0.5
    assert randomisation_verdict(0.5, 0.1, 0.0, 1.0) == "fail"
    assert randomisation_verdict(float("nan"), 0.1, 0.0, 1.0) == "fail"  # a bound must be finite
    assert randomisation_verdict(0.1, 0.1, 0.5, 0.5) == "pass"  # D = ½ is not "more than half"; S = ½ passes
    assert randomisation_verdict(0.1, 0.1, 0.2, 0.49) == "fail"  # too few scored pairs (many failed)
    assert randomisation_verdict(0.1, 0.1, 0.51, 0.49) == "undetermined"
    assert randomisation_verdict(0.1, 0.1, float("nan"), float("nan")) == "undetermined"  # no pair at all


def test_degenerate_pairs_are_counted_apart_not_scored_as_zero() -> None:
    """Seed 5 of issue 23: the copies' maps are all zero. randomisation@1 gave ρ = 0 (a pass); here every
    pair is degenerate: no ρ, D = 1, verdict undetermined."""
    a = _maps(8, 16, seed=5)
    empty = np.zeros((8, 3, 16, 16), np.uint8)
    v = _values(copy_pairs(a, empty, np.ones((8, 3), bool)))
    np.testing.assert_array_equal(spearman_maps(a, empty[:, 0]), np.zeros(8))  # the v1.1 convention
    assert np.isnan(rho_values(v)).all()
    pairs = pairs_table([v])
    assert (pairs["pairs"], pairs["degenerate"], pairs["degenerate_share"]) == (24, 24, 1.0)
    assert pairs["images_without_value"] == 8 and pairs["dropped_resamples"] == 1000
    assert verdict_table([v])["verdict"] == "undetermined"


def test_score_randomisation2_through_the_scoring_core() -> None:
    """Evaluated images and images with an all-zero trained map (empty_map) form pairs; a failed image does
    not; ρ_cross is §7.1's over the evaluated images only."""
    from hfus_xai_bench.metrics.registry import METRICS
    from hfus_xai_bench.scoring import ScoringConfig, ScoringInputs, score_fold

    n = 6
    m255 = _maps(n, 224, seed=11)
    m255[4] = 0  # empty_map: scored as degenerate pairs
    m255[5] = 0  # failed (exception): no pairs
    copies = _copies(m255, 3, seed=12)
    rand_ok = np.ones((n, 3), bool)
    rand_ok[0, 1] = False
    inputs = ScoringInputs(
        m255=m255,
        slms=np.zeros_like(m255),
        image_ids=[f"i{i}" for i in range(n)],
        labels=np.zeros(n),
        targets=np.zeros(n),
        ok=np.array([1, 1, 1, 1, 0, 0], bool),
        empty=np.array([0, 0, 0, 0, 1, 0], bool),
        extras={"m255_randomised": copies, "randomised_ok": rand_ok},
    )
    values = score_fold(inputs, ["randomisation@2"], config=ScoringConfig())
    status = values["randomisation@2/rand2_pair"]
    np.testing.assert_array_equal(status[:5], [[0, 2, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 1, 1]])
    assert np.isnan(status[5]).all()
    np.testing.assert_array_equal(values["randomisation@2/rand2_cross"][:4], cross_image_rho(m255[:4]))
    assert np.isnan(values["randomisation@2/rand2_cross"][4:]).all()
    metric = METRICS["randomisation@2"]
    table = pairs_table([{v.name: values[metric.key(v)] for v in metric.values}])
    assert (table["pairs"], table["scored"], table["degenerate"], table["failed"]) == (15, 11, 3, 1)
    with pytest.raises(HfusError, match="--randomisations"):
        score_fold(inputs, ["randomisation@2"], config=ScoringConfig(randomisations=2))


def test_copy_seed() -> None:
    from hfus_xai_bench.seeding import derive_seed

    assert [copy_seed(k) for k in range(3)] == [derive_seed(0, "randomisation", k) for k in range(3)]
    assert len({copy_seed(k) for k in range(3)}) == 3
    with pytest.raises(HfusError):
        copy_seed(-1)


# ------------------------------------------------------------------------ the two-level bootstrap (§7.1.1)


def _literal_bootstrap(per_fold: list[np.ndarray], n_resamples: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """PROTOCOL §7.1.1 word for word, one resample at a time: the resample means and the dropped count."""
    rng = np.random.default_rng(seed)
    k = per_fold[0].shape[1]
    means, dropped = [], 0
    for _ in range(n_resamples):
        drawn = rng.integers(0, k, size=k)
        fold_means = []
        for a in per_fold:
            images = rng.integers(0, a.shape[0], size=a.shape[0])
            vals = []
            for i in images:
                v = a[i, drawn]
                v = v[np.isfinite(v)]
                if v.size:
                    vals.append(v.mean())
            if vals:
                fold_means.append(np.mean(vals))
        if fold_means:
            means.append(np.mean(fold_means))
        else:
            dropped += 1
    return np.array(means), dropped


def test_bootstrap_is_the_documented_procedure() -> None:
    rng = np.random.default_rng(3)
    folds = [rng.uniform(-1, 1, (n, 3)) for n in (5, 8, 1)]
    folds[0][1] = np.nan  # an image without a scored pair
    folds[1][:, 2] = np.nan  # a copy that is never scored in fold 1
    means, dropped = _literal_bootstrap(folds, 300)
    ci = copy_image_bootstrap(folds, n_resamples=300)
    np.testing.assert_allclose([ci.low, ci.high], np.percentile(means, [2.5, 97.5]), rtol=0, atol=1e-12)
    assert (ci.kept, ci.dropped) == (len(means), dropped) == (300, 0)
    assert tuple(copy_image_bootstrap(folds)) == tuple(copy_image_bootstrap(folds, 1000, 0))  # §4's defaults
    point = copy_image_mean(folds)
    image_means = [np.array([r[np.isfinite(r)].mean() for r in f if np.isfinite(r).any()]) for f in folds]
    want = np.mean([m.mean() for m in image_means])
    assert abs(point - want) < 1e-12


def test_bootstrap_hand_computed() -> None:
    """One image, two copies with ρ 0.2 and 0.6: a resample's value is 0.2, 0.4 or 0.6 (drawn copies {0,0},
    {0,1}, {1,1}); each extreme has probability 1/4 > 2.5 %, so the CI is exactly [0.2, 0.6]."""
    ci = copy_image_bootstrap([np.array([[0.2, 0.6]])])
    assert (ci.low, ci.high, ci.dropped) == (0.2, 0.6, 0)
    assert abs(copy_image_mean([np.array([[0.2, 0.6]])]) - 0.4) < 1e-15
    # copy 0 not scored: the resamples that draw copy 0 twice have no value and are dropped
    ci = copy_image_bootstrap([np.array([[np.nan, 0.5]])], n_resamples=400)
    draws = np.random.default_rng(0).integers(0, np.broadcast_to([2, 2, 1], (400, 3)))
    assert ci.dropped == int((draws[:, :2] == 0).all(axis=1).sum()) > 0
    assert (ci.low, ci.high, ci.kept) == (0.5, 0.5, 400 - ci.dropped)
    assert np.isnan(copy_image_bootstrap([np.zeros((0, 3))]).high)
    with pytest.raises(HfusError, match="different numbers of copies"):
        copy_image_bootstrap([np.zeros((2, 3)), np.zeros((2, 2))])


def test_per_copy_means_over_folds() -> None:
    """Per copy: the mean over its scored pairs per fold, then over folds (fold 1 has one image)."""
    f0 = np.array([[0.1, 0.5, np.nan], [0.3, 0.7, 0.2]])
    f1 = np.array([[0.5, np.nan, 0.4]])
    status = [np.where(np.isfinite(f), PAIR_SCORED, 1).astype(float) for f in (f0, f1)]
    per_fold = [
        {"rand2_rho": f, "rand2_pearson": -f, "rand2_pair": s, "rand2_cross": np.zeros(len(f))}
        for f, s in zip((f0, f1), status, strict=True)
    ]
    table = per_copy_table(per_fold)
    np.testing.assert_allclose(table["rho"], [(0.2 + 0.5) / 2, 0.6, (0.2 + 0.4) / 2], rtol=0, atol=1e-15)
    np.testing.assert_allclose(table["pearson"], [-0.35, -0.6, -0.3], rtol=0, atol=1e-15)
    assert table["scored"] == [3, 2, 2]
    pairs = pairs_table(per_fold)
    assert (pairs["pairs"], pairs["scored"], pairs["degenerate"]) == (9, 7, 2)
    assert pairs["degenerate_share"] == 2 / 9 and pairs["scored_share"] == 7 / 9


def test_record_sections_of_randomisation2() -> None:
    """The record's ρ / r summaries carry the copies-then-images CI (Output.ci) and the mean of fold means;
    the verdict, pairs and per-copy tables validate against the schema."""
    from helpers import fake_scores

    from hfus_xai_bench.results import aggregate

    runs = [fake_scores("mobilenet_v2", f, 1.0, 3 + f, n=20, rho=0.2) for f in (1, 0)]  # folds out of order
    runs[1].values["randomisation@2/rand2_pair"][2] = [1, 1, 0]  # two degenerate pairs
    runs[1].values["randomisation@2/rand2_rho"][2, :2] = np.nan
    agg = aggregate(runs)["metrics"]
    per_fold = {  # folds ascending
        f: [runs[1 - f].values[f"randomisation@2/{n}"][:-1] for n in ("rand2_rho", "rand2_pearson")]
        for f in (0, 1)
    }
    summary = agg["randomisation@2/rho"]["mobilenet_v2"]
    ci = copy_image_bootstrap([per_fold[0][0], per_fold[1][0]])
    assert summary["ci95"] == [ci.low, ci.high]
    assert summary["mean"] == pytest.approx(copy_image_mean([per_fold[0][0], per_fold[1][0]]), abs=1e-15)
    verdict = agg["randomisation@2/verdict"]["mobilenet_v2"]
    assert verdict["rho_ci95_high"] == ci.high and verdict["copies"] == 3
    assert verdict["verdict"] == ("pass" if max(ci.high, verdict["pearson_ci95_high"]) < 0.5 else "fail")
    pairs = agg["randomisation@2/pairs"]["mobilenet_v2"]
    assert (pairs["pairs"], pairs["degenerate"], pairs["failed"]) == (2 * 19 * 3, 2, 0)
    assert len(agg["randomisation@2/per_copy"]["mobilenet_v2"]["rho"]) == 3


def test_summary_table_shows_the_verdict_and_d() -> None:
    from leaderboard_fixtures import s7_record

    from hfus_xai_bench.results import Result

    table = Result(s7_record("flat", 2.0, 1, degenerate=0.8)).summary_table()
    assert "verdict" in table.splitlines()[0] and "r rand." in table.splitlines()[0]
    assert "undetermined (D 0.91)" in table  # 10 of each fold's 11 images: 3 degenerate pairs each
    assert "pass (D 0.00)" in Result(s7_record("cam", 2.0, 1)).summary_table()


def test_verdict_does_not_depend_on_the_run_seed() -> None:
    """PROTOCOL §7.1.1: the copies are seeded by copy_seed(k), not by the run seed, so Grad-CAM
    (deterministic) gets the same per-copy values and verdict with run seeds 0, 1 and 5, and the random map
    (seeded by the run seed, the same on the trained model and on every copy) fails with each (small size:
    a tiny CNN, 3 images of 64²)."""
    from helpers import TinyNet

    from hfus_xai_bench.explainers.cam import GradCAM

    torch.manual_seed(3)
    model = TinyNet().eval()
    copies = [randomised_model(model, copy_seed(k)) for k in range(3)]
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    targets = torch.tensor([0, 1, 2])
    prior = torch.linspace(0, 1, 64)[:, None].expand(64, 64).contiguous()
    results = {}
    for seed in (0, 1, 5):
        for name, cls in (("gradcam", GradCAM), ("random", B.RandomMap)):
            maps = []
            for m in (model, *copies):
                ctx = ExplainContext(
                    arch="tiny", target_layer=m.features[-1], device=torch.device("cpu"), seed=seed,
                    depth_prior=prior,
                )  # fmt: skip
                torch.manual_seed(seed)  # the same random state for every call (PROTOCOL §3)
                maps.append(np.asarray(quantize(cls(m, ctx)(images, targets))))
            trained, rand = maps[0], np.stack(maps[1:], axis=1)
            v = _values(copy_pairs(trained, rand, np.ones((3, 3), bool)))
            results[name, seed] = (verdict_table([v])["verdict"], per_copy_table([v])["rho"])
    for name in ("gradcam", "random"):
        assert results[name, 0] == results[name, 1] == results[name, 5], name
    assert results["random", 0][0] == "fail" and results["random", 0][1] == [1.0, 1.0, 1.0]
