"""``road@1``: RemOve And Debias (PROTOCOL §7.2; Rong et al. 2022), as pure functions.

"Fractions removed p ∈ {0.1, 0.3, 0.5, 0.7, 0.9}; k = round(p · 224²) pixels. Order: pixels by m255
descending, ties broken by a random permutation seeded per image [...]. MoRF removes the first k pixels
of that order, LeRF the last k. Noisy linear imputation: in each colour channel the removed pixels take
the values that solve x_u = Σ_v w_uv x_v / Σ_v w_uv over the 8 neighbours v inside the image (w = 1/6
for the 4 direct neighbours, 1/12 for the 4 diagonal ones), kept pixels fixed; solved to relative
residual ≤ 1e-5 [...]. Then N(0, 0.01²) noise, seeded per image and fraction, is added to the removed
pixels only, and the image is clipped to [0, 1]. Score s = softmax probability of the target class."

Pipeline: :func:`removal_order` → :func:`removal_masks` → :func:`noisy_linear_impute` (the public
imputation) → forwards; :func:`road_scores` does all of it for a batch of images.

**k.** ``k = round(p · H·W)`` with Python's ``round`` on the float product (half to even). For 224²
the products are 5017.6, 15052.8, 25088, 35123.2, 45158.4, so no tie arises: k = 5018, 15053, 25088,
35123, 45158 (:func:`removal_counts`).

**Seeds (PROTOCOL §8).** The caller passes one seed per image, ``item_seed(run_seed, image_id)``
(:mod:`hfus_xai_bench.seeding`); from it, for image seed ``s``:

- tie-break order: ``derive_seed(s, "road", "order")`` (:func:`order_seed`) seeds a CPU
  ``torch.randperm(H·W)``, the random key of every pixel;
- noise of MoRF/LeRF at fraction index j: ``derive_seed(s, "road", "noise", "morf" | "lerf", j)``
  (:func:`noise_seed`) seeds a CPU ``torch.randn(C, H, W)`` (float32) added as ``0.01 · noise`` on the
  removed pixels.

Nothing depends on the batch position, the device or the number of processes.

**Solver.** :mod:`.solver` (conjugate gradients with a multigrid preconditioner, batch-independent
on the CPU by design; its docstring says how).

**Differences from pytorch-grad-cam 1.5.7's ``NoisyLinearImputer``** (``pytorch_grad_cam/metrics/road.py``,
taken from the ROAD authors' code), found by reading it and by ``tests/test_metrics_road.py``:

- same equations: weights 1/6 direct and 1/12 diagonal, diagonal = the sum of the in-image
  neighbours' weights (it starts from 1 and subtracts the weight of each out-of-image neighbour), kept
  pixels on the right-hand side; with the noise off both agree to the solver tolerance;
- its ``weighting`` argument is ignored (``self.weighting = neighbors_weights``, the module constant);
- its mask convention is inverted (1 = keep) and mixed: pixels with ``mask == 0`` are imputed but the
  system treats ``mask < 0.5`` as unknown and ``mask > 0.5`` as known, so a non-binary mask (or
  exactly 0.5) builds an inconsistent system; we take a boolean ``removed`` mask;
- its noise is ``torch.randn_like`` on the global RNG (unseeded) and the result is not clipped;
  a float64 direct solve is cast to float32; everything runs on the CPU, one image at a time;
- its ROAD metric classes select the pixels with ``cam < np.percentile(cam, p)`` (strict ``<``): with
  ties the removed count is not k (a map that is 95 % zeros keeps no pixel at the 80th percentile:
  every pixel is imputed, the system has no known pixel and the result is a black image plus
  noise), because all pixels tied at the threshold fall on the same side; they also recompute the
  clean forward at every percentile and use percentiles 10..90 in steps of 10.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..chunking import ForwardInPieces
from ..constants import ROAD_FRACTIONS
from ..errors import HfusError
from ..seeding import derive_seed, torch_generator
from .solver import (
    TOL,
    ImputationSolve,
    check_pair,
    direct_imputation,
    imputation_residual,
    solve_imputation,
)

if TYPE_CHECKING:
    from .inputs import ScoringConfig, ScoringInputs

__all__ = [
    "NOISE_STD",
    "ROAD_FRACTIONS",
    "TOL",
    "ImputationSolve",
    "RoadScores",
    "combined_values",
    "direct_imputation",
    "imputation_residual",
    "lerf_values",
    "morf_values",
    "noise_seed",
    "noisy_linear_impute",
    "order_seed",
    "removal_counts",
    "removal_masks",
    "removal_order",
    "road_scores",
    "score_road",
    "solve_imputation",
]

#: standard deviation of the imputation noise (images in [0, 1])
NOISE_STD = 0.01
ORDERS: tuple[str, ...] = ("morf", "lerf")


# ----------------------------------------------------------------------------------------------- seeds


def order_seed(seed: int) -> int:
    """Seed of an image's tie-break permutation, from its ROAD seed (``item_seed(run_seed, image_id)``)."""
    return derive_seed(seed, "road", "order")


