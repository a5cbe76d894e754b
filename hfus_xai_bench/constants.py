"""Fixed vocabularies and numbers of the protocol (PROTOCOL.md), in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
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

#: Images in the dataset of the study (Mendeley Data 5p7fxjt7vs v1) and in the default synthetic build.
N_IMAGES = 631


@dataclass(frozen=True)
class ArchFacts:
    """What the protocol fixes about one reference architecture (PROTOCOL §2, §3): the torch-free half of
    ``models.zoo.ArchSpec``, which is built from it."""

    #: canonical name (= torchvision builder)
    name: str
    #: how tables print it
    display_name: str
    #: short names the CLI accepts
    aliases: tuple[str, ...]
    #: the pinned CAM target layer (attribute path; ``-1`` = last child)
    target_layer: str
    #: channels of the target layer's output (= the classifier's input)
    channels: int
    #: the linear classifier after global average pooling (attribute path)
    head_attr: str
    #: rough bytes per 224×224 image of a forward + input backward, frozen weights, fp32 (sizes CUDA chunks)
    grad_bytes_224: float


#: The four reference architectures, in table order: the one place they are declared.
ARCHITECTURES: tuple[ArchFacts, ...] = (
    ArchFacts("densenet201", "DenseNet201", ("densenet",), "features_relu", 1920, "classifier", 160e6),
    ArchFacts("googlenet", "GoogLeNet", (), "inception5b", 1024, "fc", 40e6),
    ArchFacts(
        "mobilenet_v2", "MobileNetV2", ("mobilenet", "mobilenetv2"), "features.-1", 1280, "classifier.1", 60e6
    ),
    ArchFacts("resnet101", "ResNet101", ("resnet",), "layer4.-1", 2048, "fc", 120e6),
)
ARCH_NAMES: tuple[str, ...] = tuple(a.name for a in ARCHITECTURES)
ARCH_ALIASES: dict[str, str] = {alias: a.name for a in ARCHITECTURES for alias in a.aliases}
ARCH_DISPLAY_NAMES: dict[str, str] = {a.name: a.display_name for a in ARCHITECTURES}
#: The architecture a run uses unless told otherwise (the one with a shipped checkpoint).
DEFAULT_ARCH = "mobilenet_v2"

#: Name of the embedded default dataset (the synthetic track).
SYNTH_DATASET = "hfus-synth"

#: Leaderboard folders, relative to a checkout of the repository.
LEADERBOARD_DIR = "leaderboard"
LEADERBOARD_ENTRIES_DIR = "leaderboard/entries"


def arch_name(name: str) -> str:
    """The canonical name of an architecture (case-insensitive, ``-`` = ``_``, short aliases accepted)."""
    from .errors import HfusError

    key = str(name).strip().lower().replace("-", "_")
    key = ARCH_ALIASES.get(key, key)
    if key not in ARCH_NAMES:
        raise HfusError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCH_NAMES)}")
    return key


def cache_dir() -> Path:
    """Root of the package's cache: ``$HFUS_BENCH_CACHE`` or the user cache dir."""
    env = os.environ.get("HFUS_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("hfus-xai-bench"))


#: Bootstrap settings of every CI in the protocol (PROTOCOL §4, §7.1.1, §7.3): resamples and numpy seed.
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0

#: ``randomisation@2`` (PROTOCOL §7.1.1): default number of randomised copies, the CI upper bound a
#: pass needs, and the degenerate / scored shares that decide "undetermined" / allow a pass.
RANDOMISATION_COPIES = 3
RANDOMISATION_PASS_BELOW = 0.5
RANDOMISATION_MAX_DEGENERATE = 0.5
RANDOMISATION_MIN_SCORED = 0.5

#: ROAD (PROTOCOL §7.2): fractions of pixels removed.
ROAD_FRACTIONS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)

#: Stages of a record's pass counts (PROTOCOL §6), in report order, and those left out of FE/img (§3's
#: repeat).
COST_STAGES: tuple[str, ...] = (
    "predict",
    "method",
    "randomisation",
    "runner_up",
    "repeat",
    "confidence",
    "road",
    "counterfactual",
)
FE_EXCLUDED_STAGES: tuple[str, ...] = ("repeat",)

#: The audit (PROTOCOL §3, ``hfus-bench audit``): the reference methods whose mean public − private difference
#: every audited method's difference is compared with, the scores audited (``evidence@1/hit`` only where it is
#: registered and the track has evidence) and the family-wise error rate: each CI has level 1 − AUDIT_ALPHA /
#: m, m = methods × scores audited together.
AUDIT_REFERENCES: tuple[str, ...] = ("gradcam", "saliency", "gradientshap")
AUDIT_SCORES: tuple[str, ...] = ("hit_rate@1", "evidence@1/hit")
AUDIT_ALPHA = 0.05
#: Training images of the fold the harness samples for ``ExplainContext.training_sample`` (PROTOCOL §5:
#: Expected Gradients' baselines; LATEC's data batch for its 4-class OCT set).
TRAINING_SAMPLE_SIZE = 30
#: Images per (arch, fold) that ``hfus-bench verify --rerun`` runs again when no ``--limit`` is given.
RERUN_DEFAULT_LIMIT = 4
