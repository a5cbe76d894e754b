"""Bilinear resize of uint8 images, bit-identical to Pillow's ``Image.resize(size, Image.BILINEAR)``.

The importer resizes every image and mask to 224×224 (PROTOCOL §1). Pillow's resampler is an
integer convolution (22-bit fixed-point weights) whose weights come from double arithmetic, so it
is exact on every machine *if* Pillow's build and version stay the same. This module re-states the
same algorithm (``precompute_coeffs`` + ``normalize_coeffs_8bpc`` + the horizontal then vertical
pass of Pillow's ``Resample.c``) in numpy: weights in float64 with only + − × ÷ and truncation,
sums in int64 (exact, so order-independent), so the bytes depend on nothing but the input. A
conformance test checks it against the installed Pillow on random and real images.
"""

from __future__ import annotations

import numpy as np

from ..constants import IMAGE_SIZE
from ..errors import HfusError

#: Pillow's fixed-point precision for 8-bit images: 32 - 8 - 2.
PRECISION_BITS = 22


def _coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights (out_size, ksize) and first source index per output pixel (Pillow's rule)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # bilinear support 1
    ksize = int(np.ceil(support)) * 2 + 1
    ss = 1.0 / filterscale
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C cast: truncation toward 0
    xmax = np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin
    j = np.arange(ksize, dtype=np.int64)
    valid = j[None, :] < xmax[:, None]
    t = np.abs((j[None, :] + xmin[:, None]).astype(np.float64) - center[:, None] + 0.5) * ss
    w = np.where(valid & (t < 1.0), 1.0 - t, 0.0)
    ww = np.zeros(out_size, dtype=np.float64)
    for k in range(ksize):  # sequential sum, as in C (not a vectorised reduction)
        ww = ww + w[:, k]
    w = np.where(ww[:, None] != 0.0, w / np.where(ww == 0.0, 1.0, ww)[:, None], w)
    scaled = w * float(1 << PRECISION_BITS)
    kk = np.where(scaled < 0, (scaled - 0.5).astype(np.int64), (scaled + 0.5).astype(np.int64))
    return kk, xmin


def _pass(a: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One 1-D resampling pass of an integer array along ``axis`` (0 rows, 1 columns)."""
    in_size = a.shape[axis]
    kk, xmin = _coefficients(in_size, out_size)
    ksize = kk.shape[1]
    idx = np.minimum(xmin[:, None] + np.arange(ksize)[None, :], in_size - 1)  # padded taps have weight 0
    src = np.take(a.astype(np.int64), idx, axis=axis)  # axis expands to (out, ksize)
    shape = [1] * src.ndim
    shape[axis], shape[axis + 1] = out_size, ksize
    acc = (src * kk.reshape(shape)).sum(axis=axis + 1) + (1 << (PRECISION_BITS - 1))
    return np.clip(acc >> PRECISION_BITS, 0, 255).astype(np.uint8)


def resize_bilinear(arr: np.ndarray, size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)) -> np.ndarray:
    """Resize a uint8 image (H, W) or (H, W, C) to ``size`` = (width, height), as Pillow's BILINEAR.

    Pillow's two passes, each rounding to uint8, a pass skipped when its size does not change:
    always horizontal first. (Pillow 13 sometimes runs the vertical pass first, by an internal
    heuristic, which moves some pixels by 1 for other size pairs; a fixed order keeps the bytes
    independent of the Pillow version. For landscape frames → 224×224, what the benchmark imports,
    both agree: tested.)
    """
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise HfusError(
            f"resize_bilinear needs a uint8 (H, W) or (H, W, C) array, got {arr.dtype} {arr.shape}"
        )
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise HfusError(f"resize target must be positive (width, height), got {size!r}")
    out = arr
    if out.shape[1] != width:
        out = _pass(out, width, axis=1)
    if out.shape[0] != height:
        out = _pass(out, height, axis=0)
    return np.ascontiguousarray(out, dtype=np.uint8)


def resize_mask(mask: np.ndarray, size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)) -> np.ndarray:
    """A full-size 0/255 mask → bilinear resize → ``> 127`` → 0/255 uint8 (the importer's mask rule)."""
    return np.where(resize_bilinear(mask, size) > 127, 255, 0).astype(np.uint8)
