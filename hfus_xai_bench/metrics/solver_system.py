"""The ROAD imputation's system (PROTOCOL §7.2) itself: weights, the input check, and the reference solve.

Per image and colour channel, the removed pixels ``u`` solve x_u = Σ_v w_uv x_v / Σ_v w_uv over the 8
neighbours v inside the image (w = :data:`W_DIRECT` for the 4 direct, :data:`W_DIAGONAL` for the 4 diagonal
ones), kept pixels fixed. :func:`direct_imputation` solves it with scipy's sparse LU in float64 (the
reference; also the fallback of :mod:`.solver` for a system its iterations miss), :func:`imputation_residual`
measures a solution against it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import HfusError

#: neighbour weights of the imputation (direct, diagonal)
W_DIRECT, W_DIAGONAL = 1.0 / 6.0, 1.0 / 12.0
#: 3×3 offsets in row-major order; index 4 is the centre
OFFSETS: tuple[tuple[int, int], ...] = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def check_pair(images: Any, removed: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        what = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise HfusError(f"images must be a float tensor (N, C, H, W), got {what}")
    if isinstance(removed, np.ndarray):
        removed = torch.from_numpy(removed)
    if not isinstance(removed, torch.Tensor) or removed.dtype != torch.bool:
        raise HfusError("removed must be a bool tensor (N, H, W), True = pixel removed (imputed)")
    n, _, h, w = images.shape
    if tuple(removed.shape) != (n, h, w):
        raise HfusError(
            f"removed has shape {tuple(removed.shape)}, expected {(n, h, w)} for images {tuple(images.shape)}"
        )
    removed = removed.to(images.device)
    full = removed.reshape(n, -1).all(dim=1) if n else torch.zeros(0, dtype=torch.bool)
    if h * w and bool(full.any()):
        i = int(torch.nonzero(full)[0])
        raise HfusError(
            f"removed covers every pixel of image {i}: keep at least one pixel (the system is singular)"
        )
    return images, removed


def _system(removed: np.ndarray, image: np.ndarray):
    """The ROAD system of one image in scipy form: A (n×n csc), b (n×C), unknown coordinates."""
    import scipy.sparse as sp

    h, w = removed.shape
    ys, xs = np.nonzero(removed)
    n = len(ys)
    index = np.full((h, w), -1, np.int64)
    index[ys, xs] = np.arange(n)
    diag = np.zeros(n)
    b = np.zeros((n, image.shape[0]))
    rows, cols, vals = [np.arange(n)], [np.arange(n)], []
    for dy, dx in OFFSETS:
        if dy == 0 and dx == 0:
            continue
        wt = W_DIRECT if dy == 0 or dx == 0 else W_DIAGONAL
        yy, xx = ys + dy, xs + dx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        diag[inside] += wt
        yi, xi = yy[inside], xx[inside]
        j = index[yi, xi]
        unknown = j >= 0
        rows_in = np.nonzero(inside)[0]
        rows.append(rows_in[unknown])
        cols.append(j[unknown])
        vals.append(np.full(int(unknown.sum()), -wt))
        known = rows_in[~unknown]
        b[known] += wt * image[:, yi[~unknown], xi[~unknown]].T
    a = sp.csc_matrix(
        (np.concatenate([diag, *vals]), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    return a, b, ys, xs


def direct_imputation(images: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """The reference: each image's system solved directly (scipy sparse LU, float64, on the CPU), no noise."""
    from scipy.sparse.linalg import splu

    images, removed = check_pair(images, removed)
    out = images.detach().cpu().to(torch.float64).numpy().copy()
    rem = removed.cpu().numpy()
    for i in range(out.shape[0]):
        if not rem[i].any():
            continue
        a, b, ys, xs = _system(rem[i], out[i])
        out[i][:, ys, xs] = splu(a).solve(b).T
    return torch.from_numpy(out).to(device=images.device, dtype=images.dtype)


def imputation_residual(images: torch.Tensor, removed: torch.Tensor, filled: torch.Tensor) -> np.ndarray:
    """(N, C) float64 relative residual ``‖b − A x‖₂ / ‖b‖₂`` of ``filled`` at the removed pixels.

    0 where b = 0 (nothing to impute from), inf where b = 0 but the residual is not."""
    images, removed = check_pair(images, removed)
    img = images.detach().cpu().to(torch.float64).numpy()
    fil = torch.as_tensor(filled).detach().cpu().to(torch.float64).numpy()
    rem = removed.cpu().numpy()
    out = np.zeros(img.shape[:2])
    for i in range(img.shape[0]):
        if not rem[i].any():
            continue
        a, b, ys, xs = _system(rem[i], img[i])
        r = np.linalg.norm(b - a @ fil[i][:, ys, xs].T, axis=0)
        bn = np.linalg.norm(b, axis=0)
        out[i] = np.where(bn > 0, r / np.where(bn > 0, bn, 1.0), np.where(r > 0, np.inf, 0.0))
    return out
