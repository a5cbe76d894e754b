"""The explainer contract (PROTOCOL §3): what a method receives and what it must return.

A method is either a function ``explain(model, images, targets, *, context) -> maps`` or a class
``Explainer`` constructed once per model as ``Explainer(model, context)`` and then called per batch
as ``explainer(images, targets) -> maps``.

- ``model``: the classifier in eval mode, on ``context.device``; input (B, 3, 224, 224) in [0, 1].
- ``images``: float tensor (B, 3, 224, 224) in [0, 1] on ``context.device``.
- ``targets``: int64 tensor (B,) of class indices (predicted class by default).
- return: one saliency map per image, (B, 224, 224) or (B, h, w) (upsampled bilinearly by the harness),
  real and finite, as a torch tensor (any device) or a numpy array.

``kind`` (class attribute ``kind`` or ``METADATA["kind"]``) says how the harness post-processes the output:
``"map"`` (default): non-negative saliency, e.g. CAMs (negative values are clipped to 0);
``"attribution"``: signed attributions, (B, C, H, W) or (B, H, W), reduced by the canonical
``normalize_attribution`` (channel sum, sign policy, 98 % mass threshold; PROTOCOL §3.1).

The harness side lives here too: :func:`run_method` calls a method on a batch (an exception is
retried image by image, so failures are per image) and :func:`to_m255` turns its outputs into
``m255`` maps with one failure reason per image (PROTOCOL §3: ``exception``, ``wrong_type``,
``wrong_shape``, ``non_finite``, ``empty_map``). The built-in methods share :func:`check_batch` and
:func:`frozen_parameters`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import ARCHITECTURES, IMAGE_SIZE
from ..errors import HarnessError, HfusError

MapKind = Literal["map", "attribution"]

#: Per-image failure reasons (PROTOCOL §3): an exception, a wrong shape, NaN/Inf, an all-zero map, an output
#: that is not a real-valued tensor or array.
FAIL_EXCEPTION, FAIL_SHAPE, FAIL_NONFINITE, FAIL_EMPTY = "exception", "wrong_shape", "non_finite", "empty_map"
FAIL_TYPE = "wrong_type"

#: Why a map of kind "map" is all zero when it had values but none above 0 (it is clipped at 0, PROTOCOL §3.1)
NEGATIVE_MAP = "all values ≤ 0: a map of kind 'map' is clipped at 0; signed outputs need kind = 'attribution'"


class EmptyMap(str):
    """The failure reason ``empty_map`` (equal to :data:`FAIL_EMPTY` wherever reasons are compared, counted,
    recorded or pickled) that carries why the map is all zero (``why``), for :func:`describe_reason`."""

    why: str

    def __new__(cls, why: str) -> EmptyMap:
        reason = super().__new__(cls, FAIL_EMPTY)
        reason.why = why
        return reason

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return EmptyMap, (self.why,)


def describe_reason(reason: str) -> str:
    """A failure reason for a message: ``empty_map (why)`` where :func:`to_m255` knows why, else as is."""
    return f"{reason} ({reason.why})" if isinstance(reason, EmptyMap) else str(reason)


#: What a method's code may raise that counts as its own failure (a failed image, a load or initialisation
#: error naming it), never the end of the run: SystemExit included (a method's ``exit()``), KeyboardInterrupt
#: not (Ctrl-C still stops the run)
METHOD_ERRORS = (Exception, SystemExit)


class Architecture(Protocol):
    """What a context needs of an architecture (:class:`~hfus_xai_bench.models.zoo.ArchSpec`)."""

    name: str

    def resolve_target_layer(self, model: nn.Module) -> nn.Module: ...

    def head(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]: ...


@dataclass
class ExplainContext:
    """Everything an explainer may use besides the model and the batch."""

    arch: str
    target_layer: nn.Module
    device: torch.device
    #: target-layer activations (B, C, h, w) -> logits (B, num_classes); GAP + linear for all reference archs
    head: Callable[[torch.Tensor], torch.Tensor] | None = None
    seed: int = 0
    #: a hint for internal batching (images per forward chunk); methods may adapt it to memory
    batch_size: int = 64
    #: (224, 224) float in [0, 1]: mean skin layer map of the training folds / 255 (for the depth prior)
    depth_prior: torch.Tensor | None = None
    #: (K, 3, 224, 224) float in [0, 1] on ``device``: a seeded sample of the fold's training images, handed
    #: over by the harness (Expected Gradients' baselines, PROTOCOL §5); a method never loads the dataset
    training_sample: torch.Tensor | None = None
    #: further inputs the harness hands to particular methods. ``extra["evidence"]``: the batch's evidence
    #: masks (B, 224, 224) bool on ``device`` (PROTOCOL §9), set by the runner before every call of a method
    #: whose METADATA declares ``"reads": ("evidence",)`` — only the built-in reference rows (``oracle``,
    #: ``oracle@grid``, METADATA ``"reference": "oracle"``) may; the loader refuses it in any other method
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_model(
        cls, spec: Architecture, model: nn.Module, device: torch.device | str, **options: Any
    ) -> ExplainContext:
        """The context for ``model`` of architecture ``spec``: its name, pinned target layer and head;
        ``options`` sets the other fields (seed, batch_size, depth_prior, training_sample, extra)."""
        return cls(
            arch=spec.name,
            target_layer=spec.resolve_target_layer(model),
            device=torch.device(device),
            head=spec.head(model),
            **options,
        )


#: points (images) per forward on the CPU (chosen by measurement: benchmarks/README.md)
CPU_POINTS_GRAD = 16
CPU_POINTS_FORWARD = 16

#: rough bytes per 224×224 image for a forward+input-backward with frozen weights (fp32), per architecture
#: (:data:`~hfus_xai_bench.constants.ARCHITECTURES`); another model is sized as the largest
_GRAD_BYTES_224 = {a.name: a.grad_bytes_224 for a in ARCHITECTURES}
_DEFAULT_GRAD_BYTES_224 = max(_GRAD_BYTES_224.values())
_FORWARD_FRACTION = 0.25  # a no-grad forward keeps only a few live activations
_MAX_POINTS = 1024


def points_per_forward(context: ExplainContext, height: int, width: int, grad: bool) -> int:
    """Images per forward chunk inside a method: 16 on the CPU; on CUDA sized to half the free memory
    (8…1024), whatever the images per call (``context.batch_size``)."""
    device = torch.device(context.device)
    if device.type != "cuda":
        return CPU_POINTS_GRAD if grad else CPU_POINTS_FORWARD
    free, _ = torch.cuda.mem_get_info(device)
    per = _GRAD_BYTES_224.get(context.arch, _DEFAULT_GRAD_BYTES_224) * (height * width) / (224 * 224)
    if not grad:
        per *= _FORWARD_FRACTION
    return int(min(_MAX_POINTS, max(8, 0.5 * free // per)))


class Explainer(Protocol):
    """A class-based method: constructed once per model, called per batch."""

    kind: MapKind

    def __init__(self, model: nn.Module, context: ExplainContext) -> None: ...

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...


# ------------------------------------------------------------------------------ inputs of a method


def check_batch(
    images: Any, targets: Any = None, *, floating: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The batch a method got: images a (B, C, H, W) tensor, one int64 target per image on its device."""
    if (
        not isinstance(images, torch.Tensor)
        or images.dim() != 4
        or (floating and not images.is_floating_point())
    ):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise HfusError(
            f"images must be a float tensor (B, C, H, W) in [0, 1] (the benchmark passes (B, 3, H, W)), "
            f"got {shape}; pass the batch as the harness does"
        )
    if targets is None:
        return images, None
    targets = torch.as_tensor(targets, device=images.device).long().reshape(-1)
    if targets.numel() != images.shape[0]:
        raise HfusError(
            f"got {targets.numel()} targets for {images.shape[0]} images; "
            "pass exactly one target class per image"
        )
    return images, targets


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[nn.Module]:
    """``requires_grad=False`` on every parameter inside (no weight gradients); the flags come back after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


# ----------------------------------------------------------------------------- outputs of a method


def describe_error(err: BaseException, file: Path | None = None) -> str:
    """``ErrorType: message`` plus the line of the user's file where it happened, if any."""
    where = ""
    if file is not None:
        frames = [
            f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == file.resolve()
        ]
        if frames:
            where = f" (at {file.name}:{frames[-1].lineno})"
    if isinstance(err, SystemExit):  # a method's exit(): str(err) is only the exit code
        return f"SystemExit: the method called exit({'' if err.code is None else repr(err.code)}){where}"
    return f"{type(err).__name__}: {err}{where}"


