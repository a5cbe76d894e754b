"""The machine a run happens on: device resolution, environment capture, the offline switch.

One helper each, used by the runner, ``check``, ``verify``, training and the data/checkpoint loaders.
torch and huggingface_hub are imported inside the functions (the CLI parser must stay light).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any

from .constants import BENCHMARK_VERSION
from .errors import HfusError

if TYPE_CHECKING:
    import torch

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
