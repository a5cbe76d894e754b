"""hfus-xai-bench: a benchmark for saliency methods on CNNs classifying HFUS skin images.

Public API (imported lazily so that ``import hfus_xai_bench`` stays fast)::

    load_dataset(source="hfus-synth", revision=None) -> datasets.Dataset
    load_model(arch, dataset="hfus-synth", fold=0, checkpoint=None) -> (model, ModelInfo)
    evaluate(method, **options) -> Result
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .constants import BENCHMARK_VERSION as __version__
from .errors import HfusError

_LAZY = {
    "load_dataset": "hfus_xai_bench.data.dataset",
    "load_model": "hfus_xai_bench.models.checkpoints",
    "evaluate": "hfus_xai_bench.evaluate",
}

__all__ = ["HfusError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hfus_xai_bench' has no attribute {name!r}")
