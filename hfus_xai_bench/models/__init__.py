"""Reference models (PROTOCOL §2): architecture zoo, checkpoint registry and loading, training.

Public API::

    get_arch(name) -> ArchSpec
    load_model(arch, dataset="hfus-synth", fold=0, checkpoint=None, device="cpu", revision=None)
        -> (model, ModelInfo)
    list_checkpoints() -> list[Checkpoint]
    train(arch, dataset="hfus-synth", fold=0, ...) -> Path   # card path

Submodules are imported lazily (the CLI parser must not pay for torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "ARCHS": "zoo",
    "ArchSpec": "zoo",
    "build_model": "zoo",
    "get_arch": "zoo",
    "REGISTRY": "checkpoints",
    "Checkpoint": "checkpoints",
    "ModelInfo": "checkpoints",
    "list_checkpoints": "checkpoints",
    "load_model": "checkpoints",
    "save_checkpoint": "checkpoints",
    "sha256_file": "checkpoints",
    "train": "training_run",
    "train_model": "training",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
