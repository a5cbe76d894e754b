"""Localisation metrics against the skin layer map (PROTOCOL §4): Hit Rate, SLM coverage, mask IoU.

Inputs (all functions):

- ``maps``: (N, H, W) saliency maps, numpy or torch on any device. **uint8 maps are read as ``m255``**
  ("All metrics read ``m255``", PROTOCOL §3.1): each image's max must be 255 (or the map all zero).
  Floating-point maps are quantised first with :func:`~hfus_xai_bench.metrics.quantize`
  (``floor(255 · m / max m)``). Other integer dtypes are taken as ``m255`` if their values lie in 0..255.
- ``slms``: (N, H, W) skin layer maps with levels {255, 128, 64, 32, 0} (uint8 preferred), same shape.

Everything is computed from one joint histogram per image, ``counts[n, v, l]`` = number of pixels
with ``m255 == v`` and ``SLM == SLM_LEVELS[l]`` (one ``bincount`` per chunk of images, on the maps' device),
so the cost is one pass over the pixels whatever the number of thresholds. Results are float64
numpy arrays on the CPU; undefined values are NaN (see each function).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..constants import SLM_LEVELS, THRESHOLDS
from ..errors import HfusError
from ..jsonio import json_number
from .postprocess import as_tensor, compute_device, quantize
from .stats import nanmean0

if TYPE_CHECKING:
    from .inputs import ScoringConfig, ScoringInputs

#: Hit Rate 1 score per SLM level, in ``SLM_LEVELS`` order (255, 128, 64, 32, 0) (PROTOCOL §1.1).
HR1_SCORES: tuple[int, ...] = (3, 2, 1, 0, -1)
#: Binary Hit Rate score per SLM level, in ``SLM_LEVELS`` order.
HR2_SCORES: tuple[int, ...] = (1, 0, 0, 0, -1)

# slm >> 5 maps the levels (255, 128, 64, 32, 0) to the codes (7, 4, 2, 1, 0); 8 codes per m255 value.
_LEVEL_CODES = torch.tensor([lv >> 5 for lv in SLM_LEVELS])
_CHUNK = 16  # images per bincount chunk (keeps the int32 keys in cache; measured fastest on CPU)


def as_m255(maps: Any) -> torch.Tensor:
    """Maps as a uint8 ``m255`` tensor (N, H, W) on their device (see the module docstring)."""
    t = as_tensor(maps, "maps")
    if t.ndim != 3:
        raise HfusError(f"maps: expected (N, H, W), got shape {tuple(t.shape)}; add a batch dimension")
    if t.is_floating_point():
        return quantize(t)
    if t.dtype == torch.bool or t.is_complex():
        raise HfusError(f"maps: expected m255 (uint8) or float maps, got dtype {t.dtype}")
    if t.dtype != torch.uint8:
        if t.numel() and bool(((t < 0) | (t > 255)).any()):
            raise HfusError(
                "maps: integer maps must be m255 values in 0..255; pass float maps to quantise them"
            )
        t = t.to(torch.uint8)
    if t.numel():
        mx = t.reshape(t.shape[0], -1).amax(dim=1)
        bad = (mx != 255) & (mx != 0)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            raise HfusError(
                f"maps: uint8 map {i} has max {int(mx[i])}, not 255: m255 maps are max-normalised; "
                "pass the float map (it is quantised) or quantize() it first"
            )
    return t


def as_slm(slms: Any, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """SLMs as a uint8 tensor of ``shape`` on ``device``; every value must be one of ``SLM_LEVELS``."""
    s = as_tensor(slms, "slms")
    if tuple(s.shape) != tuple(shape):
        raise HfusError(f"slms: shape {tuple(s.shape)} does not match the maps {tuple(shape)}")
    s = s.to(device)
    if s.dtype == torch.uint8:
        hist = torch.bincount(s.reshape(-1), minlength=256)
        hist[list(SLM_LEVELS)] = 0
        ok = not bool(hist.any())
    else:
        ok = bool(sum((s == lv) for lv in SLM_LEVELS).all()) if s.numel() else True
    if not ok:
        raise HfusError(f"slms: values other than the SLM levels {SLM_LEVELS}; pass slm@1 maps (uint8)")
    return s.to(torch.uint8)


def joint_histogram(maps: Any, slms: Any) -> np.ndarray:
    """``counts[n, v, l]`` (int64, (N, 256, 5)): pixels of image n with ``m255 == v`` and SLM level l.

    Levels are in ``SLM_LEVELS`` order (255, 128, 64, 32, 0). Every localisation metric is a function
    of this table; compute it once and use the ``*_from_counts`` functions to get all of them.
    """
    m = as_m255(maps)
    dev = compute_device(m.device)
    m = m.to(dev)
    s = as_slm(slms, m.shape, dev)
    n = m.shape[0]
    if n == 0:
        return np.zeros((0, 256, len(SLM_LEVELS)), dtype=np.int64)
    parts = []
    for start in range(0, n, _CHUNK):
        mc, sc = m[start : start + _CHUNK], s[start : start + _CHUNK]
        k = mc.to(torch.int32)
        k.bitwise_left_shift_(3).bitwise_or_(sc >> 5)
        k.add_((torch.arange(k.shape[0], dtype=torch.int32, device=dev) * 2048).view(-1, 1, 1))
        parts.append(torch.bincount(k.reshape(-1), minlength=k.shape[0] * 2048))
    h = torch.cat(parts).view(n, 256, 8)[:, :, _LEVEL_CODES.to(dev)]
    return h.cpu().numpy().astype(np.int64, copy=False)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den in float64, NaN where den == 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def threshold_starts(thresholds: Sequence[float]) -> np.ndarray:
    """For each t, the smallest m255 value v with (v / 255) > t / 100, i.e. 100·v > 255·t (exact for integer
    t)."""
    ts = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if ts.size == 0 or not np.isfinite(ts).all() or (ts < 0).any() or (ts > 100).any():
        raise HfusError(
            f"thresholds must be a non-empty list of percentages in [0, 100], got {list(thresholds)}"
        )
    v = np.arange(257, dtype=np.float64)
    return np.argmax(100.0 * v[None, :] > 255.0 * ts[:, None], axis=1)


def hit_rate_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hr1, hr2) from a :func:`joint_histogram` table; NaN where the map has no peak (all zero)."""
    peak = counts[:, 255, :]
    npk = peak.sum(axis=1)
    return _div(peak @ np.array(HR1_SCORES), npk), _div(peak @ np.array(HR2_SCORES), npk)


