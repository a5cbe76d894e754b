"""The grid levels of ROAD's multigrid preconditioner (:mod:`.solver` describes the method).

Arrays of a grid level with h×w points are stored padded as (S, C, h + 3, w + 3): interior at
[1 : h + 1, 1 : w + 1], zeros around (one row/column before, two after, so that the stride-2
restriction of an even-sized grid can read one past the end). Masks are (S, 1, h + 3, w + 3). Here: the
fine operator and its constants, the transfers (bilinear prolongation, its transpose), the Galerkin
coarse operators, the coarsest level's inverse and the level hierarchy of a chunk of systems.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .solver_system import OFFSETS, W_DIAGONAL, W_DIRECT

__all__ = [
    "COARSEST",
    "Level",
    "coarse_solve",
    "coarsen",
    "dense_inverse",
    "fine_level",
    "hierarchy",
    "interior",
    "level_sizes",
    "padded",
    "prolong",
    "restrict",
    "sum121",
    "system_blocks",
]

#: damped-Jacobi weights of the fine level and of the coarser ones
OMEGA_FINE, OMEGA_COARSE = 1.0, 0.9
#: a grid with at most this many points per side is solved densely
COARSEST = 8
_NOT_CENTRE = tuple(k for k in range(9) if k != 4)


def padded(s: int, c: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros(s, c, h + 3, w + 3, dtype=like.dtype, device=like.device)


def _kept(t: torch.Tensor, key: tuple[Any, ...], make: Callable[[torch.Tensor], Any]) -> Any:
    """``make(alias)`` once per tensor and ``key``, kept on the tensor itself: the views of it the solver
    takes again and again (every V-cycle) live and die with it, and are not re-made by Python slicing each
    time. ``alias`` is ``t.detach()`` (the same memory): a view of ``t`` itself would hold ``t`` alive from
    C++ while ``t`` holds the view, a cycle Python's garbage collector cannot see (every solve's tensors
    would leak)."""
    kept = t.__dict__.setdefault("_hfus_views", {})
    found = kept.get(key)
    if found is None:
        found = kept[key] = make(t.detach())
    return found


def interior(a: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return _kept(a, ("interior", h, w), lambda v: v[..., 1 : h + 1, 1 : w + 1])


def shifts(x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, ...]:
    """The 9 views x[u + e_k] over the interior (k in :data:`OFFSETS` order)."""
    return _kept(
        x,
        ("shifts", h, w),
        lambda v: tuple(v[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in OFFSETS),
    )


def sum121(x: torch.Tensor, out: torch.Tensor, h: int, w: int, tmp: torch.Tensor | None = None) -> None:
    """Interior of ``out`` = the [1 2 1]ᵀ[1 2 1] sum of ``x`` over each 3×3 neighbourhood (= 12 N(x) + 4 x).

    ``tmp``: a buffer of shape x.shape[:-1] + (w,) (allocated when None).
    """
    if tmp is None:
        tmp = x.new_empty(x.shape[:-1] + (w,))
    left, right, mid = _kept(
        x, ("columns", w), lambda v: (v[..., :, 0:w], v[..., :, 2 : w + 2], v[..., :, 1 : w + 1])
    )
    up, down, centre = _kept(
        tmp, ("rows", h), lambda v: (v[..., 0:h, :], v[..., 2 : h + 2, :], v[..., 1 : h + 1, :])
    )
    torch.add(left, right, out=tmp)
    tmp.add_(mid, alpha=2.0)
    o = interior(out, h, w)
    torch.add(up, down, out=o)
    o.add_(centre, alpha=2.0)


def restrict(f: torch.Tensor, out: torch.Tensor, hc: int, wc: int, tmp: torch.Tensor | None = None) -> None:
    """Interior of ``out`` (coarse) = Pᵀ f: weights [1/2 1 1/2]ᵀ[1/2 1 1/2] around fine point 2I.

    ``tmp``: a buffer of shape f.shape[:-1] + (wc,).
    """
    if tmp is None:
        tmp = f.new_empty(f.shape[:-1] + (wc,))
    f0, f2, f1 = _kept(
        f,
        ("restrict", wc),
        lambda v: (v[..., 0 : 2 * wc - 1 : 2], v[..., 2 : 2 * wc + 1 : 2], v[..., 1 : 2 * wc : 2]),
    )
    t0, t2, t1 = _kept(
        tmp,
        ("restrict", hc),
        lambda v: (
            v[..., 0 : 2 * hc - 1 : 2, :],
            v[..., 2 : 2 * hc + 1 : 2, :],
            v[..., 1 : 2 * hc : 2, :],
        ),
    )
    torch.add(f0, f2, out=tmp)
    tmp.mul_(0.5).add_(f1)
    o = interior(out, hc, wc)
    torch.add(t0, t2, out=o)
    o.mul_(0.5).add_(t1)


def prolong(
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
    o = interior(out, h, w)
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


class Level:
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
            sum121(x, out, h, w, tmp)
            out.mul_(self.mq).addcmul_(self.me, x)
            return out
        s, xs = self.columns(), shifts(x, h, w)
        o = interior(out, h, w)
        torch.mul(s[4], xs[4], out=o)
        for k in _NOT_CENTRE:
            o.addcmul_(s[k], xs[k])
        return out

    def residual(
        self, r: torch.Tensor, x: torch.Tensor, out: torch.Tensor, tmp: torch.Tensor, s121: torch.Tensor
    ) -> torch.Tensor:
        """``out`` = r − A x (padded, ring zero), in one pass fewer than :meth:`apply` and a subtraction.

        ``tmp``: as for :meth:`apply`; ``s121``: a padded array with a zero ring (fine level: the 121 sums).
        On the fine level ``out`` may be ``x`` (read by the 121 sums first, then elementwise); on a stencil
        level it must not be.
        """
        h, w = self.h, self.w
        if self.stencil is None:
            sum121(x, s121, h, w, tmp)
            torch.addcmul(r, self.me, x, value=-1.0, out=out)
            return out.addcmul_(self.mq, s121, value=-1.0)
        s, xs = self.columns(), shifts(x, h, w)
        o = interior(out, h, w)
        torch.addcmul(interior(r, h, w), s[4], xs[4], value=-1.0, out=o)
        for k in _NOT_CENTRE:
            o.addcmul_(s[k], xs[k], value=-1.0)
        return out

    def columns(self) -> tuple[torch.Tensor, ...]:
        """The stencil's 9 coefficient fields as (S, 1, h, w) views."""
        s = self.stencil
        return _kept(s, ("columns",), lambda v: tuple(v[:, k : k + 1] for k in range(9)))

    def fields(self, out: torch.Tensor) -> torch.Tensor:
        """The operator as 9 padded coefficient fields (row u, column u + e_k), written into ``out``
        (S, 9, h+3, w+3) whose ring is zero."""
        h, w = self.h, self.w
        if self.stencil is not None:
            interior(out, h, w).copy_(self.stencil)
            return out
        inner, shifted = interior(self.mask, h, w), shifts(self.mask, h, w)
        weighted = {wt: inner * -wt for wt in (W_DIRECT, W_DIAGONAL)}  # −w · mask(u)
        for k, (dy, dx) in enumerate(OFFSETS):
            if k == 4:
                torch.add(self.me, self.mq, alpha=4.0, out=out[:, 4:5])  # mask · d
            else:
                wt = W_DIRECT if dy == 0 or dx == 0 else W_DIAGONAL
                torch.mul(weighted[wt], shifted[k], out=out[:, k : k + 1, 1 : h + 1, 1 : w + 1])
        return out


