"""Transcendental functions and random draws whose bytes do not depend on the machine.

numpy's ``exp``, ``log1p``, ``sin`` (float32 *and* float64) dispatch to SIMD kernels chosen at run
time (SSE / AVX2 / AVX-512) that differ in the last bits; libm differs between platforms;
``Generator.uniform`` / ``standard_normal`` / ``poisson`` go through compiled C whose floating-point
contraction and libm calls are the build's choice; vectorised reductions (``sum``, ``prod``) add in
an order that depends on the vector width. Everything here is built from operations whose result
IEEE-754 pins bit for bit — ``+ − × ÷ √`` on float64, ``rint``/``floor``, comparisons, integer
arithmetic on the bit pattern — each as its own numpy ufunc call (no fused multiply-add), with
sums in a fixed sequential order. So the same inputs give the same bytes on every CPU, numpy
build, thread count and platform. Accuracy is a few ulp, far below what 8-bit images resolve;
what matters is that it is *the same* few ulp everywhere.
"""

from __future__ import annotations

import math

import numpy as np

# fdlibm's split constants: the high parts have trailing zero bits, so k·HI is exact for |k| < 2^20.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_PIO2_1 = 1.57079632673412561417e00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624879595063154e-21
_TWO_OVER_PI = 6.36619772367581382433e-01
_SQRT2 = 1.4142135623730951

_EXP_TAYLOR = tuple(1.0 / math.factorial(n) for n in range(14))  # |r| ≤ ln2/2: remainder < 1e-17
_ATANH_TAYLOR = tuple(1.0 / (2 * n + 1) for n in range(12))  # |f| ≤ 0.172: remainder < 1e-18
_SIN_TAYLOR = tuple((-1.0) ** n / math.factorial(2 * n + 1) for n in range(11))  # |r| ≤ π/4
_COS_TAYLOR = tuple((-1.0) ** n / math.factorial(2 * n) for n in range(11))
_POW2 = np.array([math.ldexp(1.0, k) for k in range(-1074, 1024)], dtype=np.float64)  # exact powers of two


def _f64(x) -> np.ndarray:
    return np.array(x, dtype=np.float64, copy=True)


def _horner(x: np.ndarray, coeffs: tuple[float, ...]) -> np.ndarray:
    """Σ coeffs[n] · x^n, Horner's rule, highest power first."""
    p = np.full_like(x, coeffs[-1])
    for c in coeffs[-2::-1]:
        p = p * x
        p = p + c
    return p


def exp(x) -> np.ndarray:
    """e^x for float64 ``x``: x = k·ln2 + r, Taylor polynomial of e^r, times an exact 2^k."""
    x = np.clip(_f64(x), -744.0, 709.0)
    k = np.rint(x * _INV_LN2)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _horner(r, _EXP_TAYLOR)
    ki = k.astype(np.int64)
    lo = np.maximum(ki, -1022)  # two exact scalings keep subnormal results exact-rounded
    return (p * np.take(_POW2, lo + 1074)) * np.take(_POW2, ki - lo + 1074)


def log(x) -> np.ndarray:
    """Natural log of positive float64 ``x`` (0 → −inf): exponent from the bits, 2·atanh series of the
    mantissa."""
    x = _f64(x)
    zero = x <= 0.0
    x = np.where(zero | ~np.isfinite(x), 1.0, x)
    small = x < 2.2250738585072014e-308  # subnormal: scale up exactly first
    x = np.where(small, x * 18014398509481984.0, x)  # 2^54
    bits = x.view(np.int64)
    e = ((bits >> 52) & 0x7FF) - 1023 - np.where(small, 54, 0)
    m = ((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000).view(np.float64)  # [1, 2)
    big = m > _SQRT2
    m = np.where(big, m * 0.5, m)
    ef = (e + big).astype(np.float64)
    f = (m - 1.0) / (m + 1.0)
    s = _horner(f * f, _ATANH_TAYLOR)
    out = ef * _LN2_HI + (2.0 * f * s + ef * _LN2_LO)
    return np.where(zero, -np.inf, out)


def log1p(x) -> np.ndarray:
    """log(1 + x) for float64 ``x`` ≥ 0 (1 + x rounded first: ample for image intensities)."""
    return log(_f64(x) + 1.0)


def power(x, y: float) -> np.ndarray:
    """x^y for float64 ``x`` ≥ 0 and a real ``y`` > 0 (0^y = 0)."""
    x = _f64(x)
    return np.where(x > 0.0, exp(log(np.where(x > 0.0, x, 1.0)) * float(y)), 0.0)


def sin(x) -> np.ndarray:
    """sin of float64 ``x`` (|x| < 1e6): Cody–Waite reduction by π/2, Taylor sin/cos on [−π/4, π/4]."""
    x = _f64(x)
    n = np.rint(x * _TWO_OVER_PI)
    r = ((x - n * _PIO2_1) - n * _PIO2_2) - n * _PIO2_3
    r2 = r * r
    s = r * _horner(r2, _SIN_TAYLOR)
    c = _horner(r2, _COS_TAYLOR)
    q = n.astype(np.int64) & 3
    out = np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))
    return out


def sum_rows(a: np.ndarray) -> np.ndarray:
    """Σ over axis 0 of a 2-D float64 array, row after row (a fixed order on every machine)."""
    acc = np.array(a[0], dtype=np.float64, copy=True)
    for row in a[1:]:
        acc = acc + row
    return acc


def prod_rows(a: np.ndarray) -> np.ndarray:
    """Π over axis 0 of a 2-D float64 array, row after row."""
    acc = np.array(a[0], dtype=np.float64, copy=True)
    for row in a[1:]:
        acc = acc * row
    return acc


def uniform(rng: np.random.Generator, low: float, high: float, size=None):
    """``low + (high − low)·U`` with U = ``rng.random()`` (53 random bits, exact), in separate IEEE ops."""
    if size is None:
        return float(low) + (float(high) - float(low)) * float(rng.random())
    return (np.asarray(rng.random(size), dtype=np.float64) * (float(high) - float(low))) + float(low)


def normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Approximately N(0, 1): Irwin–Hall sum of 12 uniforms − 6, added in a fixed order."""
    u = rng.random((12, int(size)))
    return sum_rows(u) - 6.0
