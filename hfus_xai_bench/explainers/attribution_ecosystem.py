"""Ecosystem attribution baselines (PROTOCOL §5, v1.2), captum 0.9.0 semantics.

Hyper-parameters are LATEC's image configuration (Klein et al., NeurIPS 2024, ``configs/explain_method/
image.yaml``) where it has one, else captum's defaults, as METADATA states:

- Expected Gradients: captum ``GradientShap`` over a seeded sample of the fold's *training* images as
  baselines (the harness hands it over as ``context.training_sample``; LATEC passes a data batch of 30
  images for its 4-class OCT set), ``n_samples`` 40, ``stdevs`` 0.001 (LATEC). Draws per image as the
  study's GradientShap (``attribution.py``: seeds from ``image_seeds``), so a map does not depend on
  the batch.
- SmoothGrad: captum ``NoiseTunnel(Saliency)``, ``nt_type="smoothgrad"``, captum's defaults
  ``nt_samples`` 5, ``stdevs`` 1.0, Saliency's ``abs=True`` (LATEC has no SmoothGrad). Noise per image
  from ``torch.Generator().manual_seed(s_i)`` (``image_seeds``), i.e. captum's draws on a one-image
  batch after ``torch.manual_seed(s_i)``; the gradients of all noisy copies run batched.
- Input×Gradient: ``x · ∂s/∂x`` (captum ``InputXGradient``), batched.
- DeepLift (``eps`` 1e-9, zero baseline; LATEC) and Guided Backprop (captum defaults): captum itself,
  called in chunks. Both rest on nonlinearities being ``nn.Module`` s captum can hook, so they are
  undefined (``not_applicable``) where the reference architectures compute them otherwise:
  MobileNetV2's ``ReLU6`` is no ``nn.ReLU`` (neither captum rule applies: the map would silently be a
  plain gradient), GoogLeNet applies ``F.relu`` in every ``BasicConv2d`` (same), ResNet101 reuses one
  ``nn.ReLU`` three times per block (captum's DeepLift keeps one input/output per module and stops).
  Guided Backprop hooks every call, so reused or in-place ReLUs are fine (ResNet101, DenseNet201).
"""

from __future__ import annotations

import warnings

import torch
from captum.attr import DeepLift as CaptumDeepLift
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from torch import nn

from ..chunking import chunked
from ..constants import TRAINING_SAMPLE_SIZE
from ..errors import HfusError
from .attribution import CaptumLike, GradientShap, input_grad
from .baselines import image_seeds
from .contract import ExplainContext, points_per_forward

__all__ = ["DeepLift", "ExpectedGradients", "GuidedBackprop", "InputXGradient", "SmoothGrad"]

#: LATEC (configs/explain_method/image.yaml); the baseline sample's size is constants.TRAINING_SAMPLE_SIZE
EG_N_SAMPLES = 40
EG_STDEVS = 0.001
DEEPLIFT_EPS = 1e-9
#: captum NoiseTunnel defaults
SMOOTHGRAD_SAMPLES = 5
SMOOTHGRAD_STDEVS = 1.0

_RELU6 = (
    "MobileNetV2 uses nn.ReLU6, which captum does not treat as a ReLU (the map would be a plain gradient)"
)
_FUNCTIONAL = (
    "GoogLeNet applies F.relu inside BasicConv2d, which captum cannot hook "
    "(the map would be a plain gradient)"
)
_REUSED = (
    "ResNet101 reuses one nn.ReLU module three times per Bottleneck; "
    "captum's DeepLift needs one call per module"
)


def _captum_metadata(authors: str, url: str, hyperparameters: dict, citation: str, **extra) -> dict:
    return {"authors": authors, "url": url, "hyperparameters": hyperparameters, "citation": citation, **extra}


