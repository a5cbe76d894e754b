"""Global average pooling as a plain spatial mean while training on CUDA (deterministic training, §2).

``adaptive_avg_pool2d``'s CUDA backward is not deterministic: it raises under
``torch.use_deterministic_algorithms(True)``. Pooling to (1, 1) is the mean over the spatial axes, whose
backward is deterministic. All four reference architectures pool that way, either through an
``nn.AdaptiveAvgPool2d((1, 1))`` module (ResNet101, GoogLeNet) or by calling ``F.adaptive_avg_pool2d`` in
their ``forward`` (MobileNetV2, DenseNet201); both end in the functional call. :class:`GlobalPoolAsMean` is
a torch function mode that answers exactly that call (output size 1 or (1, 1)) with ``x.mean((-2, -1),
keepdim=True)`` and passes every other call through unchanged. The model itself is never modified: no module
is swapped, its state-dict keys and its eval-time forward stay the standard ones, so the saved checkpoint is
the standard module.

ATen itself computes pooling to (1, 1) of a dense tensor as this mean (a fast path inside
``adaptive_avg_pool2d``, not part of its contract; on the CPU the values and gradients with and without the
mode are bitwise equal). The mode makes the deterministic training graph independent of that fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over the last two (spatial) axes, kept: (B, C, H, W) → (B, C, 1, 1), as pooling to (1, 1)."""
    return x.mean((-2, -1), keepdim=True)


def _is_global(output_size: Any) -> bool:
    """True for the output sizes that pool to one value per channel: 1, (1, 1) or [1, 1]."""
    if isinstance(output_size, int):
        return output_size == 1
    return isinstance(output_size, Sequence) and list(output_size) == [1, 1]


class GlobalPoolAsMean(TorchFunctionMode):
    """Inside ``with GlobalPoolAsMean():`` every ``F.adaptive_avg_pool2d(x, 1 | (1, 1))`` is
    :func:`spatial_mean` (deterministic CUDA backward); every other torch call runs unchanged."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.adaptive_avg_pool2d:
            size = args[1] if len(args) > 1 else kwargs.get("output_size")
            if _is_global(size):
                return spatial_mean(args[0] if args else kwargs["input"])
        return func(*args, **kwargs)
