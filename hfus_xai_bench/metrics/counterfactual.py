"""``counterfactual@1`` (PROTOCOL §9): what the model does when the class evidence is removed.

It measures the model, not the method. Per image with label ≠ CG and target class c ≠ CG (the
applicable images): "``effect`` = p_c(image) − p_c(twin), softmax probabilities of the image's c for
both; ``flip`` = the prediction on the image is not CG and the prediction on the twin is CG (argmax,
lowest index on ties)". "CG-labelled images are not applicable whatever ``twin`` holds; images with
target CG are counted apart" (no effect, no flip; case codes below). Without twins (real data) the
metric is unavailable: the runner provides no ``twins`` extra and the metric is not scored (never 0).

§9 also reports ``evidence@1`` on the images with flip true: the registry entry keeps the evidence hit
and mass of those images (NaN elsewhere), computed by :mod:`.evidence` from the same counts.

Cost: one forward per applicable image (its twin), batched; the image's own probabilities come from
``extras["logits"]`` (the trained model's logits on the images, if the runner passes them) or else from
a forward of the image in the same batch as its twin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..chunking import ForwardInPieces
from ..constants import CLASSES
from ..errors import HfusError
from .postprocess import as_tensor

if TYPE_CHECKING:
    from .inputs import ScoringConfig, ScoringInputs

__all__ = [
    "CASE_APPLICABLE",
    "CASE_LABEL_CG",
    "CASE_TARGET_CG",
    "CG",
    "CounterfactualResult",
    "counterfactual_cases",
    "counterfactual_scores",
    "predict_lowest",
    "score_counterfactual",
    "twins_as_images",
]

#: index of the control group (healthy skin: no class evidence), from the protocol's class order
CG = CLASSES.index("CG")
#: per-image case (value ``cf_case``): scored; CG-labelled (not applicable); target CG (counted apart)
CASE_APPLICABLE, CASE_LABEL_CG, CASE_TARGET_CG = 0, 1, 2


@dataclass
class CounterfactualResult:
    """Per image (N,): ``case`` (int64 codes), and float64 NaN outside the applicable images: ``effect``,
    ``flip`` (1.0 / 0.0), ``p_image`` and ``p_twin`` (softmax probability of the target), ``pred_twin``."""

    case: np.ndarray
    effect: np.ndarray
    flip: np.ndarray
    p_image: np.ndarray
    p_twin: np.ndarray
    pred_twin: np.ndarray
    #: images forwarded (twins, plus the images themselves when no logits were given)
    n_forward: int = 0


def counterfactual_cases(labels: Any, targets: Any) -> np.ndarray:
    """Case code per image: :data:`CASE_LABEL_CG` if the label is CG, else :data:`CASE_TARGET_CG` if the
    target is CG, else :data:`CASE_APPLICABLE` (int64 (N,))."""
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    tgt = np.asarray(targets, dtype=np.int64).reshape(-1)
    if lab.shape != tgt.shape:
        raise HfusError(f"labels ({lab.size}) and targets ({tgt.size}) disagree on the number of images")
    return np.where(lab == CG, CASE_LABEL_CG, np.where(tgt == CG, CASE_TARGET_CG, CASE_APPLICABLE)).astype(
        np.int64
    )


def predict_lowest(logits: torch.Tensor) -> torch.Tensor:
    """Argmax per row with ties going to the lowest class index (explicit, whatever the backend's argmax
    does)."""
    idx = torch.arange(logits.shape[1], device=logits.device).expand_as(logits)
    top = logits == logits.amax(1, keepdim=True)
    return torch.where(top, idx, logits.shape[1]).amin(1)


def twins_as_images(twins: Any) -> torch.Tensor:
    """Twins as model input: uint8 (N, H, W, 3) (the dataset column) → float (N, 3, H, W) in [0, 1], the
    conversion the runner applies to the images; float (N, 3, H, W) input is taken as is."""
    t = as_tensor(twins, "twins")
    if t.dtype == torch.uint8 and t.ndim == 4 and t.shape[-1] == 3:
        return t.permute(0, 3, 1, 2).float().div_(255.0)
    if t.is_floating_point() and t.ndim == 4 and t.shape[1] == 3:
        return t
    raise HfusError(
        f"twins: expected uint8 (N, H, W, 3) (the dataset's twin column) or float (N, 3, H, W), "
        f"got {tuple(t.shape)} {t.dtype}"
    )


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def _forward(model: ForwardInPieces, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise HfusError("model: expected logits (B, num_classes) from a forward pass")
    return logits.double() if logits.device.type != "mps" else logits.float()


def counterfactual_scores(
    model: nn.Module,
    images: Any,
    twins: Any,
    labels: Any,
    targets: Any,
    *,
    logits: Any = None,
    batch_size: int = 64,
) -> CounterfactualResult:
    """``counterfactual@1`` per image (PROTOCOL §9): see :class:`CounterfactualResult`.

    ``model`` in eval mode; ``images`` (N, 3, H, W) float in [0, 1] (unused when ``logits`` is given);
    ``twins`` (N, H, W, 3) uint8 or (N, 3, H, W) float; ``labels``, ``targets`` (N,) class indices;
    ``logits`` optional (N, C): the model's logits on the images. Only the applicable images are
    forwarded, ``batch_size`` images per forward (image and twin of an image in the same forward).
    """
    if model.training:
        raise HfusError("model is in training mode; call model.eval() first")
    if int(batch_size) < 1:
        raise HfusError(f"batch_size must be >= 1, got {batch_size}")
    case = counterfactual_cases(labels, targets)
    n = case.size
    tw = twins_as_images(twins)
    if tw.shape[0] != n:
        raise HfusError(f"twins: {tw.shape[0]} twins for {n} images")
    tgt = torch.as_tensor(np.asarray(targets, dtype=np.int64).reshape(-1))
    given = None if logits is None else as_tensor(logits, "logits").double().cpu()
    if given is not None and (given.ndim != 2 or given.shape[0] != n):
        raise HfusError(f"logits: expected (N, C) = ({n}, C), got {tuple(given.shape)}")
    x = None if given is not None else as_tensor(images, "images")
    if x is not None and (x.ndim != 4 or x.shape[0] != n or not x.is_floating_point()):
        raise HfusError(f"images: expected float (N, 3, H, W) with N = {n}, got {tuple(x.shape)}")
    idx = np.flatnonzero(case == CASE_APPLICABLE)
    res = CounterfactualResult(
        case=case,
        effect=np.full(n, np.nan),
        flip=np.full(n, np.nan),
        p_image=np.full(n, np.nan),
        p_twin=np.full(n, np.nan),
        pred_twin=np.full(n, np.nan),
        n_forward=int(idx.size * (1 if given is not None else 2)),
    )
    if idx.size:
        li, lt = _image_and_twin_logits(model, x, tw, given, idx, int(batch_size))
        _score_applicable(res, idx, li, lt, tgt)
    return res


def _image_and_twin_logits(
    model: nn.Module,
    x: torch.Tensor | None,
    tw: torch.Tensor,
    given: torch.Tensor | None,
    idx: np.ndarray,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of the images ``idx`` (``given``'s rows, else forwarded) and of their twins, on the CPU;
    an image and its twin go through the same forward."""
    device, dtype = _device_dtype(model)
    step = max(1, batch_size // (1 if given is not None else 2))
    img_logits, twin_logits = [], []
    forward = ForwardInPieces(model, device)
    for start in range(0, idx.size, step):
        sel = torch.from_numpy(idx[start : start + step])
        batch = [tw.index_select(0, sel.to(tw.device))]
        if x is not None:
            batch.insert(0, x.index_select(0, sel.to(x.device)))
        out = _forward(forward, torch.cat([b.to(device, dtype) for b in batch])).cpu()
        twin_logits.append(out[-sel.numel() :])
        img_logits.append(given.index_select(0, sel) if given is not None else out[: sel.numel()])
    return torch.cat(img_logits), torch.cat(twin_logits)


def _score_applicable(
    res: CounterfactualResult, idx: np.ndarray, li: torch.Tensor, lt: torch.Tensor, tgt: torch.Tensor
) -> None:
    """Fill ``res``'s rows ``idx`` from the image logits ``li`` and twin logits ``lt``."""
    t = tgt.index_select(0, torch.from_numpy(idx)).view(-1, 1)
    if bool((t >= li.shape[1]).any()) or bool((t < 0).any()):
        raise HfusError(f"targets: class index outside 0..{li.shape[1] - 1}")
    p_img = torch.softmax(li, 1).gather(1, t)[:, 0].numpy()
    p_tw = torch.softmax(lt, 1).gather(1, t)[:, 0].numpy()
    pred_img, pred_tw = predict_lowest(li).numpy(), predict_lowest(lt).numpy()
    res.p_image[idx], res.p_twin[idx] = p_img, p_tw
    res.effect[idx] = p_img - p_tw
    res.flip[idx] = ((pred_img != CG) & (pred_tw == CG)).astype(np.float64)
    res.pred_twin[idx] = pred_tw


# ----------------------------------------------------------------------------- registry entry point


def score_counterfactual(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``counterfactual@1``: ``cf_case``, ``cf_effect``, ``cf_flip``, ``cf_pred_twin`` and the evidence hit /
    mass of the images with flip true (``cf_flip_hit``, ``cf_flip_mass``; NaN elsewhere), each (N,).

    Reads ``extras["twins"]``, ``extras["evidence"]`` and, if present, ``extras["logits"]``. Adds
    ``counterfactual_seconds`` and ``counterfactual_forward_images`` to ``inputs.cost``.
    """
    from .evidence import evidence_from_counts, shared_evidence_counts

    inputs.require("counterfactual@1", "model", "twins", "evidence")
    device, _ = _device_dtype(inputs.model)
    tic = time.perf_counter()
    res = counterfactual_scores(
        inputs.model,
        inputs.images,
        inputs.extras["twins"],
        inputs.labels,
        inputs.targets,
        logits=inputs.extras.get("logits"),
        batch_size=config.forward_batch(device),
    )
    cost = inputs.cost
    cost["counterfactual_seconds"] = cost.get("counterfactual_seconds", 0.0) + time.perf_counter() - tic
    cost["counterfactual_forward_images"] = cost.get("counterfactual_forward_images", 0.0) + res.n_forward
    hit, mass, _ = evidence_from_counts(shared_evidence_counts(inputs))
    flipped = res.flip == 1.0
    mapped = flipped & np.asarray(inputs.ok, bool)  # scored on every image; the map's values where it has one
    return {
        "cf_case": res.case.astype(np.float64),
        "cf_effect": res.effect,
        "cf_flip": res.flip,
        "cf_pred_twin": res.pred_twin,
        "cf_flip_hit": np.where(mapped, hit, np.nan),
        "cf_flip_mass": np.where(mapped, mass, np.nan),
    }


def case_count_table(per_fold: Any) -> dict[str, int]:
    """``counterfactual@1/counts`` per arch: applicable images, CG-labelled (not applicable), target CG
    (counted apart), and applicable images whose twin flips the model."""
    case = np.concatenate([np.asarray(v["cf_case"], np.float64) for v in per_fold])
    flip = np.concatenate([np.asarray(v["cf_flip"], np.float64) for v in per_fold])
    return {
        "n_applicable": int(np.count_nonzero(case == CASE_APPLICABLE)),
        "n_label_cg": int(np.count_nonzero(case == CASE_LABEL_CG)),
        "n_target_cg": int(np.count_nonzero(case == CASE_TARGET_CG)),
        "n_flip": int(np.count_nonzero(flip == 1.0)),
    }