def slm_coverage_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cov_top, cov_bg) from a :func:`joint_histogram` table; NaN where the SLM region is empty."""
    region = counts.sum(axis=1)  # (N, 5) pixels per level
    mass = np.einsum("nvl,v->nl", counts, np.arange(256, dtype=np.int64))  # sum of m255 per level
    cov = _div(mass, 255.0 * region)
    return cov[:, 0], cov[:, -1]


def mask_iou_from_counts(counts: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """IoU (N, T, 5) from a :func:`joint_histogram` table; NaN where the union is empty."""
    starts = threshold_starts(thresholds)
    n, _, nl = counts.shape
    above = np.zeros((n, 257, nl), dtype=np.int64)  # above[:, v] = pixels with m255 >= v, per level
    above[:, :256] = np.cumsum(counts[:, ::-1, :], axis=1)[:, ::-1, :]
    inter = above[:, starts, :]  # (N, T, 5) |M_t ∩ {SLM == L}|
    mask_size = inter.sum(axis=2, keepdims=True)  # |M_t| (every pixel has a level)
    region = counts.sum(axis=1)[:, None, :]
    return _div(inter, mask_size + region - inter)


def hit_rate(maps: Any, slms: Any) -> tuple[np.ndarray, np.ndarray]:
    """Hit Rate 1 and binary Hit Rate per image: ``(hr1[N], hr2[N])`` float64 (PROTOCOL §4).

    "``hit_rate@1``: peak set P = {pixels with m255 == 255} (all ties kept; plateaus are averaged).
    HR1 = mean over P of the level score" {255: +3, 128: +2, 64: +1, 32: 0, 0: −1}.
    "``hit_rate_binary@1``: same peak set, binary score" {255: +1, 128/64/32: 0, 0: −1}.
    An all-zero map has no peak: NaN (the harness counts it as failed, reason ``empty_map``).
    """
    return hit_rate_from_counts(joint_histogram(maps, slms))


def slm_coverage(maps: Any, slms: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean map value inside the top and background SLM regions: ``(cov_top[N], cov_bg[N])`` (PROTOCOL §4).

    "``cov_top`` = mean of m255/255 over pixels with SLM == 255 (higher is better); ``cov_bg`` = mean
    of m255/255 over pixels with SLM == 0 (lower is better)." NaN where the region is empty.
    """
    return slm_coverage_from_counts(joint_histogram(maps, slms))


