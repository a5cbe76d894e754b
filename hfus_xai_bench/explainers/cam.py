"""The six CAM-family built-in methods (PROTOCOL §5), with pytorch-grad-cam 1.5.7 semantics.

(The raw maps of LayerCAM and XGrad-CAM, ecosystem baselines of ``cam_ecosystem.py``, are here too, so
:func:`gradient_cams` computes them from the same shared pass.)

Each class returns, for ``images`` (B, 3, H, W) and one target class per image, the same (B, H, W)
maps as the unmodified library's ``cam(input_tensor=images, targets=[ClassifierOutputTarget(t) ...])``
with ``target_layers=[context.target_layer]`` and no aug/eigen smoothing, including the library's
post-processing (ReLU, per-image min-max, bilinear resize to the input size, min-max again), but
computed with batched torch ops on the images' device:

- gradient CAMs (Grad-CAM, Grad-CAM++, HiRes-CAM, EigenGrad-CAM): one forward and one backward
  that stops at the target activation (parameters frozen for the call, the forward hook hands the
  rest of the network a fresh leaf), no weight gradients, no host round trips. They enable
  gradients themselves, so they also work when called under ``torch.no_grad()``.
- EigenGrad-CAM: batched ``torch.linalg.svd(full_matrices=False)`` of the centred (HW × C) matrices
  of grads·acts, with the protocol's sign rule (PROTOCOL §5.1): the projection is flipped when it
  correlates negatively with the channel sum of grads·acts. The library leaves the sign to LAPACK.
- Score-CAM: masked inputs for all (image, channel) pairs of the batch are built chunk by chunk
  (on CUDA as many masked images per forward as half the free memory holds, up to 1024; on the CPU
  ``context.batch_size``; images mixed), scores stay on the device;
  weights are the softmax over channels of the raw target logit, as in the library. One deliberate
  difference: a channel that is constant over h×w gets its exact all-zero mask; the library's mask
  for it is bilinear rounding noise stretched to [0, 1] (it depends on the tensor shape).
- Ablation-CAM: the target activations are computed once; the ablation scores come from
  ``context.head`` (activations -> logits) only: in closed form when the head is global average
  pooling + affine (all four reference archs; checked on the batch and on sample ablations), else
  by running the head on all ablated copies in a few large batched calls. Without a head the
  whole model runs with the target layer's output replaced (the library's cost). The ablation
  value is the library's: 0 when the image's activation minimum is 0, else the running minimum
  minus 1e7 within each library batch of 32 channels (a quirk of ``AblationLayer`` that only
  matters for targets with non-zero minimum; all four reference targets end in a ReLU).

Use :func:`gradient_cams` to get several gradient CAMs from one shared pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..chunking import chunked
from ..errors import HfusError
from .contract import ExplainContext, check_batch, frozen_parameters, points_per_forward

__all__ = [
    "AblationCAM",
    "EigenGradCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "ScoreCAM",
    "gradient_cams",
    "library_postprocess",
]

#: grad-cam constants (grad_cam_plusplus.py, score_cam.py, ablation_layer.py, ablation_cam.py, image.py)
_GRADCAMPP_EPS = 1e-6
_SCORECAM_EPS = 1e-8
_SCALE_EPS = 1e-7
_ABLATION_VALUE = 1e7
_LIBRARY_ABLATION_BATCH = 32

#: elements of ablated activations per head call (Ablation-CAM); 128 MB of fp32 on CPU, 512 MB on GPU
_ABLATION_ELEMENTS = {"cpu": 1 << 25, "cuda": 1 << 27}
#: masked images per forward on the CPU when ``context.batch_size`` is not positive (Score-CAM)
_DEFAULT_CPU_CHUNK = 32


# --------------------------------------------------------------------------------------------
# shared helpers


def library_postprocess(cam: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """grad-cam's post-processing of raw CAMs (B, h, w) -> (B, H, W) float32, with torch ops.

    ``np.maximum(cam, 0)``; per image ``x - min``, ``x / (1e-7 + max)``; ``cv2.resize`` (bilinear,
    half-pixel centres = ``align_corners=False``) to ``size``; then ``aggregate_multi_layers`` for one
    layer: ``np.maximum(., 0)`` and the same min-max scaling again.
    """
    cam = cam.float().clamp_min(0)
    cam = minmax(cam)
    cam = F.interpolate(cam[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return minmax(cam.clamp_min(0))


def minmax(cam: torch.Tensor) -> torch.Tensor:
    cam = cam - cam.amin(dim=(1, 2), keepdim=True)
    return cam / (_SCALE_EPS + cam.amax(dim=(1, 2), keepdim=True))


@contextmanager
def _hook(layer: nn.Module, fn: Callable) -> Iterator[None]:
    handle = layer.register_forward_hook(fn)
    try:
        yield
    finally:
        handle.remove()


def _one(captured: list[torch.Tensor]) -> torch.Tensor:
    if len(captured) != 1:
        raise HfusError(
            f"the CAM target layer ran {len(captured)} times in one forward; "
            "pin a layer that runs exactly once"
        )
    out = captured[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        raise HfusError("the CAM target layer must output a (B, C, h, w) tensor; pin a convolutional layer")
    return out


def target_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``ClassifierOutputTarget(t)(output)`` for every row: the raw logit of the row's target."""
    if logits.ndim != 2:
        raise HfusError(f"the model must return (B, num_classes) logits, got shape {tuple(logits.shape)}")
    return logits.gather(1, targets[:, None])[:, 0]


