"""The sparse linear solve of ROAD's imputation (PROTOCOL §7.2), general numerics :mod:`.road` builds on.

Per image and colour channel, the removed pixels ``u`` solve x_u = Σ_v w_uv x_v / Σ_v w_uv over the 8
neighbours v inside the image (w = 1/6 direct, 1/12 diagonal), kept pixels fixed, to relative residual
≤ ``tol``: :func:`solve_imputation` (batched, any device); the system itself, its scipy reference
:func:`direct_imputation` and the check :func:`imputation_residual` live in :mod:`.solver_system`.

**Solver.** The system (per image and channel: symmetric positive definite, an M-matrix; every
connected hole touches a kept pixel as long as one pixel is kept) is solved by conjugate gradients
preconditioned with one geometric multigrid V-cycle, batched over (image × removal set) and channels
with plain torch ops on the images' device:

- level 0 is the 224×224 grid with the removed pixels as unknowns; coarse grid point I sits on fine
  point 2I (``h → h // 2 + 1``: 224, 113, 57, 29, 15, 8), active iff that fine point is an unknown
  (the last coarse row/column of an even-sized grid sits on the last fine row/column);
- prolongation = bilinear interpolation restricted to active coarse and unknown fine points,
  restriction = its transpose, coarse operators = the Galerkin products ``Pᵀ A P`` (9-point stencils
  with varying coefficients, computed exactly as one stride-2 convolution of the 9 coefficient fields
  per system); every active coarse point has a fine point of its own, so each coarse operator is again
  symmetric positive definite;
- one damped-Jacobi sweep before and after the coarse correction (ω = 1 on the fine level, where the
  smoothing factor of this 9-point operator is 1/3, ω = 0.9 below), a dense solve (explicit inverse,
  float64) on the coarsest grid (≤ 8×8).

A few iterations reach the tolerance for any hole shape (benchmarks/README.md). Iterations run in
float32 from x = 0 with the float64 right-hand side rounded to float32; a system (image, removal set)
stops when the recursive residual of each of its channels is ≤ 0.8·tol and is then frozen; at the end the
relative residual ``‖b − A x‖₂ / ‖b‖₂`` (0 when b = 0) of every channel is recomputed in float64. A system
above ``tol`` iterates again from its current value, and one that still misses it after ``max_iter``
iterations is solved directly (scipy's sparse LU, float64), so the returned values always meet the
tolerance. Deterministic on a given machine (no atomics, no random draws). Systems are solved in chunks
of :func:`default_chunk`, grouped by their number of unknowns (systems of a similar size tend to need
the same iterations, and a chunk iterates until its last system has converged); on the CPU each thread
keeps one workspace (every array of a chunk) for the next chunk of the same shape.

**Batch and thread independence (CPU), by design.** An image's result does not depend on the other
images solved with it, on the chunking or on the torch thread count: every decision (stop, iteration
budget, retry, direct fallback) is taken per system; the arithmetic is elementwise ops (the same value
whichever thread or vector lane computes an element) and reductions over one (system, channel) plane, made
as a reduction over rows and then one over the row sums, so that each has more than one output (ATen
splits such a reduction between threads by output; one to a single output it would split along its
input); and every call into a library that may choose its kernel by batch size or memory alignment (the
Galerkin convolution, the coarsest-grid inverse and its products) is made per system on a fresh buffer
or a block of a fixed shape that starts 64-byte aligned. Tested under other CPUs' kernel settings
(``tests/test_portability_torch.py``). Cost: ``benchmarks/bench_faithfulness.py`` and benchmarks/README.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .solver_system import (
    OFFSETS,
    W_DIAGONAL,
    W_DIRECT,
    check_pair,
    direct_imputation,
    imputation_residual,
)

__all__ = [
    "TOL",
    "ImputationSolve",
    "check_pair",
    "default_chunk",
    "direct_imputation",
    "imputation_residual",
    "solve_imputation",
]

#: relative residual the imputation must reach, per image, removal set and channel
TOL = 1e-5

_OMEGA_FINE, _OMEGA_COARSE = 1.0, 0.9
_COARSEST = 8  # a grid with at most 8 points per side is solved densely
_STOP = 0.8  # iterate until the float32 residual is <= _STOP * tol, then check in float64


# ---------------------------------------------------------------------------------------------- solver
#
# Arrays of a grid level with h×w points are stored padded as (S, C, h + 3, w + 3): interior at
# [1 : h + 1, 1 : w + 1], zeros around (one row/column before, two after, so that the stride-2
# restriction of an even-sized grid can read one past the end). Masks are (S, 1, h + 3, w + 3).


def _padded(s: int, c: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros(s, c, h + 3, w + 3, dtype=like.dtype, device=like.device)


def _interior(a: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return a[..., 1 : h + 1, 1 : w + 1]


def _sum121(x: torch.Tensor, out: torch.Tensor, h: int, w: int, tmp: torch.Tensor | None = None) -> None:
    """Interior of ``out`` = the [1 2 1]ᵀ[1 2 1] sum of ``x`` over each 3×3 neighbourhood (= 12 N(x) + 4 x).

    ``tmp``: a buffer of shape x.shape[:-1] + (w,) (allocated when None).
    """
    if tmp is None:
        tmp = x.new_empty(x.shape[:-1] + (w,))
    torch.add(x[..., :, 0:w], x[..., :, 2 : w + 2], out=tmp)
    tmp.add_(x[..., :, 1 : w + 1], alpha=2.0)
    o = _interior(out, h, w)
    torch.add(tmp[..., 0:h, :], tmp[..., 2 : h + 2, :], out=o)
    o.add_(tmp[..., 1 : h + 1, :], alpha=2.0)


def _restrict(f: torch.Tensor, out: torch.Tensor, hc: int, wc: int, tmp: torch.Tensor | None = None) -> None:
    """Interior of ``out`` (coarse) = Pᵀ f: weights [1/2 1 1/2]ᵀ[1/2 1 1/2] around fine point 2I.

    ``tmp``: a buffer of shape f.shape[:-1] + (wc,).
    """
    if tmp is None:
        tmp = f.new_empty(f.shape[:-1] + (wc,))
    torch.add(f[..., 0 : 2 * wc - 1 : 2], f[..., 2 : 2 * wc + 1 : 2], out=tmp)
    tmp.mul_(0.5).add_(f[..., 1 : 2 * wc : 2])
    o = _interior(out, hc, wc)
    torch.add(tmp[..., 0 : 2 * hc - 1 : 2, :], tmp[..., 2 : 2 * hc + 1 : 2, :], out=o)
    o.mul_(0.5).add_(tmp[..., 1 : 2 * hc : 2, :])


def _prolong(
    c: torch.Tensor, out: torch.Tensor, hc: int, wc: int, h: int, w: int, tmp: torch.Tensor | None = None
) -> None:
    """Interior of ``out`` (fine) = P c, bilinear: fine 2I = coarse I, fine 2I+1 = mean of coarse I, I+1.

    ``tmp``: a buffer of shape c.shape[:-1] + (2 * wc,).
    """
    if tmp is None:
        tmp = c.new_empty(c.shape[:-1] + (2 * wc,))
    tmp[..., 0::2].copy_(c[..., 1 : wc + 1])
    odd = tmp[..., 1::2]
    torch.add(c[..., 1 : wc + 1], c[..., 2 : wc + 2], out=odd)
    odd.mul_(0.5)
    o = _interior(out, h, w)
    n_even, n_odd = (h + 1) // 2, h // 2
    o[..., 0::2, :].copy_(tmp[..., 1 : 1 + n_even, 0:w])
    if n_odd:
        oo = o[..., 1::2, :]
        torch.add(tmp[..., 1 : 1 + n_odd, 0:w], tmp[..., 2 : 2 + n_odd, 0:w], out=oo)
        oo.mul_(0.5)


def _hat(a: int) -> float:
    return {0: 1.0, 1: 0.5, -1: 0.5}.get(a, 0.0)


def _galerkin_weights() -> torch.Tensor:
    """conv2d weights (9 coarse offsets, 9 fine stencil entries, 3, 3) of the Galerkin product Pᵀ A P.

    A_c[I, I + o] = Σ_t Σ_k S_k[2I + t] · p(t) · p(t + e_k − 2o), t ∈ {−1, 0, 1}², p = bilinear hat.
    """
    wt = torch.zeros(9, 9, 3, 3, dtype=torch.float64)
    for oi, (oy, ox) in enumerate(OFFSETS):
        for k, (ey, ex) in enumerate(OFFSETS):
            for ty in (-1, 0, 1):
                for tx in (-1, 0, 1):
                    wt[oi, k, ty + 1, tx + 1] = (
                        _hat(ty) * _hat(tx) * _hat(ty + ey - 2 * oy) * _hat(tx + ex - 2 * ox)
                    )
    return wt


_GALERKIN = _galerkin_weights()
_GALERKIN_CAST: dict[tuple[torch.dtype, str], torch.Tensor] = {}


def _galerkin(like: torch.Tensor) -> torch.Tensor:
    """:data:`_GALERKIN` in ``like``'s dtype and device (cast once)."""
    key = (like.dtype, str(like.device))
    if key not in _GALERKIN_CAST:
        _GALERKIN_CAST[key] = _GALERKIN.to(device=like.device, dtype=like.dtype)
    return _GALERKIN_CAST[key]


