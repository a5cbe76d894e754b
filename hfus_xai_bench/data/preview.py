"""The import preview sheet (``hfus-bench data import --preview FILE.png``), drawn with Pillow.

One row per image: the 224×224 image as the benchmark sees it, the image with the masks overlaid
(epidermis red, SLEB blue, tumour yellow), each mask, and the skin layer map; a header with the
import rules. A person sees in one look whether the structures went to the right places.
"""

from __future__ import annotations

import io
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..constants import CLASSES
from .columns import convert, job
from .discovery import Discovery
from .layouts import STRUCTURES

COLOURS: dict[str, tuple[int, int, int]] = {
    "epidermis": (255, 60, 60),
    "sleb": (70, 150, 255),
    "tumor": (255, 215, 0),
}
COLUMNS: tuple[str, ...] = ("image", "overlay", *STRUCTURES, "SLM")
_GAP = 4
_LINE = 12


@dataclass
class PreviewRow:
    title: str
    image: np.ndarray  # (224, 224, 3) uint8
    masks: dict[str, np.ndarray]  # structure → (224, 224) 0/255
    slm: np.ndarray  # (224, 224) uint8


def overlay(image: np.ndarray, masks: dict[str, np.ndarray], alpha: float = 0.5) -> np.ndarray:
    """The image with each structure blended in its colour."""
    out = image.astype(np.float64)
    for s in STRUCTURES:
        m = masks.get(s)
        if m is not None and m.any():
            sel = m > 127
            out[sel] = (1 - alpha) * out[sel] + alpha * np.asarray(COLOURS[s], dtype=np.float64)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def draw_sheet(rows: list[PreviewRow], title: str = "") -> Image.Image:
    """Compose the sheet (RGB image)."""
    tile = rows[0].image.shape[0] if rows else 224
    width = len(COLUMNS) * (tile + _GAP) + _GAP
    font = ImageFont.load_default()
    title = (
        title.replace("→", "->").encode("latin-1", "replace").decode("latin-1")
    )  # the bitmap font is latin-1
    head = textwrap.wrap(title, width=max(40, width // 6)) if title else []
    top = _GAP + _LINE * (len(head) + 1) + _GAP
    height = top + len(rows) * (tile + _LINE + _GAP) + _GAP
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, line in enumerate(head):
        draw.text((_GAP, _GAP + k * _LINE), line, fill=(0, 0, 0), font=font)
    y0 = _GAP + _LINE * len(head)
    for j, name in enumerate(COLUMNS):
        colour = COLOURS.get(name, (0, 0, 0))
        draw.text((_GAP + j * (tile + _GAP), y0), name, fill=tuple(int(c * 0.7) for c in colour), font=font)
    y = top
    for row in rows:
        draw.text((_GAP, y), row.title, fill=(0, 0, 0), font=font)
        y += _LINE
        tiles = [row.image, overlay(row.image, row.masks)]
        for s in STRUCTURES:
            m = row.masks.get(s, np.zeros(row.image.shape[:2], np.uint8)) > 127
            t = np.zeros_like(row.image)
            t[m] = COLOURS[s]
            tiles.append(t)
        tiles.append(np.repeat(row.slm[..., None], 3, axis=2))
        for j, t in enumerate(tiles):
            sheet.paste(Image.fromarray(t), (_GAP + j * (tile + _GAP), y))
        y += tile + _GAP
    return sheet


def _preview_rows(found: Discovery, results: dict[int, dict], ids: list[str]) -> list[PreviewRow]:
    rows = []
    for i, r in sorted(results.items(), key=lambda kv: (found.images[kv[0]].label, kv[0])):
        e = found.images[i]
        dec = {k: np.asarray(Image.open(io.BytesIO(r[k]))) for k in ("image", *STRUCTURES, "slm")}
        rows.append(
            PreviewRow(
                f"{CLASSES[e.label]}  {ids[i]}", dec["image"], {s: dec[s] for s in STRUCTURES}, dec["slm"]
            )
        )
    return rows


def preview_indices(found: Discovery, per_class: int = 3) -> list[int]:
    """Up to ``per_class`` images of each class, evenly spread over the class (deterministic)."""
    out = []
    for c in range(len(CLASSES)):
        idx = [i for i, e in enumerate(found.images) if e.label == c]
        if idx:
            take = np.unique(np.linspace(0, len(idx) - 1, min(per_class, len(idx))).round().astype(int))
            out += [idx[k] for k in take]
    return out


def write_preview(
    found: Discovery, path: str | os.PathLike, *, per_class: int = 3, results: dict[int, dict] | None = None
) -> Path:
    """Draw the preview sheet of ``found`` (a few images per class: image, overlay, masks, SLM) to ``path``.

    ``results``: the :func:`.columns.convert` output per image index, when the import has it already.
    """
    picks = preview_indices(found, per_class)
    if results is None:
        results = {i: convert(job(found.images[i], found)) for i in picks}
    else:
        results = {i: results[i] for i in picks}
    sheet = draw_sheet(_preview_rows(found, results, found.image_ids()), title=found.rules_text())
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(p, format="PNG")
    return p