def as_tensor(output: Any, device: torch.device) -> torch.Tensor:
    """A method's output as a float32 tensor on ``device``; HfusError for a wrong type."""
    if isinstance(output, torch.Tensor):
        tensor = output
    elif isinstance(output, np.ndarray):
        if not (np.issubdtype(output.dtype, np.floating) or np.issubdtype(output.dtype, np.integer)):
            raise HfusError(f"maps must be real numbers, got a numpy array of dtype {output.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(output))
    else:
        raise HfusError(f"maps must be a torch.Tensor or numpy.ndarray, got {type(output).__name__}")
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise HfusError(f"maps must be real numbers, got dtype {tensor.dtype}")
    return tensor.detach().to(device=device, dtype=torch.float32)


def check_shape(maps: torch.Tensor, batch: int, kind: MapKind) -> None:
    """Raise HfusError unless ``maps`` has one map per image: (B, h, w), or (B, C, h, w) for attributions."""
    ok = maps.ndim == 3 or (maps.ndim == 4 and (kind == "attribution" or maps.shape[1] == 1))
    if not ok or maps.shape[0] != batch or min(maps.shape[-2:]) < 1:
        want = "(B, 224, 224) or (B, h, w)" + (" or (B, C, H, W)" if kind == "attribution" else "")
        raise HfusError(f"wrong map shape {tuple(maps.shape)} for a batch of {batch}: expected {want}")


#: Two runs of a method agree on a map when ≥ 99 % of its m255 pixels are identical or none differs by more
#: than 1 level (GPU backward passes are not bitwise reproducible; ``verify --rerun`` and ``check`` on GPU).
AGREE_MIN_IDENTICAL = 0.99
AGREE_MAX_DIFF = 1


def maps_agree(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per map: (agrees, fraction of identical pixels, max level difference) of two m255 stacks (N, H, W)."""
    d = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).reshape(len(a), -1)
    same = (d == 0).mean(1) if d.size else np.ones(len(a))
    worst = d.max(1) if d.size else np.zeros(len(a), np.int16)
    return (same >= AGREE_MIN_IDENTICAL) | (worst <= AGREE_MAX_DIFF), same, worst


Outputs = list[tuple[Any, "str | None"]]


def run_method(
    explainer: Callable, images: torch.Tensor, targets: torch.Tensor, file: Path | None = None
) -> Outputs:
    """``[(raw output, None)]`` for the batch; on an exception the batch is retried image by image, so
    failures are per image (``(None, "exception: ...")``), an ``HfusError`` of a helper the method calls
    included (PROTOCOL §3). A :class:`HarnessError` (the harness's own) is raised."""
    try:
        return [(explainer(images, targets), None)]
    except HarnessError:
        raise
    except METHOD_ERRORS as err:
        if len(images) == 1:
            return [(None, f"{FAIL_EXCEPTION}: {describe_error(err, file)}")]
    return [
        item
        for i in range(len(images))
        for item in run_method(explainer, images[i : i + 1], targets[i : i + 1], file)
    ]


def to_m255(
    outputs: Outputs, batch: int, kind: MapKind, sign: str, device: torch.device
) -> tuple[torch.Tensor, list[str | None]]:
    """Raw method outputs → ``m255`` uint8 (B, 224, 224) on ``device`` and a failure reason per image.

    PROTOCOL §3.1: attributions are reduced by ``normalize_attribution(sign)``, maps clipped at 0;
    maps of another size are upsampled bilinearly; NaN/Inf pixels count the image as ``non_finite``;
    an all-zero result is ``empty_map`` (an :class:`EmptyMap` saying :data:`NEGATIVE_MAP` where a map of kind
    ``"map"`` had values, all ≤ 0).

    Args:
        outputs: what :func:`run_method` returned: one (raw, error) for the batch, or one per image.
        batch: the number of images B.
        kind: ``"map"`` or ``"attribution"`` (the method's METADATA).
        sign: the attribution reduction of ``normalize_attribution``.

    Returns:
        The m255 maps (zeros where failed, but a ``non_finite`` map keeps its finite pixels, for
        inspection; no metric reads a failed image's map) and per image None (ok) or a ``FAIL_*`` reason.
    """
    from ..metrics import quantize

    maps = torch.zeros(batch, IMAGE_SIZE, IMAGE_SIZE, device=device)
    reasons: list[str | None] = []
    negative = torch.zeros(batch, dtype=torch.bool, device=device)
    start = 0
    for raw, error in outputs:
        n = batch if len(outputs) == 1 else 1
        if error is not None:
            reasons.append(error)
        else:
            tensor, output_reasons, output_negative = _output_map(raw, n, kind, sign, device)
            reasons.extend(output_reasons)
            if tensor is not None:
                maps[start : start + n] = tensor
                negative[start : start + n] = output_negative
        start += n
    m255 = torch.as_tensor(quantize(maps), device=device)
    empty = m255.flatten(1).amax(1) == 0
    why = [EmptyMap(NEGATIVE_MAP) if neg else FAIL_EMPTY for neg in negative.tolist()]
    reasons = [w if (r is None and e) else r for r, e, w in zip(reasons, empty.tolist(), why, strict=True)]
    return m255, reasons


def _output_map(
    raw: Any, n: int, kind: MapKind, sign: str, device: torch.device
) -> tuple[torch.Tensor | None, list[str | None], torch.Tensor]:
    """One raw output for ``n`` images → float (n, 224, 224) map (None where its type or shape fails), a
    reason per image (None or a ``FAIL_*``) and per image whether a map of kind ``"map"`` was all ≤ 0 with a
    value < 0 (NaN/Inf pixels are zeroed and fail their image)."""
    from ..metrics import normalize_attribution

    negative = torch.zeros(n, dtype=torch.bool, device=device)
    try:
        tensor = as_tensor(raw, device)
    except HfusError as err:
        return None, [f"{FAIL_TYPE}: {err}"] * n, negative
    try:
        check_shape(tensor, n, kind)
    except HfusError as err:
        return None, [f"{FAIL_SHAPE}: {err}"] * n, negative
    finite = torch.isfinite(tensor.flatten(1)).all(1)
    tensor = torch.where(torch.isfinite(tensor), tensor, torch.zeros((), device=device))
    if kind == "attribution":
        tensor = normalize_attribution(tensor, sign=sign)
    else:
        tensor = tensor.squeeze(1) if tensor.ndim == 4 else tensor
        flat = tensor.flatten(1)
        negative = (flat <= 0).all(1) & (flat < 0).any(1)
        tensor = tensor.clamp(min=0)
    tensor = torch.as_tensor(tensor, device=device, dtype=torch.float32)
    if tensor.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        tensor = F.interpolate(
            tensor[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
        )[:, 0]
    return tensor, [None if ok else FAIL_NONFINITE for ok in finite.tolist()], negative


__all__: Sequence[str] = (
    "AGREE_MAX_DIFF",
    "AGREE_MIN_IDENTICAL",
    "NEGATIVE_MAP",
    "FAIL_EMPTY",
    "FAIL_EXCEPTION",
    "FAIL_NONFINITE",
    "FAIL_SHAPE",
    "FAIL_TYPE",
    "METHOD_ERRORS",
    "EmptyMap",
    "ExplainContext",
    "Explainer",
    "MapKind",
    "as_tensor",
    "check_batch",
    "check_shape",
    "describe_error",
    "describe_reason",
    "frozen_parameters",
    "maps_agree",
    "run_method",
    "to_m255",
)
