"""Attribution family with captum 0.9.0 semantics (PROTOCOL §5): IG, GradientShap, Saliency, Occlusion.

Every class returns the raw signed attributions (B, 3, H, W) on the device, exactly what captum
returns for the protocol's settings (the harness then applies ``normalize_attribution``). The
maths is captum's; only the hot paths are ours:

- the model is put in eval mode (captum does not) and its parameters are frozen while we run
  (no weight gradients, less memory; the previous ``requires_grad`` flags are restored);
- IG: the (image, step) points are pushed through the model in device-sized chunks
  (``internal_batch_size`` in captum's terms) with captum's Gauss-Legendre steps and weights;
- GradientShap: captum's random draws reproduced exactly (see below), gradients in chunks
  (captum has no internal batching for it);
- Occlusion: all occluded copies of a chunk of windows are built at once (one vectorised mask
  op) and scored in one forward; the per-pixel average over overlapping windows that captum
  accumulates mask by mask is one ``conv_transpose2d`` of the score grid.

Seeds (GradientShap): image i of a batch gets ``s_i = image_seeds(images, context.seed)[i]``
(``baselines.image_seeds``: sha256 of ``context.seed`` and the image's uint8 pixels). Its draws are
those captum makes for a batch of one image after ``np.random.seed(s_i); torch.manual_seed(s_i)``
and ``baseline = torch.randn(1, 3, H, W) * 0.001``, all on the CPU generator. So our result for an
image equals (up to float summation order) ``captum.attr.GradientShap(model).attribute(x[i:i+1],
baselines=baseline, target=t[i], n_samples=5, stdevs=0.09)`` run on the CPU with those seeds, and
it does not depend on the batch composition, the batch size or the device (captum's own draws
do depend on the batch: calling it on a whole batch draws the noise for all images at once).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import nn

from ..chunking import chunked
from ..errors import HfusError
from .baselines import image_seeds
from .contract import ExplainContext, MapKind, check_batch, frozen_parameters, points_per_forward

#: protocol parameters (PROTOCOL §5)
IG_STEPS = 50
IG_METHOD = "gausslegendre"
GS_N_SAMPLES = 5
GS_STDEVS = 0.09
GS_BASELINE_STD = 0.001
SALIENCY_ABS = True
OCCLUSION_STRIDE = 9


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise HfusError(
            "the model must return logits (B, num_classes) in eval mode; "
            "wrap it so forward returns one tensor"
        )
    return out


def _target_logit(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    out = _logits(model, x)
    return out.gather(1, targets.reshape(-1, 1).to(out.device)).squeeze(1)


def input_grad(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d logit[target] / d x for a chunk (parameters frozen by the caller)."""
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_target_logit(model, x, targets).sum(), x)
    return grad


