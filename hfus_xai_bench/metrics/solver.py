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
float32; a system (image, removal set) stops when the recursive residual of each of its channels is
≤ 0.8·tol and is then frozen; at the end the relative
residual ``‖b − A x‖₂ / ‖b‖₂`` (0 when b = 0) of every channel is recomputed in float64. A system
above ``tol`` iterates again from its current value, and one that still misses it after ``max_iter``
iterations is solved directly (scipy's sparse LU, float64), so the returned values always meet the
tolerance. Deterministic on a given machine (no atomics, no random draws).

**Batch independence (CPU), by design.** An image's result does not depend on the other images solved
with it or on the chunking: every decision (stop, iteration budget, retry, direct fallback) is taken
per system; the arithmetic is elementwise ops and reductions over one system's rows (fixed length,
contiguous), whose kernels treat each row alike whatever the batch size; and every call into a
library that may choose its kernel by batch size or memory alignment (the Galerkin convolution, the
coarsest-grid inverse and its products) is made per system on a fresh buffer of a fixed shape.
Tested under other CPUs' kernel settings (``tests/test_portability_torch.py``). On the CPU the solver
runs with :data:`SOLVER_CPU_THREADS` torch threads (the caller's setting restored afterwards; not
thread-safe against other Python threads changing it meanwhile), so its result does not depend on the
caller's thread count either. It keeps the caller's cores busy instead: :func:`solver_workers` chunks
are solved at once, each on a thread of its own (a chunk's arithmetic does not depend on the thread that
runs it, and chunks write disjoint rows). Cost: ``benchmarks/bench_faithfulness.py`` and benchmarks/README.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
    "SOLVER_CPU_THREADS",
    "TOL",
    "ImputationSolve",
    "check_pair",
    "default_chunk",
    "direct_imputation",
    "imputation_residual",
    "solve_imputation",
    "solver_threads",
]

#: relative residual the imputation must reach, per image, removal set and channel
TOL = 1e-5

#: torch threads the CPU solver runs with (restored afterwards; None = the caller's setting). One thread:
#: the solver is thousands of small memory-bound ops, which more threads on shared cores run slower
#: (benchmarks/README.md), and its result then does not depend on the caller's thread count.
SOLVER_CPU_THREADS: int | None = 1

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


class _Level:
    """One grid level of a batch of S systems (same operator for every channel of a system)."""

    def __init__(self, mask: torch.Tensor, h: int, w: int) -> None:
        self.mask = mask  # (S, 1, h+3, w+3), 1 = unknown
        self.h, self.w = h, w
        self.stencil: torch.Tensor | None = None  # (S, 9, h, w): coefficient of x[u + e_k] in row u
        self.me: torch.Tensor | None = None  # fine level: mask · (d + 1/3)
        self.mq: torch.Tensor | None = None  # fine level: −mask / 12
        self.dinv: torch.Tensor | None = None  # ω · mask / diagonal
        self.inv: torch.Tensor | None = None  # coarsest on a GPU: (S, n, n) inverse
        self.inv_parts: list[torch.Tensor] | None = None  # coarsest on the CPU: S fresh (n, n) inverses

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

    def fields(self) -> torch.Tensor:
        """The operator as 9 padded coefficient fields (S, 9, h+3, w+3) (row u, column u + e_k)."""
        h, w = self.h, self.w
        s = self.mask.shape[0]
        out = _padded(s, 9, h, w, self.mask)
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


def _fine_level(mask: torch.Tensor, h: int, w: int) -> _Level:
    level = _Level(mask, h, w)
    ones = _padded(1, 1, h, w, mask)
    _interior(ones, h, w).fill_(1.0)
    s121 = torch.zeros_like(ones)
    _sum121(ones, s121, h, w)
    d = (
        s121 / 12.0 - ones / 3.0
    )  # sum of the in-image neighbours' weights (1 inside, 2/3 edges, 5/12 corners)
    level.me = mask * (d + 1.0 / 3.0)
    level.mq = mask * (-1.0 / 12.0)
    level.dinv = torch.where(
        mask > 0, _OMEGA_FINE / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(mask)
    )
    return level


