"""Inline SVG plots of a leaderboard table (deterministic text): the forest plot (HR1 and ROAD combined,
mean and 95 % CI per method) and the DiC-vs-IiC scatter with labels placed so that they do not overlap."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import HfusError
from ..metrics import registry
from ..metrics.registry import HEADLINE

ROAD = "road@1/combined"
DIC, IIC = "confidence@1/dic", "confidence@1/iic"
#: label font: monospace, so a label's width is known without a browser (DejaVu Sans Mono: 0.602 em)
LABEL_FONT = "DejaVu Sans Mono,monospace"
CHAR_EM = 0.62
COLOURS = {"method": "#1f5fa8", "sanity": "#b07000"}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _f1(x: float) -> str:
    return f"{x:.1f}"


def _known(key: str) -> bool:
    try:
        registry.output(key)
    except HfusError:
        return False
    return True


def _colour(row: dict[str, Any]) -> str:
    return COLOURS["sanity" if row["sanity"] else "method"]


def _nice_range(
    lows: Sequence[float],
    highs: Sequence[float],
    step: float,
    limits: tuple[float, float],
    include: float = 0.0,
) -> tuple[float, float]:
    lo = min([include, *lows]) if lows else limits[0]
    hi = max([include, *highs]) if highs else limits[1]
    lo = max(limits[0], math.floor(lo / step - 1e-9) * step)
    hi = min(limits[1], math.ceil(hi / step + 1e-9) * step)
    if hi - lo < step:
        hi = min(limits[1], lo + step)
    return lo, hi


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    n = int(round((hi - lo) / step))
    return [round(lo + k * step, 10) for k in range(n + 1)]


def _tick_text(v: float, step: float) -> str:
    digits = 0 if step >= 1 else max(0, -int(math.floor(math.log10(step) + 1e-9)))
    return f"{v:.{digits}f}".replace("-0.0", "0.0") if v != 0 else "0"


# --------------------------------------------------------------------------------------- forest plot


#: a forest plot panel: (record key, title, axis range, tick step)
ForestPanel = tuple[str, str, tuple[float, float], float]


def _forest_panels(rows: Sequence[dict[str, Any]]) -> list[ForestPanel]:
    """HR1 on its full range; ROAD combined (when registered) on a range around the rows' CIs."""
    panels: list[ForestPanel] = [(HEADLINE, "HR1 (hit_rate@1)", (-1.0, 3.0), 1.0)]
    if _known(ROAD):
        cis = [r["scores"].get(ROAD, (None, [None, None])) for r in rows]
        lows = [ci[0] for m, ci in cis if m is not None and ci[0] is not None]
        highs = [ci[1] for m, ci in cis if m is not None and ci[1] is not None]
        lo, hi = _nice_range(lows, highs, 0.1, (-0.5, 0.5))
        panels.append((ROAD, "ROAD combined (road@1)", (lo, hi), 0.1 if hi - lo <= 0.6 else 0.2))
    return panels


