"""Model-parameter randomisation (PROTOCOL §7.1 ``randomisation@1``, §7.1.1 ``randomisation@2``), as pure
functions.

Adebayo et al. 2018 (sanity checks); the cross-image reference value as in Arun et al. 2021.

- :func:`randomised_model`: the randomised copy of the evaluated model. "A deep copy of the evaluated
  model in which, visiting ``named_modules()`` in order inside ``torch.random.fork_rng()`` after
  ``torch.manual_seed(seed)`` [...] every ``Conv2d`` and ``Linear`` gets ``reset_parameters()`` [...]
  and every BatchNorm gets weight 1, bias 0, running statistics kept. Eval mode."
- :func:`spearman_maps`: per image, "ρ = Spearman rank correlation (ties get average ranks) between the
  trained model's m255 and the randomised model's m255 over the 224×224 pixels. If exactly one of the
  two maps is constant, ρ = 0; if both are, ρ = 1."
- :func:`cross_image_rho` with :func:`derangement`: "ρ_cross = mean Spearman ρ between the trained
  model's m255 of image i and of image π(i), for a fixed derangement π of the evaluated images of the
  (arch, fold) (a seeded permutation without fixed points, seed 0)."
- :func:`randomisation_pass`: "the upper bound of the 95 % CI of mean ρ is below 0.5".
- ``randomisation@2`` (§7.1.1): :func:`copy_seed` (copy k's seed), :func:`copy_pairs` (per image and copy:
  failed / degenerate / scored, Spearman ρ and Pearson r), :func:`randomisation_verdict`, and the record
  sections (:func:`rho_ci` / :func:`pearson_ci`: the copies-then-images bootstrap of
  :func:`.stats.copy_image_bootstrap`; :func:`verdict_table`, :func:`pairs_table`, :func:`per_copy_table`).

Spearman's ρ is computed exactly: m255 maps take 256 values, so each image's average ranks come from
its 256-bin histogram (integer counts, no sort); with doubled ranks (integers) every sum is an exact
int64, and ρ = sign(cov)·sqrt(cov² / (var_a·var_b)) is rounded once from the exact fraction (identical
rankings give exactly 1, reversed ones exactly −1). ``randomisation@2`` gets the same exact sums (and
Pearson's) for K copies at once from each pair's 256 × 256 joint histogram of m255 values.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..constants import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    RANDOMISATION_MAX_DEGENERATE,
    RANDOMISATION_MIN_SCORED,
    RANDOMISATION_PASS_BELOW,
)
from ..errors import HfusError
from ..jsonio import json_number
from ..seeding import derive_seed

if TYPE_CHECKING:
    from .inputs import ScoringConfig, ScoringInputs

__all__ = [
    "PAIR_DEGENERATE",
    "PAIR_FAILED",
    "PAIR_SCORED",
    "PASS_RULE",
    "PASS_THRESHOLD",
    "VERDICTS",
    "VERDICT_RULE",
    "CopyPairs",
    "copy_pairs",
    "copy_seed",
    "cross_image_rho",
    "derangement",
    "pairs_table",
    "pass_table",
    "per_copy_table",
    "randomisation_pass",
    "randomisation_verdict",
    "randomised_model",
    "score_randomisation",
    "score_randomisation2",
    "spearman_maps",
    "verdict_table",
]

#: ``randomisation@1/pass``: the upper 95 % CI bound of mean ρ must be below this (PROTOCOL §7.1)
PASS_THRESHOLD = RANDOMISATION_PASS_BELOW

_CHUNK = 64  # images per vectorised chunk in spearman_maps


# ------------------------------------------------------------------------------------ randomised model


def randomised_model(model: nn.Module, seed: int = 0) -> nn.Module:
    """The randomised copy of ``model`` (PROTOCOL §7.1); ``model`` and the global RNG state are untouched.

    Visiting ``named_modules()`` in order, with the CPU generator seeded by ``seed`` inside
    ``torch.random.fork_rng(devices=[])``: every ``nn.Conv2d`` / ``nn.Linear`` (and subclasses) gets
    ``reset_parameters()`` — run on a float32 CPU copy of the layer, so the numbers drawn are the same
    on every machine and device, then copied into the layer in its own dtype, device and memory
    format; every BatchNorm (``_BatchNorm``: 1d/2d/3d, SyncBatchNorm) gets weight 1 and bias 0,
    running statistics kept. Returned in eval mode, ``requires_grad`` flags as in ``model``. For a
    float32 CPU model this equals ``torch.manual_seed(seed)`` followed by ``reset_parameters()`` on
    each layer in that order. Only the CPU generator is used (``torch.manual_seed`` would also reseed
    CUDA; ``fork_rng(devices=[])`` restores only the CPU state).
    """
    if not isinstance(model, nn.Module):
        raise HfusError(f"randomised_model needs a torch.nn.Module, got {type(model).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise HfusError(f"seed must be an integer, got {seed!r}")
    rand = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.random.default_generator.manual_seed(int(seed))
        for _name, module in rand.named_modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                params = list(module.parameters(recurse=False))
                if all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params):
                    # already a float32 CPU layer (of the copy): the same draws in place
                    module.reset_parameters()
                    continue
                cpu = copy.deepcopy(module).to(device="cpu", dtype=torch.float32)
                cpu.reset_parameters()
                for pname, param in module.named_parameters(recurse=False):
                    param.copy_(getattr(cpu, pname))
            elif isinstance(module, _BatchNorm):
                if module.weight is not None:
                    module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()
    return rand.eval()


# ------------------------------------------------------------------------------------------- Spearman


def _as_maps(maps: Any, name: str) -> torch.Tensor:
    """(N, H, W) m255 values as a CPU uint8 tensor."""
    if isinstance(maps, np.ndarray):
        maps = torch.from_numpy(np.ascontiguousarray(maps))
    if not isinstance(maps, torch.Tensor):
        raise HfusError(
            f"{name}: expected m255 maps as a numpy array or torch tensor, got {type(maps).__name__}"
        )
    if maps.ndim != 3:
        raise HfusError(
            f"{name}: expected (N, H, W) maps, got shape {tuple(maps.shape)}; add a batch dimension"
        )
    if maps.dtype != torch.uint8:
        if maps.is_floating_point() or maps.is_complex() or maps.dtype == torch.bool:
            raise HfusError(
                f"{name}: expected uint8 m255 maps, got {maps.dtype}; quantize() float maps first"
            )
        if maps.numel() and bool(((maps < 0) | (maps > 255)).any()):
            raise HfusError(f"{name}: integer maps must hold m255 values in 0..255")
        maps = maps.to(torch.uint8)
    return maps.detach().cpu()


def _doubled_ranks(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (2 × average rank) of every pixel (int64, 1-based ranks) and Σ (2·rank)² (int64)."""
    n, p = values.shape
    v = values.long()
    counts = torch.zeros(n, 256, dtype=torch.long).scatter_add_(1, v, torch.ones_like(v))
    below = torch.cumsum(counts, dim=1) - counts  # pixels with a smaller value
    lut = 2 * below + counts + 1  # 2 × (below + (counts + 1) / 2)
    return lut.gather(1, v), (counts * lut * lut).sum(dim=1)


