"""Rendering of the ``hfus-synth`` generator versions 1 and 2 (the anatomy and the portability rule are
described in :mod:`.synth`; version 3 is :mod:`.synth_v3`).

:func:`render` draws one frame from its frame parameters in fixed steps: layer boundaries,
reflectivity (flecks, septa, tumour, clumps, attenuation, membrane), speckle + PSF envelope, shadow
streaks, log compression + palette + scale bar, masks. Every step draws from the frame's generator
in the same order as before the split, so the bytes are those pinned by the golden tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .synth_ops import (
    FULL_SIZE,
    GEL_REFL,
    LOG_K,
    LOG_MAX,
    PALETTES,
    SCALE_BAR_FRAC,
    V1,
    V2,
    Ops,
    conv1d,
    curve,
    kernel,
    structure_masks,
)


@dataclass
class _Grid:
    """The pixel grid of one frame and its scales (full-frame px → px)."""

    W: int
    H: int
    s: float  # axial scale
    sx: float  # lateral scale
    x: np.ndarray  # column index (working float)
    u: np.ndarray  # column centre as a fraction of the width
    uu: np.ndarray  # u moved with the probe (session curves)
    yy: np.ndarray  # (H, 1) row index, int32


@dataclass
class _Layers:
    """Per-column boundaries of the layers (px rows) and the tumour mask."""

    ys_i: np.ndarray  # skin surface (top of the entry echo)
    ye_i: np.ndarray  # bottom of the epidermis
    yl_i: np.ndarray  # bottom of the SLEB (= ye_i without one)
    yd_i: np.ndarray  # bottom of the dermis
    has_sleb: bool
    tumor: np.ndarray | None


def _grid(fp: dict[str, Any], size: tuple[int, int], ops: Ops) -> _Grid:
    W, H = size
    x = np.arange(W, dtype=ops.dtype)
    u = (x + 0.5) / W
    uu = u + fp["shift"]  # session curves move with the probe
    return _Grid(W, H, H / FULL_SIZE[1], W / FULL_SIZE[0], x, u, uu, np.arange(H, dtype=np.int32)[:, None])


def _boundaries(fp: dict[str, Any], g: _Grid, ops: Ops) -> _Layers:
    """Skin surface, epidermis, SLEB, dermis (per column) and the ST tumour."""
    W, H, s, u, uu = g.W, g.H, g.s, g.u, g.uu
    label = fp["label"]
    ys = H * (fp["surface"] + fp["tilt"] * (u - 0.5) + fp["bow"] * ((2 * u - 1) ** 2 - 1 / 3))
    ys = ys + s * (
        fp["surf_amp"] * curve(fp["surf_curve"], uu, ops) + fp["irreg"] * curve(fp["irreg_curve"], uu, ops)
    )
    ys = ys + s * 2.0 * curve(fp["jitter_curve"], u, ops)
    te = s * fp["epi"] * (1.0 + fp["epi_var"] * curve(fp["epi_curve"], uu, ops))
    if label == "PS":
        wave = curve(fp["wave_curve"], uu, ops)
        ys = ys + s * fp["wave_amp"] * wave
        te = te * (1.0 + 0.25 * wave)  # thicker under the crests
    if label == "ST":
        half = 0.5 * fp["tumor_width"] * g.sx / W
        ut = (u - (fp["tumor_x"] - fp["shift"])) / half
        bump = np.clip(1.0 - ut**2, 0.0, None)
        ys = ys - s * fp["dome"] * fp["tumor_depth"] * (bump * np.sqrt(bump) if ops is V2 else bump**1.5)
    ys_i = np.clip(np.floor(ys), 1, H - 2).astype(np.int32)
    ye_i = np.clip(np.maximum(ys_i + 1, np.rint(ys + np.maximum(te, 1.0))), 0, H).astype(np.int32)
    has_sleb = fp["sleb"] > 0
    if has_sleb:
        tl = s * fp["sleb"] * (1.0 + fp["sleb_var"] * curve(fp["sleb_curve"], uu, ops))
        yl_i = np.clip(ye_i + np.maximum(1, np.rint(tl)), 0, H).astype(np.int32)
    else:
        yl_i = ye_i
    td = s * fp["dermis"] * (1.0 + 0.1 * curve(fp["dermis_curve"], uu, ops))
    yd_i = np.clip(yl_i + np.rint(td), 0, H).astype(np.int32)
    tumor = None
    if label == "ST":
        edge = 1.0 + fp["tumor_irreg"] * curve(fp["tumor_curve"], ut, ops)
        ybot = ye_i + s * fp["tumor_depth"] * np.sqrt(np.clip(1.0 - ut**2, 0.0, None)) * edge
        yb_i = np.clip(np.rint(ybot), 0, H).astype(np.int32)
        tumor = (g.yy >= ye_i) & (g.yy < yb_i)
    return _Layers(ys_i, ye_i, yl_i, yd_i, has_sleb, tumor)


def _flecks(rng: np.random.Generator, fp: dict[str, Any], g: _Grid, r0: int, ops: Ops) -> np.ndarray:
    """Short bright horizontal flecks below row ``r0``: sparse impulses smeared laterally (difference
    array + cumsum)."""
    W, H = g.W, g.H
    fl = max(2, int(round(fp["fleck_len"] * g.sx)))
    n_imp = ops.count(rng, 0.012 * (H - r0) * W)
    pr = rng.integers(0, H - r0, n_imp)
    pc = rng.integers(-fl // 2, W - fl // 2, n_imp)
    amp = ops.dyadic(ops.uniform(rng, 0.4, 1.0, n_imp) / (fl * 0.4))
    Wp = W + fl + 1
    start = pr * Wp + np.clip(pc, 0, W)
    stop = pr * Wp + np.clip(pc + fl, 0, W)
    diff = np.bincount(start, amp, (H - r0) * Wp) - np.bincount(stop, amp, (H - r0) * Wp)
    return np.cumsum(diff.reshape(H - r0, Wp)[:, :W], axis=1).astype(ops.dtype)


def _layer_map(lay: _Layers, g: _Grid) -> np.ndarray:
    """0 gel, 1 epidermis, 2 SLEB, 3 dermis, 4 subcutis (uint8, (H, W))."""
    layer = (g.yy >= lay.ys_i).astype(np.uint8)
    layer += g.yy >= lay.ye_i
    layer += g.yy >= lay.yl_i  # (no SLEB: yl = ye, so the dermis still gets 3)
    layer += g.yy >= lay.yd_i
    return layer


def _septa(rng, fp: dict[str, Any], g: _Grid, lay: _Layers, layer, R, r0: int, ops: Ops) -> None:
    """Thin bright septa in the subcutis (integer bands, softened by the PSF), added to ``R``."""
    s, u, H = g.s, g.u, g.H
    sub = layer == 4
    half = max(1, int(round(2.0 * s)))
    for _ in range(fp["n_septa"]):
        off = ops.uniform(rng, 8.0, 250.0) * s
        wav = (
            ops.uniform(rng, 3.0, 15.0)
            * s
            * ops.sin(2 * np.pi * (ops.uniform(rng, 0.5, 2.5) * u + rng.random()))
        )
        slope = ops.uniform(rng, -0.08, 0.08) * H * (u - 0.5)
        seg = np.clip(ops.sin(2 * np.pi * (ops.uniform(rng, 0.5, 2.0) * u + rng.random())) + 0.4, 0, 1)
        yc = np.rint(lay.yd_i + off + wav + slope).astype(np.int32)
        band = sub[r0:] & (np.abs(g.yy[r0:] - yc) < half)
        R[r0:] += band * (ops.uniform(rng, 0.25, 0.5) * seg).astype(ops.dtype)


def _clumps(rng, fp: dict[str, Any], g: _Grid, lay: _Layers, R, ops: Ops) -> list[tuple[float, float, float]]:
    """PS: bright hyperkeratotic clumps in the epidermis, added to ``R``; their shadows (x, width, depth)."""
    W, H, s, sx = g.W, g.H, g.s, g.sx
    ys_i, ye_i = lay.ys_i, lay.ye_i
    clump_x: list[tuple[float, float, float]] = []
    for _ in range(fp["n_clumps"]):
        cx = ops.uniform(rng, 0.05, 0.95) * W
        ci = int(np.clip(cx, 0, W - 1))
        cy = 0.5 * (ys_i[ci] + ye_i[ci]) + ops.uniform(rng, -0.25, 0.25) * (ye_i[ci] - ys_i[ci])
        rx, ry = ops.uniform(rng, 15.0, 45.0) * sx, ops.uniform(rng, 6.0, 18.0) * s
        x0, x1 = max(0, int(cx - 3 * rx)), min(W, int(cx + 3 * rx) + 1)
        y0, y1 = max(0, int(cy - 3 * ry)), min(H, int(cy + 3 * ry) + 1)
        gx = ops.exp(-0.5 * ((np.arange(x0, x1) - cx) / rx) ** 2)
        gy = ops.exp(-0.5 * ((np.arange(y0, y1) - cy) / max(ry, 0.5)) ** 2)
        R[y0:y1, x0:x1] += (ops.uniform(rng, 0.5, 0.9) * gy[:, None] * gx[None, :]).astype(ops.dtype)
        clump_x.append((cx, rx * 0.8, ops.uniform(rng, 0.35, 0.65)))
    return clump_x


def _membrane(fp: dict[str, Any], g: _Grid, R, ops: Ops) -> None:
    """The probe membrane arc (+ optional deep reverberation), added to ``R``."""
    H, u = g.H, g.u
    ym = H * (fp["membrane"] + fp["membrane_sag"] * (1.0 - (2 * u - 1) ** 2))
    mw = max(0.7, 5.0 * g.s)
    arcs = [(ym, fp["membrane_amp"])]
    if fp["reverb"]:
        arcs.append((ym + H * (fp["reverb_at"] - fp["membrane"]), 0.25 * fp["membrane_amp"]))
    for yc, amp in arcs:
        y0, y1 = max(0, int(yc.min() - 4 * mw)), min(H, int(yc.max() + 4 * mw) + 1)
        if y1 > y0:
            band = ops.exp(-(((np.arange(y0, y1)[:, None] - yc[None, :]) / mw) ** 2))
            R[y0:y1] += (amp * band).astype(ops.dtype)


def _reflectivity(
    rng: np.random.Generator, fp: dict[str, Any], g: _Grid, lay: _Layers, ops: Ops
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, float]]]:
    """(reflectivity R (H, W), layer map, clump shadows) of the frame."""
    W, H, s, u, uu = g.W, g.H, g.s, g.u, g.uu
    f32 = ops.dtype  # the working float type (float64 from version 2)
    # Everything below the shallowest SLEB/dermis top (row r0) gets texture; rows above are
    # gel / epidermis / SLEB with per-column values.
    r0 = int(lay.yl_i.min())
    rows = np.arange(r0, H, dtype=f32)
    dl = f32(s * fp["dermis_decay"])
    decay = np.outer(ops.exp(-rows / dl), ops.exp(lay.yl_i.astype(f32) / dl))
    np.minimum(decay, f32(1.0), out=decay)
    fleck = _flecks(rng, fp, g, r0, ops)
    layer = _layer_map(lay, g)
    # per-layer, per-column base reflectivity, then per-pixel texture for the deeper layers
    base = np.empty((5, W), dtype=f32)
    base[0] = GEL_REFL
    base[1] = fp["epi_refl"]
    base[2] = fp["sleb_refl"] * (1.0 + 0.3 * curve(fp["sleb_curve"], uu * 3.0, ops)) if lay.has_sleb else 0.0
    base[3] = fp["dermis_refl"]
    base[4] = fp["sub_refl"]
    R = np.take(base.ravel(), layer.astype(np.intp) * W + np.arange(W))
    deep = layer[r0:]
    tex = np.where(
        deep == 4,
        (f32(0.5) + f32(0.5) * decay) * (f32(0.8) + f32(0.6) * fleck),
        decay * (f32(0.75) + f32(fp["fleck_gain"]) * fleck),
    )
    R[r0:] *= np.where(deep >= 3, tex, f32(1.0))
    _septa(rng, fp, g, lay, layer, R, r0, ops)
    if lay.tumor is not None:
        inner = fp["tumor_refl"] * (1.0 + 0.35 * curve(fp["tumor_curve"], u * 2.3, ops))
        R[r0:] = np.where(lay.tumor[r0:], inner.astype(f32) * (f32(0.85) + f32(0.3) * fleck), R[r0:])
    clump_x = _clumps(rng, fp, g, lay, R, ops) if fp["label"] == "PS" else []
    al = f32(s * fp["att_len"])
    atten = np.outer(ops.exp(-np.arange(H, dtype=f32) / al), ops.exp(lay.ys_i.astype(f32) / al))
    R *= np.minimum(atten, f32(1.0), out=atten)
    _membrane(fp, g, R, ops)
    return R, layer, clump_x


def _envelope(rng: np.random.Generator, fp: dict[str, Any], g: _Grid, R: np.ndarray, ops: Ops) -> np.ndarray:
    """Speckle + PSF: the envelope of the reflectivity times complex scatterers, blurred by the PSF.

    Scatterers uniform in [-1, 1) (×√3: unit variance); the PSF sums ≳ 10 of them per cell, so the
    field is Gaussian and its envelope Rayleigh-distributed around the local reflectivity.
    """
    f32 = ops.dtype
    field = rng.random((2, g.H, g.W), dtype=f32)
    field *= f32(2.0 * np.sqrt(3.0))
    field -= f32(np.sqrt(3.0))
    field *= R
    sa = max(0.35, fp["psf_axial"] * g.s)
    field = conv1d(field, kernel(sa, ops), axis=1)
    field = conv1d(field, kernel(sa * fp["psf_ratio"] * g.sx / g.s, ops), axis=2)
    np.square(field, out=field)
    env = field[0]
    env += field[1]
    np.sqrt(env, out=env)
    env *= f32(fp["gain"] / np.sqrt(2.0))
    return env


def _shadows(rng, fp: dict[str, Any], g: _Grid, env, layer, clump_x: list, ops: Ops) -> None:
    """Vertical shadow streaks below the entry echo (hairs, scales; PS: under the clumps), on ``env``."""
    streaks = [
        (ops.uniform(rng, 0, g.W), ops.uniform(rng, 4.0, 15.0) * g.sx, ops.uniform(rng, 0.25, 0.6))
        for _ in range(fp["n_streaks"])
    ]
    streaks += clump_x
    if streaks:
        st = np.asarray(streaks, dtype=np.float64)
        prof = ops.prod_rows(
            1.0
            - st[:, 2:3] * ops.exp(-0.5 * ((g.x[None, :] - st[:, 0:1]) / np.maximum(st[:, 1:2], 0.5)) ** 2)
        )
        env *= np.where(layer >= 2, prof.astype(ops.dtype), ops.dtype(1.0))


def _to_rgb(env: np.ndarray, g: _Grid, ops: Ops) -> tuple[np.ndarray, int]:
    """Log compression, palette, depth-scale bar and ticks: (RGB (H, W, 3) uint8, scale-bar width)."""
    f32, W, H = ops.dtype, g.W, g.H
    env *= f32(LOG_K)
    env = ops.log1p(env).astype(f32, copy=False)
    env *= f32(255.0 / float(ops.log1p(np.float64(LOG_K * LOG_MAX))))
    np.clip(env, 0.0, 255.0, out=env)
    idx = np.rint(env).astype(np.uint8)
    rgb = np.take(PALETTES["1" if ops is V1 else "2"], idx, axis=0)
    bw = max(2, int(round(SCALE_BAR_FRAC * W)))
    rgb[:, :bw] = 0
    rgb[:, bw - 2] = 150
    step = max(3, int(round(100 * g.s)))  # a tick every 0.5 mm (100 full px)
    ticks = np.arange(0, H, step)
    rgb[ticks, : bw - 2] = 150
    rgb[ticks[::2], : bw - 1] = 235  # every 1 mm a longer, brighter tick
    tick_h = max(2, int(round(0.012 * H)))
    cols = np.arange(bw + int(round(100 * g.sx)), W, max(3, int(round(200 * g.sx))))
    rgb[H - tick_h :, cols] = 200
    return rgb, bw


def render(
    rng: np.random.Generator, fp: dict[str, Any], size: tuple[int, int], ops: Ops
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One v1/v2 frame: RGB and its structure masks (0/255; absent structures omitted)."""
    g = _grid(fp, size, ops)
    lay = _boundaries(fp, g, ops)
    R, layer, clump_x = _reflectivity(rng, fp, g, lay, ops)
    env = _envelope(rng, fp, g, R, ops)
    _shadows(rng, fp, g, env, layer, clump_x, ops)
    rgb, bw = _to_rgb(env, g, ops)
    masks = {"epidermis": layer == 1, "sleb": (layer == 2) if lay.has_sleb else None, "tumor": lay.tumor}
    out = structure_masks(masks, bw)
    return rgb, out