def _coarsen(fine: _Level) -> _Level:
    """The Galerkin coarse level ``M_c Pᵀ A P M_c`` of ``fine`` (one stride-2 convolution of its 9 fields)."""
    h, w = fine.h, fine.w
    hc, wc = h // 2 + 1, w // 2 + 1
    s = fine.mask.shape[0]
    dev = fine.mask.device
    iy = torch.clamp(torch.arange(hc, device=dev) * 2, max=h - 1) + 1
    ix = torch.clamp(torch.arange(wc, device=dev) * 2, max=w - 1) + 1
    mask_c = _padded(s, 1, hc, wc, fine.mask)
    _interior(mask_c, hc, wc).copy_(fine.mask[:, :, iy][:, :, :, ix])
    weight = _GALERKIN.to(device=dev, dtype=fine.mask.dtype)
    fields = fine.fields()[..., : 2 * hc + 1, : 2 * wc + 1]
    # a stride-2 convolution: output I reads padded rows 2I .. 2I+2 = fine rows 2I-1 .. 2I+1 (the extra
    # padding row serves the ghost point of an even-sized grid); one system per call on a fresh copy, so
    # neither the kernel nor the input's alignment depends on the batch the system came in
    stencil = torch.cat(
        [
            F.conv2d(fields[i : i + 1].clone(memory_format=torch.contiguous_format), weight, stride=2)
            for i in range(s)
        ]
    )
    rows = _interior(mask_c, hc, wc)
    for k, (dy, dx) in enumerate(OFFSETS):
        stencil[:, k : k + 1].mul_(rows).mul_(mask_c[..., 1 + dy : 1 + dy + hc, 1 + dx : 1 + dx + wc])
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
        level.inv_parts = [(torch.linalg.inv(a[i].clone()) * keep[i]).to(level.mask.dtype) for i in range(s)]
    else:
        level.inv = (torch.linalg.inv(a) * keep).to(level.mask.dtype)


def _coarse_solve(level: _Level, r: torch.Tensor) -> torch.Tensor:
    """(S, C, n) = the coarsest level's inverse applied to the interior of ``r`` (padded, S × C × n)."""
    s, c = r.shape[:2]
    rv = _interior(r, level.h, level.w).reshape(s, c, level.h * level.w)
    if level.inv_parts is None:  # GPU: one batched call
        return torch.matmul(rv, level.inv.transpose(1, 2))
    # CPU: one BLAS call per system on fresh buffers, like the inverse
    return torch.stack([torch.matmul(rv[i].clone(), part.t()) for i, part in enumerate(level.inv_parts)])


def _hierarchy(mask: torch.Tensor, h: int, w: int) -> list[_Level]:
    levels = [_fine_level(mask, h, w)]
    while max(levels[-1].h, levels[-1].w) > _COARSEST:
        levels.append(_coarsen(levels[-1]))
    _dense_inverse(levels[-1])
    return levels


