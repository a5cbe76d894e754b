"""Fixed vocabularies and numbers of the protocol (PROTOCOL.md), in one place."""

from __future__ import annotations

import os
from pathlib import Path

BENCHMARK_VERSION = "0.1.0"
PROTOCOL_VERSION = "1"

#: Class order is ImageFolder order and part of the protocol (PROTOCOL §1).
CLASSES: tuple[str, ...] = ("AD", "CG", "PS", "ST")
NUM_CLASSES = len(CLASSES)

#: Model / explainer input and map size (PROTOCOL §1).
IMAGE_SIZE = 224

#: Skin layer map levels, most to least important (PROTOCOL §1.1).
SLM_LEVELS: tuple[int, ...] = (255, 128, 64, 32, 0)

#: Mask thresholds in percent of the map maximum, strict ``>`` (PROTOCOL §4).
THRESHOLDS: tuple[int, ...] = tuple(range(50, 100, 5))

NUM_FOLDS = 5

#: Name of the embedded default dataset (the synthetic track).
SYNTH_DATASET = "hfus-synth"


def cache_dir() -> Path:
    """Root of the package's cache: ``$HFUS_BENCH_CACHE`` or the user cache dir."""
    env = os.environ.get("HFUS_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("hfus-xai-bench"))
