"""What a metric function receives: :class:`ScoringInputs` (per-image data of one (arch, fold)) and
:class:`ScoringConfig`.

A metric function (``Metric.function`` in :mod:`.registry`) is ``f(inputs, config) -> {value name: array}``
and sees only the images that are scored (the evaluated ones, plus the all-zero maps for
``Metric.empty_maps`` and every image for ``Metric.every_image``: the scoring core selects them first), so
every per-image array in ``inputs`` has the same first axis N.

``extras`` holds metric-specific inputs. Per-image arrays (numpy or torch, first axis = image) are
selected together with the images; anything else (a second model, a table) is passed as is. The
runner fills it from the dataset (``evidence``, ``twins``) and from the batches (``BatchOutput.extras``,
concatenated): e.g. ``extras["m255_randomised"]`` (N, K, 224, 224) uint8 and ``extras["randomised_ok"]``
(N, K) bool for model-randomisation over K copies (``randomisation@2``).

``cost`` is a counter dict a metric function may add to (seconds, forward images: e.g. ``road@1`` adds
``road_seconds_impute``); the selected inputs of :meth:`ScoringInputs.select` share it with the
original, so the caller reads it after scoring and reports it in the record's ``cost`` block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constants import RANDOMISATION_COPIES, THRESHOLDS
from ..errors import HfusError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: images per model forward in model-based metrics when ``ScoringConfig.batch_size`` is None
FORWARD_BATCH = {"cpu": 64, "cuda": 512}


@dataclass(frozen=True)
class ScoringConfig:
    """Run settings a metric may read: confidence unit, run seed, mask thresholds, forward batch size, and the
    number K of randomised copies (PROTOCOL §7.1.1)."""

    confidence: str = "logit"
    seed: int = 0
    thresholds: tuple[int, ...] = THRESHOLDS
    randomisations: int = RANDOMISATION_COPIES
    #: images per model forward inside model-based metrics (None: 64 on CPU, 512 on CUDA)
    batch_size: int | None = None

    def forward_batch(self, device: torch.device | str) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
        return FORWARD_BATCH.get(kind, FORWARD_BATCH["cpu"])

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ScoringConfig:
        """From ``record["options"]`` (or :meth:`RunConfig.to_options`): the confidence unit, the seed and
        K."""
        return cls(
            confidence=str(options.get("confidence", "logit")),
            seed=int(options.get("seed", 0)),
            randomisations=int(options.get("randomisations", RANDOMISATION_COPIES)),
        )


def _is_array(value: Any) -> bool:
    return (
        isinstance(value, np.ndarray)
        or type(value).__module__.startswith("torch")
        and hasattr(value, "shape")
    )


@dataclass
class ScoringInputs:
    """Per-image inputs of the scoring core for one (arch, fold); N images.

    ``m255``: (N, 224, 224) uint8 maps after the canonical post-processing; ``slms``: (N, 224, 224)
    uint8 skin layer maps; ``image_ids`` (N); ``labels``, ``targets``: (N,) int64; ``ok``: (N,) bool,
    the images to score (None: all); ``empty``: (N,) bool, the images whose map was produced but is all
    zero (failure ``empty_map``; None: none), scored too by the metrics with ``Metric.empty_maps``.
    Model-based metrics also need ``model`` (eval mode, on its device) and ``images`` (N, 3, 224, 224) float
    in [0, 1] (numpy or torch, any device).
    """

    m255: np.ndarray
    slms: np.ndarray
    image_ids: Sequence[str]
    labels: np.ndarray
    targets: np.ndarray
    ok: np.ndarray | None = None
    empty: np.ndarray | None = None
    model: nn.Module | None = None
    images: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    #: counters metric functions add to (seconds, forward images); shared with :meth:`select` ed inputs
    cost: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.targets = np.asarray(self.targets, dtype=np.int64)
        self.ok = np.ones(n, bool) if self.ok is None else np.asarray(self.ok, dtype=bool)
        self.empty = np.zeros(n, bool) if self.empty is None else np.asarray(self.empty, dtype=bool)
        for name in ("m255", "slms", "labels", "targets", "ok", "empty"):
            value = getattr(self, name)
            if len(value) != n:
                raise HfusError(f"scoring inputs: {name} has {len(value)} entries for {n} images")
        if self.images is not None and len(self.images) != n:
            raise HfusError(f"scoring inputs: images has {len(self.images)} entries for {n} images")
        for key, value in self.extras.items():
            if _is_array(value) and len(value) != n:
                raise HfusError(f"scoring inputs: extras[{key!r}] has {len(value)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.image_ids)

    def select(self, mask: np.ndarray) -> ScoringInputs:
        """The inputs of the images where ``mask`` is true (per-image extras included)."""
        mask = np.asarray(mask, dtype=bool)
        idx = np.flatnonzero(mask)

        def take(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, np.ndarray):
                return value[idx]
            import torch

            return value.index_select(0, torch.as_tensor(idx, device=value.device))

        changes = {
            f.name: take(getattr(self, f.name))
            for f in fields(self)
            if f.name in ("m255", "slms", "labels", "targets", "ok", "empty", "images")
        }
        changes["image_ids"] = [self.image_ids[i] for i in idx]
        changes["extras"] = {k: take(v) if _is_array(v) else v for k, v in self.extras.items()}
        changes["_memo"] = {}
        return replace(self, **changes)

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per inputs object: lets several metrics share one intermediate (e.g. a
        histogram)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def require(self, who: str, *names: str) -> None:
        """Raise HfusError unless the model-side inputs (``model``, ``images``, extras keys) are present."""
        missing = [
            n
            for n in names
            if (getattr(self, n, None) if n in ("model", "images") else self.extras.get(n)) is None
        ]
        if missing:
            raise HfusError(
                f"metric {who} needs {', '.join(missing)} in its scoring inputs; "
                "run it through the runner (or pass them to ScoringInputs)"
            )
