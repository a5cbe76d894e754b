"""The machine a run happens on: device resolution, environment capture, the offline switch, and work
in pieces that shrink when the GPU runs out of memory.

One helper each, used by the runner, ``check``, ``verify``, training, the data/checkpoint loaders, the
built-in methods and the model-based metrics.
torch and huggingface_hub are imported inside the functions (the CLI parser must stay light).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any

from .constants import BENCHMARK_VERSION
from .errors import HfusError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Values of ``HF_HUB_OFFLINE`` that mean "offline" (huggingface_hub's own rule).
_TRUE = {"1", "ON", "YES", "TRUE"}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The one default-device rule: ``auto`` → CUDA when torch sees one, else CPU.

    ``cuda`` (or ``cuda:N``) without a CUDA device is an error, not a silent fallback.
    """
    import torch

    text = str(device)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except RuntimeError as err:
        raise HfusError(f"unknown device {text!r}; use auto, cpu or cuda[:N]") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HfusError(f"--device {text} asked for, but torch sees no CUDA device; use --device cpu or auto")
    return dev


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware that produced a result or a checkpoint."""
    import torch

    dev = torch.device(device)
    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else (platform.processor() or platform.machine())
    )
    return {
        "hfus_xai_bench": BENCHMARK_VERSION,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "grad_cam": package_version("grad-cam"),
        "captum": package_version("captum"),
        "device": str(dev),
        "device_name": name,
        "threads": torch.get_num_threads(),
    }


def hub_offline() -> bool:
    """True when the Hugging Face Hub must not be contacted (``HF_HUB_OFFLINE``, read now, not at import)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a dependency; without it nothing can be downloaded
        return True
    return bool(constants.HF_HUB_OFFLINE)


def chunked(run: Callable[[int, int], None], n: int, chunk: int, device: torch.device) -> int:
    """Call ``run(start, stop)`` over [0, n) in chunks of at most ``chunk``; on CUDA out of memory halve the
    chunk and retry it (a chunk sized from the free memory can meet memory another process took meanwhile).
    Elsewhere, or at a chunk of one, the error is raised. Returns the chunk size it ended with."""
    import torch

    start = 0
    while start < n:
        stop = min(n, start + chunk)
        try:
            run(start, stop)
            start = stop
            continue
        except torch.cuda.OutOfMemoryError:
            if device.type != "cuda" or stop - start == 1:
                raise
        # outside the handler: the failed chunk's tensors, held by the traceback there, are released now
        torch.cuda.empty_cache()
        chunk = max(1, (stop - start) // 2)
    return chunk


class ForwardInPieces:
    """``self(x)`` = ``model(x)`` (logits, along the batch axis), run in pieces of the batch that halve on a
    CUDA out-of-memory error, down to one image; the piece size found is kept for the next calls, so a
    metric's fixed forward batch (512 on CUDA) survives runs side by side on one GPU. Outputs of a split
    batch agree with one forward up to the last bits (batch shape); only OOM ever splits."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device
        self.piece: int | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        n = x.shape[0]
        outputs: list[torch.Tensor] = []

        def run(start: int, stop: int) -> None:
            outputs.append(self.model(x[start:stop]))

        piece = chunked(run, n, min(n, self.piece or n), self.device)
        if piece < n:
            self.piece = piece
        if len(outputs) == 1:
            return outputs[0]
        return torch.cat(outputs) if outputs else self.model(x)
