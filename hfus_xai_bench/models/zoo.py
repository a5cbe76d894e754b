"""The four reference architectures (PROTOCOL §2): builders, 4-class heads, pinned CAM target layers.

Every model takes RGB images in [0, 1], shape (B, 3, 224, 224); there is no input normalisation
(the study used none). GoogLeNet's ``transform_input`` (an affine map of the input that torchvision
switches on with ImageNet weights) is part of the model and is recorded in each checkpoint.

DenseNet201 target layer: torchvision applies ``F.relu(features, inplace=True)`` after ``features``,
so a hook on ``features``/``norm5`` sees a pre- or post-ReLU tensor depending on the device. We pin
the post-ReLU activation: the model gets an explicit, non-inplace ``features_relu = nn.ReLU()``
module and that module is the target layer. It has no parameters, so checkpoints keep the
torchvision state-dict keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import ARCHITECTURES, NUM_CLASSES, arch_name
from ..errors import HfusError

_DENSENET: list[type] = []


def _densenet_pinned_relu() -> type:
    """torchvision DenseNet whose final ReLU is a module (``features_relu``), not an inplace call.

    The class is built on first use (torchvision is imported only then)."""
    if not _DENSENET:
        from torchvision import models as tvm

        class _DenseNetPinnedReLU(tvm.DenseNet):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                out = self.features_relu(self.features(x))
                out = F.adaptive_avg_pool2d(out, (1, 1))
                return self.classifier(torch.flatten(out, 1))

        _DENSENET.append(_DenseNetPinnedReLU)
    return _DENSENET[0]


def _pool_linear(linear: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def head(acts: torch.Tensor) -> torch.Tensor:
        return linear(torch.flatten(F.adaptive_avg_pool2d(acts, (1, 1)), 1))

    return head


@dataclass(frozen=True)
class ArchSpec:
    """One reference architecture.

    ``target_layer`` is the pinned CAM target layer as an attribute path; ``head(model)`` returns the
    function that maps the target layer's activations to logits (global average pooling + linear
    for all four architectures; dropout is the identity in eval mode).
    """

    name: str
    display_name: str
    builder: str
    target_layer: str
    channels: int
    head_attr: str

    def resolve_target_layer(self, model: nn.Module) -> nn.Module:
        """The module whose output is the pinned CAM activation."""
        return _resolve(model, self.target_layer)

    def head(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """Function mapping target-layer activations (B, C, h, w) to logits (B, num_classes)."""
        return _pool_linear(_resolve(model, self.head_attr))

    def build(
        self,
        num_classes: int = NUM_CLASSES,
        imagenet: bool = False,
        transform_input: bool | None = None,
    ) -> nn.Module:
        """The model with a ``num_classes`` head; ``imagenet``: torchvision weights from the local cache."""
        return build_model(
            self.name, num_classes=num_classes, imagenet=imagenet, transform_input=transform_input
        )


def _resolve(model: nn.Module, path: str) -> nn.Module:
    module = model
    for part in path.split("."):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
    return module


#: name → spec, derived from :data:`hfus_xai_bench.constants.ARCHITECTURES` (the builder is the name)
ARCHS: dict[str, ArchSpec] = {
    a.name: ArchSpec(a.name, a.display_name, a.name, a.target_layer, a.channels, a.head_attr)
    for a in ARCHITECTURES
}


def get_arch(name: str) -> ArchSpec:
    """An architecture by name (case-insensitive; short aliases accepted: :func:`constants.arch_name`)."""
    return ARCHS[arch_name(name)]


def _imagenet_weights(builder: str):
    from torchvision import models as tvm

    enum = tvm.get_model_weights(builder)
    weights = enum.IMAGENET1K_V1
    from pathlib import Path

    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        raise HfusError(
            f"ImageNet weights for {builder} are not in the torch cache ({cached}); download them on a "
            'connected machine with `python -c "import torchvision; '
            f"torchvision.models.{builder}(weights='IMAGENET1K_V1')\"` "
            "and copy the file there, or train with --init scratch"
        )
    return weights


def build_model(
    arch: str,
    num_classes: int = NUM_CLASSES,
    imagenet: bool = False,
    transform_input: bool | None = None,
) -> nn.Module:
    """Build a reference architecture with a fresh ``num_classes`` head, in eval mode.

    ``imagenet=True`` initialises the backbone from torchvision's ImageNet weights (they must be in
    the local torch cache; nothing is downloaded). ``transform_input`` applies to GoogLeNet only and
    defaults to torchvision's choice (True with ImageNet weights, False otherwise).
    """
    spec = get_arch(arch)
    weights = _imagenet_weights(spec.builder) if imagenet else None
    if spec.name == "mobilenet_v2":  # torchvision's definition, without importing torchvision (.mobilenet)
        from .mobilenet import MobileNetV2

        model = MobileNetV2()
        if weights is not None:
            model.load_state_dict(weights.get_state_dict(progress=False, check_hash=True))
        model.classifier[-1] = nn.Linear(spec.channels, num_classes)
        return model.eval()
    from torchvision import models as tvm

    if spec.name == "densenet201":
        model = tvm.densenet201(weights=weights)
        model.__class__ = _densenet_pinned_relu()
        model.features_relu = nn.ReLU(inplace=False)
        model.classifier = nn.Linear(spec.channels, num_classes)
    elif spec.name == "googlenet":
        kwargs: dict = {"aux_logits": False}
        if weights is None:
            kwargs["init_weights"] = True
        if transform_input is not None:
            kwargs["transform_input"] = transform_input
        model = tvm.googlenet(weights=weights, **kwargs)
        model.fc = nn.Linear(spec.channels, num_classes)
    else:
        model = tvm.resnet101(weights=weights)
        model.fc = nn.Linear(spec.channels, num_classes)
    return model.eval()
