"""Sanity baselines every table shows (PROTOCOL §5): random, centre Gaussian, depth prior, Sobel edges; on
evidence tracks (PROTOCOL §9) the model-blind ``input`` map and the reference rows ``oracle`` and
``oracle@grid``.

All are ``kind = "map"`` explainers that never call the model: they return a non-negative
(B, H, W) map on ``context.device`` for images (B, 3, H, W) (H = W = 224 in the benchmark; any size
works; ``oracle@grid`` returns (B, H/32, W/32)). The reference rows read the batch's evidence mask from
``context.extra["evidence"]`` (set by the runner before every call of a method whose METADATA declares
``"reads": ("evidence",)``; only built-in reference rows may): they are the ceiling and a reference of
``evidence@1``, never ranked (METADATA ``"reference": "oracle"``).

Seeding rule (shared with GradientShap, see :func:`image_seeds`): every image gets its own seed,
derived from ``context.seed`` and the image's content (its pixels quantised to uint8), so a map does
not depend on the batch it was computed in (batch size, position, other images) nor on the device.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import HfusError
from .contract import ExplainContext, MapKind, check_batch

#: sigma of the centre Gaussian as a fraction of the image side (height and width separately)
CENTER_SIGMA_FRACTION = 0.25

#: ITU-R BT.601 luma weights used for the grey level of RGB images
GREY_WEIGHTS = (0.299, 0.587, 0.114)

#: ``oracle@grid``: side of the blocks E is averaged over (224 / 32 = 7, the pinned target layers' grid, §9)
ORACLE_GRID_BLOCK = 32

#: the ``context.extra`` key holding the batch's evidence masks (B, H, W) bool, for the reference rows
EVIDENCE_KEY = "evidence"


def image_seeds(images: torch.Tensor, seed: int) -> list[int]:
    """One 32-bit seed per image: ``sha256("hfus-xai-bench:<seed>:" + uint8 pixels)[:4]`` (little endian).

    The pixels are ``round(clamp(x, 0, 1) * 255)`` as uint8 in (C, H, W) order, so the seed depends
    only on ``seed`` and the image itself (not on the batch, its order, the device or float noise).
    """
    if images.dim() != 4:
        raise HfusError(
            f"images must be (B, C, H, W), got shape {tuple(images.shape)}; pass a batch of images"
        )
    q = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    prefix = f"hfus-xai-bench:{int(seed)}:".encode()
    return [
        int.from_bytes(hashlib.sha256(prefix + np.ascontiguousarray(img).tobytes()).digest()[:4], "little")
        for img in q
    ]


class _MapBaseline:
    """Common constructor: keeps the context, never touches the model."""

    kind: MapKind = "map"

    def __init__(self, model: nn.Module | None, context: ExplainContext) -> None:
        self.context = context
        self.device = torch.device(context.device)


class RandomMap(_MapBaseline):
    """Uniform random map in [0, 1); image i uses ``torch.Generator().manual_seed(image_seeds(images,
    seed)[i])``.

    The draw is ``torch.rand((H, W), generator=g)`` on the CPU (device independent), moved to the device.
    """

    METADATA = {
        "authors": "hfus-xai-bench developers (sanity baseline, PROTOCOL §5)",
        "licence": "MIT (this implementation)",
        "hyperparameters": {
            "distribution": "uniform [0, 1)",
            "seeds": "per image: image_seeds(images, seed)",
        },
        "tuning_split": "none",
    }

    def __call__(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        check_batch(images)
        _, _, h, w = images.shape
        seeds = image_seeds(images, self.context.seed)
        maps = torch.stack([torch.rand((h, w), generator=torch.Generator().manual_seed(s)) for s in seeds])
        return maps.to(self.device)


class CenterGaussian(_MapBaseline):
    """``exp(-((y - cy)² / (2 sy²) + (x - cx)² / (2 sx²)))`` with the centre at ((H-1)/2, (W-1)/2).

    ``sy = 0.25 H``, ``sx = 0.25 W`` (:data:`CENTER_SIGMA_FRACTION`); the same map for every image,
    peak 1 at the centre (on the 4 central pixels for even sizes).
    """

    METADATA = {
        "authors": "hfus-xai-bench developers (sanity baseline, PROTOCOL §5)",
        "licence": "MIT (this implementation)",
        "hyperparameters": {"sigma_fraction": CENTER_SIGMA_FRACTION},
        "tuning_split": "none",
    }

    def __call__(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        check_batch(images)
        b, _, h, w = images.shape
        ys = torch.arange(h, dtype=torch.float32, device=self.device) - (h - 1) / 2
        xs = torch.arange(w, dtype=torch.float32, device=self.device) - (w - 1) / 2
        sy, sx = CENTER_SIGMA_FRACTION * h, CENTER_SIGMA_FRACTION * w
        g = torch.exp(-(ys[:, None] ** 2) / (2 * sy**2) - (xs[None, :] ** 2) / (2 * sx**2))
        return g.expand(b, h, w).contiguous()


class DepthPrior(_MapBaseline):
    """``context.depth_prior`` (mean SLM of the training folds / 255, computed by the runner) for every image.

    A prior of another size than the images is resized bilinearly; negative values are clipped to 0.
    """

    METADATA = {
        "authors": "hfus-xai-bench developers (sanity baseline, PROTOCOL §5)",
        "licence": "MIT (this implementation)",
        "hyperparameters": {
            "prior": "mean skin layer map of the training folds / 255 (computed by the runner)"
        },
        "tuning_split": "none",
    }

    def __init__(self, model: nn.Module | None, context: ExplainContext) -> None:
        super().__init__(model, context)
        prior = context.depth_prior
        if prior is None:
            raise HfusError(
                "the depth_prior baseline needs context.depth_prior (mean SLM of the training folds / 255); "
                "run it through the benchmark runner, which computes it, or set "
                "ExplainContext(depth_prior=...)"
            )
        prior = torch.as_tensor(prior, dtype=torch.float32)
        if prior.dim() == 3 and prior.shape[0] == 1:
            prior = prior[0]
        if prior.dim() != 2 or not torch.isfinite(prior).all():
            raise HfusError(
                f"context.depth_prior must be a finite (H, W) map, got shape {tuple(prior.shape)}; "
                "pass the mean SLM / 255 as a 2-D tensor"
            )
        self.prior = prior.clamp_min(0).to(self.device)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        check_batch(images)
        b, _, h, w = images.shape
        prior = self.prior
        if prior.shape != (h, w):
            prior = F.interpolate(prior[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        return prior.expand(b, h, w).contiguous()


class SobelEdges(_MapBaseline):
    """Sobel gradient magnitude ``sqrt(gx² + gy²)`` of the grey level (BT.601 luma of RGB, or the single
    channel).

    3×3 Sobel kernels ([1, 2, 1] smoothing ⊗ [-1, 0, 1] derivative), replicate padding (so the image
    border is not an edge), one batched ``conv2d`` on the device.
    """

    METADATA = {
        "authors": "hfus-xai-bench developers (sanity baseline, PROTOCOL §5)",
        "licence": "MIT (this implementation)",
        "hyperparameters": {
            "grey": f"BT.601 luma {GREY_WEIGHTS}",
            "kernel": "3×3 Sobel",
            "padding": "replicate",
        },
        "tuning_split": "none",
    }

    def __call__(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        check_batch(images)
        x = images.detach().to(self.device, torch.float32)
        c = x.shape[1]
        if c == 3:
            grey = torch.einsum("bchw,c->bhw", x, torch.tensor(GREY_WEIGHTS, device=x.device))[:, None]
        elif c == 1:
            grey = x
        else:
            raise HfusError(
                f"Sobel needs RGB or grey images (C = 3 or 1), got C = {c}; pass the benchmark images"
            )
        smooth = torch.tensor([1.0, 2.0, 1.0], device=x.device)
        deriv = torch.tensor([-1.0, 0.0, 1.0], device=x.device)
        kx = smooth[:, None] * deriv[None, :]  # d/dx (columns)
        kernels = torch.stack([kx, kx.t()])[:, None]  # (2, 1, 3, 3): gx, gy
        g = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
        return torch.sqrt(g[:, 0] ** 2 + g[:, 1] ** 2)


# ------------------------------------------------------------------ PROTOCOL §9: evidence-track rows


class InputIntensity(_MapBaseline):
    """The image's own intensity as the map: the mean over the colour channels (model-blind, as in
    XAI-TRIS)."""

    METADATA = {
        "authors": "hfus-xai-bench developers (sanity baseline, PROTOCOL §9)",
        "licence": "MIT (this implementation)",
        "hyperparameters": {"map": "mean over the colour channels of the input image"},
        "tuning_split": "none",
    }

    def __call__(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        check_batch(images)
        return images.detach().to(self.device, torch.float32).mean(1)


_ORACLE_METADATA = {
    "authors": "hfus-xai-bench developers (reference row, PROTOCOL §9)",
    "licence": "MIT (this implementation)",
    "tuning_split": "none",
    "reference": "oracle",
    "reads": (EVIDENCE_KEY,),
}


class _Oracle(_MapBaseline):
    """Common part of the reference rows: the batch's evidence masks from ``context.extra``."""

    def evidence(self, images: torch.Tensor) -> torch.Tensor:
        """``context.extra["evidence"]`` as float 0/1 (B, H, W) on the device, checked against the batch."""
        check_batch(images)
        e = self.context.extra.get(EVIDENCE_KEY)
        if e is None:
            raise HfusError(
                f"{type(self).__name__} needs the evidence masks in context.extra[{EVIDENCE_KEY!r}]; run it "
                "through the benchmark runner on a dataset with an evidence column (synth-v3 or later)"
            )
        e = torch.as_tensor(e, device=self.device)
        b, _, h, w = images.shape
        if tuple(e.shape) != (b, h, w):
            raise HfusError(
                f"context.extra[{EVIDENCE_KEY!r}] has shape {tuple(e.shape)}, "
                f"expected the batch's {(b, h, w)}"
            )
        return (e != 0).to(torch.float32)