def mask_iou(maps: Any, slms: Any, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """IoU of threshold masks with each SLM level: float64 (N, T, 5), levels (255, 128, 64, 32, 0) (PROTOCOL
    §4).

    "For t in {50, 55, …, 95}: mask M_t = (m255/255) > t/100; IoU(M_t, SLM == L) for each level L in
    {255, 128, 64, 32, 0}. An empty union gives NaN for that image." The strict ``>`` is evaluated
    exactly as ``100 · m255 > 255 · t`` (identical to the float comparison for every integer t in 0..100;
    e.g. at t = 60 the value 153 = 0.6 · 255 is *not* in the mask).
    """
    return mask_iou_from_counts(joint_histogram(maps, slms), thresholds)


@dataclass
class LocalisationResult:
    """All localisation metrics of a batch, from one pass over the pixels."""

    hr1: np.ndarray  # (N,)
    hr2: np.ndarray  # (N,)
    cov_top: np.ndarray  # (N,)
    cov_bg: np.ndarray  # (N,)
    iou: np.ndarray  # (N, T, 5), levels SLM_LEVELS
    n_peak: np.ndarray  # (N,) int64, size of the peak set (0: empty map)
    thresholds: tuple[float, ...]


def localisation_metrics(
    maps: Any, slms: Any, thresholds: Sequence[float] = THRESHOLDS
) -> LocalisationResult:
    """:func:`hit_rate`, :func:`slm_coverage` and :func:`mask_iou` at once (one histogram pass)."""
    counts = joint_histogram(maps, slms)
    hr1, hr2 = hit_rate_from_counts(counts)
    cov_top, cov_bg = slm_coverage_from_counts(counts)
    return LocalisationResult(
        hr1=hr1,
        hr2=hr2,
        cov_top=cov_top,
        cov_bg=cov_bg,
        iou=mask_iou_from_counts(counts, thresholds),
        n_peak=counts[:, 255, :].sum(axis=1),
        thresholds=tuple(thresholds),
    )


# ----------------------------------------------------------------------- registry entry points
# ``f(inputs, config) -> {value name: array over the scored images}`` (metrics/registry.py), sharing
# one joint histogram per inputs object.


def _counts(inputs: ScoringInputs) -> np.ndarray:
    return inputs.shared("joint_histogram", lambda: joint_histogram(inputs.m255, inputs.slms))


def score_hit_rate(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``hit_rate@1``: ``{"hr1": (N,)}``."""
    return {"hr1": hit_rate_from_counts(_counts(inputs))[0]}


def score_hit_rate_binary(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``hit_rate_binary@1``: ``{"hr2": (N,)}``."""
    return {"hr2": hit_rate_from_counts(_counts(inputs))[1]}


def score_slm_coverage(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``slm_coverage@1``: ``{"cov_top": (N,), "cov_bg": (N,)}``."""
    cov_top, cov_bg = slm_coverage_from_counts(_counts(inputs))
    return {"cov_top": cov_top, "cov_bg": cov_bg}


def score_mask_iou(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``mask_iou@1``: ``{"iou": (N, T, 5)}``."""
    return {"iou": mask_iou_from_counts(_counts(inputs), config.thresholds)}


def iou_table(per_fold: Sequence[dict[str, np.ndarray]], thresholds: Sequence[int] = THRESHOLDS) -> dict:
    """``mask_iou@1`` section per arch: mean IoU per threshold × level (mean of fold means); ``n_nan`` per
    cell: the images without a value (an empty union, or a failed map: the table sees no failure reasons)."""
    iou_folds = [nanmean0(v["iou"]) for v in per_fold]
    return {
        "thresholds": list(thresholds),
        "levels": list(SLM_LEVELS),
        "mean": [[json_number(x) for x in row] for row in nanmean0(np.stack(iou_folds))],
        "n_nan": [[int(x) for x in row] for row in sum((~np.isfinite(v["iou"])).sum(0) for v in per_fold)],
    }
