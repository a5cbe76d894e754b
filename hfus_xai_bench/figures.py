"""Figures for a result: image / skin layer map / map overlay for the best and worst images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from .constants import CLASSES, IMAGE_SIZE

if TYPE_CHECKING:
    from .results import FoldScores

_TURBO_KNOTS = np.array(
    [
        [48, 18, 59],
        [70, 107, 227],
        [40, 188, 235],
        [50, 241, 152],
        [164, 252, 60],
        [239, 198, 46],
        [244, 100, 30],
        [122, 4, 3],
    ],
    dtype=np.float32,
)


def colormap(m255: np.ndarray) -> np.ndarray:
    """uint8 (H, W) → RGB uint8 (H, W, 3) with a turbo-like palette (blue = 0, dark red = 255)."""
    pos = m255.astype(np.float32) / 255.0 * (len(_TURBO_KNOTS) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_TURBO_KNOTS) - 2)
    frac = (pos - lo)[..., None]
    return (_TURBO_KNOTS[lo] * (1 - frac) + _TURBO_KNOTS[lo + 1] * frac).astype(np.uint8)


def overlay(image: np.ndarray, m255: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend an RGB image with the coloured map."""
    return (image.astype(np.float32) * (1 - alpha) + colormap(m255).astype(np.float32) * alpha).astype(
        np.uint8
    )


def _tile(panels: Sequence[np.ndarray], caption: str) -> Image.Image:
    strip = Image.fromarray(np.concatenate(panels, axis=1))
    canvas = Image.new("RGB", (strip.width, strip.height + 14), "white")
    canvas.paste(strip, (0, 14))
    ImageDraw.Draw(canvas).text((2, 1), caption, fill="black")
    return canvas


def best_worst_figure(runs: Sequence[FoldScores], ds: Any, path: str | Path, k: int = 4) -> Path | None:
    """Write a PNG grid (image | SLM | overlay) of the ``k`` best and ``k`` worst images by the headline score
    (HR1)."""
    from .data.dataset import fold_arrays
    from .metrics.registry import HEADLINE

    candidates = []
    for r, run in enumerate(runs):
        score = run.output(HEADLINE)
        for i in np.flatnonzero(np.isfinite(score)):
            candidates.append((float(score[i]), r, int(i)))
    if not candidates or any(run.maps is None for run in runs):
        return None
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    picked = candidates[:k] + [c for c in candidates[-k:] if c not in candidates[:k]]
    arrays = {}
    tiles = []
    for rank, (hr1, r, i) in enumerate(picked):
        run = runs[r]
        if r not in arrays:
            arrays[r] = fold_arrays(ds, run.fold, "test")
        data = arrays[r]
        slm = np.repeat(data.slms[i][..., None], 3, axis=2)
        label = "best" if rank < min(k, len(candidates)) else "worst"
        classes = f"{CLASSES[run.labels[i]]}->{CLASSES[run.preds[i]]}"
        caption = f"{label}: {run.arch} f{run.fold} {run.image_ids[i]} {classes} HR1={hr1:.2f}"
        tiles.append(_tile([data.images[i], slm, overlay(data.images[i], run.maps[i])], caption))
    grid = Image.new("RGB", (3 * IMAGE_SIZE, sum(t.height for t in tiles)), "white")
    y = 0
    for tile in tiles:
        grid.paste(tile, (0, y))
        y += tile.height
    path = Path(path)
    grid.save(path)
    return path