class _Level:
    """One grid level of a batch of S systems (same operator for every channel of a system)."""

    def __init__(self, mask: torch.Tensor, h: int, w: int) -> None:
        self.mask = mask  # (S, 1, h+3, w+3), 1 = unknown
        self.h, self.w = h, w
        self.stencil: torch.Tensor | None = None  # (S, 9, h, w): coefficient of x[u + e_k] in row u
        self.me: torch.Tensor | None = None  # fine level: mask · (d + 1/3)
        self.mq: torch.Tensor | None = None  # fine level: −mask / 12
        self.dinv: torch.Tensor | None = None  # ω · mask / diagonal
        self.inv: torch.Tensor | None = None  # coarsest level: (S, 1, n, n) inverse

    def apply(self, x: torch.Tensor, out: torch.Tensor, tmp: torch.Tensor | None = None) -> torch.Tensor:
        """``out`` = A x (padded, ring zero); x must vanish outside the unknowns."""
        h, w = self.h, self.w
        if self.stencil is None:
            _sum121(x, out, h, w, tmp)
            out.mul_(self.mq).addcmul_(self.me, x)
            return out
        s = self.stencil
        o = _interior(out, h, w)
        torch.mul(s[:, 4:5], _interior(x, h, w), out=o)
        for k, (dy, dx) in enumerate(OFFSETS):
            if k != 4:
                o.addcmul_(s[:, k : k + 1], x[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w])
        return out

    def residual(
        self, r: torch.Tensor, x: torch.Tensor, out: torch.Tensor, tmp: torch.Tensor, s121: torch.Tensor
    ) -> torch.Tensor:
        """``out`` = r − A x (padded, ring zero), in one pass fewer than :meth:`apply` and a subtraction.

        ``tmp``: as for :meth:`apply`; ``s121``: a padded array with a zero ring (fine level: the 121 sums).
        """
        h, w = self.h, self.w
        if self.stencil is None:
            _sum121(x, s121, h, w, tmp)
            torch.addcmul(r, self.me, x, value=-1.0, out=out)
            return out.addcmul_(self.mq, s121, value=-1.0)
        s = self.stencil
        o = _interior(out, h, w)
        torch.addcmul(_interior(r, h, w), s[:, 4:5], _interior(x, h, w), value=-1.0, out=o)
        for k, (dy, dx) in enumerate(OFFSETS):
            if k != 4:
                o.addcmul_(s[:, k : k + 1], x[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], value=-1.0)
        return out

    def fields(self, out: torch.Tensor) -> torch.Tensor:
        """The operator as 9 padded coefficient fields (row u, column u + e_k), written into ``out``
        (S, 9, h+3, w+3) whose ring is zero."""
        h, w = self.h, self.w
        if self.stencil is not None:
            _interior(out, h, w).copy_(self.stencil)
            return out
        m = self.mask
        for k, (dy, dx) in enumerate(OFFSETS):
            o = _interior(out[:, k : k + 1], h, w)
            if k == 4:
                torch.add(self.me, self.mq, alpha=4.0, out=out[:, 4:5])  # mask · d
                continue
            wt = W_DIRECT if dy == 0 or dx == 0 else W_DIAGONAL
            torch.mul(_interior(m, h, w), m[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], out=o)
            o.mul_(-wt)
        return out


