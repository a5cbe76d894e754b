"""Skin layer map (SLM), ``slm@1`` (PROTOCOL §1.1), as one pure, vectorised function.

Read column by column (row 0 = top = gel / probe side):

* 255 = epidermis ∪ SLEB ∪ tumour (the union of the masks, kept exactly as it is: a gap between
  two structures inside one column is *not* filled, it is whatever the bands below make of it,
  i.e. 0 when it lies above the lowest tissue pixel);
* 128 = the 36 px directly below the lowest 255 pixel of the column;
* 64 = the next 36 px;
* 32 = the next 36 px, and the 16 px directly above the topmost 255 pixel (the skin surface);
* 0 elsewhere. A column without tissue is 0; columns 0–4 and 223 are 0 (scale bar / border).

Bands are clipped at the image edges; a lower band never overwrites a higher level.
"""

from __future__ import annotations

import numpy as np

from ..constants import IMAGE_SIZE

SLM_VERSION = "slm@1"

#: Width in px of each band below the 255 region (levels 128, 64, 32).
BAND_WIDTH = 36
#: Width in px of the 32-band directly above the skin surface.
ABOVE_WIDTH = 16
#: Columns that are always 0 (left scale bar and right border of the exports).
ZERO_COLUMNS: tuple[int, ...] = (0, 1, 2, 3, 4, IMAGE_SIZE - 1)


def _as_bool(mask: np.ndarray | None, shape: tuple[int, ...] | None) -> np.ndarray | None:
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.ndim not in (2, 3):
        raise ValueError(f"masks must be (H, W) or (N, H, W), got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"mask shapes differ: {arr.shape} vs {shape}")
    return arr if arr.dtype == bool else arr != 0


def skin_layer_map(
    epidermis: np.ndarray | None,
    sleb: np.ndarray | None = None,
    tumor: np.ndarray | None = None,
) -> np.ndarray:
    """``slm@1`` from the structure masks (boolean or 0/255; any non-zero pixel is foreground).

    Accepts (H, W) or batched (N, H, W) masks (normally 224×224); ``None`` = structure absent.
    Returns uint8 of the same shape with levels {255, 128, 64, 32, 0}.
    """
    masks = [epidermis, sleb, tumor]
    shape = next((np.shape(m) for m in masks if m is not None), None)
    if shape is None:
        raise ValueError("skin_layer_map needs at least one mask")
    union = np.zeros(shape, dtype=bool)
    for m in masks:
        b = _as_bool(m, shape)
        if b is not None:
            union |= b
    batched = union.ndim == 3
    if not batched:
        union = union[None]
    n, h, w = union.shape

    has = union.any(axis=1)  # (N, W)
    top = np.argmax(union, axis=1)  # first tissue row per column
    bottom = h - 1 - np.argmax(union[:, ::-1, :], axis=1)  # last tissue row per column
    rows = np.arange(h, dtype=np.int32)[None, :, None]
    below = rows - bottom[:, None, :]  # > 0 under the lowest tissue pixel
    above = top[:, None, :] - rows  # > 0 over the topmost tissue pixel

    out = np.zeros((n, h, w), dtype=np.uint8)
    # From the lowest level up, so a higher level always wins where regions could meet.
    out[((below > 2 * BAND_WIDTH) & (below <= 3 * BAND_WIDTH)) | ((above > 0) & (above <= ABOVE_WIDTH))] = 32
    out[(below > BAND_WIDTH) & (below <= 2 * BAND_WIDTH)] = 64
    out[(below > 0) & (below <= BAND_WIDTH)] = 128
    out[union] = 255
    out *= has[:, None, :]  # a column without tissue is 0
    out[:, :, :5] = 0  # columns 0-4 and the last column (223 at 224 px)
    out[:, :, -1] = 0
    return out if batched else out[0]
