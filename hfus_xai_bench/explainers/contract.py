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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import nn

MapKind = Literal["map", "attribution"]


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
    extra: dict[str, Any] = field(default_factory=dict)


class Explainer(Protocol):
    """A class-based method: constructed once per model, called per batch."""

    kind: MapKind

    def __init__(self, model: nn.Module, context: ExplainContext) -> None: ...

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...
