"""Confidence change under map-guided perturbation (PROTOCOL §4, ``confidence@1``): DiC and IiC.

"Confidence s(x) = the model's raw logit of the target class (study default, unit ``logit``);
``--confidence prob`` uses the softmax probability. With heat map h = m255/255 (broadcast over
channels, same orientation as the image): keep = x·h, remove = x·(1−h); with masks: keep_t = x·M_t,
remove_t = x·(1−M_t) for every t."

All 1 + 2 + 2·T inputs per image (original, heat-map keep/remove, mask keep/remove per threshold) are
built on the model's device, chunk by chunk (at most ``batch_size`` perturbed images exist at once),
and scored under ``torch.inference_mode()``. Unlike the study's scripts, the map is NOT transposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from ..chunking import ForwardInPieces
from ..constants import THRESHOLDS
from ..errors import HfusError
from ..jsonio import json_number
from .localisation import as_m255, threshold_starts
from .postprocess import as_tensor
from .stats import nanmean0

if TYPE_CHECKING:
    from .inputs import ScoringConfig, ScoringInputs

Unit = Literal["logit", "prob"]
UNITS: tuple[str, ...] = ("logit", "prob")


@dataclass
class ConfidenceResult:
    """Per-image confidences (float64): s0 (N,), s_keep (N,), s_remove (N,), s_keep_t / s_remove_t (N, T)."""

    s0: np.ndarray
    s_keep: np.ndarray
    s_remove: np.ndarray
    s_keep_t: np.ndarray
    s_remove_t: np.ndarray
    thresholds: tuple[float, ...]
    unit: str

    def dic(self) -> np.ndarray:
        """Per-image drop in confidence for the heat map, (N,)."""
        return drop_in_confidence(self.s0, self.s_remove)

    def iic(self) -> np.ndarray:
        """Per-image increase indicator for the heat map, (N,)."""
        return increase_in_confidence(self.s0, self.s_keep)

    def dic_t(self) -> np.ndarray:
        """Per-image drop in confidence for each mask threshold, (N, T)."""
        return drop_in_confidence(self.s0, self.s_remove_t)

    def iic_t(self) -> np.ndarray:
        """Per-image increase indicator for each mask threshold, (N, T)."""
        return increase_in_confidence(self.s0, self.s_keep_t)


def _align(s0: Any, s: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(s0, dtype=np.float64)
    b = np.asarray(s, dtype=np.float64)
    if a.shape[:1] != b.shape[:1]:
        raise HfusError(f"confidence arrays disagree on N: {a.shape} vs {b.shape}")
    while a.ndim < b.ndim:  # s0 (N,) against per-threshold (N, T)
        a = a[..., None]
    return a, b


def drop_in_confidence(s0: Any, s_remove: Any) -> np.ndarray:
    """Per-image drop in confidence ``max(0, s0 − s_remove)`` (float64; DiC = its mean over images).

    "DiC (drop in confidence when the important part is covered; higher = the map found what matters)
    = mean over images of max(0, s0 − s_remove)." ``s0`` (N,) broadcasts against ``s_remove`` (N, T).
    NaN in either input gives NaN.
    """
    a, b = _align(s0, s_remove)
    d = a - b
    return np.where(np.isnan(d), np.nan, np.maximum(d, 0.0))


def increase_in_confidence(s0: Any, s_keep: Any) -> np.ndarray:
    """Per-image indicator ``s_keep > s0`` as float64 1.0 / 0.0 (IiC % = 100 · its mean over images).

    "IiC (increase in confidence when the unimportant part is covered; higher is better) = percentage
    of images with s_keep > s0." ``s0`` (N,) broadcasts against ``s_keep`` (N, T); NaN input gives NaN.
    """
    a, b = _align(s0, s_keep)
    return np.where(np.isnan(a) | np.isnan(b), np.nan, (b > a).astype(np.float64))


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    for b in model.buffers():
        if b.is_floating_point():
            return b.device, b.dtype
    return torch.device("cpu"), torch.float32


def _check_inputs(
    model: nn.Module, images: Any, maps: Any, targets: Any, unit: str, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """:func:`confidence_change`'s arguments checked: images, m255 maps, targets (tensors), batch size."""
    if unit not in UNITS:
        raise HfusError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if model.training:
        raise HfusError(
            "model is in training mode (batch-norm / dropout would change the scores); "
            "call model.eval() first"
        )
    if int(batch_size) < 1:
        raise HfusError(f"batch_size must be >= 1, got {batch_size}")
    x = as_tensor(images, "images")
    if x.ndim != 4 or not x.is_floating_point():
        raise HfusError(f"images: expected float (N, C, H, W) in [0, 1], got {tuple(x.shape)} {x.dtype}")
    m = as_m255(maps)
    n = x.shape[0]
    if tuple(m.shape) != (n, *x.shape[-2:]):
        raise HfusError(f"maps: shape {tuple(m.shape)} does not match the images {tuple(x.shape)}")
    tg = as_tensor(targets, "targets")
    if tg.ndim != 1 or tg.shape[0] != n or tg.is_floating_point() or tg.dtype == torch.bool:
        raise HfusError(
            f"targets: expected (N,) = ({n},) integer class indices, got {tuple(tg.shape)} {tg.dtype}"
        )
    return x, m, tg, int(batch_size)


