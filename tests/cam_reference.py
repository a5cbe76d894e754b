"""Library-side reference calls for tests/test_cam.py: the unmodified pytorch-grad-cam 1.5.7.

Only two things differ from a plain ``Method(model, [layer])(input_tensor=x, targets=...)`` call,
and both are documented where they are used:

- EigenGrad-CAM: the protocol's sign rule (PROTOCOL §5.1) applied to the library's projection
  (``get_2d_projection``), because the library leaves the sign to LAPACK.
- Ablation-CAM: a cheap, map-identical handle. The library replaces its target module by an
  ``AblationLayer`` that ignores its input, so when the target module computes the whole network
  up to the pinned activation (``model.features`` for MobileNetV2;
  :class:`SplitModel` for the others), the ablation forwards run the head only.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import pytorch_grad_cam as gc  # noqa: E402
import torch  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection  # noqa: E402
from torch import nn  # noqa: E402

LIBRARY_CLASSES = {
    "gradcam": gc.GradCAM,
    "gradcampp": gc.GradCAMPlusPlus,
    "hirescam": gc.HiResCAM,
    "eigengradcam": gc.EigenGradCAM,
    "ablationcam": gc.AblationCAM,
    "scorecam": gc.ScoreCAM,
}


def signed_projection(weighted: np.ndarray) -> np.ndarray:
    """The library's ``get_2d_projection`` with the protocol's sign rule (PROTOCOL §5.1)."""
    proj = get_2d_projection(weighted)
    ref = weighted.sum(axis=1)
    flat_p = proj.reshape(len(proj), -1).astype(np.float64)
    flat_r = ref.reshape(len(ref), -1).astype(np.float64)
    cov = ((flat_p - flat_p.mean(1, keepdims=True)) * (flat_r - flat_r.mean(1, keepdims=True))).sum(1)
    return np.where(cov[:, None, None] < 0, -proj, proj).astype(np.float32)


class SignedEigenGradCAM(gc.EigenGradCAM):
    """The library's EigenGradCAM, projection sign pinned by the protocol's rule."""

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
        return signed_projection(grads * activations)


class _Prefix(nn.Module):
    """Runs ``model`` and returns the pinned target activation (captured by a forward hook)."""

    def __init__(self, model: nn.Module, target_layer: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.target_layer = target_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        captured = []
        handle = self.target_layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            self.model(x)
        finally:
            handle.remove()
        return captured[0]


class SplitModel(nn.Module):
    """``head(prefix(x))`` == ``model(x)``; ``prefix`` is the cheap Ablation-CAM handle."""

    def __init__(self, model: nn.Module, target_layer: nn.Module, head) -> None:
        super().__init__()
        self.prefix = _Prefix(model, target_layer)
        self._head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._head(self.prefix(x))


def library_maps(
    method: str,
    model: nn.Module,
    target_layer: nn.Module,
    images: torch.Tensor,
    targets,
    *,
    score_batch: int = 4096,
) -> np.ndarray:
    """The library's maps (B, H, W) for one target per image; EigenGrad-CAM with the sign rule."""
    cls = SignedEigenGradCAM if method == "eigengradcam" else LIBRARY_CLASSES[method]
    cam = cls(
        model, [target_layer]
    )  # Ablation-CAM: library default batch_size=32 (its ablation values depend on it)
    if method == "scorecam":
        cam.batch_size = score_batch
    try:
        return cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        cam.activations_and_grads.release()


def library_ablation_maps(
    model, target_layer, head, images, targets, *, arch: str | None = None
) -> np.ndarray:
    """Ablation-CAM through the cheap handle (``model.features`` for MobileNetV2, else SplitModel)."""
    if arch == "mobilenet_v2":
        return library_maps("ablationcam", model, model.features, images, targets)
    split = SplitModel(model, target_layer, head).eval()
    return library_maps("ablationcam", split, split.prefix, images, targets)


def library_scorecam_weights(model, target_layer, images, targets, activations: torch.Tensor) -> np.ndarray:
    """``ScoreCAM.get_cam_weights`` of the unmodified library on the given activations (B, C', h, w)."""
    cam = gc.ScoreCAM(model, [target_layer])
    cam.batch_size = 4096
    try:
        return cam.get_cam_weights(
            images, target_layer, [ClassifierOutputTarget(int(t)) for t in targets], activations.numpy(), None
        )
    finally:
        cam.activations_and_grads.release()