def _rho(cov: int, var_a: int, var_b: int) -> float:
    """cov / sqrt(var_a · var_b) from exact integers: sign(cov) · sqrt(cov² / (var_a · var_b)), one rounding.

    Identical rankings give exactly 1 and reversed ones exactly −1; the constant-map rules apply.
    """
    if var_a == 0 or var_b == 0:
        return 1.0 if var_a == 0 and var_b == 0 else 0.0
    ratio = float(Fraction(cov * cov, var_a * var_b))
    return math.copysign(math.sqrt(min(ratio, 1.0)), cov) if cov else 0.0


def spearman_maps(a: Any, b: Any) -> np.ndarray:
    """Spearman ρ per image between two stacks of m255 maps (N, H, W) (numpy or torch); float64 (N,).

    Ties get average ranks. Exactly one of the two maps constant → 0; both constant → 1.
    """
    ta, tb = _as_maps(a, "a"), _as_maps(b, "b")
    if ta.shape != tb.shape:
        raise HfusError(f"spearman_maps: shapes differ, {tuple(ta.shape)} vs {tuple(tb.shape)}")
    n = ta.shape[0]
    p = ta.shape[1] * ta.shape[2]
    out = np.zeros(n, np.float64)
    if n == 0 or p == 0:
        return out
    if p > 1_000_000:
        raise HfusError(f"spearman_maps: {p} pixels per map is beyond the exact int64 range (at most 1e6)")
    centre = p * (p + 1) ** 2  # Σ over pixels of (mean doubled rank)² = p · (p + 1)²
    for start in range(0, n, _CHUNK):
        va = ta[start : start + _CHUNK].reshape(-1, p)
        vb = tb[start : start + _CHUNK].reshape(-1, p)
        ra, saa = _doubled_ranks(va)
        rb, sbb = _doubled_ranks(vb)
        cov = ((ra * rb).sum(dim=1) - centre).numpy()
        var_a = (saa - centre).numpy()
        var_b = (sbb - centre).numpy()
        for j, (c, xa, xb) in enumerate(zip(cov.tolist(), var_a.tolist(), var_b.tolist(), strict=True)):
            out[start + j] = _rho(c, xa, xb)
    return out


