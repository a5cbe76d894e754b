"""Ecosystem CAM baselines (PROTOCOL §5, v1.2): LayerCAM, XGrad-CAM, FullGrad, pytorch-grad-cam 1.5.7
semantics.

Like ``cam.py``, each class returns the library's (B, H, W) maps for one target per image, with the
library's post-processing, computed with batched torch ops:

- LayerCAM and XGrad-CAM at §2's pinned target layer (so LayerCAM is 7×7 there; a finer layer would be
  another method id), from the shared gradient pass of :func:`cam.gradient_cams`.
- FullGrad: the library ignores the target layer and uses every ``Conv2d`` / ``BatchNorm2d`` with a bias
  (a BatchNorm's bias is ``bias - running_mean · weight / sqrt(running_var + eps)``): map =
  min-max( Σ_rgb mm(|x · ∂s/∂x|) + Σ_layers Σ_channels resize(mm(|bias_c · ∂s/∂a_c|)) ), ``mm`` the
  library's per-(image, channel) min-max with its 1e-7. The library resizes every channel to the input
  size with cv2 before summing (slow: thousands of channels on the larger archs); bilinear resizing is linear,
  so we sum the channels first and resize once per layer (same map up to float rounding). Gradients
  are taken with tensor hooks on the layer outputs, as the library does (so an in-place ReLU after a
  BatchNorm does not change them). FullGrad reads the biases and BatchNorm statistics by definition;
  it does not modify them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import HfusError
from .cam import CAMBase, GradientCAMBase, minmax, target_scores
from .contract import check_batch, frozen_parameters

__all__ = ["FullGrad", "LayerCAM", "XGradCAM", "fullgrad_layers"]

_TARGET_LAYER = "pinned per architecture (PROTOCOL §2)"


class LayerCAM(GradientCAMBase):
    """LayerCAM: channel sum of ``max(grad, 0) · activation`` at the pinned target layer (7×7 there)."""

    name = "layercam"

    METADATA = {
        "authors": "Jiang et al.",
        "url": "https://doi.org/10.1109/TIP.2021.3089943",
        "hyperparameters": {
            "target_layer": _TARGET_LAYER,
            "eigen_smooth": False,
            "library": "grad-cam 1.5.7",
        },
        "citation": (
            "@article{jiang2021layercam,\n"
            "  title = {LayerCAM: Exploring Hierarchical Class Activation Maps for Localization},\n"
            "  author = {Jiang, Peng-Tao and Zhang, Chang-Bin and Hou, Qibin and Cheng, Ming-Ming and Wei, "
            "Yunchao},\n"
            "  journal = {IEEE Transactions on Image Processing},\n"
            "  volume = {30},\n"
            "  pages = {5875--5888},\n"
            "  year = {2021}\n"
            "}"
        ),
    }


class XGradCAM(GradientCAMBase):
    """XGrad-CAM: channel weights = Σ_hw grad · activation / (Σ_hw activation + 1e-7)."""

    name = "xgradcam"

    METADATA = {
        "authors": "Fu et al.",
        "url": "https://arxiv.org/abs/2008.02312",
        "hyperparameters": {
            "target_layer": _TARGET_LAYER,
            "eigen_smooth": False,
            "library": "grad-cam 1.5.7",
        },
        "citation": (
            "@inproceedings{fu2020xgradcam,\n"
            "  title = {Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs},\n"
            "  author = {Fu, Ruigang and Hu, Qingyong and Dong, Xiaohu and Guo, Yulan and Gao, Yinghui and "
            "Li, Biao},\n"
            "  booktitle = {BMVC},\n"
            "  year = {2020}\n"
            "}"
        ),
    }


def fullgrad_layers(model: nn.Module) -> list[nn.Module]:
    """The library's FullGrad layers (``find_layer_predicate_recursive``): every ``Conv2d`` / ``BatchNorm2d``
    (exact type) with a bias, depth first in registration order, a module listed once per place it is
    registered."""
    found = []
    for child in model._modules.values():
        if child is None:
            continue
        if type(child) in (nn.Conv2d, nn.BatchNorm2d) and child.bias is not None:
            found.append(child)
        found.extend(fullgrad_layers(child))
    return found


def _bias(layer: nn.Module) -> torch.Tensor:
    if isinstance(layer, nn.BatchNorm2d):
        return (
            -(layer.running_mean * layer.weight / torch.sqrt(layer.running_var + layer.eps)) + layer.bias
        ).detach()
    return layer.bias.detach()


def _mm_channels(t: torch.Tensor) -> torch.Tensor:
    """grad-cam's ``scale_cam_image`` min-max per (image, channel) of (B, C, h, w)."""
    t = t - t.amin(dim=(2, 3), keepdim=True)
    return t / (1e-7 + t.amax(dim=(2, 3), keepdim=True))


class FullGrad(CAMBase):
    """FullGrad (grad-cam's variant): input-gradient and bias-gradient maps of every biased conv/BN layer."""

    name = "fullgrad"

    METADATA = {
        "authors": "Srinivas and Fleuret",
        "url": "https://arxiv.org/abs/1905.00780",
        "hyperparameters": {
            "layers": "every Conv2d / BatchNorm2d with a bias (the library ignores target_layers)",
            "eigen_smooth": False,
            "library": "grad-cam 1.5.7",
        },
        "citation": (
            "@inproceedings{srinivas2019fullgrad,\n"
            "  title = {Full-Gradient Representation for Neural Network Visualization},\n"
            "  author = {Srinivas, Suraj and Fleuret, Fran{\\c{c}}ois},\n"
            "  booktitle = {NeurIPS},\n"
            "  year = {2019}\n"
            "}"
        ),
    }

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        images, targets = check_batch(images, targets, floating=True)
        layers = fullgrad_layers(self.model)
        input_grad, grads = self._gradients(layers, images, targets)
        size = images.shape[-2:]
        x = images.detach().float()
        total = _mm_channels((input_grad.float() * x).abs()).sum(dim=1)
        for layer, grad in zip(layers, grads, strict=True):
            per_channel = _mm_channels((_bias(layer).float()[None, :, None, None] * grad.float()).abs())
            summed = per_channel.sum(dim=1, keepdim=True)
            if summed.shape[-2:] != size:
                summed = F.interpolate(summed, size=tuple(size), mode="bilinear", align_corners=False)
            total = total + summed[:, 0]
        return minmax(total)

    def _gradients(
        self, layers: Sequence[nn.Module], images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """∂(Σ target logits)/∂x and, per layer, ∂/∂(layer output) (tensor hooks, as the library)."""
        found: list[list[torch.Tensor]] = [[] for _ in layers]

        def forward_hook(i: int):
            def hook(_m: nn.Module, _inputs: object, out: torch.Tensor) -> None:
                if isinstance(out, torch.Tensor) and out.requires_grad:
                    out.register_hook(lambda g: found[i].append(g.detach()))

            return hook

        with torch.inference_mode(False), torch.enable_grad(), frozen_parameters(self.model):
            x = images.detach().clone().requires_grad_(True)
            handles = [layer.register_forward_hook(forward_hook(i)) for i, layer in enumerate(layers)]
            try:
                logits = self.model(x)
                (input_grad,) = torch.autograd.grad(target_scores(logits, targets).sum(), x)
            finally:
                for h in handles:
                    h.remove()
        if any(len(g) != 1 for g in found):
            raise HfusError(
                "FullGrad needs every biased Conv2d/BatchNorm2d to run exactly once per forward; "
                "this model reuses one (use another method)"
            )
        return input_grad.detach(), [g[0] for g in found]