class ExpectedGradients(GradientShap):
    """Expected Gradients: GradientShap over the fold's training sample (``context.training_sample``)."""

    METADATA = _captum_metadata(
        "Erion et al.",
        "https://doi.org/10.1038/s42256-021-00343-w",
        {
            "n_samples": EG_N_SAMPLES,
            "stdevs": EG_STDEVS,
            "baselines": f"{TRAINING_SAMPLE_SIZE} training images of the fold, seeded sample "
            "(harness: context.training_sample)",
            "seeds": "per image: image_seeds(images, seed)",
            "source": "LATEC configs/explain_method/image.yaml (expectedgradients)",
        },
        "@article{erion2021expectedgradients,\n"
        "  title = {Improving performance of deep learning models with axiomatic attribution priors and "
        "expected gradients},\n"
        "  author = {Erion, Gabriel and Janizek, Joseph D. and Sturmfels, Pascal and Lundberg, Scott M. and "
        "Lee, Su-In},\n"
        "  journal = {Nature Machine Intelligence},\n"
        "  volume = {3},\n"
        "  pages = {620--631},\n"
        "  year = {2021}\n"
        "}",
    )

    n_samples = EG_N_SAMPLES
    stdevs = EG_STDEVS

    def shared_baselines(self, images: torch.Tensor) -> torch.Tensor:
        sample = self.context.training_sample
        if sample is None or sample.ndim != 4 or sample.shape[1:] != images.shape[1:] or len(sample) == 0:
            raise HfusError(
                "Expected Gradients needs context.training_sample, training images (K, 3, H, W) like the "
                "batch; run it through the benchmark (hfus-bench evaluate), which samples them from the fold"
            )
        return sample