def noise_seed(seed: int, order: str, fraction_index: int) -> int:
    """Seed of the imputation noise of one image, order (``"morf"``/``"lerf"``) and fraction index."""
    if order not in ORDERS:
        raise HfusError(f"order must be one of {ORDERS}, got {order!r}")
    return derive_seed(seed, "road", "noise", order, int(fraction_index))


# ---------------------------------------------------------------------------------------- removal sets


def removal_counts(n_pixels: int, fractions: Sequence[float] = ROAD_FRACTIONS) -> tuple[int, ...]:
    """``k = round(p · n_pixels)`` per fraction (Python ``round``, half to even; see the module docstring)."""
    out = []
    for p in fractions:
        if not 0.0 < float(p) < 1.0:
            raise HfusError(f"ROAD fractions must lie strictly between 0 and 1, got {p}")
        out.append(int(round(float(p) * int(n_pixels))))
    return tuple(out)


def _m255_tensor(m255: Any) -> torch.Tensor:
    if isinstance(m255, np.ndarray):
        m255 = torch.from_numpy(np.ascontiguousarray(m255))
    if not isinstance(m255, torch.Tensor) or m255.dtype != torch.uint8 or m255.ndim != 3:
        what = f"{m255.dtype} {tuple(m255.shape)}" if hasattr(m255, "dtype") else type(m255).__name__
        raise HfusError(f"m255 must be uint8 maps (N, H, W) (quantize() the maps first), got {what}")
    return m255


def removal_order(m255: Any, seeds: Sequence[int]) -> torch.Tensor:
    """Pixel indices (row-major) of each map by m255 descending, ties in a seeded random order.

    ``m255``: (N, H, W) uint8 (numpy or torch, any device); ``seeds``: one tie-break seed per image
    (:func:`road_scores` passes ``order_seed(item seed)``). Each image's key is
    ``torch.randperm(H·W, generator=torch_generator(seed))`` (CPU); the order sorts by
    (−m255, key), all keys distinct, so it is a total order without raster bias. MoRF removes
    ``order[:, :k]``, LeRF ``order[:, -k:]``. Returns int64 (N, H·W) on the CPU.
    """
    maps = _m255_tensor(m255).cpu()
    n, h, w = maps.shape
    if len(seeds) != n:
        raise HfusError(f"removal_order: {len(seeds)} seeds for {n} maps; pass one seed per image")
    hw = h * w
    if n == 0:
        return torch.zeros(0, hw, dtype=torch.long)
    keys = torch.stack([torch.randperm(hw, generator=torch_generator(int(s))) for s in seeds])
    composite = (255 - maps.reshape(n, hw).to(torch.long)) * hw + keys  # distinct per image
    return torch.argsort(composite, dim=1)


def removal_masks(order: torch.Tensor, counts: Sequence[int], height: int, width: int) -> torch.Tensor:
    """Removed-pixel masks (N, 2F, H, W) bool from :func:`removal_order`: MoRF for each k, then LeRF.

    ``masks[:, j]`` removes the first ``counts[j]`` pixels of the order, ``masks[:, F + j]`` the last
    ``counts[j]`` — exactly k pixels each, whatever the ties.
    """
    n, hw = order.shape
    if hw != height * width:
        raise HfusError(f"removal_masks: order has {hw} pixels, not {height}×{width}")
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(hw, dtype=order.dtype).expand(n, hw).contiguous())
    morf = [rank < k for k in counts]
    lerf = [rank >= hw - k for k in counts]
    return torch.stack(morf + lerf, dim=1).reshape(n, 2 * len(counts), height, width)


# --------------------------------------------------------------------------------------------- public


