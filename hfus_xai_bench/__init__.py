"""hfus-xai-bench: a benchmark for saliency methods on CNNs classifying HFUS skin images.

Public API (imported lazily so that ``import hfus_xai_bench`` stays fast)::

    load_dataset(source="hfus-synth", revision=None) -> datasets.Dataset
    load_model(arch, dataset="hfus-synth", fold=0, checkpoint=None, revision=None) -> (model, ModelInfo)
    evaluate(method, config=None, **options) -> Result    # options: the fields of RunConfig
    RunConfig(models=..., folds=..., limit=..., ...)     # one run's configuration
    check_method(method) -> CheckReport; verify_submission(folder) -> VerifyReport
    cite() -> str; cite_result(record) -> str; Result.load(path); METRICS (the metric registry)
    load_results(source=None, table="scores") -> pandas.DataFrame   # the leaderboard's per-image scores
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .constants import BENCHMARK_VERSION as __version__
from .errors import HfusError

_LAZY = {
    "load_dataset": "hfus_xai_bench.data.dataset",
    "load_model": "hfus_xai_bench.models.checkpoints",
    "evaluate": "hfus_xai_bench.runner",
    "RunConfig": "hfus_xai_bench.config",
    "check_method": "hfus_xai_bench.check",
    "verify_submission": "hfus_xai_bench.verify",
    "cite": "hfus_xai_bench.citation",
    "cite_result": "hfus_xai_bench.citation",
    "Result": "hfus_xai_bench.results",
    "METRICS": "hfus_xai_bench.metrics.registry",
    "load_results": "hfus_xai_bench.leaderboard.export",
}

__all__ = ["HfusError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip __getattr__; no submodule shares a name with these
        return value
    raise AttributeError(f"module 'hfus_xai_bench' has no attribute {name!r}")