class CaptumLike:
    kind: MapKind = "attribution"

    def __init__(self, model: nn.Module, context: ExplainContext) -> None:
        self.model = model.eval()
        self.context = context
        self.device = torch.device(context.device)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        images, targets = check_batch(images, targets, floating=True)
        images = images.detach().to(self.device)
        targets = targets.to(self.device)
        self.model.eval()
        with frozen_parameters(self.model):
            return self._attribute(images, targets)

    def _attribute(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class IntegratedGradients(CaptumLike):
    """captum ``IntegratedGradients``: zero baseline, 50 Gauss-Legendre steps; ``x * Σ_k w_k ∇f(α_k x)``."""

    METADATA = {
        "authors": "Sundararajan et al.",
        "url": "https://arxiv.org/abs/1703.01365",
        "hyperparameters": {"n_steps": IG_STEPS, "method": IG_METHOD, "baseline": "zeros (black image)"},
        "citation": (
            "@inproceedings{sundararajan2017ig,\n"
            "  title = {Axiomatic Attribution for Deep Networks},\n"
            "  author = {Sundararajan, Mukund and Taly, Ankur and Yan, Qiqi},\n"
            "  booktitle = {ICML},\n"
            "  year = {2017}\n"
            "}"
        ),
    }

    n_steps = IG_STEPS
    method = IG_METHOD

    def _attribute(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        step_fn, alpha_fn = approximation_parameters(self.method)
        n = self.n_steps
        alphas = torch.tensor(alpha_fn(n), dtype=images.dtype, device=self.device)
        steps = torch.tensor(step_fn(n), dtype=torch.float32, device=self.device)
        total = torch.zeros_like(images)
        # point j = image (j // n), step (j % n): a chunk covers few images, all steps of each
        img_idx = torch.arange(b, device=self.device).repeat_interleave(n)
        step_idx = torch.arange(n, device=self.device).repeat(b)
        chunk = points_per_forward(self.context, h, w, grad=True)

        def run(start: int, stop: int) -> None:
            ii, kk = img_idx[start:stop], step_idx[start:stop]
            scaled = alphas[kk].view(-1, 1, 1, 1) * images[ii]  # baseline 0: 0 + α (x - 0)
            grads = input_grad(self.model, scaled, targets[ii]) * steps[kk].view(-1, 1, 1, 1)
            total.index_add_(0, ii, grads)

        chunked(run, b * n, chunk, self.device)
        return total * images  # (x - baseline) * Σ w_k grad_k


class GradientShap(CaptumLike):
    """captum ``GradientShap`` with one N(0, 0.001²) baseline image, stdevs 0.09, n_samples 5 (module doc:
    seeds)."""

    METADATA = {
        "authors": "Lundberg and Lee",
        "url": "https://arxiv.org/abs/1705.07874",
        "hyperparameters": {
            "n_samples": GS_N_SAMPLES,
            "stdevs": GS_STDEVS,
            "baselines": f"one N(0, {GS_BASELINE_STD}²) image",
            "seeds": "per image: image_seeds(images, seed)",
        },
        "citation": (
            "@inproceedings{lundberg2017shap,\n"
            "  title = {A Unified Approach to Interpreting Model Predictions},\n"
            "  author = {Lundberg, Scott M. and Lee, Su-In},\n"
            "  booktitle = {NeurIPS},\n"
            "  year = {2017}\n"
            "}"
        ),
    }

    n_samples = GS_N_SAMPLES
    stdevs = GS_STDEVS
    baseline_std = GS_BASELINE_STD

    def shared_baselines(self, images: torch.Tensor) -> torch.Tensor | None:
        """Baselines all images draw from (K, C, H, W); None: each image draws its own N(0, std²) image."""
        return None

    def draws(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image: baseline bank (K, C, H, W), bank row per sample (B·n,), noise (B·n, C, H, W),
        coefficients (B·n,), all on the CPU.

        Exactly captum's sequence for a one-image batch after seeding numpy and torch with ``s_i``:
        (own baseline: ``torch.randn``, ours, before captum), ``np.random.choice`` (baseline index),
        ``torch.normal`` noise, ``np.random.uniform`` coefficients.
        """
        _, c, h, w = images.shape
        n = self.n_samples
        shared = self.shared_baselines(images)
        bank, rows, noises, coefs = [], [], [], []
        std = torch.full((n, c, h, w), self.stdevs)
        for i, s in enumerate(image_seeds(images, self.context.seed)):
            rs = np.random.RandomState(s)
            g = torch.Generator().manual_seed(s)
            if shared is None:
                bank.append(torch.randn((1, c, h, w), generator=g) * self.baseline_std)
                rs.choice(1, n)
                rows.append(torch.full((n,), i, dtype=torch.long))
            else:
                rows.append(torch.as_tensor(rs.choice(len(shared), n), dtype=torch.long))
            noises.append(torch.normal(0.0, std, generator=g))
            coefs.append(torch.tensor(rs.uniform(0.0, 1.0, n), dtype=torch.float32))
        baselines = shared.detach().cpu() if shared is not None else torch.cat(bank)
        return baselines, torch.cat(rows), torch.cat(noises), torch.cat(coefs)

    def _attribute(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        n = self.n_samples
        bank, rows, noise, coefs = self.draws(images)
        bank, noise, coefs = (t.to(self.device, images.dtype) for t in (bank, noise, coefs))
        rows = rows.to(self.device)
        img_idx = torch.arange(b, device=self.device).repeat_interleave(n)
        total = torch.zeros_like(images)
        chunk = points_per_forward(self.context, h, w, grad=True)

        def run(start: int, stop: int) -> None:
            ii = img_idx[start:stop]
            noisy = images[ii] + noise[start:stop]
            base = bank[rows[start:stop]]
            r = coefs[start:stop].view(-1, 1, 1, 1)
            scaled = r * noisy + (1.0 - r) * base
            grads = input_grad(self.model, scaled, targets[ii])
            total.index_add_(0, ii, (noisy - base) * grads)

        chunked(run, b * n, chunk, self.device)
        return total * (1 / n)


class Saliency(CaptumLike):
    """captum ``Saliency`` with ``abs=True``: ``|∇_x logit[target]|``."""

    METADATA = {
        "authors": "Simonyan et al.",
        "url": "https://arxiv.org/abs/1312.6034",
        "hyperparameters": {"abs": SALIENCY_ABS},
        "citation": (
            "@article{simonyan2013saliency,\n"
            "  title = {Deep Inside Convolutional Networks: Visualising Image Classification Models and "
            "Saliency Maps},\n"
            "  author = {Simonyan, Karen and Vedaldi, Andrea and Zisserman, Andrew},\n"
            "  journal = {arXiv:1312.6034},\n"
            "  year = {2013}\n"
            "}"
        ),
    }

    def _attribute(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        out = torch.empty_like(images)
        chunk = points_per_forward(self.context, h, w, grad=True)

        def run(start: int, stop: int) -> None:
            g = input_grad(self.model, images[start:stop], targets[start:stop])
            out[start:stop] = g.abs() if SALIENCY_ABS else g

        chunked(run, b, chunk, self.device)
        return out


def occlusion_grid(size: int, window: int, stride: int) -> int:
    """captum's number of window positions along one axis: ``ceil((size - window) / stride) + 1``."""
    if size < window:
        raise HfusError(
            f"image side {size} is smaller than the occlusion window {window}; use images of 224×224"
        )
    return int(math.ceil((size - window) / stride)) + 1


class _Occlusion(CaptumLike):
    """captum ``Occlusion``: window (3, k, k), strides (3, 9, 9), baseline 0 (black).

    attribution(p) = mean over the windows covering p of ``f(x) - f(x with the window set to 0)``,
    the same for the three channels. Windows start at multiples of the stride; the last one may
    run past the border and is cut there (captum's negative padding).
    """

    window = 15
    stride = OCCLUSION_STRIDE

    def _attribute(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        b, c, h, w = images.shape
        k, s = self.window, self.stride
        ny, nx = occlusion_grid(h, k, s), occlusion_grid(w, k, s)
        n_win = ny * nx
        y0 = torch.arange(ny, device=self.device).repeat_interleave(nx) * s
        x0 = torch.arange(nx, device=self.device).repeat(ny) * s
        rows = torch.arange(h, device=self.device)
        cols = torch.arange(w, device=self.device)
        diff = torch.empty(b, n_win, device=self.device, dtype=torch.float32)
        points = points_per_forward(self.context, h, w, grad=False)

        with torch.inference_mode():
            for i0 in range(0, b, points):  # image sub-batches of ≤ points images
                x, t = images[i0 : i0 + points], targets[i0 : i0 + points]
                nb = x.shape[0]
                base = _target_logit(self.model, x, t).float()

                def run(start: int, stop: int, x=x, t=t, nb=nb, i0=i0, base=base) -> None:
                    ry = (rows[None] >= y0[start:stop, None]) & (rows[None] < y0[start:stop, None] + k)
                    rx = (cols[None] >= x0[start:stop, None]) & (cols[None] < x0[start:stop, None] + k)
                    keep = ~(ry[:, :, None] & rx[:, None, :])  # (nw, H, W)
                    occluded = (x[None] * keep[:, None, None].to(x.dtype)).reshape(-1, c, h, w)
                    scores = _target_logit(self.model, occluded, t.repeat(stop - start)).float()
                    diff[i0 : i0 + nb, start:stop] = base[:, None] - scores.view(stop - start, nb).t()

                chunked(run, n_win, max(1, points // nb), self.device)

        ones = torch.ones(1, 1, k, k, device=self.device)
        total = F.conv_transpose2d(diff.view(b, 1, ny, nx), ones, stride=s)[:, :, :h, :w]
        count = F.conv_transpose2d(torch.ones(1, 1, ny, nx, device=self.device), ones, stride=s)[:, :, :h, :w]
        return (total / count).expand(b, c, h, w).to(images.dtype).contiguous()


def _occlusion_metadata(window: int) -> dict:
    """METADATA of the Occlusion built-ins (Zeiler and Fergus 2014; the study's stride 9, zero baseline)."""
    return {
        "authors": "Zeiler and Fergus",
        "url": "https://arxiv.org/abs/1311.2901",
        "hyperparameters": {"window": window, "stride": OCCLUSION_STRIDE, "baseline": 0.0},
        "citation": (
            "@inproceedings{zeiler2014visualizing,\n"
            "  title = {Visualizing and Understanding Convolutional Networks},\n"
            "  author = {Zeiler, Matthew D. and Fergus, Rob},\n"
            "  booktitle = {ECCV},\n"
            "  year = {2014}\n"
            "}"
        ),
    }


class Occlusion15(_Occlusion):
    """Occlusion, 15×15 window, stride 9."""

    window = 15
    METADATA = _occlusion_metadata(15)


class Occlusion30(_Occlusion):
    """Occlusion, 30×30 window, stride 9."""

    window = 30
    METADATA = _occlusion_metadata(30)


class Occlusion45(_Occlusion):
    """Occlusion, 45×45 window, stride 9."""

    window = 45
    METADATA = _occlusion_metadata(45)
