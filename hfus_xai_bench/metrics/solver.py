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
(``tests/test_portability_torch.py``). Across CPU kinds the values are not bit-identical (the convolution,
the inverse and ``addcmul`` round differently there; docs/REPRODUCIBILITY.md). Cost:
``benchmarks/bench_faithfulness.py`` and benchmarks/README.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from .multigrid import (
    Level,
    coarse_solve,
    fine_level,
    hierarchy,
    interior,
    level_sizes,
    padded,
    prolong,
    restrict,
    sum121,
    system_blocks,
)
from .solver_system import (
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

_STOP = 0.8  # iterate until the float32 residual is <= _STOP * tol, then check in float64


class _Workspace:
    """Every array of a solve of S systems × C channels on an h×w grid, allocated once.

    On the CPU the next chunk of the same shape reuses it (:func:`_workspace`): every use overwrites what it
    later reads, and the zero rings of the padded arrays stay zero.
    """

    def __init__(self, s: int, c: int, h: int, w: int, dtype: torch.dtype, device: torch.device) -> None:
        like = torch.empty(0, dtype=dtype, device=device)
        sizes = level_sizes(h, w)
        # V-cycle, per level
        self.x = [padded(s, c, hh, ww, like) for hh, ww in sizes]
        self.res = [padded(s, c, hh, ww, like) for hh, ww in sizes]
        self.rhs = [padded(s, c, hh, ww, like) for hh, ww in sizes]
        self.fine = [padded(s, c, hh, ww, like) for hh, ww in sizes]
        self.t121 = [like.new_empty(s, c, hh + 3, ww) for hh, ww in sizes]
        self.trestrict = [like.new_empty(s, c, hh + 3, ww // 2 + 1) for hh, ww in sizes]
        self.tprolong = [like.new_empty(s, c, hh + 3, 2 * ww) for hh, ww in sizes[1:]] + [None]
        self.fields = [system_blocks(s, 9, hh, ww, like) for hh, ww in sizes[:-1]]
        # conjugate gradients on level 0
        self.mask = padded(s, 1, h, w, like)
        self.solution, self.b, self.r, self.p, self.q = (padded(s, c, h, w, like) for _ in range(5))
        self.product = like.new_empty(s, c, h + 3, w + 3)
        self.s121 = padded(s, c, h, w, like)
        # the float64 check
        wide = like.to(torch.float64)
        self.b64, self.x64, self.ax64 = (padded(s, c, h, w, wide) for _ in range(3))
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


def _vcycle(levels: list[Level], ws: _Workspace, i: int, r: torch.Tensor) -> torch.Tensor:
    """One V(1,1)-cycle from x = 0 for right-hand side ``r`` on level ``i``; returns ws.x[i]."""
    lv, x = levels[i], ws.x[i]
    if lv.inv is not None:
        interior(x, lv.h, lv.w).copy_(coarse_solve(lv, r).reshape(x.shape[0], x.shape[1], lv.h, lv.w))
        return x
    res = ws.res[i]
    torch.mul(lv.dinv, r, out=x)  # pre-smoothing from zero
    lv.residual(r, x, res, ws.t121[i], ws.s121)
    coarse = levels[i + 1]
    rc = ws.rhs[i + 1]
    restrict(res, rc, coarse.h, coarse.w, ws.trestrict[i])
    rc.mul_(coarse.mask)
    ec = _vcycle(levels, ws, i + 1, rc)
    pf = ws.fine[i]
    prolong(ec, pf, coarse.h, coarse.w, lv.h, lv.w, ws.tprolong[i])
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


def _rhs64(fine64: Level, images: torch.Tensor, removed: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """b = Σ_{kept v} w_uv x_v at the unknowns, in float64 (padded, in ``ws.b64``)."""
    h, w = fine64.h, fine64.w
    kept = ws.x64
    torch.mul(images, ~removed[:, None], out=interior(kept, h, w))
    sum121(kept, ws.b64, h, w, ws.t121_64)
    return ws.b64.mul_(fine64.mask).mul_(1.0 / 12.0)


def _residual64(fine64: Level, b64: torch.Tensor, x: torch.Tensor, ws: _Workspace) -> torch.Tensor:
    """Relative residual (S, C) of x (padded, zero outside the unknowns), computed in float64."""
    # on the fine level the residual may overwrite its x (elementwise, after the 121 sums read it)
    rn = _plane_norm(fine64.residual(b64, ws.x64.copy_(x), ws.x64, ws.t121_64, ws.ax64))
    bn = _plane_norm(b64)
    return torch.where(
        bn > 0, rn / torch.where(bn > 0, bn, torch.ones_like(bn)), torch.where(rn > 0, torch.inf, 0.0)
    )


def _pcg(
    levels: list[Level],
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
    values = torch.empty_like(images)  # every row is written by its chunk
    rel = np.zeros((n, c), np.float64)
    iters = np.zeros(n, np.int64)
    direct = np.zeros(n, bool)
    work = torch.float32 if images.dtype in (torch.float16, torch.bfloat16) else images.dtype
    # chunks of systems with similar numbers of unknowns, which tend to need the same iterations (a chunk
    # iterates until its last system has converged)
    order = torch.argsort(removed.reshape(n, -1).sum(dim=1), stable=True).cpu()
    for start in range(0, n, chunk):
        rows = order[start : start + chunk]
        idx = rows.to(images.device)
        part = images[idx]  # a copy: the chunk's images, overwritten with its result
        rel[rows.numpy()], iters[rows.numpy()] = _solve_chunk(part, removed[idx], part, work, tol, max_iter)
        values[idx] = part
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
    interior(mask, h, w).copy_(removed[:, None])
    fine64 = fine_level(mask.to(torch.float64), h, w, smoother=False)
    b64 = _rhs64(fine64, images, removed, ws)
    x = ws.solution.zero_()
    used = torch.zeros(s, dtype=torch.long, device=images.device)
    if not bool(removed.any()):
        return np.zeros((s, c)), used.cpu().numpy()
    levels = hierarchy(mask, h, w, ws.fields)
    b = ws.b.copy_(b64)  # the float32 right-hand side: the float64 one, rounded
    budget = torch.full((s,), max_iter, dtype=torch.long, device=images.device)
    for attempt in range(3):  # normally once; again (from x) only for a system the float64 check rejects
        used += _pcg(levels, b, x, _STOP * tol, budget, ws, x_is_zero=attempt == 0)
        res = _residual64(fine64, b64, x, ws)
        budget = torch.where((res <= tol).all(dim=1), 0, max_iter - used)  # per system
        if not bool((budget > 0).any()):
            break
    values.copy_(torch.where(removed[:, None], interior(x, h, w).to(values.dtype), values))
    return res.cpu().numpy(), used.cpu().numpy()