def _system_blocks(s: int, c: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """Zeros (S, c, h+3, w+3) whose per-system blocks each start 64-byte aligned: a library call on one
    system's block sees the same alignment whatever the system's position in the batch."""
    per = c * (h + 3) * (w + 3)
    step = -(-per // (64 // like.element_size())) * (64 // like.element_size())
    flat = torch.zeros(s * step, dtype=like.dtype, device=like.device)
    return flat.as_strided((s, c, h + 3, w + 3), (step, (h + 3) * (w + 3), w + 3, 1))


#: per (h, w, dtype, device): the fine level's constant fields (see :func:`_fine_constants`)
_FINE_CONSTANTS: dict[tuple[int, int, torch.dtype, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _fine_constants(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d + 1/3, ω/d) on the padded h×w grid, d = the sum of the in-image neighbours' weights (1 inside,
    2/3 on edges, 5/12 at corners); computed once per grid, dtype and device."""
    key = (h, w, like.dtype, str(like.device))
    if key not in _FINE_CONSTANTS:
        ones = _padded(1, 1, h, w, like)
        _interior(ones, h, w).fill_(1.0)
        s121 = torch.zeros_like(ones)
        _sum121(ones, s121, h, w)
        d = s121 / 12.0 - ones / 3.0
        dinv = torch.where(
            d > 0, _OMEGA_FINE / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(d)
        )
        _FINE_CONSTANTS[key] = (d + 1.0 / 3.0, dinv)
    return _FINE_CONSTANTS[key]


def _fine_level(mask: torch.Tensor, h: int, w: int, smoother: bool = True) -> _Level:
    d13, dinv = _fine_constants(h, w, mask)
    level = _Level(mask, h, w)
    level.me = mask * d13
    level.mq = mask * (-1.0 / 12.0)
    if smoother:
        level.dinv = mask * dinv
    return level


def _coarsen(fine: _Level, fields: torch.Tensor) -> _Level:
    """The Galerkin coarse level ``M_c Pᵀ A P M_c`` of ``fine`` (one stride-2 convolution of its 9 fields).

    ``fields``: (S, 9, h+3, w+3) from :func:`_system_blocks`, ring zero (overwritten inside).
    """
    h, w = fine.h, fine.w
    hc, wc = h // 2 + 1, w // 2 + 1
    s = fine.mask.shape[0]
    dev = fine.mask.device
    iy = torch.clamp(torch.arange(hc, device=dev) * 2, max=h - 1) + 1
    ix = torch.clamp(torch.arange(wc, device=dev) * 2, max=w - 1) + 1
    mask_c = _padded(s, 1, hc, wc, fine.mask)
    _interior(mask_c, hc, wc).copy_(fine.mask[:, :, iy][:, :, :, ix])
    weight = _galerkin(fine.mask)
    fine.fields(fields)
    # a stride-2 convolution: output I reads padded rows 2I .. 2I+2 = fine rows 2I-1 .. 2I+1 (the extra
    # padding row serves the ghost point of an even-sized grid; a last padded row no output reads is left
    # over for an odd size); one system per call on its own aligned contiguous block, so neither the
    # kernel nor the input's alignment depends on the batch the system came in
    stencil = torch.cat([F.conv2d(fields[i : i + 1], weight, stride=2) for i in range(s)])
    rows = _interior(mask_c, hc, wc)
    stencil.mul_(rows)
    for k, (dy, dx) in enumerate(OFFSETS):
        if k != 4:
            stencil[:, k : k + 1].mul_(mask_c[..., 1 + dy : 1 + dy + hc, 1 + dx : 1 + dx + wc])
    coarse = _Level(mask_c, hc, wc)
    coarse.stencil = stencil
    diag = torch.zeros_like(mask_c)
    _interior(diag, hc, wc).copy_(stencil[:, 4:5])
    safe = torch.where(diag > 0, diag, torch.ones_like(diag))
    coarse.dinv = torch.where(mask_c > 0, _OMEGA_COARSE / safe, torch.zeros_like(mask_c))
    return coarse


def _dense_inverse(level: _Level) -> None:
    """The explicit inverse of the level's operator (identity on inactive points), float64 → stored dtype."""
    h, w = level.h, level.w
    n = h * w
    s = level.mask.shape[0]
    unit = _padded(s, n, h, w, level.mask)
    _interior(unit, h, w).copy_(torch.eye(n, dtype=unit.dtype, device=unit.device).reshape(1, n, h, w))
    unit.mul_(level.mask)
    cols = level.apply(unit, torch.zeros_like(unit))  # cols[b, j] = A e_j
    a = _interior(cols, h, w).reshape(s, n, n).transpose(1, 2).to(torch.float64)
    a = 0.5 * (a + a.transpose(1, 2))
    active = _interior(level.mask, h, w).reshape(s, n).to(torch.float64)
    a = a * active[:, :, None] * active[:, None, :] + torch.diag_embed(1.0 - active)
    keep = active[:, :, None] * active[:, None, :]
    if a.device.type == "cpu":
        # one LAPACK call per system on a fresh buffer of a fixed shape (a batched call may pick its
        # blocking or code path by batch size or by the alignment of a matrix in the batch)
        inv = torch.stack([torch.linalg.inv(a[i].clone()) for i in range(s)])
    else:
        inv = torch.linalg.inv(a)
    level.inv = (inv * keep).to(level.mask.dtype)[:, None]  # (S, 1, n, n)


def _coarse_solve(level: _Level, r: torch.Tensor) -> torch.Tensor:
    """(S, C, n) = the coarsest level's inverse applied to the interior of ``r`` (padded, S × C × n).

    A product and a sum over its last axis rather than a matrix product: the same arithmetic for every
    (system, channel) row whatever the number of systems or channels (a BLAS call may choose its kernel
    by the number of rows).
    """
    s, c = r.shape[:2]
    rv = _interior(r, level.h, level.w).reshape(s, c, 1, level.h * level.w)
    return torch.mul(rv, level.inv).sum(dim=-1)


def _level_sizes(h: int, w: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    while max(sizes[-1]) > _COARSEST:
        sizes.append((sizes[-1][0] // 2 + 1, sizes[-1][1] // 2 + 1))
    return sizes


def _hierarchy(mask: torch.Tensor, h: int, w: int, fields: list[torch.Tensor]) -> list[_Level]:
    """The levels of a chunk (``fields``: the workspace's coefficient-field blocks, one per coarsening)."""
    levels = [_fine_level(mask, h, w)]
    while max(levels[-1].h, levels[-1].w) > _COARSEST:
        levels.append(_coarsen(levels[-1], fields[len(levels) - 1]))
    _dense_inverse(levels[-1])
    return levels


class _Workspace:
    """Every array of a solve of S systems × C channels on an h×w grid, allocated once.

    On the CPU the next chunk of the same shape reuses it (:func:`_workspace`): every use overwrites what it
    later reads, and the zero rings of the padded arrays stay zero.
    """

    def __init__(self, s: int, c: int, h: int, w: int, dtype: torch.dtype, device: torch.device) -> None:
        like = torch.empty(0, dtype=dtype, device=device)
        sizes = _level_sizes(h, w)
        # V-cycle, per level
        self.x = [_padded(s, c, hh, ww, like) for hh, ww in sizes]
        self.res = [_padded(s, c, hh, ww, like) for hh, ww in sizes]
        self.rhs = [_padded(s, c, hh, ww, like) for hh, ww in sizes]
        self.fine = [_padded(s, c, hh, ww, like) for hh, ww in sizes]
        self.t121 = [like.new_empty(s, c, hh + 3, ww) for hh, ww in sizes]
        self.trestrict = [like.new_empty(s, c, hh + 3, ww // 2 + 1) for hh, ww in sizes]
        self.tprolong = [like.new_empty(s, c, hh + 3, 2 * ww) for hh, ww in sizes[1:]] + [None]
        self.fields = [_system_blocks(s, 9, hh, ww, like) for hh, ww in sizes[:-1]]
        # conjugate gradients on level 0
        self.mask = _padded(s, 1, h, w, like)
        self.solution, self.b, self.r, self.p, self.q = (_padded(s, c, h, w, like) for _ in range(5))
        self.product = like.new_empty(s, c, h + 3, w + 3)
        self.s121 = _padded(s, c, h, w, like)
        # the float64 check
        wide = like.to(torch.float64)
        self.b64, self.x64, self.ax64 = (_padded(s, c, h, w, wide) for _ in range(3))
        self.t121_64 = wide.new_empty(s, c, h + 3, w)


#: the CPU workspaces of the current thread, by shape
_WORKSPACES = threading.local()


def _workspace(s: int, c: int, h: int, w: int, dtype: torch.dtype, device: torch.device) -> _Workspace:
    """A workspace for this shape: on the CPU the thread's own (kept for the next chunk), else a new one."""
    if device.type != "cpu":
        return _Workspace(s, c, h, w, dtype, device)
    cache = _WORKSPACES.__dict__.setdefault("by_shape", {})
    key = (s, c, h, w, dtype)
    if key not in cache:
        cache.clear()  # one shape at a time: a solve's chunks share one size (but the last)
        cache[key] = _Workspace(s, c, h, w, dtype, device)
    return cache[key]


def _vcycle(levels: list[_Level], ws: _Workspace, i: int, r: torch.Tensor) -> torch.Tensor:
    """One V(1,1)-cycle from x = 0 for right-hand side ``r`` on level ``i``; returns ws.x[i]."""
    lv, x = levels[i], ws.x[i]
    if lv.inv is not None:
        _interior(x, lv.h, lv.w).copy_(_coarse_solve(lv, r).reshape(x.shape[0], x.shape[1], lv.h, lv.w))
        return x
    res = ws.res[i]
    torch.mul(lv.dinv, r, out=x)  # pre-smoothing from zero
    lv.residual(r, x, res, ws.t121[i], ws.s121)
    coarse = levels[i + 1]
    rc = ws.rhs[i + 1]
    _restrict(res, rc, coarse.h, coarse.w, ws.trestrict[i])
    rc.mul_(coarse.mask)
    ec = _vcycle(levels, ws, i + 1, rc)
    pf = ws.fine[i]
    _prolong(ec, pf, coarse.h, coarse.w, lv.h, lv.w, ws.tprolong[i])
    x.addcmul_(lv.mask, pf)
    lv.residual(r, x, res, ws.t121[i], ws.s121)  # post-smoothing
    x.addcmul_(lv.dinv, res)
    return x


def _plane_sum(a: torch.Tensor) -> torch.Tensor:
    """(S, C): the sum over each (system, channel) plane, row by row and then over the row sums.

    Two reductions with more than one output each: ATen splits such a reduction between threads by output
    (one to a single output it splits along the input), so the sums do not depend on the thread count.
    """
    return a.sum(dim=-1).sum(dim=-1)


def _plane_norm(a: torch.Tensor) -> torch.Tensor:
    """(S, C): the 2-norm of each (system, channel) plane, in two reductions like :func:`_plane_sum`."""
    return torch.linalg.vector_norm(torch.linalg.vector_norm(a, dim=-1), dim=-1)


def _dot(a: torch.Tensor, b: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
    """Per (system, channel) Σ a·b: the product (into ``product``), then :func:`_plane_sum`."""
    return _plane_sum(torch.mul(a, b, out=product))


def _rhs64(fine64: _Level, images: torch.Tensor, removed: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """b = Σ_{kept v} w_uv x_v at the unknowns, in float64 (padded, in ``ws.b64``)."""
    h, w = fine64.h, fine64.w
    kept = ws.x64
    torch.mul(images, ~removed[:, None], out=_interior(kept, h, w))
    _sum121(kept, ws.b64, h, w, ws.t121_64)
    return ws.b64.mul_(fine64.mask).mul_(1.0 / 12.0)


def _residual64(fine64: _Level, b64: torch.Tensor, x: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """Relative residual (S, C) of x (padded, zero outside the unknowns), computed in float64."""
    rn = _plane_norm(fine64.residual(b64, ws.x64.copy_(x), ws.x64, ws.t121_64, ws.ax64))
    bn = _plane_norm(b64)
    return torch.where(
        bn > 0, rn / torch.where(bn > 0, bn, torch.ones_like(bn)), torch.where(rn > 0, torch.inf, 0.0)
    )


def _pcg(
    levels: list[_Level],
    b: torch.Tensor,
    x: torch.Tensor,
    tol: float,
    budget: torch.Tensor,
    ws: _Workspace,
    x_is_zero: bool = False,
) -> torch.Tensor:
    """Preconditioned CG on level 0 for all systems and channels, in place on ``x``.

    ``budget`` (S,) int64: the most iterations each system may take (0 = leave it as it is). Every
    decision is per system, so a system's iterations never depend on the others. ``ws``: the arrays for
    these levels (reused: every use overwrites their interiors, their zero rings stay zero).
    ``x_is_zero``: the caller's promise that x = 0 (then r = b without computing A x).
    Returns the iterations per system (S,) int64.
    """
    fine = levels[0]
    r, p, q = ws.r, ws.p, ws.q
    if x_is_zero:
        r.copy_(b)
    else:
        fine.residual(b, x, r, ws.t121[0], ws.s121)
    stop = tol * _plane_norm(b)
    spent = (budget <= 0)[:, None]
    # a system (all its channels) stops together, so its iterations do not depend on other systems
    done = spent | (_plane_norm(r) <= stop).all(dim=1, keepdim=True)
    iterations = torch.zeros(b.shape[0], dtype=torch.long, device=b.device)
    if bool(done.all()):
        return iterations
    z = _vcycle(levels, ws, 0, r)
    p.copy_(z)
    rz = _dot(r, z, ws.product)
    zero = torch.zeros_like(rz)
    while True:
        iterations += (~done[:, 0]).long()
        fine.apply(p, q, ws.t121[0])
        pq = _dot(p, q, ws.product)
        alpha = torch.where(~done & (pq > 0), rz / torch.where(pq > 0, pq, torch.ones_like(pq)), zero)
        x.addcmul_(p, alpha[..., None, None])
        r.addcmul_(q, -alpha[..., None, None])
        converged = (_plane_norm(r) <= stop).all(dim=1, keepdim=True)
        done = done | converged | (iterations >= budget)[:, None]
        if bool(done.all()):
            return iterations
        z = _vcycle(levels, ws, 0, r)
        rz_new = _dot(r, z, ws.product)
        beta = torch.where(~done & (rz > 0), rz_new / torch.where(rz > 0, rz, torch.ones_like(rz)), zero)
        torch.addcmul(z, p, beta[..., None, None], out=p)
        rz = rz_new


@dataclass
class ImputationSolve:
    """What :func:`solve_imputation` returns (no noise, no clipping)."""

    #: (N, C, H, W), kept pixels unchanged, removed pixels = the solution; images' dtype and device
    values: torch.Tensor
    #: (N, C) float64 relative residual ``‖b − A x‖₂ / ‖b‖₂`` (0 when b = 0), computed in float64
    rel_residual: np.ndarray
    #: (N,) conjugate-gradient iterations (0 for an image solved directly)
    iterations: np.ndarray
    #: (N,) True where the direct sparse solve was used (the iterative one missed ``tol``)
    direct: np.ndarray
    tol: float = TOL


def default_chunk(device: torch.device) -> int:
    """Systems solved together: 5 on the CPU, 320 on a GPU (the result does not depend on it)."""
    return 5 if device.type == "cpu" else 320


def solve_imputation(
    images: torch.Tensor,
    removed: torch.Tensor,
    *,
    tol: float = TOL,
    max_iter: int = 50,
    chunk: int | None = None,
) -> ImputationSolve:
    """Linear imputation without noise: the removed pixels solve the ROAD system to rel. residual ≤ ``tol``.

    ``images`` (N, C, H, W) float on any device, ``removed`` (N, H, W) bool (at least one pixel kept per
    image). Solved on the images' device, ``chunk`` images at a time (default: :func:`default_chunk`; the
    result of an image does not depend on the others). See the module docstring for the solver and the
    tolerance check.
    """
    images, removed = check_pair(images, removed)
    n, c = images.shape[:2]
    chunk = chunk or default_chunk(images.device)
    values = images.clone()
    rel = np.zeros((n, c), np.float64)
    iters = np.zeros(n, np.int64)
    direct = np.zeros(n, bool)
    work = torch.float32 if images.dtype in (torch.float16, torch.bfloat16) else images.dtype
    # chunks of systems with similar numbers of unknowns, which tend to need the same iterations (a chunk
    # iterates until its last system has converged)
    order = torch.argsort(removed.reshape(n, -1).sum(dim=1), stable=True).cpu()
    for start in range(0, n, chunk):
        idx = order[start : start + chunk].to(images.device)
        part = images[idx]
        r, it = _solve_chunk(part, removed[idx], part, work, tol, max_iter)
        values[idx] = part
        rel[idx.cpu().numpy()], iters[idx.cpu().numpy()] = r, it
    for i in np.nonzero((rel > tol).any(axis=1))[0]:
        values[i : i + 1] = direct_imputation(images[i : i + 1], removed[i : i + 1])
        direct[i], iters[i] = True, 0
        rel[i] = imputation_residual(images[i : i + 1], removed[i : i + 1], values[i : i + 1])[0]
    return ImputationSolve(values=values, rel_residual=rel, iterations=iters, direct=direct, tol=tol)


def _channel_sources(images: torch.Tensor) -> list[int]:
    """For each channel, the first channel equal to it in every system of ``images`` (itself if none)."""
    sources = list(range(images.shape[1]))
    for j in range(1, len(sources)):
        sources[j] = next(
            (i for i in range(j) if sources[i] == i and torch.equal(images[:, j], images[:, i])), j
        )
    return sources


def _solve_chunk(
    images: torch.Tensor,
    removed: torch.Tensor,
    values: torch.Tensor,
    work: torch.dtype,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_solve_distinct` on the chunk's distinct channels (pseudo-colour images often repeat one,
    e.g. R = B): a repeated channel is the same arithmetic on the same numbers, so it is solved once and
    copied. Same arguments and results as :func:`_solve_distinct`."""
    sources = _channel_sources(images)
    distinct = sorted(set(sources))
    if len(distinct) == len(sources):
        return _solve_distinct(images, removed, values, work, tol, max_iter)
    part = values[:, distinct]
    res, used = _solve_distinct(images[:, distinct], removed, part, work, tol, max_iter)
    where = [distinct.index(j) for j in sources]
    values.copy_(part[:, where])
    return res[:, where], used


def _solve_distinct(
    images: torch.Tensor,
    removed: torch.Tensor,
    values: torch.Tensor,
    work: torch.dtype,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Multigrid-preconditioned CG for one chunk of systems, with the float64 check; writes the removed
    pixels of ``values`` (a view of the result). Returns the relative residuals (S, C) and iterations (S,)."""
    s, c, h, w = images.shape
    ws = _workspace(s, c, h, w, work, images.device)
    mask = ws.mask
    _interior(mask, h, w).copy_(removed[:, None])
    fine64 = _fine_level(mask.to(torch.float64), h, w, smoother=False)
    b64 = _rhs64(fine64, images, removed, ws)
    x = ws.solution.zero_()
    used = torch.zeros(s, dtype=torch.long, device=images.device)
    if not bool(removed.any()):
        return np.zeros((s, c)), used.cpu().numpy()
    levels = _hierarchy(mask, h, w, ws.fields)
    b = ws.b.copy_(b64)  # the float32 right-hand side: the float64 one, rounded
    budget = torch.full((s,), max_iter, dtype=torch.long, device=images.device)
    for attempt in range(3):  # normally once; again (from x) only for a system the float64 check rejects
        used += _pcg(levels, b, x, _STOP * tol, budget, ws, x_is_zero=attempt == 0)
        res = _residual64(fine64, b64, x, ws)
        budget = torch.where((res <= tol).all(dim=1), 0, max_iter - used)  # per system
        if not bool((budget > 0).any()):
            break
    values.copy_(torch.where(removed[:, None], _interior(x, h, w).to(values.dtype), values))
    return res.cpu().numpy(), used.cpu().numpy()