def noisy_linear_impute(
    images: torch.Tensor,
    removed: torch.Tensor,
    *,
    noise_seeds: Sequence[int] | None,
    noise_std: float = NOISE_STD,
    tol: float = TOL,
) -> torch.Tensor:
    """ROAD's noisy linear imputation (PROTOCOL §7.2), batched, on the images' device.

    ``images`` (N, C, H, W) float in [0, 1]; ``removed`` (N, H, W) bool, True = removed (at least one
    pixel kept per image). The removed pixels of each channel solve x_u = Σ_v w_uv x_v / Σ_v w_uv
    (8 in-image neighbours, w = 1/6 direct, 1/12 diagonal; kept pixels fixed) to relative residual
    ≤ ``tol`` (:func:`solve_imputation`); then, if ``noise_seeds`` is given (one seed per image),
    ``noise_std · torch.randn(C, H, W, generator=torch_generator(seed))`` (drawn on the CPU) is
    added to the removed pixels only; ``noise_seeds=None`` adds no noise. The result is clipped to
    [0, 1]. Returns (N, C, H, W) in the images' dtype and device.
    """
    images, removed = check_pair(images, removed)
    n, c, h, w = images.shape
    if noise_seeds is not None and len(noise_seeds) != n:
        raise HfusError(
            f"noisy_linear_impute: {len(noise_seeds)} noise seeds for {n} images; pass one per image"
        )
    out = solve_imputation(images, removed, tol=tol).values
    if noise_seeds is not None and noise_std:
        noise = _noise_fields(noise_seeds, (c, h, w)).to(device=images.device, dtype=out.dtype)
        # + noise on the removed pixels only: kept ones get + 0 · noise = + 0 (bitwise unchanged)
        out.addcmul_(removed[:, None].to(out.dtype), noise.mul_(float(noise_std)))
    return out.clamp_(0.0, 1.0)


def _noise_fields(seeds: Sequence[int], shape: tuple[int, int, int]) -> torch.Tensor:
    """(N, *shape) float32 on the CPU: ``torch.randn(*shape, generator=torch_generator(seed))`` per seed.

    Each field has its own generator, so they are drawn on the caller's torch threads in parallel (a draw
    does not depend on the thread that makes it).
    """
    out = torch.empty((len(seeds), *shape), dtype=torch.float32)

    def draw(i: int) -> None:
        torch.randn(shape, generator=torch_generator(int(seeds[i])), out=out[i])

    workers = max(1, min(torch.get_num_threads(), len(seeds)))
    if workers == 1:
        for i in range(len(seeds)):
            draw(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(draw, range(len(seeds))))
    return out


@dataclass
class RoadScores:
    """Per-image ROAD results (float64): target-class softmax probabilities and their summaries."""

    fractions: tuple[float, ...]
    #: (N,) s0 on the clean image
    s0: np.ndarray
    #: (N, F) s_MoRF(p) and s_LeRF(p), one column per fraction
    morf: np.ndarray
    lerf: np.ndarray
    #: seconds spent in the imputations (orders, masks, solves, noise) and in the forwards
    seconds_impute: float = 0.0
    seconds_forward: float = 0.0
    #: images pushed through the model (N clean + 2F·N imputed)
    n_forward: int = 0
    counts: tuple[int, ...] = field(default=())

    @property
    def morf_mean(self) -> np.ndarray:
        """``road@1/morf`` per image: mean over p of (s_MoRF(p) − s0) (lower is better)."""
        return (self.morf - self.s0[:, None]).mean(axis=1)

    @property
    def lerf_mean(self) -> np.ndarray:
        """``road@1/lerf`` per image: mean over p of (s_LeRF(p) − s0) (higher is better)."""
        return (self.lerf - self.s0[:, None]).mean(axis=1)

    @property
    def combined(self) -> np.ndarray:
        """``road@1/combined`` per image: (lerf − morf) / 2, in −0.5…0.5 (higher is better)."""
        return (self.lerf_mean - self.morf_mean) / 2.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Forwards:
    """Target-class softmax probabilities of image batches, timed (``model`` in eval mode)."""

    def __init__(self, model: nn.Module, device: torch.device, fmt: torch.memory_format) -> None:
        self.logits, self.device, self.fmt = ForwardInPieces(model, device), device, fmt
        self.probs: list[torch.Tensor] = []
        self.seconds = 0.0

    def __call__(self, batch: torch.Tensor, targets: torch.Tensor) -> None:
        _sync(self.device)
        tic = time.perf_counter()
        with torch.inference_mode():
            logits = self.logits(batch.contiguous(memory_format=self.fmt))
            p = torch.softmax(logits.float(), dim=1).gather(1, targets.to(logits.device)[:, None])[:, 0]
        self.probs.append(p.double().cpu())
        _sync(self.device)
        self.seconds += time.perf_counter() - tic

    def take(self) -> np.ndarray:
        """The probabilities so far, in call order (float64), and a fresh start."""
        out = torch.cat(self.probs).numpy() if self.probs else np.zeros(0)
        self.probs = []
        return out