def system_blocks(s: int, c: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
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
        ones = padded(1, 1, h, w, like)
        interior(ones, h, w).fill_(1.0)
        s121 = torch.zeros_like(ones)
        sum121(ones, s121, h, w)
        d = s121 / 12.0 - ones / 3.0
        dinv = torch.where(d > 0, OMEGA_FINE / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(d))
        _FINE_CONSTANTS[key] = (d + 1.0 / 3.0, dinv)
    return _FINE_CONSTANTS[key]


def fine_level(mask: torch.Tensor, h: int, w: int, smoother: bool = True) -> Level:
    d13, dinv = _fine_constants(h, w, mask)
    level = Level(mask, h, w)
    level.me = mask * d13
    level.mq = mask * (-1.0 / 12.0)
    if smoother:
        level.dinv = mask * dinv
    return level


def per_system(device: torch.device) -> bool:
    """Whether the calls whose kernel may depend on the batch (the Galerkin convolution, the coarsest
    inverse) run one system at a time: on the CPU, for batch-independent results; on a GPU one batched
    call each (a loop of small calls there costs a kernel launch per system)."""
    return device.type == "cpu"


def coarsen(fine: Level, fields: torch.Tensor) -> Level:
    """The Galerkin coarse level ``M_c Pᵀ A P M_c`` of ``fine`` (one stride-2 convolution of its 9 fields).

    ``fields``: (S, 9, h+3, w+3) from :func:`system_blocks`, ring zero (overwritten inside).
    """
    h, w = fine.h, fine.w
    hc, wc = h // 2 + 1, w // 2 + 1
    s = fine.mask.shape[0]
    dev = fine.mask.device
    iy = torch.clamp(torch.arange(hc, device=dev) * 2, max=h - 1) + 1
    ix = torch.clamp(torch.arange(wc, device=dev) * 2, max=w - 1) + 1
    mask_c = padded(s, 1, hc, wc, fine.mask)
    interior(mask_c, hc, wc).copy_(fine.mask[:, :, iy][:, :, :, ix])
    weight = _galerkin(fine.mask)
    fine.fields(fields)
    # a stride-2 convolution: output I reads padded rows 2I .. 2I+2 = fine rows 2I-1 .. 2I+1 (the extra
    # padding row serves the ghost point of an even-sized grid; a last padded row no output reads is left
    # over for an odd size); on the CPU one system per call on its own aligned contiguous block, so neither
    # the kernel nor the input's alignment depends on the batch the system came in; elsewhere one call
    if per_system(fields.device):
        stencil = torch.cat([F.conv2d(fields[i : i + 1], weight, stride=2) for i in range(s)])
    else:
        stencil = F.conv2d(fields, weight, stride=2)
    rows = interior(mask_c, hc, wc)
    stencil.mul_(rows)
    for k, (dy, dx) in enumerate(OFFSETS):
        if k != 4:
            stencil[:, k : k + 1].mul_(mask_c[..., 1 + dy : 1 + dy + hc, 1 + dx : 1 + dx + wc])
    coarse = Level(mask_c, hc, wc)
    coarse.stencil = stencil
    diag = torch.zeros_like(mask_c)
    interior(diag, hc, wc).copy_(stencil[:, 4:5])
    safe = torch.where(diag > 0, diag, torch.ones_like(diag))
    coarse.dinv = torch.where(mask_c > 0, OMEGA_COARSE / safe, torch.zeros_like(mask_c))
    return coarse


def dense_inverse(level: Level) -> None:
    """The explicit inverse of the level's operator (identity on inactive points), float64 → stored dtype."""
    h, w = level.h, level.w
    n = h * w
    s = level.mask.shape[0]
    unit = padded(s, n, h, w, level.mask)
    interior(unit, h, w).copy_(torch.eye(n, dtype=unit.dtype, device=unit.device).reshape(1, n, h, w))
    unit.mul_(level.mask)
    cols = level.apply(unit, torch.zeros_like(unit))  # cols[b, j] = A e_j
    a = interior(cols, h, w).reshape(s, n, n).transpose(1, 2).to(torch.float64)
    a = 0.5 * (a + a.transpose(1, 2))
    active = interior(level.mask, h, w).reshape(s, n).to(torch.float64)
    a = a * active[:, :, None] * active[:, None, :] + torch.diag_embed(1.0 - active)
    keep = active[:, :, None] * active[:, None, :]
    if per_system(a.device):
        # one LAPACK call per system on a fresh buffer of a fixed shape (a batched call may pick its
        # blocking or code path by batch size or by the alignment of a matrix in the batch)
        inv = torch.stack([torch.linalg.inv(a[i].clone()) for i in range(s)])
    else:
        inv = torch.linalg.inv(a)
    level.inv = (inv * keep).to(level.mask.dtype)[:, None]  # (S, 1, n, n)


def coarse_solve(level: Level, r: torch.Tensor) -> torch.Tensor:
    """(S, C, n) = the coarsest level's inverse applied to the interior of ``r`` (padded, S × C × n).

    A product and a sum over its last axis rather than a matrix product: the same arithmetic for every
    (system, channel) row whatever the number of systems or channels (a BLAS call may choose its kernel
    by the number of rows).
    """
    s, c = r.shape[:2]
    rv = interior(r, level.h, level.w).reshape(s, c, 1, level.h * level.w)
    return torch.mul(rv, level.inv).sum(dim=-1)


def level_sizes(h: int, w: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    while max(sizes[-1]) > COARSEST:
        sizes.append((sizes[-1][0] // 2 + 1, sizes[-1][1] // 2 + 1))
    return sizes


def hierarchy(mask: torch.Tensor, h: int, w: int, fields: list[torch.Tensor]) -> list[Level]:
    """The levels of a chunk (``fields``: the workspace's coefficient-field blocks, one per coarsening)."""
    levels = [fine_level(mask, h, w)]
    while max(levels[-1].h, levels[-1].w) > COARSEST:
        levels.append(coarsen(levels[-1], fields[len(levels) - 1]))
    dense_inverse(levels[-1])
    return levels