class SmoothGrad(CaptumLike):
    """SmoothGrad: mean of ``|∂s/∂x|`` over 5 noisy copies x + N(0, 1²) (captum NoiseTunnel defaults)."""

    METADATA = _captum_metadata(
        "Smilkov et al.",
        "https://arxiv.org/abs/1706.03825",
        {
            "nt_type": "smoothgrad",
            "nt_samples": SMOOTHGRAD_SAMPLES,
            "stdevs": SMOOTHGRAD_STDEVS,
            "abs": True,
            "seeds": "per image: image_seeds(images, seed)",
            "source": "captum defaults (LATEC has no SmoothGrad)",
        },
        "@article{smilkov2017smoothgrad,\n"
        "  title = {SmoothGrad: removing noise by adding noise},\n"
        "  author = {Smilkov, Daniel and Thorat, Nikhil and Kim, Been and Vi{\\'e}gas, Fernanda and "
        "Wattenberg, Martin},\n"
        "  journal = {arXiv:1706.03825},\n"
        "  year = {2017}\n"
        "}",
    )

    n_samples = SMOOTHGRAD_SAMPLES
    stdevs = SMOOTHGRAD_STDEVS

    def noise(self, images: torch.Tensor) -> torch.Tensor:
        """(B·n, C, H, W) on the CPU: image i's n draws of ``torch.normal(0, stdevs)`` from its own seed."""
        _, c, h, w = images.shape
        std = torch.full((self.n_samples, c, h, w), self.stdevs)
        seeds = image_seeds(images, self.context.seed)
        return torch.cat([torch.normal(0.0, std, generator=torch.Generator().manual_seed(s)) for s in seeds])

    def _attribute(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        n = self.n_samples
        noise = self.noise(images).to(self.device, images.dtype)
        img_idx = torch.arange(b, device=self.device).repeat_interleave(n)
        total = torch.zeros_like(images)

        def run(start: int, stop: int) -> None:
            ii = img_idx[start:stop]
            grads = input_grad(self.model, images[ii] + noise[start:stop], targets[ii])
            total.index_add_(0, ii, grads.abs())

        chunked(run, b * n, points_per_forward(self.context, h, w, grad=True), self.device)
        return total * (1 / n)


class InputXGradient(CaptumLike):
    """Input×Gradient: ``x · ∂s/∂x`` (captum ``InputXGradient``)."""

    METADATA = _captum_metadata(
        "Shrikumar et al.",
        "https://arxiv.org/abs/1605.01713",
        {"source": "captum defaults (LATEC: inputxgradient {})"},
        "@article{shrikumar2016inputxgradient,\n"
        "  title = {Not Just a Black Box: Learning Important Features Through Propagating Activation "
        "Differences},\n"
        "  author = {Shrikumar, Avanti and Greenside, Peyton and Shcherbina, Anna and Kundaje, Anshul},\n"
        "  journal = {arXiv:1605.01713},\n"
        "  year = {2016}\n"
        "}",
    )

    def _attribute(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        out = torch.empty_like(images)

        def run(start: int, stop: int) -> None:
            out[start:stop] = images[start:stop] * input_grad(
                self.model, images[start:stop], targets[start:stop]
            )

        chunked(run, b, points_per_forward(self.context, h, w, grad=True), self.device)
        return out


class _CaptumCall(CaptumLike):
    """A captum attribution called on chunks of the batch (one forward + backward per chunk, hooks
    removed)."""

    #: images per chunk = points_per_forward // this (DeepLift runs inputs and baselines together)
    points_per_image = 1
    METADATA: dict = {}

    def __init__(self, model: nn.Module, context: ExplainContext) -> None:
        reason = (self.METADATA.get("not_applicable") or {}).get(context.arch)
        if reason is not None:  # the runner skips it there (n/a); never a silently wrong map
            raise HfusError(
                f"{type(self).__name__} is undefined on {context.arch} ({reason}); it is n/a there, "
                "evaluate it on another architecture"
            )
        super().__init__(model, context)

    def _captum(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _attribute(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        out = torch.empty_like(images)
        chunk = max(1, points_per_forward(self.context, h, w, grad=True) // self.points_per_image)

        def run(start: int, stop: int) -> None:
            with torch.inference_mode(False), torch.enable_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # captum's "Setting backward hooks ..." notices
                x = images[start:stop].detach().clone()
                out[start:stop] = self._captum(x, targets[start:stop]).detach()

        chunked(run, b, chunk, self.device)
        return out


class DeepLift(_CaptumCall):
    """DeepLift (Rescale rule, captum), zero baseline, eps 1e-9 (LATEC)."""

    METADATA = _captum_metadata(
        "Shrikumar et al.",
        "https://arxiv.org/abs/1704.02685",
        {"baselines": 0.0, "eps": DEEPLIFT_EPS, "multiply_by_inputs": True, "source": "LATEC (deeplift)"},
        "@inproceedings{shrikumar2017deeplift,\n"
        "  title = {Learning Important Features Through Propagating Activation Differences},\n"
        "  author = {Shrikumar, Avanti and Greenside, Peyton and Kundaje, Anshul},\n"
        "  booktitle = {ICML},\n"
        "  year = {2017}\n"
        "}",
        not_applicable={"mobilenet_v2": _RELU6, "googlenet": _FUNCTIONAL, "resnet101": _REUSED},
    )

    points_per_image = 2

    def _captum(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return CaptumDeepLift(self.model, eps=DEEPLIFT_EPS).attribute(x, target=t, baselines=0.0)


class GuidedBackprop(_CaptumCall):
    """Guided Backprop (captum): gradients with every ReLU's backward clamped at 0."""

    METADATA = _captum_metadata(
        "Springenberg et al.",
        "https://arxiv.org/abs/1412.6806",
        {"source": "captum defaults (LATEC: guidedbackprop {})"},
        "@inproceedings{springenberg2015guidedbackprop,\n"
        "  title = {Striving for Simplicity: The All Convolutional Net},\n"
        "  author = {Springenberg, Jost Tobias and Dosovitskiy, Alexey and Brox, Thomas and Riedmiller, "
        "Martin},\n"
        "  booktitle = {ICLR (workshop track)},\n"
        "  year = {2015}\n"
        "}",
        not_applicable={"mobilenet_v2": _RELU6, "googlenet": _FUNCTIONAL},
    )

    def _captum(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return CaptumGuidedBackprop(self.model).attribute(x, target=t)