def _check_road_inputs(images: Any, m255: Any, targets: Any, seeds: Sequence[int], batch_size: int):
    """(maps uint8 (N, H, W), targets int64 (N,) on the CPU) after checking every argument's shape."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise HfusError("images must be a float tensor (N, 3, H, W)")
    n, _, h, w = images.shape
    maps = _m255_tensor(m255)
    if tuple(maps.shape) != (n, h, w):
        raise HfusError(f"m255 has shape {tuple(maps.shape)}, expected {(n, h, w)}")
    tgt = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(np.asarray(targets))
    tgt = tgt.long().cpu()
    if tuple(tgt.shape) != (n,):
        raise HfusError(f"targets must be (N,) = ({n},) class indices, got shape {tuple(tgt.shape)}")
    if len(seeds) != n:
        raise HfusError(f"road_scores: {len(seeds)} seeds for {n} images; pass one seed per image")
    if batch_size < 1:
        raise HfusError(f"batch_size must be >= 1, got {batch_size}")
    return maps, tgt


def _imputed(
    images: torch.Tensor, maps: torch.Tensor, seeds: Sequence[int], counts: tuple[int, ...]
) -> torch.Tensor:
    """The 2F imputed images of each image (image-major: MoRF fractions, then LeRF fractions)."""
    b, _, h, w = images.shape
    per_image = 2 * len(counts)
    order = removal_order(maps, [order_seed(int(s)) for s in seeds])
    masks = removal_masks(order, counts, h, w).to(images.device).reshape(b * per_image, h, w)
    reps = images.contiguous().repeat_interleave(per_image, dim=0)
    nseeds = [noise_seed(int(s), o, j) for s in seeds for o in ORDERS for j in range(len(counts))]
    return noisy_linear_impute(reps, masks, noise_seeds=nseeds)


def road_scores(
    model: nn.Module,
    images: torch.Tensor,
    m255: Any,
    targets: Any,
    *,
    seeds: Sequence[int],
    fractions: Sequence[float] = ROAD_FRACTIONS,
    batch_size: int = 64,
    s0: Any = None,
) -> RoadScores:
    """ROAD MoRF/LeRF scores of the maps ``m255`` for ``images`` (PROTOCOL §7.2).

    Args:
        model: in eval mode on the images' device.
        images: (N, 3, H, W) float in [0, 1] (kept in channels_last for the forwards if given so).
        m255: (N, H, W) uint8 maps.
        targets: (N,) class indices.
        seeds: one seed per image (``item_seed(run_seed, image_id)``; the tie-break and noise seeds
            derive from it, see the module docstring).
        fractions: the fractions removed.
        batch_size: images per forward: the clean forward runs once; the 2F imputed images per image
            (image-major, MoRF fractions then LeRF fractions) are forwarded in batches of
            ``batch_size`` whatever the imputation chunking, all under ``torch.inference_mode()``.
        s0: optional (N,) target-class softmax probabilities of the clean images, if the caller has
            them from its own forward (then no clean forward runs here).

    Returns:
        :class:`RoadScores`, float64 per image.
    """
    maps, tgt = _check_road_inputs(images, m255, targets, seeds, batch_size)
    n, _, h, w = images.shape
    fractions = tuple(float(p) for p in fractions)
    counts = removal_counts(h * w, fractions)
    per_image = 2 * len(fractions)
    device = images.device
    channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    forward = _Forwards(model, device, torch.channels_last if channels_last else torch.contiguous_format)
    clean = _clean_probabilities(forward, images, tgt, s0, batch_size)
    seconds_impute = _forward_imputed(forward, images, maps, tgt, seeds, counts, batch_size)
    scores = forward.take().reshape(n, per_image) if n else np.zeros((0, per_image))
    return RoadScores(
        fractions=fractions,
        s0=clean,
        morf=scores[:, : len(fractions)].copy(),
        lerf=scores[:, len(fractions) :].copy(),
        seconds_impute=seconds_impute,
        seconds_forward=forward.seconds,
        n_forward=n * (per_image + (1 if s0 is None else 0)),
        counts=counts,
    )


def _clean_probabilities(
    forward: _Forwards, images: torch.Tensor, tgt: torch.Tensor, s0: Any, batch_size: int
) -> np.ndarray:
    """The clean images' target-class probabilities: ``s0`` where the caller has them, else forwarded."""
    n = images.shape[0]
    if s0 is None:
        for start in range(0, n, batch_size):
            forward(images[start : start + batch_size], tgt[start : start + batch_size])
        return forward.take()
    clean = np.asarray(s0.detach().cpu().double() if isinstance(s0, torch.Tensor) else s0, np.float64)
    if clean.shape != (n,):
        raise HfusError(f"s0 must be (N,) = ({n},) probabilities, got shape {clean.shape}")
    return clean


