"""Shared primitives of the ``hfus-synth`` generators (:mod:`.synth` v1/v2, :mod:`.synth_v3`,
:mod:`.synth_archive`).

The arithmetic of each generator version (``Ops``: numpy float32 for version 1, the portable float64
of :mod:`.portable` for versions 2 and 3; the portability rule is in :mod:`.synth`'s docstring), the frame
geometry, the physics constants they share, smooth random curves, the PSF kernel and convolution, the
green palette, and the argument checks. It imports no other generator module (it sits below all three,
so they share it without an import cycle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..constants import CLASSES, SYNTH_DATASET
from ..errors import HfusError
from . import portable
from .layouts import STRUCTURES

#: Default frame size (W, H): a quarter of the real 2067×1555 exports.
DEFAULT_SIZE: tuple[int, int] = (517, 389)
FULL_SIZE: tuple[int, int] = (2067, 1555)
MIN_SIZE: tuple[int, int] = (64, 48)

#: The archive's generator record, next to the class folders (read back by the importer).
INFO_NAME = "SYNTH_INFO.json"

#: Width of the depth-scale bar as a fraction of the frame width (columns 0–4 at 224 scale).
SCALE_BAR_FRAC = 5.0 / 224.0

# Tissue reflectivities (amplitude, relative to the entry echo ≈ 1) and other physics constants.
GEL_REFL = 0.012
LOG_K = 3.0  # log compression: v = log1p(K·env) / log1p(K·LOG_MAX), gel → black, entry echo → near-white
LOG_MAX = 1.3


@dataclass(frozen=True)
class Ops:
    """The arithmetic of one generator version (the portability rule is in :mod:`.synth`'s docstring)."""

    dtype: type
    exp: Any
    sin: Any
    log1p: Any
    power: Any
    uniform: Any  # (rng, low, high, size=None)
    normal: Any  # (rng, k)
    count: Any  # (rng, mean) -> int: how many fleck impulses
    sum_all: Any  # 1-D sum
    sum_rows: Any  # Σ over axis 0
    prod_rows: Any  # Π over axis 0
    dyadic: Any  # amplitudes whose sums are exact (v2) or as drawn (v1)


V1 = Ops(
    dtype=np.float32,
    exp=np.exp,
    sin=np.sin,
    log1p=np.log1p,
    power=np.power,
    uniform=lambda rng, lo, hi, size=None: rng.uniform(lo, hi, size),
    normal=lambda rng, k: rng.standard_normal(k),
    count=lambda rng, mean: int(rng.poisson(mean)),
    sum_all=lambda a: a.sum(),
    sum_rows=lambda a: a.sum(0),
    prod_rows=lambda a: np.prod(a, axis=0),
    dyadic=lambda a: a,
)
V2 = Ops(
    dtype=np.float64,
    exp=portable.exp,
    sin=portable.sin,
    log1p=portable.log1p,
    power=portable.power,
    uniform=portable.uniform,
    normal=portable.normal,
    # mean ± 5 %, integer draws only (Poisson sampling goes through libm)
    count=lambda rng, mean: int(rng.integers(int(mean * 0.95), int(mean * 1.05) + 2)),
    sum_all=lambda a: float(portable.sum_rows(np.asarray(a, np.float64)[:, None])[0]),
    sum_rows=portable.sum_rows,
    prod_rows=portable.prod_rows,
    dyadic=lambda a: np.rint(a * 1048576.0) / 1048576.0,  # multiples of 2^-20: sums are exact
)
OPS = {"1": V1, "2": V2, "3": V2}  # v3 (synth_v3.py) uses v2's portable arithmetic


def ops_for(version: str) -> Ops:
    """The arithmetic of generator ``version``; ``HfusError`` for an unknown one."""
    if version not in OPS:
        raise HfusError(f"unknown {SYNTH_DATASET} generator version {version!r}; known: {', '.join(OPS)}")
    return OPS[version]


def curve_coeffs(rng: np.random.Generator, k: int, fmin: float, fmax: float, ops: Ops) -> np.ndarray:
    """Coefficients (3, k) of a smooth random curve: frequencies (cycles / width), phases, weights."""
    f = ops.uniform(rng, fmin, fmax, k)
    ph = ops.uniform(rng, 0.0, 2.0 * np.pi, k)
    a = ops.normal(rng, k) / np.sqrt(f)
    return np.stack([f, ph, a])


def curve(coeffs: np.ndarray, u: np.ndarray, ops: Ops) -> np.ndarray:
    """Evaluate a smooth random curve at ``u`` (fractions of the width), unit RMS."""
    f, ph, a = coeffs
    val = ops.sum_rows(a[:, None] * ops.sin(2.0 * np.pi * f[:, None] * u[None, :] + ph[:, None]))
    return (val / max(float(np.sqrt(ops.sum_all(a**2) / 2.0)), 1e-9)).astype(ops.dtype)


def palette(ops: Ops) -> np.ndarray:
    """(256, 3) uint8 black → green → white: R = B ≈ 0 until G ≳ 100, near-white above G ≈ 225."""
    i = np.arange(256, dtype=np.float64)
    g = np.minimum(255.0, i * 255.0 / 232.0)
    rb = 255.0 * ops.power(np.clip((g - 100.0) / 145.0, 0.0, 1.0), 1.8)
    return np.rint(np.stack([rb, g, rb], axis=1)).astype(np.uint8)


PALETTES = {version: palette(ops) for version, ops in OPS.items() if version != "3"}


def kernel(sigma: float, ops: Ops) -> np.ndarray:
    """Unit-energy Gaussian kernel of std ``sigma`` px, half-width ⌈3σ⌉."""
    r = max(1, int(math.ceil(3.0 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = ops.exp(-0.5 * (t / max(sigma, 1e-3)) ** 2)
    return (k / np.sqrt(ops.sum_all(k**2))).astype(ops.dtype)  # unit energy: E|conv|² = local R²


def conv1d(a: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    """Correlate ``a`` with the symmetric kernel ``k`` along ``axis`` (reflect padding)."""
    r = len(k) // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    p = np.pad(a, pad, mode="reflect")
    n = a.shape[axis]
    out = _slice(p, axis, r, n) * k[r]
    tmp = np.empty_like(out)
    for i in range(1, r + 1):  # symmetric taps in pairs: three vector ops per pair
        np.add(_slice(p, axis, r - i, n), _slice(p, axis, r + i, n), out=tmp)
        tmp *= k[r + i]
        out += tmp
    return out


def _slice(a: np.ndarray, axis: int, start: int, n: int) -> np.ndarray:
    idx = [slice(None)] * a.ndim
    idx[axis] = slice(start, start + n)
    return a[tuple(idx)]


def check_label(label: str) -> str:
    """``label`` if it is one of ``CLASSES``."""
    if label not in CLASSES:
        raise HfusError(f"unknown class {label!r}; use one of {', '.join(CLASSES)}")
    return label


def check_int(value: int, name: str, minimum: int) -> int:
    """``value`` as an int if it is an integer ≥ ``minimum`` (0 or 1); else ``HfusError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "positive" if minimum == 1 else "non-negative"
        raise HfusError(f"{name} must be a {what} integer, got {value!r}")
    return int(value)


def check_n(n: int) -> int:
    """``n`` as an int if it is a positive integer."""
    return check_int(n, "n", 1)


def check_seed(seed: int) -> int:
    """``seed`` as an int if it is a non-negative integer."""
    return check_int(seed, "seed", 0)


def check_size(size: Sequence[int]) -> tuple[int, int]:
    """``size`` as (W, H) ints if it lies between ``MIN_SIZE`` and four times ``FULL_SIZE``."""
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise HfusError(f"size must be (width, height), got {size!r}") from None
    if w < MIN_SIZE[0] or h < MIN_SIZE[1] or w > 4 * FULL_SIZE[0] or h > 4 * FULL_SIZE[1]:
        raise HfusError(
            f"size {size!r} out of range; use (W, H) between {MIN_SIZE} and four times {FULL_SIZE}, "
            f"e.g. {DEFAULT_SIZE}"
        )
    return w, h


def structure_masks(masks: dict[str, np.ndarray | None], band: int) -> dict[str, np.ndarray]:
    """A frame's structure masks (``STRUCTURES`` names → bool or None) as uint8 0/255, the left band of
    ``band`` columns cleared in place; masks that are None or end up empty are left out."""
    out: dict[str, np.ndarray] = {}
    for name in STRUCTURES:
        m = masks[name]
        if m is None:
            continue
        m[:, :band] = False
        if m.any():
            out[name] = m.view(np.uint8) * np.uint8(255)
    return out
