"""road@1 (PROTOCOL §7.2): removal order, the imputation against a direct sparse solve, ROAD scores."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import multigrid
from hfus_xai_bench.metrics import road as R
from hfus_xai_bench.seeding import item_seed


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------- removal sets


def test_counts_for_224() -> None:
    assert R.removal_counts(224 * 224) == (5018, 15053, 25088, 35123, 45158)
    for p in R.ROAD_FRACTIONS:  # no product near a half: round() has no tie to break
        frac = (p * 224 * 224) % 1
        assert abs(frac - 0.5) > 0.05
    with pytest.raises(HfusError):
        R.removal_counts(100, (0.0, 0.5))


def test_exact_k_with_heavy_ties() -> None:
    """A map that is 95 % zeros: MoRF/LeRF still remove exactly k pixels (grad-cam's `<` would not)."""
    h = w = 40
    m = torch.zeros(2, h, w, dtype=torch.uint8)
    flat = m.view(2, -1)
    flat[:, torch.randperm(h * w, generator=_gen(0))[:80]] = 255  # 5 % of the pixels
    order = R.removal_order(m, [1, 2])
    counts = R.removal_counts(h * w)
    masks = R.removal_masks(order, counts, h, w)
    assert masks.shape == (2, 10, h, w) and masks.dtype == torch.bool
    nf = len(counts)
    for j, k in enumerate(counts):
        assert (masks[:, j].sum((1, 2)) == k).all() and (masks[:, nf + j].sum((1, 2)) == k).all()
        # MoRF takes the marked pixels first, LeRF last
        marked = m > 0
        top = masks[:, j]
        assert ((top & marked).sum((1, 2)) == min(k, 80)).all()
        assert ((masks[:, nf + j] & marked).sum((1, 2)) == max(0, k - (h * w - 80))).all()
    # MoRF(p) is the complement of LeRF(1 - p) (the counts add up to H·W here); bool masks: exact
    assert torch.equal(masks[:, 0], ~masks[:, nf + 4]) and torch.equal(masks[:, 2], ~masks[:, nf + 2])


def test_order_is_sorted_seeded_and_not_raster() -> None:
    h = w = 32
    m = torch.randint(0, 4, (1, h, w), generator=_gen(1), dtype=torch.uint8) * 85
    order = R.removal_order(m, [5])[0]
    vals = m.view(-1)[order]
    assert (vals[:-1] >= vals[1:]).all()  # m255 descending
    # integer keys, distinct: any sort gives the same order (exact)
    assert torch.equal(order, R.removal_order(m.numpy(), [5])[0])  # numpy input, same seed: same order
    assert not torch.equal(order, R.removal_order(m, [6])[0])
    # ties in random order: on a constant map the first half is spread over the image, not the top rows
    flat_map = torch.full((1, h, w), 255, dtype=torch.uint8)
    first = R.removal_order(flat_map, [0])[0][: h * w // 2]
    rows = (first // w).double()
    assert abs(rows.mean().item() - (h - 1) / 2) < 2.0
    with pytest.raises(HfusError):
        R.removal_order(m, [1, 2])
    with pytest.raises(HfusError):
        R.removal_order(m.float(), [1])


def test_seed_derivation() -> None:
    s = item_seed(0, "img")
    assert R.order_seed(s) != s
    seeds = {R.noise_seed(s, o, j) for o in R.ORDERS for j in range(5)}
    assert len(seeds) == 10
    with pytest.raises(HfusError):
        R.noise_seed(s, "both", 0)


# ------------------------------------------------------------------------------------------ imputation


def _cases(h: int = 20, w: int = 17) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(0)
    images = torch.rand(4, 3, h, w, generator=g)
    removed = torch.zeros(4, h, w, dtype=torch.bool)
    removed[0] = torch.rand(h, w, generator=g) < 0.4  # scattered
    removed[1, :8, :10] = True  # holes that touch the border and a corner
    removed[1, 12:, 5:] = True
    removed[2] = torch.rand(h, w, generator=g) < 0.9  # 90 % of the image, random
    removed[3] = True  # one big hole covering ~90 %: only the last row and column are kept
    removed[3, :, -1] = False
    removed[3, -1, :] = False
    return images, removed


def test_imputation_matches_direct_sparse_solve() -> None:
    images, removed = _cases()
    assert removed[3].float().mean() > 0.85 and removed[2].float().mean() > 0.85
    sol = R.solve_imputation(images, removed)
    ref = R.direct_imputation(images, removed)
    res = R.imputation_residual(images, removed, sol.values)  # scipy's A and b, float64
    assert (res <= 1e-5).all() and (sol.rel_residual <= 1e-5).all()
    np.testing.assert_allclose(res, sol.rel_residual, rtol=1e-6, atol=1e-12)
    assert (R.imputation_residual(images, removed, ref) < 1e-6).all()  # float32 cast of the float64 solve
    assert (sol.values - ref).abs().max() < 2e-5
    assert not sol.direct.any() and (sol.iterations > 0).all()
    # kept pixels are bitwise unchanged (copied, never computed)
    keep = ~removed[:, None].expand_as(images)
    assert torch.equal(sol.values[keep], images[keep])


def test_imputation_with_batched_calls_as_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off the CPU the Galerkin convolution and the coarsest inverse run once per chunk instead of once per
    system: forced here on the CPU, the solve still meets the tolerance, matches the direct sparse solve
    and differs from the per-system solve by rounding only."""
    images, removed = _cases()
    per_system = R.solve_imputation(images, removed)
    monkeypatch.setattr(multigrid, "per_system", lambda _device: False)
    batched = R.solve_imputation(images, removed)
    assert (R.imputation_residual(images, removed, batched.values) <= 1e-5).all()
    assert (batched.values - R.direct_imputation(images, removed)).abs().max() < 2e-5
    assert (batched.values - per_system.values).abs().max() < 2e-5


def test_solver_views_do_not_keep_their_tensors_alive() -> None:
    """The views the solver keeps on a tensor die with it: a leak here grew a 5-fold run's memory by about
    a gigabyte per fold (every solve's levels stayed alive)."""
    t = torch.zeros(2, 1, 10, 10)
    ref = weakref.ref(t)
    multigrid.interior(t, 7, 7)
    multigrid.shifts(t, 7, 7)
    multigrid.sum121(t, torch.zeros_like(t), 7, 7)
    del t
    gc.collect()
    assert ref() is None


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))


def test_repeated_solves_leave_no_tensors_behind() -> None:
    images, removed = _cases()
    R.solve_imputation(images, removed)  # the thread's workspace for this shape is kept (by design)
    before = _live_tensors()
    for _ in range(3):
        R.solve_imputation(images, removed)
    assert _live_tensors() <= before


def test_imputation_full_size_with_ghost_points() -> None:
    """224×224 (the coarse grids of an even size carry a ghost row/column): a CAM-like blob, p = 0.5."""
    g = _gen(3)
    cam = torch.nn.functional.interpolate(
        torch.rand(1, 1, 7, 7, generator=g) ** 3, size=(224, 224), mode="bilinear"
    )
    m255 = (cam[0] / cam.max() * 255).floor().to(torch.uint8)
    masks = R.removal_masks(R.removal_order(m255, [0]), (25088,), 224, 224)[:, 0]
    image = torch.rand(1, 3, 224, 224, generator=g)
    sol = R.solve_imputation(image, masks)
    assert (R.imputation_residual(image, masks, sol.values) <= 1e-5).all()
    assert sol.iterations[0] <= 10


def batch_independence_report() -> dict[str, object]:
    """Each image solved alone, in one batch, in chunks of 1-3 and on 1 or 2 torch threads: bitwise equal?

    Bitwise, not a tolerance, because the solver is batch- and thread-independent by design on the CPU
    (see the solver module docstring: elementwise ops, plane reductions split by output, per-system library
    calls on aligned blocks of a fixed shape, per-system decisions). "one_channel" solves single-channel
    images alone, whose plane sums would be split along the plane (by thread) if made in one reduction;
    "repeated_channel": an image whose R = B, solved alone (B copied from R), equals its solve beside an
    image with R != B (all three solved).
    """
    images, removed = _cases()  # 20×17: odd shapes, so batch offsets are not 64-byte aligned
    grey = torch.rand(2, 1, 190, 190, generator=_gen(4))  # one plane of 193² > ATen's parallel grain
    grey_removed = torch.rand(2, 190, 190, generator=_gen(5)) < 0.5
    repeated = images.clone()
    repeated[:2, 2] = repeated[:2, 0]  # R = B in images 0 and 1: solved once there when alone
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        whole = R.solve_imputation(images, removed)
        alone = [R.solve_imputation(images[i : i + 1], removed[i : i + 1]) for i in range(4)]
        chunked = {k: R.solve_imputation(images, removed, chunk=k) for k in (1, 2, 3)}
        grey2 = R.solve_imputation(grey, grey_removed, chunk=1)
        rep_whole = R.solve_imputation(repeated, removed)  # one chunk: image 2 has R != B, all solved
        rep_alone = [R.solve_imputation(repeated[i : i + 1], removed[i : i + 1]) for i in range(2)]
        torch.set_num_threads(1)
        one_thread = R.solve_imputation(images, removed, chunk=1)
        grey1 = R.solve_imputation(grey, grey_removed, chunk=1)
    finally:
        torch.set_num_threads(threads)
    equal = {
        "one_thread": torch.equal(whole.values, one_thread.values),
        "one_channel": torch.equal(grey1.values, grey2.values),
        "repeated_channel": all(
            torch.equal(rep_whole.values[i], a.values[0]) for i, a in enumerate(rep_alone)
        )
        and all(torch.equal(a.values[0, 2], a.values[0, 0]) for a in rep_alone),
        "alone": all(torch.equal(whole.values[i], a.values[0]) for i, a in enumerate(alone)),
        **{f"chunk{k}": torch.equal(whole.values, sol.values) for k, sol in chunked.items()},
        "iterations": all(int(whole.iterations[i]) == int(a.iterations[0]) for i, a in enumerate(alone)),
    }
    return {"capability": torch.backends.cpu.get_cpu_capability(), "equal": equal}


def test_imputation_batch_and_chunk_independent() -> None:
    report = batch_independence_report()
    assert all(report["equal"].values()), report


# the same check in fresh interpreters under other CPUs' kernels: tests/test_portability_torch.py


def test_direct_fallback_meets_tolerance() -> None:
    images, removed = _cases()
    sol = R.solve_imputation(images, removed, max_iter=1)  # one CG iteration cannot reach 1e-5
    assert sol.direct.all() and (sol.rel_residual <= 1e-5).all()
    assert torch.allclose(sol.values, R.direct_imputation(images, removed), atol=1e-6)


def test_imputation_edge_cases() -> None:
    images, removed = _cases(6, 5)
    none = torch.zeros_like(removed)
    assert torch.equal(R.solve_imputation(images, none).values, images)  # nothing removed: a copy
    with pytest.raises(HfusError, match="every pixel"):
        R.solve_imputation(images, torch.ones_like(removed))
    with pytest.raises(HfusError):
        R.solve_imputation(images, removed.float())  # type: ignore[arg-type]
    with pytest.raises(HfusError):
        R.noisy_linear_impute(images, removed, noise_seeds=[1])
    # a black neighbourhood: b = 0, the solution is 0 (relative residual defined as 0)
    black = torch.zeros(1, 3, 8, 8)
    hole = torch.zeros(1, 8, 8, dtype=torch.bool)
    hole[0, 2:5, 2:6] = True
    sol = R.solve_imputation(black, hole)
    assert torch.equal(sol.values, black) and (sol.rel_residual == 0).all()  # b = 0: x stays 0


def test_noise_seeded_on_removed_pixels_only_and_clipped() -> None:
    g = _gen(4)
    images = 0.25 + 0.5 * torch.rand(2, 3, 48, 48, generator=g)  # away from 0 and 1
    removed = torch.rand(2, 48, 48, generator=g) < 0.5
    clean = R.noisy_linear_impute(images, removed, noise_seeds=None)
    a = R.noisy_linear_impute(images, removed, noise_seeds=[7, 8])
    b = R.noisy_linear_impute(images, removed, noise_seeds=[7, 8])
    c = R.noisy_linear_impute(images, removed, noise_seeds=[7, 9])
    # same calls on the same shapes (a, b) and per-image noise draws (a[0], c[0]): exact
    assert torch.equal(a, b) and torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    rem = removed[:, None].expand_as(images)
    assert torch.equal(a[~rem], images[~rem])
    diff = (a - clean)[rem]
    assert abs(diff.std().item() - R.NOISE_STD) < 0.001 and abs(diff.mean().item()) < 0.001
    # the noise is CPU-drawn torch.randn(C, H, W) scaled by 0.01
    expected = clean[1] + 0.01 * torch.randn(3, 48, 48, generator=torch.Generator().manual_seed(8))
    assert torch.allclose(a[1][rem[1]], expected[rem[1]], atol=1e-7)
    loud = R.noisy_linear_impute(images, removed, noise_seeds=[1, 2], noise_std=10.0)
    assert loud.min() == 0.0 and loud.max() == 1.0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_conformance_with_grad_cam_imputer() -> None:
    """pytorch-grad-cam 1.5.7's NoisyLinearImputer (noise 0) solves the same system: agree to tolerance."""
    road_mod = pytest.importorskip("pytorch_grad_cam.metrics.road")
    images, removed = _cases(12, 11)
    ours = R.solve_imputation(images, removed).values
    for i in range(len(images)):
        keep = (~removed[i]).float()  # grad-cam: 1 = keep, 0 = impute
        theirs = road_mod.NoisyLinearImputer(noise=0.0)(images[i], keep)
        assert theirs.dtype == torch.float32
        assert (theirs - ours[i]).abs().max() < 2e-5, i
        # its solution is the float32 cast of the direct solve: residual ~1e-7 in our float64 system
        assert (R.imputation_residual(images[i : i + 1], removed[i : i + 1], theirs[None]) < 1e-5).all()


def test_grad_cam_strict_threshold_pitfall() -> None:
    """The documented difference: grad-cam's `cam < percentile` keeps no pixel on a map of 95 % zeros."""
    cam = np.zeros((40, 40), np.float32)
    cam.flat[np.random.default_rng(0).permutation(1600)[:80]] = 1.0
    keep = cam < np.percentile(cam, 80)  # RemoveMostRelevantFirst(percentile=80)
    assert keep.sum() == 0  # every pixel "removed", where MoRF at p = 0.2 removes exactly 320
    order = R.removal_order(torch.from_numpy((cam * 255).astype(np.uint8))[None], [0])
    assert R.removal_masks(order, (320,), 40, 40)[0, 0].sum() == 320


# ---------------------------------------------------------------------------------------- ROAD scores


class _Reader(nn.Module):
    """A toy model that reads only the pixels in ``region``: logit_0 = 10 · (mean over region − 0.5)."""

    def __init__(self, region: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        s = (x * self.region).sum((1, 2, 3)) / (self.region.sum() * x.shape[1])
        return torch.stack([10 * (s - 0.5), torch.zeros_like(s)], dim=1)


def test_morf_lerf_of_a_map_that_marks_what_the_model_reads() -> None:
    h = w = 16
    region = torch.zeros(h, w, dtype=torch.bool)
    region[5:10, 6:11] = True  # 25 pixels < k(0.1) = 26
    model = _Reader(region).eval()
    images = torch.full((2, 3, h, w), 0.1)
    images[:, :, region] = 0.9
    m255 = (region.to(torch.uint8) * 255).expand(2, h, w).contiguous()
    targets = torch.zeros(2, dtype=torch.long)
    seeds = [item_seed(0, "a"), item_seed(0, "b")]
    threads_before = torch.get_num_threads()
    out = R.road_scores(model, images, m255, targets, seeds=seeds, batch_size=4)
    assert out.morf.shape == (2, 5) and out.lerf.shape == (2, 5) and out.s0.shape == (2,)
    s0 = torch.softmax(torch.tensor([10 * 0.4, 0.0]), 0)[0].item()
    np.testing.assert_allclose(out.s0, s0, rtol=1e-6)
    # LeRF never removes a marked pixel below p = 0.9 (230 of 256, 26 kept): the model sees the same input
    # the model reads the same pixels (untouched, not imputed) in the same batch shape: exact
    np.testing.assert_array_equal(out.lerf, np.repeat(out.s0[:, None], 5, axis=1))
    assert (out.lerf_mean == 0).all()
    # MoRF removes the whole region first: imputed from the dark surround, confidence collapses
    assert (out.morf < out.s0[:, None] - 0.5).all()
    assert (out.combined > 0.25).all()
    assert torch.get_num_threads() == threads_before  # the CPU solver restores the caller's thread count
    np.testing.assert_allclose(out.morf_mean, (out.morf - out.s0[:, None]).mean(1))
    np.testing.assert_allclose(out.combined, (out.lerf_mean - out.morf_mean) / 2)
    # the clean forward ran once (2 images) + 10 imputed images each, in batches of at most 4
    assert sum(model.calls) == 2 + 20 == out.n_forward and max(model.calls) <= 4
    # deterministic, and the noise follows the seeds; exact across forward batch sizes because the toy
    # model's only reduction is per image (a row of fixed length), and the imputation is batch-independent
    again = R.road_scores(model, images, m255, targets, seeds=seeds, batch_size=7)
    np.testing.assert_array_equal(again.morf, out.morf)
    other = R.road_scores(model, images, m255, targets, seeds=seeds[::-1], batch_size=4)
    assert not np.array_equal(other.morf, out.morf)
    # the caller's clean probabilities replace the clean forward
    model.calls.clear()
    given = R.road_scores(
        model, images, m255, targets, seeds=seeds, batch_size=4, s0=torch.from_numpy(out.s0)
    )
    np.testing.assert_array_equal(given.morf, out.morf)  # the same forwards of the same batches: exact
    assert sum(model.calls) == 20 == given.n_forward


def test_road_scores_input_errors() -> None:
    model = _Reader(torch.ones(8, 8, dtype=torch.bool))
    images = torch.rand(2, 3, 8, 8)
    m255 = torch.zeros(2, 8, 8, dtype=torch.uint8)
    t = torch.zeros(2, dtype=torch.long)
    with pytest.raises(HfusError, match="seed"):
        R.road_scores(model, images, m255, t, seeds=[1])
    with pytest.raises(HfusError, match="m255"):
        R.road_scores(model, images, m255[:1], t, seeds=[1, 2])
    with pytest.raises(HfusError, match="targets"):
        R.road_scores(model, images, m255, t[:1], seeds=[1, 2])