def confidence_change(
    model: nn.Module,
    images: Any,
    maps: Any,
    targets: Any,
    unit: Unit = "logit",
    thresholds: Sequence[float] = THRESHOLDS,
    batch_size: int = 64,
) -> ConfidenceResult:
    """Confidence of the target class on the original and the map-perturbed images (PROTOCOL §4).

    ``s(x)`` = raw logit of the target class (``unit="logit"``, default) or its softmax probability
    (``"prob"``). With h = m255/255 broadcast over channels in the image's orientation:
    keep = x·h, remove = x·(1−h), keep_t = x·M_t, remove_t = x·(1−M_t), M_t = (m255/255) > t/100.

    ``model``: in eval mode (a model in training mode is refused), on its device; ``images``: (N, C, H, W)
    float in [0, 1]; ``maps``: (N, H, W) ``m255`` uint8 (float maps are quantised first); ``targets``: (N,)
    class indices. ``batch_size`` bounds the number of images per forward pass (and so the perturbed
    images held at once). Returns a :class:`ConfidenceResult` of float64 numpy arrays.
    """
    x, m, tg, batch_size = _check_inputs(model, images, maps, targets, unit, batch_size)
    n = x.shape[0]
    starts = torch.as_tensor(threshold_starts(thresholds))
    nt = int(starts.numel())
    nv = 1 + 2 + 2 * nt  # original, keep, remove, keep_t..., remove_t...

    device, dtype = _model_device_dtype(model)
    lut = _variant_multipliers(starts, device, dtype)
    scores = _variant_scores(model, x, m, tg, lut, nv, unit, batch_size)
    s = scores.view(n, nv).numpy()
    return ConfidenceResult(
        s0=s[:, 0].copy(),
        s_keep=s[:, 1].copy(),
        s_remove=s[:, 2].copy(),
        s_keep_t=s[:, 3 : 3 + nt].copy(),
        s_remove_t=s[:, 3 + nt :].copy(),
        thresholds=tuple(thresholds),
        unit=unit,
    )