def _forest_panel(
    panel: ForestPanel,
    x0: float,
    width: float,
    top: float,
    h: float,
    rows: Sequence[dict[str, Any]],
    y_of: Callable[[int], float],
) -> list[str]:
    """One panel at ``x0``: its title, ticks and tick labels, a whisker and a dot per row (at ``y_of(i)``)."""
    key, title, (lo_v, hi_v), tick_step = panel

    def x(v: float) -> float:
        return x0 + (min(max(v, lo_v), hi_v) - lo_v) / (hi_v - lo_v) * width

    parts = [f'<text class="panel" x="{x0}" y="30" font-size="11">{_e(title)}</text>']
    for tick in _ticks(lo_v, hi_v, tick_step):
        stroke = "#999" if tick == 0 else "#ddd"
        parts.append(
            f'<line x1="{_f1(x(tick))}" y1="{top - 4}" x2="{_f1(x(tick))}" y2="{h - 24}" '
            f'stroke="{stroke}"/>'
            f'<text x="{_f1(x(tick))}" y="{h - 10}" font-size="10" text-anchor="middle">'
            f"{_tick_text(tick, tick_step)}</text>"
        )
    for i, row in enumerate(rows):
        y = y_of(i)
        mean, (lo, hi) = row["scores"].get(key, (None, [None, None]))
        colour = _colour(row)
        if lo is not None and hi is not None:
            parts.append(
                f'<line x1="{_f1(x(lo))}" y1="{_f1(y)}" x2="{_f1(x(hi))}" y2="{_f1(y)}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        if mean is not None:
            fill = colour if row["status"] == "ranked" else "#fff"
            parts.append(
                f'<circle cx="{_f1(x(mean))}" cy="{_f1(y)}" r="4" fill="{fill}" stroke="{colour}" '
                'stroke-width="1.5"/>'
            )
        elif key != HEADLINE:
            parts.append(f'<text x="{x0 + 4}" y="{_f1(y + 4)}" font-size="10" fill="#999">n/a</text>')
    return parts


def svg_forest(table: dict[str, Any]) -> str:
    """Dot-and-whisker plot: HR1 (axis −1…3) and ROAD combined (axis around the data, within −0.5…0.5),
    one line per method in the table's order; unranked rows (below a dashed line) as open circles."""
    rows = table["rows"]
    panels = _forest_panels(rows)
    left, pw, gap, right, top, step = 130, 250, 30, 16, 40, 18
    w = left + len(panels) * pw + (len(panels) - 1) * gap + right
    n_ranked = sum(1 for r in rows if r["status"] == "ranked")
    sep = 8 if 0 < n_ranked < len(rows) else 0
    h = top + step * len(rows) + sep + 30

    def y_of(i: int) -> float:
        return top + step * i + step / 2 + (sep if i >= n_ranked and sep else 0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="forest" width="{w}" height="{h}" role="img" '
        f'aria-label="HR1 and ROAD combined with 95% CI, {_e(table["title"])}">',
        f'<text x="{left}" y="14" font-size="12">'
        "mean and 95 % CI per method (open circles: not ranked)</text>",
    ]
    for i, row in enumerate(rows):
        parts.append(
            f'<text x="{left - 6}" y="{_f1(y_of(i) + 4)}" font-size="11" text-anchor="end">'
            f"{_e(row['method'])}</text>"
        )
    if sep:
        ys = _f1(top + step * n_ranked + sep / 2)
        parts.append(
            f'<line x1="4" y1="{ys}" x2="{w - right}" y2="{ys}" stroke="#999" stroke-dasharray="4 3"/>'
        )
    for p, panel in enumerate(panels):
        parts += _forest_panel(panel, left + p * (pw + gap), pw, top, h, rows, y_of)
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------------------- label placement


@dataclass(frozen=True)
class Box:
    """An axis-aligned box (SVG coordinates: y grows downwards)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def inside(self, bounds: Box) -> bool:
        return self.x0 >= bounds.x0 and self.y0 >= bounds.y0 and self.x1 <= bounds.x1 and self.y1 <= bounds.y1


def label_size(text: str, font_size: float) -> tuple[float, float]:
    """Width and height of a label's box: monospace, :data:`CHAR_EM` em per character, 1.2 em tall
    (DejaVu Sans Mono's ascent + descent: 1.16 em), 1 px margins."""
    return len(text) * CHAR_EM * font_size + 2.0, 1.2 * font_size + 1.0


#: candidate directions, in the order they are tried (right, left, up-right, down-right, up-left, ...)
_DIRECTIONS = tuple(
    (math.cos(math.radians(a)), -math.sin(math.radians(a)))
    for a in (0, 180, 30, -30, 150, -150, 90, -90, 60, -60, 120, -120, 15, -15, 165, -165)
)


def place_labels(
    points: Sequence[tuple[float, float]],
    labels: Sequence[str],
    bounds: Box,
    font_size: float = 10.0,
    marker: float = 4.0,
    rings: int = 24,
    ring_step: float = 7.0,
) -> list[Box]:
    """A box per label, none overlapping another label or any point's marker, all inside ``bounds``.

    Deterministic and greedy: the labels are placed in order of their points (top to bottom, then left to
    right, then by text); each takes the first free candidate, trying distances from its point in steps of
    ``ring_step`` and, at each distance, :data:`_DIRECTIONS` in order. If no candidate is free (a very crowded
    plot), the one overlapping the least area is used.
    """
    if len(points) != len(labels):
        raise HfusError(f"place_labels: {len(points)} points but {len(labels)} labels")
    markers = [Box(px - marker - 1, py - marker - 1, px + marker + 1, py + marker + 1) for px, py in points]
    placed: list[Box | None] = [None] * len(points)
    order = sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0], labels[i]))
    for i in order:
        px, py = points[i]
        w, h = label_size(labels[i], font_size)
        taken = [b for b in placed if b is not None] + markers
        best: tuple[float, Box] | None = None
        for ring in range(rings):
            reach = marker + 2.0 + ring * ring_step
            for ux, uy in _DIRECTIONS:
                cx, cy = px + ux * reach, py + uy * reach
                x0 = cx if ux > 0.3 else cx - w if ux < -0.3 else cx - w / 2
                y0 = cy if uy > 0.3 else cy - h if uy < -0.3 else cy - h / 2
                box = Box(x0, y0, x0 + w, y0 + h)
                if not box.inside(bounds):
                    continue
                cost = sum(_overlap(box, b) for b in taken)
                if cost == 0:
                    best = (0.0, box)
                    break
                if best is None or cost < best[0]:
                    best = (cost, box)
            if best is not None and best[0] == 0:
                break
        if best is None:  # nothing fits inside: clamp the right-hand position into the bounds
            x0 = min(max(px + marker + 2, bounds.x0), bounds.x1 - w)
            y0 = min(max(py - h / 2, bounds.y0), bounds.y1 - h)
            best = (0.0, Box(x0, y0, x0 + w, y0 + h))
        placed[i] = best[1]
    return [b for b in placed if b is not None]


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