class _Workspace:
    """Per-level buffers of the V-cycle, allocated once per solve."""

    def __init__(self, levels: list[_Level], c: int) -> None:
        s = levels[0].mask.shape[0]
        like = levels[0].mask
        self.x = [_padded(s, c, lv.h, lv.w, like) for lv in levels]
        self.res = [_padded(s, c, lv.h, lv.w, like) for lv in levels]
        self.rhs = [_padded(s, c, lv.h, lv.w, like) for lv in levels]
        self.fine = [_padded(s, c, lv.h, lv.w, like) for lv in levels]
        self.t121 = [like.new_empty(s, c, lv.h + 3, lv.w) for lv in levels]
        self.trestrict = [like.new_empty(s, c, lv.h + 3, lv.w // 2 + 1) for lv in levels]
        self.tprolong = [like.new_empty(s, c, cv.h + 3, 2 * cv.w) for cv in levels[1:]] + [None]


def _vcycle(levels: list[_Level], ws: _Workspace, i: int, r: torch.Tensor) -> torch.Tensor:
    """One V(1,1)-cycle from x = 0 for right-hand side ``r`` on level ``i``; returns ws.x[i]."""
    lv, x = levels[i], ws.x[i]
    if lv.inv is not None or lv.inv_parts is not None:
        _interior(x, lv.h, lv.w).copy_(_coarse_solve(lv, r).reshape(x.shape[0], x.shape[1], lv.h, lv.w))
        return x
    res = ws.res[i]
    torch.mul(lv.dinv, r, out=x)  # pre-smoothing from zero
    lv.apply(x, res, ws.t121[i])
    torch.sub(r, res, out=res)
    coarse = levels[i + 1]
    rc = ws.rhs[i + 1]
    _restrict(res, rc, coarse.h, coarse.w, ws.trestrict[i])
    rc.mul_(coarse.mask)
    ec = _vcycle(levels, ws, i + 1, rc)
    pf = ws.fine[i]
    _prolong(ec, pf, coarse.h, coarse.w, lv.h, lv.w, ws.tprolong[i])
    x.addcmul_(lv.mask, pf)
    lv.apply(x, res, ws.t121[i])  # post-smoothing
    torch.sub(r, res, out=res)
    x.addcmul_(lv.dinv, res)
    return x


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per (system, channel) Σ a·b: the product, then one reduction over its contiguous row (what
    ``linalg.vecdot`` does for real tensors, without its slower product kernel)."""
    return torch.mul(a, b).flatten(2).sum(dim=2)


def _rhs(fine: _Level, images_p: torch.Tensor) -> torch.Tensor:
    """b = Σ_{kept v} w_uv x_v at the unknowns (padded)."""
    kept = images_p * (1.0 - fine.mask)
    b = torch.zeros_like(images_p)
    _sum121(kept, b, fine.h, fine.w)
    return b.mul_(fine.mask).mul_(1.0 / 12.0)


def _residual64(fine64: _Level, b64: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Relative residual (S, C) of x (padded, zero outside the unknowns), computed in float64."""
    ax = fine64.apply(x.to(torch.float64), torch.zeros_like(b64))
    rn = torch.linalg.vector_norm((b64 - ax).flatten(2), dim=2)
    bn = torch.linalg.vector_norm(b64.flatten(2), dim=2)
    return torch.where(
        bn > 0, rn / torch.where(bn > 0, bn, torch.ones_like(bn)), torch.where(rn > 0, torch.inf, 0.0)
    )


def _pcg(
    levels: list[_Level], b: torch.Tensor, x: torch.Tensor, tol: float, budget: torch.Tensor, ws: _Workspace
) -> torch.Tensor:
    """Preconditioned CG on level 0 for all systems and channels, in place on ``x``.

    ``budget`` (S,) int64: the most iterations each system may take (0 = leave it as it is). Every
    decision is per system, so a system's iterations never depend on the others. ``ws``: the V-cycle's
    buffers for these levels (reused: every use overwrites their interiors, their zero rings stay zero).
    Returns the iterations per system (S,) int64.
    """
    fine = levels[0]
    r = fine.apply(x, torch.zeros_like(b), ws.t121[0])
    torch.sub(b, r, out=r)
    bn = torch.linalg.vector_norm(b.flatten(2), dim=2)
    stop = tol * bn
    spent = (budget <= 0)[:, None]
    # a system (all its channels) stops together, so its iterations do not depend on other systems
    done = spent | (torch.linalg.vector_norm(r.flatten(2), dim=2) <= stop).all(dim=1, keepdim=True)
    iterations = torch.zeros(b.shape[0], dtype=torch.long, device=b.device)
    if bool(done.all()):
        return iterations
    z = _vcycle(levels, ws, 0, r)
    p = z.clone()
    q = torch.zeros_like(b)
    rz = _dot(r, z)
    zero = torch.zeros_like(rz)
    while True:
        iterations += (~done[:, 0]).long()
        fine.apply(p, q, ws.t121[0])
        pq = _dot(p, q)
        alpha = torch.where(~done & (pq > 0), rz / torch.where(pq > 0, pq, torch.ones_like(pq)), zero)
        x.addcmul_(p, alpha[..., None, None])
        r.addcmul_(q, -alpha[..., None, None])
        converged = (torch.linalg.vector_norm(r.flatten(2), dim=2) <= stop).all(dim=1, keepdim=True)
        done = done | converged | (iterations >= budget)[:, None]
        if bool(done.all()):
            return iterations
        z = _vcycle(levels, ws, 0, r)
        rz_new = _dot(r, z)
        beta = torch.where(~done & (rz > 0), rz_new / torch.where(rz > 0, rz, torch.ones_like(rz)), zero)
        p.mul_(beta[..., None, None]).add_(z)
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
    """Systems solved together: 5 on the CPU (a ROAD image's ten systems in two solves, one per core of two;
    the result does not depend on it), 320 on a GPU."""
    return 5 if device.type == "cpu" else 320


#: the caller's torch thread count while :func:`solver_threads` has switched it (outermost first)
_CALLER_THREADS: list[int] = []


@contextmanager
def solver_threads(device: torch.device) -> Iterator[None]:
    """On the CPU, run the solver with :data:`SOLVER_CPU_THREADS` torch threads, restored afterwards."""
    old = torch.get_num_threads()
    if device.type != "cpu" or not SOLVER_CPU_THREADS or old == SOLVER_CPU_THREADS:
        yield
        return
    torch.set_num_threads(SOLVER_CPU_THREADS)
    _CALLER_THREADS.append(old)
    try:
        yield
    finally:
        _CALLER_THREADS.pop()
        torch.set_num_threads(old)


def solver_workers(device: torch.device) -> int:
    """Chunks solved at once: on the CPU with one-thread solves, the caller's torch thread count (each chunk
    on a thread of its own, so the cores the caller uses stay busy); else 1."""
    if device.type != "cpu" or SOLVER_CPU_THREADS != 1:
        return 1
    return max(1, _CALLER_THREADS[0] if _CALLER_THREADS else torch.get_num_threads())


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
    n, c, h, w = images.shape
    device = images.device
    chunk = chunk or default_chunk(device)
    values = images.clone()
    rel = np.zeros((n, c), np.float64)
    iters = np.zeros(n, np.int64)
    direct = np.zeros(n, bool)
    work = torch.float32 if images.dtype in (torch.float16, torch.bfloat16) else images.dtype
    workers = solver_workers(device)
    with solver_threads(device):
        _solve_chunks(images, removed, values, rel, iters, direct, chunk, work, tol, max_iter, workers)
    return ImputationSolve(values=values, rel_residual=rel, iterations=iters, direct=direct, tol=tol)


def _solve_chunks(
    images: torch.Tensor,
    removed: torch.Tensor,
    values: torch.Tensor,
    rel: np.ndarray,
    iters: np.ndarray,
    direct: np.ndarray,
    chunk: int,
    work: torch.dtype,
    tol: float,
    max_iter: int,
    workers: int = 1,
) -> None:
    """Solve every chunk of systems, ``workers`` chunks at a time (CPU threads of one torch thread each: a
    chunk's arithmetic is the same whichever thread runs it; results go to disjoint rows)."""
    n = images.shape[0]
    chunks = [slice(start, min(start + chunk, n)) for start in range(0, n, chunk)]
    local = threading.local()

    def run(sl: slice) -> None:
        if torch.get_num_threads() != 1 and workers > 1:
            torch.set_num_threads(1)  # a new worker thread: one torch thread, like the solve it shares
        spaces = local.__dict__.setdefault("spaces", {})  # per thread and chunk size: V-cycle buffers
        _solve_chunk(images, removed, values, rel, iters, direct, sl, work, tol, max_iter, spaces)

    if workers <= 1 or len(chunks) <= 1:
        for sl in chunks:
            run(sl)
        return
    for future in [_executor().submit(run, sl) for sl in chunks]:
        future.result()


def _solve_chunk(
    images: torch.Tensor,
    removed: torch.Tensor,
    values: torch.Tensor,
    rel: np.ndarray,
    iters: np.ndarray,
    direct: np.ndarray,
    sl: slice,
    work: torch.dtype,
    tol: float,
    max_iter: int,
    spaces: dict[int, _Workspace],
) -> None:
    """The systems ``sl``: multigrid-preconditioned CG, the float64 check, the direct fallback."""
    _, c, h, w = images.shape
    device = images.device
    s = sl.stop - sl.start
    img = images[sl].to(work)
    mask = _padded(s, 1, h, w, img)
    _interior(mask, h, w).copy_(removed[sl, None])
    img_p = _padded(s, c, h, w, img)
    _interior(img_p, h, w).copy_(img)
    x = torch.zeros_like(img_p)
    fine64 = _fine_level(mask.to(torch.float64), h, w)
    b64 = _rhs(fine64, img_p.to(torch.float64))
    if bool(mask.any()):
        levels = _hierarchy(mask, h, w)
        b = _rhs(levels[0], img_p)
        used = torch.zeros(s, dtype=torch.long, device=device)
        budget = torch.full((s,), max_iter, dtype=torch.long, device=device)
        for _ in range(3):  # normally once; again (from x) only for a system the float64 check rejects
            if s not in spaces:
                spaces[s] = _Workspace(levels, c)
            used += _pcg(levels, b, x, _STOP * tol, budget, spaces[s])
            res = _residual64(fine64, b64, x)
            budget = torch.where((res <= tol).all(dim=1), 0, max_iter - used)  # per system
            if not bool((budget > 0).any()):
                break
        iters[sl] = used.cpu().numpy()
    else:
        res = _residual64(fine64, b64, x)
    out = torch.where(mask > 0, x, img_p)
    values[sl] = _interior(out, h, w).to(images.dtype)
    bad = torch.nonzero((res > tol).any(dim=1)).flatten().tolist()
    for j in bad:
        i = sl.start + j
        values[i : i + 1] = direct_imputation(images[i : i + 1], removed[i : i + 1])
        direct[i], iters[i] = True, 0
        res[j] = torch.as_tensor(
            imputation_residual(images[i : i + 1], removed[i : i + 1], values[i : i + 1])[0]
        )
    rel[sl] = res.cpu().numpy()


_EXECUTOR: list[ThreadPoolExecutor] = []


def _executor() -> ThreadPoolExecutor:
    """The process's pool of solver threads (created once; threads start when first needed)."""
    if not _EXECUTOR:
        _EXECUTOR.append(
            ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="hfus-solver")
        )
    return _EXECUTOR[0]