def _forward_imputed(
    forward: _Forwards,
    images: torch.Tensor,
    maps: torch.Tensor,
    tgt: torch.Tensor,
    seeds: Sequence[int],
    counts: Sequence[int],
    batch_size: int,
) -> float:
    """Impute the images' 2F removals a forward batch at a time and forward them in batches of
    ``batch_size`` (image-major); return the seconds spent imputing."""
    n, per_image = images.shape[0], 2 * len(counts)
    device = images.device
    pending, pending_t, n_pending = [], [], 0
    seconds_impute, start = 0.0, 0
    while start < n:
        # impute the images that fill the next forward batch (in one call: the solver's chunks span images)
        stop = min(n, start + max(1, -(-(batch_size - n_pending) // per_image)))
        _sync(device)
        tic = time.perf_counter()
        pending.append(_imputed(images[start:stop], maps[start:stop], seeds[start:stop], counts))
        _sync(device)
        seconds_impute += time.perf_counter() - tic
        pending_t.append(tgt[start:stop].repeat_interleave(per_image))
        n_pending += pending[-1].shape[0]
        start = stop
        while n_pending >= batch_size or (start == n and n_pending):
            allx, allt = torch.cat(pending), torch.cat(pending_t)
            take = min(batch_size, n_pending)
            forward(allx[:take], allt[:take])
            pending, pending_t = [allx[take:]], [allt[take:]]
            n_pending -= take
    return seconds_impute


# ----------------------------------------------------------------------------- registry entry points


def _model_device(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def score_road(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``road@1``: ``road_s0`` (N,), ``road_morf_p`` and ``road_lerf_p`` (N, F) through :func:`road_scores`.

    Seeds per image ``item_seed(config.seed, image_id)``; forwards in batches of
    ``config.forward_batch(device)`` (64 on CPU, 512 on CUDA). An image's values depend on the other
    images scored with it only through the forward batches (last bits on CPU), so the runner scores it
    per run batch. Adds ``road_seconds_impute``, ``road_seconds_forward`` and ``road_forward_images`` to
    ``inputs.cost``.
    """
    from ..seeding import item_seed

    inputs.require("road@1", "model", "images")
    device = _model_device(inputs.model)
    images = torch.as_tensor(inputs.images)
    if not images.is_floating_point():
        raise HfusError("road@1: images must be float (N, 3, H, W) in [0, 1]")
    images = images.to(device=device, dtype=torch.float32)
    if device.type == "cpu" and not images.is_contiguous(memory_format=torch.channels_last):
        images = images.contiguous(memory_format=torch.channels_last)
    seeds = [item_seed(int(config.seed), str(i)) for i in inputs.image_ids]
    res = road_scores(
        inputs.model,
        images,
        np.ascontiguousarray(inputs.m255),
        np.asarray(inputs.targets),
        seeds=seeds,
        batch_size=config.forward_batch(device),
    )
    cost = inputs.cost
    cost["road_seconds_impute"] = cost.get("road_seconds_impute", 0.0) + res.seconds_impute
    cost["road_seconds_forward"] = cost.get("road_seconds_forward", 0.0) + res.seconds_forward
    cost["road_forward_images"] = cost.get("road_forward_images", 0.0) + res.n_forward
    return {"road_s0": res.s0, "road_morf_p": res.morf, "road_lerf_p": res.lerf}


def morf_values(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-image ``road@1/morf``: mean over p of s_MoRF(p) − s0."""
    return (
        np.asarray(values["road_morf_p"], np.float64) - np.asarray(values["road_s0"], np.float64)[:, None]
    ).mean(1)


def lerf_values(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-image ``road@1/lerf``: mean over p of s_LeRF(p) − s0."""
    return (
        np.asarray(values["road_lerf_p"], np.float64) - np.asarray(values["road_s0"], np.float64)[:, None]
    ).mean(1)


def combined_values(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-image ``road@1/combined``: (lerf − morf) / 2."""
    return (lerf_values(values) - morf_values(values)) / 2.0
