"""Canonical post-processing of saliency maps (PROTOCOL §3.1): attribution → map in [0, 1] → ``m255``.

Both functions keep the array type of their input: a torch tensor comes back as a torch tensor on the
same device, a numpy array as a numpy array. Work is batched over N (chunked to bound memory).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from ..errors import HfusError

Sign = Literal["pos", "abs", "neg"]
SIGNS: tuple[str, ...] = ("pos", "abs", "neg")

#: Share of the attribution mass below the normalisation threshold (captum ``outlier_perc=2``).
MASS_PERCENTILE = 98.0

#: Images processed per internal chunk (bounds the float64 temporaries; ~13 MB per chunk at 224×224).
_CHUNK = 16


def compute_device(device: torch.device) -> torch.device:
    """float64 is not available on MPS: compute there on the CPU instead."""
    return torch.device("cpu") if device.type == "mps" else device


def as_tensor(x: Any, name: str) -> torch.Tensor:
    """A numpy array / torch tensor / nested sequence as a torch tensor (no copy where possible)."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        arr = np.asarray(x)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise HfusError(
            f"{name}: cannot read it as an array ({err}); pass a numpy array or torch tensor"
        ) from err
    if arr.dtype == object:
        raise HfusError(f"{name}: ragged or non-numeric input; pass a numeric (N, H, W) array")
    if not arr.flags.writeable or not arr.flags.c_contiguous or arr.dtype.byteorder not in ("=", "|"):
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    return torch.from_numpy(arr)


def _like_input(result: torch.Tensor, original: Any) -> Any:
    """Return ``result`` as a torch tensor if ``original`` was one, else as a numpy array."""
    if isinstance(original, torch.Tensor):
        return result.to(original.device)
    return result.cpu().numpy()


def _check_finite(t: torch.Tensor, name: str) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise HfusError(f"{name}: contains NaN or Inf; the explainer must return finite values")


def normalize_attribution(attr: Any, sign: Sign = "pos") -> Any:
    """Reduce signed attributions to a map in [0, 1] (PROTOCOL §3.1, step 1).

    "Signed attributions are reduced to one channel by summing over the colour channels, then a sign
    policy is applied: ``pos`` (keep > 0, default), ``abs``, or ``neg`` (keep < 0, negated). Then divide
    by the 98 % cumulative-mass threshold of the kept values (sort ascending, first value where the
    cumulative sum reaches 98 % of the total) and clip to [0, 1]."

    ``attr``: (N, C, H, W) or (N, H, W) (a 3-D input is read as (N, H, W), already one channel), numpy
    or torch on any device. Returns (N, H, W) float32 of the input's type and device.

    Conformance: equal to captum 0.9's ``_normalize_attr(attr.sum(channel), sign, outlier_perc=2)`` on
    float64 input (``neg``: captum keeps values < 0 and divides by the negated threshold, which gives
    the same non-negative map). Differences: sums and cumulative sums are taken in float64 whatever
    the input dtype (captum accumulates in the input dtype, so on float32 input the chosen threshold
    element can differ where partial sums tie within float32 rounding); a map with nothing kept (all
    values ≤ 0 for ``pos``) gives an all-zero map here, where captum raises an assertion error.
    """
    if sign not in SIGNS:
        raise HfusError(f"sign must be one of {', '.join(SIGNS)}, got {sign!r}")
    t = as_tensor(attr, "attr")
    if t.ndim not in (3, 4):
        raise HfusError(f"attr: expected (N, C, H, W) or (N, H, W), got shape {tuple(t.shape)}")
    if not (
        t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
    ):
        raise HfusError(f"attr: expected a real numeric array, got dtype {t.dtype}")
    _check_finite(t, "attr")
    dev = compute_device(t.device)
    n = t.shape[0]
    h, w = t.shape[-2:]
    out = torch.empty((n, h, w), dtype=torch.float32, device=dev)
    for start in range(0, n, _CHUNK):
        x = t[start : start + _CHUNK].to(dev, torch.float64)
        if x.ndim == 4:
            x = x.sum(dim=1)
        if sign == "pos":
            kept = x.clamp_min_(0.0)
        elif sign == "neg":
            kept = x.clamp_max_(0.0).neg_()
        else:
            kept = x.abs_()
        flat = kept.reshape(kept.shape[0], -1)
        srt = torch.sort(flat, dim=1).values
        cum = torch.cumsum(srt, dim=1)
        # captum: cum_sums >= cum_sums[-1] * 0.01 * percentile, first index (same operation order)
        reach = cum >= (cum[:, -1:] * 0.01) * MASS_PERCENTILE
        idx = reach.to(torch.uint8).argmax(dim=1, keepdim=True)  # first True (always one: the last)
        thr = torch.gather(srt, 1, idx)
        safe = torch.where(thr > 0, thr, torch.ones_like(thr))
        norm = torch.where(thr > 0, flat / safe, torch.zeros_like(flat)).clamp_(0.0, 1.0)
        out[start : start + _CHUNK] = norm.reshape(-1, h, w)
    return _like_input(out, attr)


def quantize(maps: Any) -> Any:
    """Max-normalise and quantise maps to ``m255`` (PROTOCOL §3.1, step 2).

    "``m = map / max(map)``; ``m255 = floor(255 · m)`` as uint8. A map whose max is 0 (all zero) has no
    peak." Computed in float64 per image, so only pixels exactly equal to the maximum reach 255
    (e.g. a pixel at 0.999999 · max gives 254); an all-zero map gives all zeros.

    ``maps``: (N, H, W) real, finite, ≥ 0 (numpy or torch, any device). Returns (N, H, W) uint8 of the
    input's type and device.
    """
    t = as_tensor(maps, "maps")
    if t.ndim != 3:
        raise HfusError(f"maps: expected (N, H, W), got shape {tuple(t.shape)}; add a batch dimension")
    if t.dtype == torch.bool or t.is_complex():
        raise HfusError(f"maps: expected a real numeric array, got dtype {t.dtype}")
    _check_finite(t, "maps")
    if t.numel() and bool((t < 0).any()):
        raise HfusError("maps: negative values; clip CAM-type maps at 0 or use normalize_attribution first")
    dev = compute_device(t.device)
    out = torch.empty(t.shape, dtype=torch.uint8, device=dev)
    for start in range(0, t.shape[0], _CHUNK):
        x = t[start : start + _CHUNK].to(dev, torch.float64)
        mx = x.amax(dim=(1, 2), keepdim=True)
        mx = torch.where(mx > 0, mx, torch.ones_like(mx))  # all-zero map: 0 / 1 = 0
        out[start : start + _CHUNK] = x.div_(mx).mul_(255.0).floor_()
    return _like_input(out, maps)