# ---------------------------------------------------------------------------------- cross-image value


def _splitmix64(state: int):
    """SplitMix64 (Steele et al. 2014): 64-bit outputs from integer arithmetic only (portable)."""
    mask = (1 << 64) - 1
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def _below(stream, bound: int) -> int:
    """Unbiased integer in 0 .. bound - 1 (rejection of the incomplete last block)."""
    limit = ((1 << 64) // bound) * bound
    while True:
        x = next(stream)
        if x < limit:
            return x % bound


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A seeded permutation of 0..n-1 without fixed points (int64 (n,)), uniform over derangements.

    Fisher–Yates shuffles driven by SplitMix64 seeded with ``derive_seed(seed, "derangement", n)``,
    repeated until no element stays in place (about e ≈ 2.7 shuffles on average); integer arithmetic
    only, so the same (n, seed) gives the same permutation on every machine and numpy version.
    ``n == 0`` gives an empty array; ``n == 1`` has no derangement (HfusError).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise HfusError(f"derangement needs a size n >= 0, got {n!r}")
    n = int(n)
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1:
        raise HfusError(
            "a single image has no derangement: the cross-image reference needs at least 2 images"
        )
    stream = _splitmix64(derive_seed(int(seed), "derangement", n))
    while True:
        perm = list(range(n))
        for i in range(n - 1, 0, -1):
            j = _below(stream, i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        if all(perm[i] != i for i in range(n)):
            return np.asarray(perm, np.int64)


def cross_image_rho(m255: Any, seed: int = 0) -> np.ndarray:
    """ρ between map i and map π(i) for π = :func:`derangement` (N, seed); float64 (N,).

    ``randomisation@1/cross_image`` is the mean of this array. With fewer than 2 maps there is no
    derangement: the result is all NaN (so a one-image run reports ρ_cross as undefined).
    """
    maps = _as_maps(m255, "m255")
    n = maps.shape[0]
    if n < 2:
        return np.full(n, np.nan)
    perm = torch.from_numpy(derangement(n, seed))
    return spearman_maps(maps, maps[perm])


def randomisation_pass(rho_ci_high: float) -> bool:
    """``randomisation@1/pass``: the upper 95 % CI bound of mean ρ is below :data:`PASS_THRESHOLD` (NaN
    fails)."""
    value = float(rho_ci_high)
    return bool(np.isfinite(value) and value < PASS_THRESHOLD)


# ----------------------------------------------------------------------------- registry entry points

#: ``randomisation@1/pass`` table: the rule as recorded
PASS_RULE = f"upper bound of the 95 % CI of mean ρ < {RANDOMISATION_PASS_BELOW:g}"


def score_randomisation(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``randomisation@1`` (fold scope): ``rho`` and ``cross_image`` (N,) of the evaluated images of one
    (arch, fold).

    Reads ``inputs.m255`` and ``inputs.extras["m255_randomised"]`` (N, H, W) uint8 (the randomised model's
    maps after §3.1, zeros where it failed) and ``extras["randomised_ok"]`` (N,) bool (False: the randomised
    model's map failed — exception, shape, NaN/Inf — and ρ is NaN). ``cross_image`` uses the derangement of
    the N images given (seed 0), so it must see the whole fold's evaluated images.
    """
    inputs.require("randomisation@1", "m255_randomised", "randomised_ok")
    n = len(inputs)
    rand = inputs.extras["m255_randomised"]
    ok = np.asarray(inputs.extras["randomised_ok"], dtype=bool)
    if np.ndim(rand) == 4:  # the K copies of PROTOCOL §7.1.1: randomisation@1 reads the first
        rand, ok = rand[:, 0], ok[:, 0]
    if ok.shape != (n,):
        raise HfusError(f"randomisation@1: randomised_ok has shape {ok.shape}, expected ({n},)")
    rho = spearman_maps(inputs.m255, rand)
    rho[~ok] = np.nan
    return {"rho": rho, "cross_image": cross_image_rho(inputs.m255, seed=0)}


def pass_table(per_fold: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """``randomisation@1/pass`` per arch: mean ρ (mean of fold means) and the upper 95 % CI bound exactly as
    the ``randomisation@1/rho`` summary computes them (fold-stratified bootstrap, §4's resamples and seed)."""
    from .stats import fold_bootstrap

    rhos = [np.asarray(v["rho"], dtype=np.float64) for v in per_fold]
    means = [float(np.mean(r[np.isfinite(r)])) for r in rhos if np.isfinite(r).any()]
    mean = float(np.mean(means)) if means else float("nan")
    high = (
        fold_bootstrap(rhos, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)[1]
        if means
        else float("nan")
    )
    return {
        "pass": randomisation_pass(high),
        "rho_mean": mean if np.isfinite(mean) else None,
        "rho_ci95_high": float(high) if np.isfinite(high) else None,
        "threshold": PASS_THRESHOLD,
        "rule": PASS_RULE,
    }


# ------------------------------------------------------------------------------- randomisation@2 (§7.1.1)

#: pair status of ``randomisation@2`` (PROTOCOL §7.1.1), kept per image and copy in ``rand2_pair``
PAIR_SCORED, PAIR_DEGENERATE, PAIR_FAILED = 0, 1, 2
#: the verdicts of ``randomisation@2/verdict``; only ``pass`` rows are ranked (PROTOCOL §7.4)
VERDICTS = ("pass", "fail", "undetermined")
VERDICT_RULE = (
    f"undetermined if the degenerate share D > {RANDOMISATION_MAX_DEGENERATE:g} (or there is no pair); "
    f"else pass if the scored share S ≥ {RANDOMISATION_MIN_SCORED:g} and the upper bounds of the 95 % CIs "
    f"of mean Spearman ρ and mean Pearson r are both finite and below {RANDOMISATION_PASS_BELOW:g}; else fail"
)

_PAIR_CHUNK = 16  # images per vectorised chunk in copy_pairs


def copy_seed(k: int) -> int:
    """The seed of randomised copy ``k`` (PROTOCOL §7.1.1): derive(0, "randomisation", k), whatever the run
    seed."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise HfusError(f"copy index must be an integer >= 0, got {k!r}")
    return derive_seed(0, "randomisation", int(k))


@dataclass(frozen=True)
class CopyPairs:
    """Per image and copy (N, K): Spearman ``rho`` and Pearson ``pearson`` (NaN unless the pair is scored) and
    ``status`` (:data:`PAIR_SCORED`, :data:`PAIR_DEGENERATE`, :data:`PAIR_FAILED`)."""

    rho: np.ndarray
    pearson: np.ndarray
    status: np.ndarray


def _as_copies(copies: Any, n: int) -> torch.Tensor:
    """(N, K, H, W) m255 maps of the copies as a CPU uint8 tensor."""
    shape = tuple(copies.shape) if hasattr(copies, "shape") else None
    if shape is None or len(shape) != 4 or shape[0] != n:
        raise HfusError(
            f"randomisation@2: expected the copies' maps as (N={n}, K, H, W), got shape {shape}; "
            "the runner stacks the K copies on axis 1"
        )
    flat = copies.reshape(shape[0] * shape[1], *shape[2:])
    return _as_maps(flat, "m255_randomised").reshape(shape)


def _pair_sums(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Exact integer sums of every (image, copy) pair from its 256 × 256 joint histogram of m255 values.

    ``a`` (m, p) uint8 trained maps, ``b`` (m, k, p) uint8 copies → (m, k) int64 arrays: ``cov_s`` /
    ``var_sa`` / ``var_sb`` (p² × the covariance / variances of the doubled average ranks, as
    :func:`spearman_maps`) and ``cov_p`` / ``var_pa`` / ``var_pb`` (p² × those of the values). One
    ``bincount`` per chunk; no sort.
    """
    m, k, p = b.shape
    idx = (a.astype(np.intp)[:, None, :] << 8 | b).reshape(m * k, p)
    idx += (np.arange(m * k, dtype=np.intp) << 16)[:, None]
    joint = np.bincount(idx.ravel(), minlength=m * k * 65536).reshape(m * k, 256, 256).astype(np.int64)
    ca, cb = joint.sum(2), joint.sum(1)  # value counts of the trained map and of the copy
    la = 2 * (np.cumsum(ca, axis=1) - ca) + ca + 1  # doubled average rank of each value
    lb = 2 * (np.cumsum(cb, axis=1) - cb) + cb + 1
    v = np.arange(256, dtype=np.int64)
    centre = p * (p + 1) ** 2
    sab = np.einsum("nuv,nu,nv->n", joint, la, lb)
    vab = np.einsum("nuv,u,v->n", joint, v, v)
    sa, sb = ca @ v, cb @ v
    out = {
        "cov_s": sab - centre,
        "var_sa": (ca * la * la).sum(1) - centre,
        "var_sb": (cb * lb * lb).sum(1) - centre,
        "cov_p": p * vab - sa * sb,
        "var_pa": p * (ca @ (v * v)) - sa * sa,
        "var_pb": p * (cb @ (v * v)) - sb * sb,
    }
    return {key: value.reshape(m, k) for key, value in out.items()}


def copy_pairs(trained: Any, copies: Any, copies_ok: Any) -> CopyPairs:
    """Score every (image, copy) pair of PROTOCOL §7.1.1; pure, exact.

    ``trained``: (N, H, W) m255 of the trained model; ``copies``: (N, K, H, W) m255 of the K randomised
    copies; ``copies_ok``: (N, K) bool, False where the copy's map failed (exception, shape, NaN). A pair is
    failed where ``copies_ok`` is False, else degenerate when either map is constant (an all-zero map
    included), else scored: Spearman ρ (average ranks, exact as :func:`spearman_maps`) and Pearson r on
    m255/255 (scale-free, so computed from the integer m255 sums exactly, then rounded once).
    """
    ta = _as_maps(trained, "m255")
    n = ta.shape[0]
    tc = _as_copies(copies, n)
    k = tc.shape[1]
    if tuple(tc.shape[2:]) != tuple(ta.shape[1:]):
        raise HfusError(
            f"randomisation@2: copy maps are {tuple(tc.shape[2:])}, trained maps {tuple(ta.shape[1:])}"
        )
    ok = np.asarray(copies_ok, dtype=bool)
    if ok.shape != (n, k):
        raise HfusError(f"randomisation@2: randomised_ok has shape {ok.shape}, expected ({n}, {k})")
    p = ta.shape[1] * ta.shape[2]
    if p > 1_000_000:
        raise HfusError(f"randomisation@2: {p} pixels per map is beyond the exact int64 range (at most 1e6)")
    rho, pearson = np.full((n, k), np.nan), np.full((n, k), np.nan)
    status = np.full((n, k), PAIR_FAILED, dtype=np.int64)
    na, nb = ta.reshape(n, p).numpy(), tc.reshape(n, k, p).numpy()
    for start in range(0, n, _PAIR_CHUNK):
        sums = {
            key: v.tolist()
            for key, v in _pair_sums(na[start : start + _PAIR_CHUNK], nb[start : start + _PAIR_CHUNK]).items()
        }
        for i, row in enumerate(sums["cov_s"]):
            for j in range(k):
                if not ok[start + i, j]:
                    continue
                if sums["var_sa"][i][j] == 0 or sums["var_sb"][i][j] == 0:
                    status[start + i, j] = PAIR_DEGENERATE
                    continue
                status[start + i, j] = PAIR_SCORED
                rho[start + i, j] = _rho(row[j], sums["var_sa"][i][j], sums["var_sb"][i][j])
                pearson[start + i, j] = _rho(sums["cov_p"][i][j], sums["var_pa"][i][j], sums["var_pb"][i][j])
    return CopyPairs(rho, pearson, status)


def randomisation_verdict(
    rho_ci95_high: float, pearson_ci95_high: float, degenerate_share: float, scored_share: float
) -> str:
    """``randomisation@2/verdict`` (PROTOCOL §7.1.1): ``undetermined``, ``pass`` or ``fail``
    (:data:`VERDICT_RULE`).

    Args:
        rho_ci95_high: the upper bound of the 95 % CI of mean Spearman ρ (:func:`rho_ci`; NaN: none).
        pearson_ci95_high: the same for mean Pearson r (:func:`pearson_ci`).
        degenerate_share: D, the share of all pairs that are degenerate (NaN: no pair).
        scored_share: S, the share of all pairs that are scored.
    """
    d, s = float(degenerate_share), float(scored_share)
    if not np.isfinite(d) or d > RANDOMISATION_MAX_DEGENERATE:
        return "undetermined"
    highs = (float(rho_ci95_high), float(pearson_ci95_high))
    if s >= RANDOMISATION_MIN_SCORED and all(np.isfinite(h) and h < RANDOMISATION_PASS_BELOW for h in highs):
        return "pass"
    return "fail"


def score_randomisation2(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``randomisation@2`` (fold scope): per image and copy ``rand2_rho``, ``rand2_pearson``, ``rand2_pair``
    (N, K) and ``rand2_cross`` (N,) of one (arch, fold).

    Reads ``inputs.m255`` and ``extras["m255_randomised"]`` (N, K, H, W) uint8 (the copies' maps after §3.1),
    ``extras["randomised_ok"]`` (N, K) bool. The images given are the §7.1.1 pairs' images: every evaluated
    image and every image whose trained map is all zero (``inputs.ok`` False: ``empty_map``, degenerate with
    every copy whose map did not fail). ``rand2_cross`` is §7.1's ρ_cross over the evaluated images
    (``inputs.ok``), NaN elsewhere.
    """
    inputs.require("randomisation@2", "m255_randomised", "randomised_ok")
    copies = inputs.extras["m255_randomised"]
    k = getattr(config, "randomisations", None)
    if k is not None and len(copies.shape) == 4 and copies.shape[1] != k:
        raise HfusError(
            f"randomisation@2: {copies.shape[1]} randomised copies given, the run asks for {k} "
            "(--randomisations)"
        )
    pairs = copy_pairs(inputs.m255, copies, inputs.extras["randomised_ok"])
    evaluated = np.asarray(inputs.ok, dtype=bool)
    cross = np.full(len(inputs), np.nan)
    if evaluated.any():
        cross[evaluated] = cross_image_rho(np.asarray(inputs.m255)[evaluated], seed=0)
    return {
        "rand2_rho": pairs.rho,
        "rand2_pearson": pairs.pearson,
        "rand2_pair": pairs.status.astype(np.float64),
        "rand2_cross": cross,
    }


# ------------------------------------------------------------------- randomisation@2: record sections


def _pair_rows(values: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """(pair images, K) values of one fold: the rows whose status is set (images that form pairs)."""
    status = np.asarray(values["rand2_pair"], dtype=np.float64)
    rows = np.isfinite(status).all(axis=1) if status.ndim == 2 else np.zeros(0, bool)
    return np.asarray(values[name], dtype=np.float64)[rows]


def rho_values(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per image: the mean Spearman ρ over its scored copies (NaN: none)."""
    from .stats import nanmean

    return nanmean(np.asarray(values["rand2_rho"], dtype=np.float64), axis=1)


def pearson_values(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per image: the mean Pearson r over its scored copies (NaN: none)."""
    from .stats import nanmean

    return nanmean(np.asarray(values["rand2_pearson"], dtype=np.float64), axis=1)


def rho_ci(per_fold: Sequence[Mapping[str, np.ndarray]]) -> tuple[float, float]:
    """The two-level (copies, then images) bootstrap 95 % CI of mean ρ (PROTOCOL §7.1.1); folds ascending."""
    from .stats import copy_image_bootstrap

    return tuple(copy_image_bootstrap([_pair_rows(v, "rand2_rho") for v in per_fold]))


def pearson_ci(per_fold: Sequence[Mapping[str, np.ndarray]]) -> tuple[float, float]:
    """The two-level bootstrap 95 % CI of mean Pearson r (PROTOCOL §7.1.1)."""
    from .stats import copy_image_bootstrap

    return tuple(copy_image_bootstrap([_pair_rows(v, "rand2_pearson") for v in per_fold]))


def pairs_table(per_fold: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """``randomisation@2/pairs`` per arch: the pair counts over all folds, D and S (shares of all pairs), the
    pair images without a scored copy, and the bootstrap resamples of ρ dropped for having no value."""
    from .stats import copy_image_bootstrap

    status = [_pair_rows(v, "rand2_pair") for v in per_fold]
    k = max((s.shape[1] for s in status if s.ndim == 2), default=0)
    total = sum(int(s.size) for s in status)
    count = {c: sum(int((s == c).sum()) for s in status) for c in (PAIR_SCORED, PAIR_DEGENERATE, PAIR_FAILED)}
    no_value = sum(int((~(s == PAIR_SCORED).any(axis=1)).sum()) for s in status if s.size)
    ci = copy_image_bootstrap([_pair_rows(v, "rand2_rho") for v in per_fold])
    return {
        "copies": int(k),
        "pairs": total,
        "scored": count[PAIR_SCORED],
        "degenerate": count[PAIR_DEGENERATE],
        "failed": count[PAIR_FAILED],
        "degenerate_share": count[PAIR_DEGENERATE] / total if total else None,
        "scored_share": count[PAIR_SCORED] / total if total else None,
        "images_without_value": no_value,
        "dropped_resamples": ci.dropped,
    }


def per_copy_table(per_fold: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """``randomisation@2/per_copy`` per arch: for each copy k, mean ρ and mean r over its scored pairs (per
    fold, then over the folds), and its number of scored pairs; their spread is the copies' effect."""
    from .stats import nanmean

    out: dict[str, Any] = {}
    for key, name in (("rho", "rand2_rho"), ("pearson", "rand2_pearson")):
        folds = [nanmean(_pair_rows(v, name), axis=0) for v in per_fold]
        folds = [f for f in folds if f.size]
        out[key] = [json_number(x) for x in nanmean(np.stack(folds), axis=0)] if folds else []
    status = [_pair_rows(v, "rand2_pair") for v in per_fold]
    status = [s for s in status if s.size]
    out["scored"] = [int(x) for x in sum((s == PAIR_SCORED).sum(axis=0) for s in status)] if status else []
    return out


def verdict_table(per_fold: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """``randomisation@2/verdict`` per arch: the verdict, what it rests on (K, the two CI upper bounds, D, S)
    and the rule (PROTOCOL §7.1.1)."""
    pairs = pairs_table(per_fold)
    rho_high, pearson_high = rho_ci(per_fold)[1], pearson_ci(per_fold)[1]
    d, s = pairs["degenerate_share"], pairs["scored_share"]
    verdict = randomisation_verdict(
        rho_high, pearson_high, np.nan if d is None else d, np.nan if s is None else s
    )
    return {
        "verdict": verdict,
        "copies": pairs["copies"],
        "rho_ci95_high": json_number(rho_high),
        "pearson_ci95_high": json_number(pearson_high),
        "degenerate_share": d,
        "scored_share": s,
        "rule": VERDICT_RULE,
    }