# --------------------------------------------------------------------------------------- scatter


@dataclass(frozen=True)
class ScatterLayout:
    """Where the scatter puts things: SVG size, the plot area, per method its point and label box."""

    width: int
    height: int
    area: Box
    bounds: Box
    x_max: float
    y_max: float
    names: tuple[str, ...]
    sanity: tuple[bool, ...]
    points: tuple[tuple[float, float], ...]
    boxes: tuple[Box, ...]


def scatter_layout(table: dict[str, Any], font_size: float = 10.0) -> ScatterLayout:
    """The DiC (x) / IiC % (y) scatter of a table: axes from 0 to just above the largest value, a point
    per method with both scores, labels from :func:`place_labels` (inside the axes or in the margin to
    their right)."""
    none = (None, [None, None])
    pts = [
        (r["method"], r["sanity"], r["scores"].get(DIC, none)[0], r["scores"].get(IIC, none)[0])
        for r in table["rows"]
    ]
    pts = [p for p in pts if p[2] is not None and p[3] is not None]
    width, height, left, right, top, bottom = 540, 320, 44, 120, 24, 36
    area = Box(left, top, width - right, height - bottom)
    bounds = Box(area.x0 + 2, 20, width - 4, area.y1 - 2)  # labels may use the margin right of the axes
    x_max = _nice_ceiling(max([p[2] for p in pts] + [1e-9]) * 1.08)
    y_max = min(100.0, _nice_ceiling(max([p[3] for p in pts] + [10.0]) * 1.15))

    def xy(dic: float, iic: float) -> tuple[float, float]:
        return (
            round(area.x0 + dic / x_max * (area.x1 - area.x0), 1),
            round(area.y1 - iic / y_max * (area.y1 - area.y0), 1),
        )

    points = tuple(xy(p[2], p[3]) for p in pts)
    boxes = place_labels(points, [p[0] for p in pts], bounds, font_size=font_size)
    return ScatterLayout(
        width,
        height,
        area,
        bounds,
        x_max,
        y_max,
        tuple(p[0] for p in pts),
        tuple(p[1] for p in pts),
        points,
        tuple(boxes),
    )


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``v``."""
    if v <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(v))
    return next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= v - 1e-12)


def svg_scatter(table: dict[str, Any]) -> str:
    """DiC (x) vs IiC % (y), one labelled point per method (labels never overlap; a leader line joins a label
    placed away from its point)."""
    lay = scatter_layout(table)
    a, fs = lay.area, 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="scatter" width="{lay.width}" height="{lay.height}" '
        f'role="img" aria-label="DiC vs IiC, {_e(table["title"])}">',
        f'<text x="{a.x0}" y="14" font-size="12">DiC (x, higher better) vs IiC % (y, higher better)</text>',
        f'<line x1="{a.x0}" y1="{a.y1}" x2="{a.x1}" y2="{a.y1}" stroke="#888"/>',
        f'<line x1="{a.x0}" y1="{a.y0}" x2="{a.x0}" y2="{a.y1}" stroke="#888"/>',
    ]
    for k in range(5):
        xv, yv = lay.x_max * k / 4, lay.y_max * k / 4
        xp = a.x0 + (a.x1 - a.x0) * k / 4
        yp = a.y1 - (a.y1 - a.y0) * k / 4
        parts.append(
            f'<text x="{_f1(xp)}" y="{_f1(a.y1 + 14)}" font-size="10" text-anchor="middle">{xv:.2f}</text>'
            f'<text x="{_f1(a.x0 - 4)}" y="{_f1(yp + 3)}" font-size="10" text-anchor="end">{yv:g}</text>'
        )
    for name, sanity, (px, py), box in zip(lay.names, lay.sanity, lay.points, lay.boxes, strict=True):
        colour = COLOURS["sanity" if sanity else "method"]
        nx, ny = min(max(px, box.x0), box.x1), min(max(py, box.y0), box.y1)
        if math.hypot(nx - px, ny - py) > 9:
            parts.append(f'<line x1="{_f1(px)}" y1="{_f1(py)}" x2="{_f1(nx)}" y2="{_f1(ny)}" stroke="#bbb"/>')
        parts.append(
            f'<circle cx="{_f1(px)}" cy="{_f1(py)}" r="4" fill="{colour}"/>'
            f'<text class="label" x="{_f1(box.x0 + 1)}" y="{_f1(box.y1 - 0.5 - 0.24 * fs)}" font-size="{fs}" '
            f'font-family="{LABEL_FONT}">{_e(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
