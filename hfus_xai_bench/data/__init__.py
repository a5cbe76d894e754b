"""Data layer: skin layer maps (``slm``), folds, archive import, dataset load (``dataset``), synthetic track.

Imported lazily so that ``import hfus_xai_bench.data`` does not pull in ``datasets``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "skin_layer_map": "hfus_xai_bench.data.slm",
    "SLM_VERSION": "hfus_xai_bench.data.slm",
    "assign_folds": "hfus_xai_bench.data.folds",
    "group_key": "hfus_xai_bench.data.folds",
    "discover_archive": "hfus_xai_bench.data.discover",
    "import_archive": "hfus_xai_bench.data.archive",
    "load_dataset": "hfus_xai_bench.data.dataset",
    "dataset_provenance": "hfus_xai_bench.data.dataset",
    "fold_arrays": "hfus_xai_bench.data.dataset",
    "FoldArrays": "hfus_xai_bench.data.dataset",
    "describe": "hfus_xai_bench.data.dataset",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hfus_xai_bench.data' has no attribute {name!r}")
