"""Generator version 3 of ``hfus-synth``: anatomy that moves, class evidence painted over a shared anatomy.

Every frame is rendered twice from the same random draws: once as the shared anatomy alone (the
**twin**: skin surface, thin regular epidermis, dermis, subcutis, membrane, streaks — drawn from one
distribution for all classes, so it is a valid CG frame of the same session) and once with the class
**evidence** painted over it (AD: an irregular, thicker epidermis with a SLEB under it over a segment
of the width; PS: a thick wavy epidermis with bright clumps and their fading shadows and a thick SLEB
over a segment; ST: a hypo-echoic tumour hanging from the epidermis, the dome it raises and its
fading shadow; CG: nothing). Depth effects (attenuation, dermis decay) are functions of the depth
below the *shared* surface, not integrals through the painted tissue, so painting changes nothing
outside the painted pixels before the PSF.

The evidence mask is the set of pixels whose reflectivity, layer or evidence shadow differs between
the two renderings (the scale-bar columns excluded: the bar covers both). The PSF is a separable
Gaussian of half-widths (``ra``, ``rl``) = (⌈3σ_axial⌉, ⌈3σ_lateral⌉) px with a fixed order of
operations per pixel, so the twin equals the image **bit for bit** outside the mask dilated by a
(2·ra + 1) × (2·rl + 1) box (``psf_halfwidths``). The twin's field is computed only on a crop around
the mask (same per-pixel operations, so the same bytes as a full render) and pasted into a copy.

Portability: the rule of version 2 (see :mod:`.synth`): float64, IEEE-pinned operations one ufunc
at a time, :mod:`.portable` exp/log/sin, fixed-order sums, integer-only random draws, one
quantisation at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import synth_ops as S  # the shared primitives (v2 arithmetic, curves, PSF, palette)

#: tan(8°): the largest probe tilt, as a slope (full-frame px down per px across). A literal, not libm.
MAX_TILT_SLOPE = 0.14054083470239145
#: Where the skin surface may lie, as fractions of the height (every column, every frame).
SURFACE_RANGE = (0.12, 0.50)
#: The highest a tumour's dome may push the skin surface (fraction of the height; the membrane is above).
DOME_CEILING = 0.1
#: Share of AD / PS sessions whose evidence spans the whole width.
FULL_WIDTH_SHARE = 0.35

_V = S.V2  # the portable arithmetic


@dataclass(frozen=True)
class Frame:
    """One rendered v3 frame: image, structure masks, evidence mask (0/255) and counterfactual twin."""

    rgb: np.ndarray
    masks: dict[str, np.ndarray]
    evidence: np.ndarray
    twin: np.ndarray
    psf: tuple[int, int]  # (ra, rl): the PSF half-widths in px (rows, columns)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return _V.uniform(rng, lo, hi)


def sample_group_params(rng: np.random.Generator, label: str) -> dict[str, Any]:
    """Session anatomy: shared part first (same distribution for every class), then the class evidence."""
    label = S.check_label(label)
    p: dict[str, Any] = {"label": label, "version": "3"}
    p["tilt"] = _u(rng, -MAX_TILT_SLOPE, MAX_TILT_SLOPE)
    p["bow"] = _u(rng, -0.03, 0.03)
    margin = abs(p["tilt"]) * S.FULL_SIZE[0] / S.FULL_SIZE[1] / 2.0 + 0.67 * abs(p["bow"]) + 0.03
    p["surface"] = _u(rng, SURFACE_RANGE[0] + margin, SURFACE_RANGE[1] - margin)
    p["surf_amp"] = _u(rng, 6.0, 18.0)
    p["surf_curve"] = S.curve_coeffs(rng, 4, 0.4, 2.5, _V)
    p["membrane"] = _u(rng, 0.02, 0.06)
    p["membrane_sag"] = _u(rng, 0.01, 0.03)
    p["membrane_amp"] = _u(rng, 0.9, 1.4)
    p["reverb"] = bool(rng.random() < 0.35)
    p["reverb_at"] = _u(rng, 0.62, 0.85)
    p["gain"] = _u(rng, 0.92, 1.08)
    p["psf_axial"] = _u(rng, 2.2, 3.0)
    p["psf_ratio"] = _u(rng, 2.0, 3.0)
    p["att_len"] = _u(rng, 900.0, 1400.0)
    p["epi_refl"] = _u(rng, 0.85, 1.0)
    p["epi"], p["epi_var"], p["irreg"] = _u(rng, 15.0, 30.0), _u(rng, 0.04, 0.1), _u(rng, 0.5, 2.0)
    p["epi_curve"] = S.curve_coeffs(rng, 5, 1.5, 8.0, _V)
    p["irreg_curve"] = S.curve_coeffs(rng, 8, 12.0, 45.0, _V)
    p["dermis_curve"] = S.curve_coeffs(rng, 4, 0.5, 3.0, _V)
    p["dermis"] = _u(rng, 200.0, 350.0)
    p["dermis_decay"] = _u(rng, 500.0, 900.0)
    p["dermis_refl"] = _u(rng, 0.38, 0.62)
    p["fleck_gain"] = _u(rng, 0.5, 1.2)
    p["fleck_len"] = _u(rng, 20.0, 60.0)
    p["sub_refl"] = _u(rng, 0.05, 0.15)
    p["n_septa"] = int(rng.integers(1, 5))
    p["n_streaks"] = int(rng.integers(1, 8))
    p.update(_evidence_params(rng, label))
    return p


def _segment(rng: np.random.Generator) -> tuple[float, float]:
    """(start, end) of the evidence segment as fractions of the width (sometimes all of it)."""
    if rng.random() < FULL_WIDTH_SHARE:
        return (-1.0, 2.0)
    width = _u(rng, 0.4, 0.75)
    centre = _u(rng, width / 2.0, 1.0 - width / 2.0)
    return (centre - width / 2.0, centre + width / 2.0)


def _evidence_params(rng: np.random.Generator, label: str) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if label in ("AD", "PS"):
        p["segment"] = _segment(rng)
        p["sleb_curve"] = S.curve_coeffs(rng, 5, 1.0, 6.0, _V)
        p["sleb_refl"] = _u(rng, 0.03, 0.09)
    if label == "AD":
        p["ev_epi"], p["ev_irreg"] = _u(rng, 25.0, 45.0), _u(rng, 5.0, 10.0)
        p["ev_irreg_curve"] = S.curve_coeffs(rng, 8, 12.0, 45.0, _V)
        p["sleb"], p["sleb_var"] = _u(rng, 30.0, 90.0), _u(rng, 0.2, 0.35)
    elif label == "PS":
        p["ev_epi"], p["ev_irreg"] = _u(rng, 30.0, 80.0), _u(rng, 3.0, 7.0)
        p["ev_irreg_curve"] = S.curve_coeffs(rng, 8, 12.0, 45.0, _V)
        p["sleb"], p["sleb_var"] = _u(rng, 40.0, 120.0), _u(rng, 0.05, 0.12)
        p["wave_amp"] = _u(rng, 8.0, 18.0)
        p["wave_curve"] = S.curve_coeffs(rng, 4, 3.0, 8.0, _V)
        p["n_clumps"] = int(rng.integers(4, 11))
    elif label == "ST":
        p["tumor_depth"] = _u(rng, 120.0, 600.0)
        p["tumor_width"] = _u(rng, 400.0, 1300.0)
        p["tumor_x"] = _u(rng, 0.15, 0.85)
        p["tumor_refl"] = _u(rng, 0.03, 0.1)
        p["tumor_curve"] = S.curve_coeffs(rng, 5, 1.0, 5.0, _V)
        p["tumor_irreg"] = _u(rng, 0.05, 0.2)
        p["dome"] = _u(rng, 0.12, 0.3)
        p["tumor_shadow"] = _u(rng, 0.35, 0.6)
        p["tumor_shadow_len"] = _u(rng, 100.0, 300.0)
    return p


def frame_params(rng: np.random.Generator, gp: dict[str, Any]) -> dict[str, Any]:
    """Per-frame jitter of the session's shared anatomy (neighbouring probe positions).

    The evidence's own jitter is drawn by :func:`render` after every shared draw, so the twin of a frame
    is exactly the CG frame of the same seeds.
    """
    fp = dict(gp)
    fp["shift"] = _u(rng, -0.04, 0.04)
    fp["surface"] = gp["surface"] + _u(rng, -0.012, 0.012)
    fp["tilt"] = gp["tilt"] + _u(rng, -0.01, 0.01)
    for key in ("epi", "dermis", "gain", "dermis_refl", "surf_amp"):
        fp[key] = gp[key] * _u(rng, 0.94, 1.06)
    fp["jitter_curve"] = S.curve_coeffs(rng, 4, 1.0, 6.0, _V)
    return fp


def _evidence_jitter(rng: np.random.Generator, fp: dict[str, Any]) -> dict[str, Any]:
    """Per-frame jitter of the class evidence (drawn after every shared draw of the frame)."""
    fp = dict(fp)
    if "sleb" in fp:
        fp["sleb"] = fp["sleb"] * _u(rng, 0.94, 1.06)
        fp["ev_epi"] = fp["ev_epi"] * _u(rng, 0.94, 1.06)
    if fp["label"] == "ST":
        fp["tumor_depth"] = fp["tumor_depth"] * _u(rng, 0.9, 1.1)
        fp["tumor_width"] = fp["tumor_width"] * _u(rng, 0.9, 1.1)
    return fp


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------


@dataclass
class _Geom:
    """Per-column boundaries (integer rows) of one rendering: surface, epidermis bottom, SLEB bottom,
    subcutis top."""

    ys: np.ndarray
    ye: np.ndarray
    yl: np.ndarray
    yd: np.ndarray
    tumor: np.ndarray | None = None  # (H, W) bool
    yb: np.ndarray | None = None  # tumour bottom per column


def _shared_geometry(
    fp: dict[str, Any], W: int, H: int, u: np.ndarray, uu: np.ndarray
) -> dict[str, np.ndarray]:
    s, sx = H / S.FULL_SIZE[1], W / S.FULL_SIZE[0]
    ys = H * (fp["surface"] + fp["bow"] * ((2 * u - 1) ** 2 - 1 / 3))
    ys = ys + s * fp["tilt"] * (u - 0.5) * (W / sx)
    ys = ys + s * (
        fp["surf_amp"] * S.curve(fp["surf_curve"], uu, _V) + fp["irreg"] * S.curve(fp["irreg_curve"], uu, _V)
    )
    ys = ys + s * 2.0 * S.curve(fp["jitter_curve"], u, _V)
    te = s * fp["epi"] * (1.0 + fp["epi_var"] * S.curve(fp["epi_curve"], uu, _V))
    td = s * fp["dermis"] * (1.0 + 0.1 * S.curve(fp["dermis_curve"], uu, _V))
    return {"ys": ys, "te": te, "td": td}


def _weight(fp: dict[str, Any], u: np.ndarray) -> np.ndarray:
    """1 inside the AD/PS evidence segment, ramping to 0 over ≈ 4 % of the width at its ends."""
    a, b = fp["segment"]
    ramp = 0.04
    return np.clip(np.minimum(u - a, b - u) / ramp, 0.0, 1.0)


def _twin_geometry(shared: dict[str, np.ndarray], H: int) -> _Geom:
    ys_i = np.clip(np.floor(shared["ys"]), 1, H - 2).astype(np.int32)
    ye_i = np.clip(np.maximum(ys_i + 1, np.rint(shared["ys"] + np.maximum(shared["te"], 1.0))), 0, H).astype(
        np.int32
    )
    yd_i = np.clip(ye_i + np.rint(shared["td"]), 0, H).astype(np.int32)
    return _Geom(ys_i, ye_i, ye_i.copy(), yd_i)


def _image_geometry(fp, shared, twin: _Geom, W: int, H: int, u, uu) -> _Geom:
    """Boundaries with the class evidence painted in (CG: the twin's)."""
    label = fp["label"]
    if label == "CG":
        return twin
    s, sx = H / S.FULL_SIZE[1], W / S.FULL_SIZE[0]
    ys, te = shared["ys"], shared["te"]
    if label in ("AD", "PS"):
        w = _weight(fp, uu)  # the segment moves with the probe, like the tumour
        top = s * fp["ev_irreg"] * S.curve(fp["ev_irreg_curve"], uu, _V)
        thick = s * fp["ev_epi"] * (1.0 + 0.2 * S.curve(fp["epi_curve"], uu * 1.7, _V))
        if label == "PS":
            wave = S.curve(fp["wave_curve"], uu, _V)
            top = top + s * fp["wave_amp"] * wave
            thick = thick * (1.0 + 0.25 * wave)
        ys = ys + w * top
        te = te + w * (thick - te)
        ys_i = np.clip(np.floor(ys), 1, H - 2).astype(np.int32)
        ye_i = np.clip(np.maximum(ys_i + 1, np.rint(ys + np.maximum(te, 1.0))), 0, H).astype(np.int32)
        ye_i = np.maximum(ye_i, twin.ye)
        tl = w * s * fp["sleb"] * (1.0 + fp["sleb_var"] * S.curve(fp["sleb_curve"], uu, _V))
        yl_i = np.clip(ye_i + np.rint(tl), 0, H).astype(np.int32)
        return _Geom(ys_i, ye_i, yl_i, np.maximum(twin.yd, yl_i))
    # ST: the tumour hangs from the epidermis, which domes over it
    half = 0.5 * fp["tumor_width"] * sx / W
    ut = (u - (fp["tumor_x"] - fp["shift"])) / half
    bump = np.clip(1.0 - ut**2, 0.0, None)
    ys = ys - s * fp["dome"] * fp["tumor_depth"] * (bump * np.sqrt(bump))
    ys = np.maximum(ys, DOME_CEILING * H)  # the probe flattens a dome that would reach it
    ys_i = np.clip(np.floor(ys), 1, H - 2).astype(np.int32)
    ye_i = np.clip(np.maximum(ys_i + 1, np.rint(ys + np.maximum(te, 1.0))), 0, H).astype(np.int32)
    edge = 1.0 + fp["tumor_irreg"] * S.curve(fp["tumor_curve"], ut, _V)
    ybot = ye_i + s * fp["tumor_depth"] * np.sqrt(bump) * edge
    yb_i = np.clip(np.rint(ybot), 0, H).astype(np.int32)
    yy = np.arange(H, dtype=np.int32)[:, None]
    tumor = (yy >= ye_i) & (yy < yb_i)
    return _Geom(ys_i, ye_i, ye_i.copy(), twin.yd, tumor=tumor, yb=yb_i)


def _layers(g: _Geom, H: int) -> np.ndarray:
    yy = np.arange(H, dtype=np.int32)[:, None]
    layer = (yy >= g.ys).astype(np.uint8)  # 0 gel, 1 epidermis, 2 SLEB, 3 dermis, 4 subcutis
    layer += yy >= g.ye
    layer += yy >= g.yl
    layer += yy >= g.yd
    return layer


# --------------------------------------------------------------------------------------------------
# Reflectivity
# --------------------------------------------------------------------------------------------------


@dataclass
class _Shared:
    """Random fields and depth profiles both renderings use (drawn once)."""

    fleck: np.ndarray  # (H, W)
    decay: np.ndarray  # (H, W) dermis decay below the shared epidermis
    atten: np.ndarray  # (H, W) attenuation below the shared surface
    septa: list[tuple[np.ndarray, np.ndarray]]  # (centre row per column, amplitude per column)
    arcs: list[tuple[np.ndarray, float]]


def _draw_shared(rng, fp, twin: _Geom, W: int, H: int, u: np.ndarray) -> _Shared:
    s, sx = H / S.FULL_SIZE[1], W / S.FULL_SIZE[0]
    rows = np.arange(H, dtype=np.float64)
    dl = s * fp["dermis_decay"]
    decay = np.minimum(np.outer(_V.exp(-rows / dl), _V.exp(twin.ye.astype(np.float64) / dl)), 1.0)
    al = s * fp["att_len"]
    atten = np.minimum(np.outer(_V.exp(-rows / al), _V.exp(twin.ys.astype(np.float64) / al)), 1.0)
    # short bright horizontal flecks: sparse impulses smeared laterally (difference array + cumsum)
    fl = max(2, int(round(fp["fleck_len"] * sx)))
    n_imp = _V.count(rng, 0.012 * H * W)
    pr = rng.integers(0, H, n_imp)
    pc = rng.integers(-fl // 2, W - fl // 2, n_imp)
    amp = _V.dyadic(_V.uniform(rng, 0.4, 1.0, n_imp) / (fl * 0.4))
    Wp = W + fl + 1
    start = pr * Wp + np.clip(pc, 0, W)
    stop = pr * Wp + np.clip(pc + fl, 0, W)
    diff = np.bincount(start, amp, H * Wp) - np.bincount(stop, amp, H * Wp)
    fleck = np.cumsum(diff.reshape(H, Wp)[:, :W], axis=1)
    septa = []
    for _ in range(fp["n_septa"]):
        off = _u(rng, 8.0, 250.0) * s
        wav = _u(rng, 3.0, 15.0) * s * _V.sin(2 * np.pi * (_u(rng, 0.5, 2.5) * u + rng.random()))
        slope = _u(rng, -0.08, 0.08) * H * (u - 0.5)
        seg = np.clip(_V.sin(2 * np.pi * (_u(rng, 0.5, 2.0) * u + rng.random())) + 0.4, 0, 1)
        yc = np.rint(twin.yd + off + wav + slope).astype(np.int32)
        septa.append((yc, _u(rng, 0.25, 0.5) * seg))
    ym = H * (fp["membrane"] + fp["membrane_sag"] * (1.0 - (2 * u - 1) ** 2))
    arcs = [(ym, fp["membrane_amp"])]
    if fp["reverb"]:
        arcs.append((ym + H * (fp["reverb_at"] - fp["membrane"]), 0.25 * fp["membrane_amp"]))
    return _Shared(fleck, decay, atten, septa, arcs)


def _reflectivity(fp, g: _Geom, layer: np.ndarray, sh: _Shared, clumps, W: int, H: int, uu) -> np.ndarray:
    """Reflectivity map of one rendering: per-layer base × texture, septa, tumour, clumps, membrane,
    attenuation."""
    s = H / S.FULL_SIZE[1]
    yy = np.arange(H, dtype=np.int32)[:, None]
    base = np.empty((5, W), dtype=np.float64)
    base[0] = S.GEL_REFL
    base[1] = fp["epi_refl"]
    base[2] = fp["sleb_refl"] * (1.0 + 0.3 * S.curve(fp["sleb_curve"], uu * 3.0, _V)) if "sleb" in fp else 0.0
    base[3] = fp["dermis_refl"]
    base[4] = fp["sub_refl"]
    R = np.take(base.ravel(), layer.astype(np.intp) * W + np.arange(W))
    tex = np.where(
        layer == 4,
        (0.5 + 0.5 * sh.decay) * (0.8 + 0.6 * sh.fleck),
        sh.decay * (0.75 + fp["fleck_gain"] * sh.fleck),
    )
    R = np.where(layer >= 3, R * tex, R)
    sub = layer == 4
    half = max(1, int(round(2.0 * s)))
    for yc, amp in sh.septa:
        band = sub & (np.abs(yy - yc) < half)
        R = R + band * amp
    if g.tumor is not None:
        inner = fp["tumor_refl"] * (1.0 + 0.35 * S.curve(fp["tumor_curve"], uu * 2.3, _V))
        R = np.where(g.tumor, inner * (0.85 + 0.3 * sh.fleck), R)
    for (y0, y1, x0, x1), patch in clumps:
        R[y0:y1, x0:x1] += patch
    for yc, amp in sh.arcs:
        mw = max(0.7, 5.0 * s)
        y0, y1 = max(0, int(yc.min() - 4 * mw)), min(H, int(yc.max() + 4 * mw) + 1)
        if y1 > y0:
            R[y0:y1] += amp * _V.exp(-(((np.arange(y0, y1)[:, None] - yc[None, :]) / mw) ** 2))
    return R * sh.atten


def _clumps(rng, fp, g: _Geom, W: int, H: int, u: np.ndarray):
    """PS: bright hyperkeratotic clumps in the (painted) epidermis of the segment, and their shadows."""
    s, sx = H / S.FULL_SIZE[1], W / S.FULL_SIZE[0]
    a, b = fp["segment"]
    lo, hi = max(a - fp["shift"], 0.03), min(b - fp["shift"], 0.97)
    out, shadows = [], []
    for _ in range(fp["n_clumps"]):
        cx = _u(rng, lo, hi) * W
        ci = int(np.clip(cx, 0, W - 1))
        cy = 0.5 * (g.ys[ci] + g.ye[ci]) + _u(rng, -0.25, 0.25) * (g.ye[ci] - g.ys[ci])
        rx, ry = _u(rng, 15.0, 45.0) * sx, _u(rng, 6.0, 18.0) * s
        x0, x1 = max(0, int(cx - 3 * rx)), min(W, int(cx + 3 * rx) + 1)
        y0, y1 = max(0, int(cy - 3 * ry)), min(H, int(cy + 3 * ry) + 1)
        gx = _V.exp(-0.5 * ((np.arange(x0, x1) - cx) / rx) ** 2)
        gy = _V.exp(-0.5 * ((np.arange(y0, y1) - cy) / max(ry, 0.5)) ** 2)
        out.append(((y0, y1, x0, x1), _u(rng, 0.5, 0.9) * gy[:, None] * gx[None, :]))
        shadows.append((cx, rx * 0.8, _u(rng, 0.35, 0.65), _u(rng, 100.0, 300.0) * s))
    return out, shadows


def _evidence_shadow(fp, g: _Geom, clump_shadows, W: int, H: int) -> np.ndarray | None:
    """Multiplicative envelope factor of the evidence's own shadows (< 1 inside them), fading to 1 with
    depth."""
    yy = np.arange(H, dtype=np.float64)[:, None]
    x = np.arange(W, dtype=np.float64)
    factor = None
    if g.tumor is not None:
        s = H / S.FULL_SIZE[1]
        length = s * fp["tumor_shadow_len"]
        below = (yy - g.yb) / length
        fade = np.where((below >= 0.0) & (below < 1.0) & (g.yb > g.ye), 1.0 - below, 0.0)
        factor = 1.0 - fp["tumor_shadow"] * fade
    for cx, rx, depth, length in clump_shadows:
        prof = depth * _V.exp(-0.5 * ((x - cx) / max(rx, 0.5)) ** 2)
        prof = np.where(prof > 0.01, prof, 0.0)  # a bounded footprint
        below = (yy - g.ye) / length
        fade = np.where((below >= 0.0) & (below < 1.0), 1.0 - below, 0.0)
        f = 1.0 - prof[None, :] * fade
        factor = f if factor is None else factor * f
    return factor


# --------------------------------------------------------------------------------------------------
# Image formation
# --------------------------------------------------------------------------------------------------


def _psf(fp, W: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    s, sx = H / S.FULL_SIZE[1], W / S.FULL_SIZE[0]
    sa = max(0.35, fp["psf_axial"] * s)
    return S.kernel(sa, _V), S.kernel(sa * fp["psf_ratio"] * sx / s, _V)


def _envelope(noise: np.ndarray, R: np.ndarray, ka: np.ndarray, kl: np.ndarray, gain: float) -> np.ndarray:
    """|PSF ∗ (scatterers · R)|: two quadrature fields, separable Gaussian PSF, envelope × gain/√2."""
    field = noise * R
    field = S.conv1d(field, ka, axis=1)
    field = S.conv1d(field, kl, axis=2)
    field = field * field
    env = np.sqrt(field[0] + field[1])
    return env * (gain / np.sqrt(2.0))


def _twin_envelope(noise, R_twin, env_img, diff: np.ndarray, ka, kl, gain: float) -> np.ndarray:
    """The twin's envelope: the image's, recomputed on a crop around ``diff`` (same per-pixel operations)."""
    if not diff.any():
        return env_img
    H, W = diff.shape
    ra, rl = len(ka) // 2, len(kl) // 2
    rows, cols = np.flatnonzero(diff.any(1)), np.flatnonzero(diff.any(0))
    keep = (max(0, rows[0] - ra), min(H, rows[-1] + ra + 1), max(0, cols[0] - rl), min(W, cols[-1] + rl + 1))
    crop = (max(0, keep[0] - ra), min(H, keep[1] + ra), max(0, keep[2] - rl), min(W, keep[3] + rl))
    part = _envelope(
        noise[:, crop[0] : crop[1], crop[2] : crop[3]],
        R_twin[crop[0] : crop[1], crop[2] : crop[3]],
        ka,
        kl,
        gain,
    )
    env = env_img.copy()
    env[keep[0] : keep[1], keep[2] : keep[3]] = part[
        keep[0] - crop[0] : keep[1] - crop[0], keep[2] - crop[2] : keep[3] - crop[2]
    ]
    return env


def _quantise(env: np.ndarray) -> np.ndarray:
    """Log compression and the one quantisation to 8 bits (elementwise: any subset gives the same bytes)."""
    v = _V.log1p(env * S.LOG_K) * (255.0 / float(_V.log1p(np.float64(S.LOG_K * S.LOG_MAX))))
    return np.rint(np.clip(v, 0.0, 255.0)).astype(np.uint8)


def _to_rgb(idx: np.ndarray, W: int, H: int) -> np.ndarray:
    """Green palette, depth-scale bar and ticks."""
    s, sx = H / S.FULL_SIZE[1], W / S.FULL_SIZE[0]
    rgb = np.take(S.PALETTES["2"], idx, axis=0)
    bw = _bar_width(W)
    rgb[:, :bw] = 0
    rgb[:, bw - 2] = 150
    ticks = np.arange(0, H, max(3, int(round(100 * s))))
    rgb[ticks, : bw - 2] = 150
    rgb[ticks[::2], : bw - 1] = 235
    tick_h = max(2, int(round(0.012 * H)))
    cols = np.arange(bw + int(round(100 * sx)), W, max(3, int(round(200 * sx))))
    rgb[H - tick_h :, cols] = 200
    return rgb


def _bar_width(W: int) -> int:
    return max(2, int(round(S.SCALE_BAR_FRAC * W)))


def _streaks(rng, fp, W: int, H: int) -> np.ndarray:
    """Per-column envelope factor of the shared vertical shadow streaks (hairs, scales)."""
    sx = W / S.FULL_SIZE[0]
    x = np.arange(W, dtype=np.float64)
    st = np.asarray(
        [(_u(rng, 0, W), _u(rng, 4.0, 15.0) * sx, _u(rng, 0.25, 0.6)) for _ in range(fp["n_streaks"])],
        dtype=np.float64,
    )
    return _V.prod_rows(
        1.0 - st[:, 2:3] * _V.exp(-0.5 * ((x[None, :] - st[:, 0:1]) / np.maximum(st[:, 1:2], 0.5)) ** 2)
    )


def render(rng: np.random.Generator, fp: dict[str, Any], size: tuple[int, int]) -> Frame:
    """Render one v3 frame and its twin from the same draws (see the module docstring)."""
    W, H = size
    x = np.arange(W, dtype=np.float64)
    u = (x + 0.5) / W
    uu = u + fp["shift"]
    shared = _shared_geometry(fp, W, H, u, uu)
    twin_g = _twin_geometry(shared, H)
    sh = _draw_shared(rng, fp, twin_g, W, H, u)
    streak = _streaks(rng, fp, W, H)
    noise = rng.random((2, H, W)) * (2.0 * np.sqrt(3.0)) - np.sqrt(3.0)
    # ---- class evidence draws (after every shared draw) ----
    fp = _evidence_jitter(rng, fp)
    img_g = _image_geometry(fp, shared, twin_g, W, H, u, uu)
    lay_t, lay_i = _layers(twin_g, H), _layers(img_g, H)
    clumps, clump_shadows = _clumps(rng, fp, img_g, W, H, u) if fp["label"] == "PS" else ([], [])
    R_t = _reflectivity(fp, twin_g, lay_t, sh, [], W, H, uu)
    R_i = _reflectivity(fp, img_g, lay_i, sh, clumps, W, H, uu) if fp["label"] != "CG" else R_t
    bw = _bar_width(W)
    if R_i is not R_t:  # the scale bar covers its columns in both renderings: no evidence there
        R_i[:, :bw] = R_t[:, :bw]
    ka, kl = _psf(fp, W, H)
    env_i = _envelope(noise, R_i, ka, kl, fp["gain"])
    diff = (R_i != R_t) | (lay_i != lay_t)
    diff[:, :bw] = False
    env_t = _twin_envelope(noise, R_t, env_i, diff, ka, kl, fp["gain"])
    shadow = _evidence_shadow(fp, img_g, clump_shadows, W, H)
    env_t = np.where(lay_t >= 2, env_t * streak, env_t)
    env_i = np.where(lay_i >= 2, env_i * streak, env_i)
    if shadow is not None:
        env_i = env_i * shadow
        diff = diff | (shadow != 1.0)
        diff[:, :bw] = False
    idx = _quantise(env_i)
    rgb = _to_rgb(idx, W, H)
    twin = rgb
    if diff.any():  # only the pixels whose envelope differs are compressed again
        changed = env_t != env_i
        idx[changed] = _quantise(env_t[changed])
        twin = _to_rgb(idx, W, H)
    evidence = diff
    masks = {"epidermis": lay_i == 1, "sleb": lay_i == 2, "tumor": img_g.tumor}
    out = S.structure_masks(masks, bw)
    return Frame(rgb, out, evidence.view(np.uint8) * np.uint8(255), twin, (len(ka) // 2, len(kl) // 2))


def psf_halfwidths(fp: dict[str, Any], size: tuple[int, int]) -> tuple[int, int]:
    """(rows, columns) half-widths of the PSF support of a frame with params ``fp`` at ``size``."""
    ka, kl = _psf(fp, *size)
    return len(ka) // 2, len(kl) // 2


def generate(
    rng: np.random.Generator, label: str, size: tuple[int, int], group_params: dict[str, Any] | None
) -> Frame:
    """A v3 frame of class ``label`` (``group_params``: the session's, else drawn from ``rng``)."""
    if group_params is None:
        group_params = sample_group_params(rng, label)
    return render(rng, frame_params(rng, group_params), size)