def _activations(
    model: nn.Module, layer: nn.Module, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One no-grad forward: (logits, target-layer activations)."""
    captured: list[torch.Tensor] = []
    with torch.no_grad(), _hook(layer, lambda _m, _i, out: captured.append(out)):
        logits = model(images)
    return logits, _one(captured)


def _activations_and_grads(
    model: nn.Module, layer: nn.Module, images: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target activations A and d(sum of target logits)/dA, from one forward + a head-only backward."""
    captured: list[torch.Tensor] = []

    def leaf(_module: nn.Module, _inputs: object, out: torch.Tensor) -> torch.Tensor:
        a = out.detach().requires_grad_(True)
        captured.append(a)
        return a

    with torch.inference_mode(False), torch.enable_grad(), frozen_parameters(model):
        x = images.clone() if images.is_inference() else images
        with _hook(layer, leaf):
            logits = model(x)
        acts = _one(captured)
        score = target_scores(logits, targets).sum()
        if not score.requires_grad:
            grads = torch.zeros_like(acts)
        else:
            (grads,) = torch.autograd.grad(score, acts, allow_unused=True)
            if grads is None:
                grads = torch.zeros_like(acts)
    return acts.detach(), grads.detach()


# --------------------------------------------------------------------------------------------
# raw CAMs from activations and gradients (B, C, h, w) -> (B, h, w)


def _weighted_sum(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    return (weights[:, :, None, None] * acts).sum(dim=1)


def _gradcam_raw(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    return _weighted_sum(grads.mean(dim=(2, 3)), acts)


def _gradcampp_raw(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    g2 = grads * grads
    g3 = g2 * grads
    sum_acts = acts.sum(dim=(2, 3), keepdim=True)
    aij = g2 / (2 * g2 + sum_acts * g3 + _GRADCAMPP_EPS)
    aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
    weights = (grads.clamp_min(0) * aij).sum(dim=(2, 3))
    return _weighted_sum(weights, acts)


def _hirescam_raw(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    return (grads * acts).sum(dim=1)


def _eigengradcam_raw(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    weighted = grads * acts
    weighted = torch.where(torch.isnan(weighted), torch.zeros_like(weighted), weighted)
    b, c, h, w = weighted.shape
    x = weighted.reshape(b, c, h * w).transpose(1, 2)  # (B, HW, C), as get_2d_projection
    x = x - x.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    proj = (x @ vh[:, 0, :, None])[..., 0]  # (B, HW)
    # sign rule (PROTOCOL §5.1): correlate positively with the channel sum of grads * acts
    ref = weighted.sum(dim=1).reshape(b, h * w)
    cov = ((proj - proj.mean(dim=1, keepdim=True)) * (ref - ref.mean(dim=1, keepdim=True))).sum(dim=1)
    proj = torch.where(cov[:, None] < 0, -proj, proj)
    return proj.reshape(b, h, w)


def _layercam_raw(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """LayerCAM (layer_cam.py): channel sum of ``max(grads, 0) * acts``."""
    return (grads.clamp_min(0) * acts).sum(dim=1)


def _xgradcam_raw(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM (xgrad_cam.py): weights = Σ_hw grads · acts / (Σ_hw acts + 1e-7)."""
    sum_acts = acts.sum(dim=(2, 3), keepdim=True)
    weights = (grads * acts / (sum_acts + _SCALE_EPS)).sum(dim=(2, 3))
    return _weighted_sum(weights, acts)


_GRADIENT_RAW: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gradcam": _gradcam_raw,
    "gradcampp": _gradcampp_raw,
    "hirescam": _hirescam_raw,
    "eigengradcam": _eigengradcam_raw,
    "layercam": _layercam_raw,
    "xgradcam": _xgradcam_raw,
}


def gradient_cams(
    model: nn.Module,
    context: ExplainContext,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int],
    methods: Sequence[str] = tuple(_GRADIENT_RAW),
) -> dict[str, torch.Tensor]:
    """Several gradient CAMs (names as in the registry) from one shared forward/backward pass."""
    unknown = [m for m in methods if m not in _GRADIENT_RAW]
    if unknown:
        raise HfusError(f"unknown gradient CAM(s) {unknown}; choose from {', '.join(_GRADIENT_RAW)}")
    images, targets = check_batch(images, targets)
    acts, grads = _activations_and_grads(model, context.target_layer, images, targets)
    acts, grads = acts.float(), grads.float()
    size = images.shape[-2:]
    return {m: library_postprocess(_GRADIENT_RAW[m](acts, grads), size) for m in methods}


# --------------------------------------------------------------------------------------------
# Score-CAM and Ablation-CAM internals


def _chunk_size(context: ExplainContext, device: torch.device, height: int, width: int) -> int:
    """Masked or ablated inputs per model forward: on CUDA sized to the free memory like the attribution
    methods' chunks (the images per call, 64 by default, would leave a large GPU mostly idle); on the CPU
    ``context.batch_size`` (the images per call)."""
    if device.type == "cuda":
        return points_per_forward(context, height, width, grad=False)
    if context.batch_size and context.batch_size > 0:
        return int(context.batch_size)
    return _DEFAULT_CPU_CHUNK


def _score_cam_weights(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, acts: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Softmax over channels of the target logit of every masked input (B, C), as ScoreCAM.get_cam_weights."""
    b, c, h, w = acts.shape
    size = images.shape[-2:]
    flat = acts.reshape(b * c, 1, h, w)
    scores = torch.empty(b * c, device=images.device, dtype=torch.float32)

    def run(start: int, stop: int) -> None:
        img = torch.arange(start, stop, device=images.device) // c
        # nn.UpsamplingBilinear2d == align_corners=True, then per-map (x - min) / (max - min + 1e-8)
        up = F.interpolate(flat[start:stop], size=tuple(size), mode="bilinear", align_corners=True)
        lo = up.amin(dim=(2, 3), keepdim=True)
        hi = up.amax(dim=(2, 3), keepdim=True)
        up = (up - lo) / (hi - lo + _SCORECAM_EPS)
        # a channel constant at h×w upsamples to a constant: its exact mask is 0. (The library's is
        # interpolation rounding noise scaled to [0, 1], which depends on the tensor's shape.)
        src = flat[start:stop]
        constant = src.amax(dim=(2, 3), keepdim=True) == src.amin(dim=(2, 3), keepdim=True)
        up = torch.where(constant, torch.zeros_like(up), up)
        masked = images[img] * up.to(images.dtype)
        scores[start:stop] = target_scores(model(masked), targets[img]).float()

    with torch.no_grad():
        chunked(run, b * c, chunk, images.device)
    return torch.softmax(scores.view(b, c), dim=-1)


def _ablation_values(acts: torch.Tensor) -> torch.Tensor:
    """Value each ablated channel is set to (B, C), exactly as the library's ``AblationLayer``.

    Channels are ablated in library batches of 32; within a batch, row i gets 0 if the current
    minimum of the batch tensor is 0, else that minimum - 1e7, and the minimum then includes the
    ablated rows (so the value keeps falling within a batch when the activation minimum is not 0).
    """
    b, c = acts.shape[:2]
    current = acts.detach().amin(dim=(1, 2, 3))
    per_position = []
    for _ in range(min(c, _LIBRARY_ABLATION_BATCH)):
        value = torch.where(current == 0, torch.zeros_like(current), current - _ABLATION_VALUE)
        per_position.append(value)
        current = torch.minimum(current, value)
    table = torch.stack(per_position, dim=1)  # (B, 32)
    position = torch.arange(c, device=acts.device) % _LIBRARY_ABLATION_BATCH
    return table[:, position]


def _ablated_scores(
    acts: torch.Tensor,
    targets: torch.Tensor,
    values: torch.Tensor,
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    per_call: int,
) -> torch.Tensor:
    """Target score with each channel of each image ablated (B, C); ``run(image_idx, ablated) -> logits``."""
    b, c = acts.shape[:2]
    out = torch.empty(b * c, device=acts.device, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, b * c, per_call):
            stop = min(start + per_call, b * c)
            flat = torch.arange(start, stop, device=acts.device)
            img, ch = flat // c, flat % c
            ablated = acts[img]  # advanced indexing copies
            ablated[torch.arange(stop - start, device=acts.device), ch] = values[img, ch][:, None, None]
            out[start:stop] = target_scores(run(img, ablated), targets[img]).float()
    return out.view(b, c)


def _affine_head_ablation(
    head: Callable[[torch.Tensor], torch.Tensor],
    acts: torch.Tensor,
    targets: torch.Tensor,
    values: torch.Tensor,
    logits: torch.Tensor,
    *,
    exact_logits: bool = True,
) -> torch.Tensor | None:
    """Ablated target scores (B, C) in closed form when ``head`` is global average pooling + affine.

    Then ablating channel c (all its h×w values set to v) moves the target logit by
    ``W[t, c] * (v - mean(A_c))``. W and b are read off the head on 1×1 unit activations; the
    closed form is used only if it reproduces the real logits of the batch (``exact_logits`` False: the
    model ran in a lower precision than the head, so the head's own output on ``acts`` is checked
    instead) and the head's output on a sample of real ablated copies, else None (the caller runs the
    head on every ablated copy).
    """
    b, c = acts.shape[:2]
    with torch.no_grad():
        basis = torch.cat([torch.zeros(1, c), torch.eye(c)]).to(acts)[:, :, None, None]
        try:
            probe = head(basis).float()
        except RuntimeError:
            return None
        if probe.ndim != 2 or probe.shape[0] != c + 1:
            return None
        bias = probe[0]
        weight = (probe[1:] - bias).T  # (K, C)
        pooled = acts.float().mean(dim=(2, 3))
        reference = logits if exact_logits else head(acts)
        if not _close(pooled @ weight.T + bias, reference.float()):
            return None
        w_t = weight[targets]  # (B, C)
        original = target_scores(reference, targets).float()
        new = original[:, None] - w_t * (pooled - values.float())
        # spot-check against the head on real ablated copies: first, last and most extreme channels
        check = torch.unique(
            torch.cat([torch.tensor([0, c - 1], device=acts.device), w_t.abs().argmax(dim=1)])
        )
        img = torch.arange(b, device=acts.device).repeat_interleave(len(check))
        ch = check.repeat(b)
        ablated = acts[img]
        ablated[torch.arange(len(img), device=acts.device), ch] = values[img, ch][:, None, None]
        direct = target_scores(head(ablated), targets[img]).float()
        if not _close(new[img, ch], direct):
            return None
        if not exact_logits:  # the same drops, from the model's own logits
            new = new + (target_scores(logits, targets).float() - original)[:, None]
    return new


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    scale = float(b.abs().max()) if b.numel() else 0.0
    return bool(torch.allclose(a, b, rtol=1e-3, atol=1e-4 * max(scale, 1e-30)))


# --------------------------------------------------------------------------------------------
# the six methods


class CAMBase:
    kind = "map"
    name = ""

    def __init__(self, model: nn.Module, context: ExplainContext) -> None:
        self.model = model.eval()
        self.context = context
        self.target_layer = context.target_layer


class GradientCAMBase(CAMBase):
    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return gradient_cams(self.model, self.context, images, targets, (self.name,))[self.name]


class GradCAM(GradientCAMBase):
    """Grad-CAM: channel weights = spatial mean of the gradient."""

    name = "gradcam"

    METADATA = {
        "authors": "Selvaraju et al.",
        "url": "https://arxiv.org/abs/1610.02391",
        "hyperparameters": {
            "target_layer": "pinned per architecture (PROTOCOL §2)",
            "aug_smooth": False,
            "eigen_smooth": False,
        },
        "citation": (
            "@inproceedings{selvaraju2017gradcam,\n"
            "  title = {Grad-CAM: Visual Explanations from Deep Networks via Gradient-Based Localization},\n"
            "  author = {Selvaraju, Ramprasaath R. and Cogswell, Michael and Das, Abhishek and Vedantam, "
            "Ramakrishna and Parikh, Devi and Batra, Dhruv},\n"
            "  booktitle = {ICCV},\n"
            "  year = {2017}\n"
            "}"
        ),
    }


class GradCAMPlusPlus(GradientCAMBase):
    """Grad-CAM++ (the library's eq. 19 weights)."""

    name = "gradcampp"

    METADATA = {
        "authors": "Chattopadhay et al.",
        "url": "https://arxiv.org/abs/1710.11063",
        "hyperparameters": {
            "target_layer": "pinned per architecture (PROTOCOL §2)",
            "aug_smooth": False,
            "eigen_smooth": False,
        },
        "citation": (
            "@inproceedings{chattopadhay2018gradcampp,\n"
            "  title = {Grad-CAM++: Generalized Gradient-Based Visual Explanations for Deep Convolutional "
            "Networks},\n"
            "  author = {Chattopadhay, Aditya and Sarkar, Anirban and Howlader, Prantik and Balasubramanian, "
            "Vineeth N.},\n"
            "  booktitle = {WACV},\n"
            "  year = {2018}\n"
            "}"
        ),
    }


class HiResCAM(GradientCAMBase):
    """HiRes-CAM: channel sum of gradient × activation (equals Grad-CAM when GAP + linear follows)."""

    name = "hirescam"

    METADATA = {
        "authors": "Draelos and Carin",
        "url": "https://arxiv.org/abs/2011.08891",
        "hyperparameters": {
            "target_layer": "pinned per architecture (PROTOCOL §2)",
            "aug_smooth": False,
            "eigen_smooth": False,
        },
        "citation": (
            "@article{draelos2020hirescam,\n"
            "  title = {Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional neural "
            "networks},\n"
            "  author = {Draelos, Rachel Lea and Carin, Lawrence},\n"
            "  journal = {arXiv:2011.08891},\n"
            "  year = {2020}\n"
            "}"
        ),
    }


class EigenGradCAM(GradientCAMBase):
    """EigenGrad-CAM: first principal component of gradient × activation, sign pinned (PROTOCOL §5.1)."""

    name = "eigengradcam"

    METADATA = {
        "authors": "Muhammad and Yeasin (Eigen-CAM); pytorch-grad-cam",
        "url": "https://arxiv.org/abs/2008.00299",
        "hyperparameters": {
            "target_layer": "pinned per architecture (PROTOCOL §2)",
            "aug_smooth": False,
            "eigen_smooth": False,
            "sign": "projection correlates positively with the channel sum of grads × acts (PROTOCOL §5.1)",
        },
        "citation": (
            "@inproceedings{muhammad2020eigencam,\n"
            "  title = {Eigen-CAM: Class Activation Map using Principal Components},\n"
            "  author = {Muhammad, Mohammed Bany and Yeasin, Mohammed},\n"
            "  booktitle = {IJCNN},\n"
            "  year = {2020},\n"
            "  note = {EigenGrad-CAM is the pytorch-grad-cam variant on gradient-weighted activations}\n"
            "}"
        ),
    }


class ScoreCAM(CAMBase):
    """Score-CAM: softmax over channels of the target logit of the image masked by each channel."""

    name = "scorecam"

    METADATA = {
        "authors": "Wang et al.",
        "url": "https://arxiv.org/abs/1910.01279",
        "hyperparameters": {
            "target_layer": "pinned per architecture (PROTOCOL §2)",
            "aug_smooth": False,
            "eigen_smooth": False,
        },
        "citation": (
            "@inproceedings{wang2020scorecam,\n"
            "  title = {Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural Networks},\n"
            "  author = {Wang, Haofan and Wang, Zifan and Du, Mengnan and Yang, Fan and Zhang, Zijian and "
            "Ding, Sirui and Mardziel, Piotr and Hu, Xia},\n"
            "  booktitle = {CVPR Workshops},\n"
            "  year = {2020}\n"
            "}"
        ),
    }

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        images, targets = check_batch(images, targets)
        _, acts = _activations(self.model, self.target_layer, images)
        acts = acts.float()  # bf16 under autocast: the masks and the CAM in float32 (no-op in fp32)
        chunk = _chunk_size(self.context, images.device, *images.shape[-2:])
        weights = _score_cam_weights(self.model, images, targets, acts, chunk)
        return library_postprocess(_weighted_sum(weights, acts.float()), images.shape[-2:])


class AblationCAM(CAMBase):
    """Ablation-CAM: relative drop of the target logit when a channel is ablated (ratio 1.0, all channels)."""

    name = "ablationcam"

    METADATA = {
        "authors": "Desai and Ramaswamy",
        "url": "https://openaccess.thecvf.com/content_WACV_2020/html/Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.html",
        "hyperparameters": {
            "target_layer": "pinned per architecture (PROTOCOL §2)",
            "aug_smooth": False,
            "eigen_smooth": False,
            "ratio_channels_to_ablate": 1.0,
        },
        "citation": (
            "@inproceedings{desai2020ablationcam,\n"
            "  title = {Ablation-CAM: Visual Explanations for Deep Convolutional Network via Gradient-free "
            "Localization},\n"
            "  author = {Desai, Saurabh and Ramaswamy, Harish G.},\n"
            "  booktitle = {WACV},\n"
            "  year = {2020}\n"
            "}"
        ),
    }

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        images, targets = check_batch(images, targets)
        logits, low = _activations(self.model, self.target_layer, images)
        acts = low.float()  # bf16 under autocast: the ablation and the CAM in float32 (no-op in fp32)
        original = target_scores(logits, targets).float()
        values = _ablation_values(acts)
        _, c, h, w = acts.shape
        head = self.context.head
        if head is not None:
            # logits of a lower precision than the head's (autocast) cannot check the closed form
            exact = low.dtype == acts.dtype
            new = _affine_head_ablation(head, acts, targets, values, logits, exact_logits=exact)
            if new is None:  # the head is not GAP + affine: run it on every ablated copy
                budget = _ABLATION_ELEMENTS["cuda" if acts.device.type == "cuda" else "cpu"]
                per_call = max(1, budget // (c * h * w))
                new = _ablated_scores(acts, targets, values, lambda _img, ablated: head(ablated), per_call)
        else:
            per_call = _chunk_size(self.context, images.device, *images.shape[-2:])

            def full_model(img: torch.Tensor, ablated: torch.Tensor) -> torch.Tensor:
                with _hook(self.target_layer, lambda _m, _i, out: ablated.to(out.dtype)):
                    return self.model(images[img])

            new = _ablated_scores(acts, targets, values, full_model, per_call)
        weights = (original[:, None] - new) / original[:, None]
        return library_postprocess(_weighted_sum(weights, acts.float()), images.shape[-2:])