def _variant_multipliers(starts: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Each variant's pixel multiplier as a function of the m255 value v, a flat (nv · 256) lookup table:
    original 1 | keep h = v/255 | remove 1 − h | keep_t M_t = [v ≥ start_t] | remove_t 1 − M_t."""
    v = torch.arange(256, device=device)
    heat = v.to(dtype) / 255.0
    masks = (v[None, :] >= starts.to(device)[:, None]).to(dtype)
    return torch.cat(
        [torch.ones_like(heat)[None], heat[None], (1.0 - heat)[None], masks, 1.0 - masks]
    ).reshape(-1)


def _variant_scores(
    model: nn.Module,
    x: torch.Tensor,
    m: torch.Tensor,
    tg: torch.Tensor,
    lut: torch.Tensor,
    nv: int,
    unit: Unit,
    batch_size: int,
) -> torch.Tensor:
    """``s`` of every (image, variant), image-major, float64 on the CPU: the variants are made and
    forwarded ``batch_size`` at a time on the model's device."""
    device, dtype = lut.device, lut.dtype
    n = x.shape[0]
    total = n * nv
    # scores stay on the device until the end (no host round trip per chunk); MPS has no float64
    acc = torch.float32 if device.type == "mps" else torch.float64
    scores = torch.empty(total, dtype=acc, device=device)
    tg_dev = tg.to(device, torch.int64)
    if n and (bool((tg_dev < 0).any())):
        raise HfusError("targets: negative class index")
    top = int(tg_dev.max()) if n else -1
    forward = ForwardInPieces(model, device)
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            job = torch.arange(start, min(start + batch_size, total), device=device)
            img, var = job // nv, job % nv
            mb = m.index_select(0, img.to(m.device)).to(device)
            mult = torch.take(lut, mb.to(torch.int64).add_((var * 256).view(-1, 1, 1)))
            xb = x.index_select(0, img.to(x.device)).to(device, dtype)
            xb.mul_(mult.unsqueeze(1))
            logits = forward(xb)
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != xb.shape[0]:
                raise HfusError("model: expected logits (B, num_classes) from a forward pass")
            if top >= logits.shape[1]:
                raise HfusError(f"targets: class index >= number of model outputs ({logits.shape[1]})")
            out = logits.to(acc)
            if unit == "prob":
                out = torch.softmax(out, dim=1)
            scores[start : start + xb.shape[0]] = out.gather(1, tg_dev[img].view(-1, 1)).view(-1)
    return scores.cpu().double()


# ----------------------------------------------------------------------- registry entry points


def score_confidence(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``confidence@1``: ``s0``, ``s_keep``, ``s_remove`` (N,) and ``s_keep_t``, ``s_remove_t`` (N, T)."""
    inputs.require("confidence@1", "model", "images")
    device, _ = _model_device_dtype(inputs.model)
    res = confidence_change(
        inputs.model,
        inputs.images,
        torch.from_numpy(np.ascontiguousarray(inputs.m255)).to(device),
        torch.from_numpy(inputs.targets).to(device),
        unit=config.confidence,
        thresholds=config.thresholds,
        batch_size=config.forward_batch(device),
    )
    return {
        "s0": res.s0,
        "s_keep": res.s_keep,
        "s_remove": res.s_remove,
        "s_keep_t": res.s_keep_t,
        "s_remove_t": res.s_remove_t,
    }


def dic_values(values: dict[str, np.ndarray]) -> np.ndarray:
    """Per-image DiC term of ``confidence@1/dic``: max(0, s0 − s_remove)."""
    return drop_in_confidence(values["s0"], values["s_remove"])


def iic_values(values: dict[str, np.ndarray]) -> np.ndarray:
    """Per-image IiC term of ``confidence@1/iic`` in %: 100 · [s_keep > s0]."""
    return 100.0 * increase_in_confidence(values["s0"], values["s_keep"])


def threshold_table(
    per_fold: Sequence[dict[str, np.ndarray]], thresholds: Sequence[int] = THRESHOLDS
) -> dict:
    """``confidence@1/thresholds`` section per arch: DiC and IiC % per mask threshold (mean of fold means)."""
    dic = [nanmean0(drop_in_confidence(v["s0"], v["s_remove_t"])) for v in per_fold]
    iic = [nanmean0(100.0 * increase_in_confidence(v["s0"], v["s_keep_t"])) for v in per_fold]

    def js(row: np.ndarray) -> list[float | None]:
        return [json_number(x) for x in row]

    return {
        "thresholds": list(thresholds),
        "dic": js(nanmean0(np.stack(dic))),
        "iic": js(nanmean0(np.stack(iic))),
    }