class Oracle(_Oracle):
    """The evidence mask E itself: 1 inside E, 0 elsewhere (m255 = 255 on E); all zero (empty_map) without
    E."""

    METADATA = {**_ORACLE_METADATA, "hyperparameters": {"map": "evidence mask E (1 inside, 0 outside)"}}

    def __call__(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        return self.evidence(images)


class OracleGrid(_Oracle):
    """E as 0/1 averaged over :data:`ORACLE_GRID_BLOCK`-pixel blocks: a (B, H/32, W/32) map (7 × 7 at 224),
    upsampled by the harness like any low-resolution map (bilinear, align_corners=False, no min subtraction).

    Every block mean is exact (a count of at most 1024 ones over a power of two)."""

    METADATA = {
        **_ORACLE_METADATA,
        "hyperparameters": {
            "map": "evidence mask E averaged over 32×32 blocks (7×7 at 224), upsampled by the harness",
            "block": ORACLE_GRID_BLOCK,
        },
    }

    def __call__(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        e = self.evidence(images)
        h, w = e.shape[-2:]
        if h % ORACLE_GRID_BLOCK or w % ORACLE_GRID_BLOCK:
            raise HfusError(
                f"oracle@grid needs image sides divisible by {ORACLE_GRID_BLOCK}, got {h}×{w}; "
                "use 224×224 images"
            )
        return F.avg_pool2d(e[:, None], ORACLE_GRID_BLOCK)[:, 0]
