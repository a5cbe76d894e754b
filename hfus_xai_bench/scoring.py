"""The scoring core: maps + SLMs (+ the model for model-based metrics) → per-image values, by the registry.

A leaf: it imports only ``metrics``, ``constants``, ``errors``, numpy and torch — never the runner, the
leaderboard or the CLI. ``evaluate`` (the runner), ``check`` and ``verify`` all score through
:func:`score_fold`::

    values = score_fold(ScoringInputs(m255, slms, image_ids, labels, targets, ok=ok,
                                      model=model, images=images, extras={...}),
                        config=ScoringConfig(confidence="logit", seed=0))
    values["hit_rate@1/hr1"]        # (N,) float64, NaN where the image was not scored
    values["confidence@1/s_keep_t"]  # (N, T)

For every registry entry (or the ``metrics`` given) the entry's function gets the inputs of the
scored images (``ok``; per-image ``extras`` selected with them) and returns its per-image values;
they are checked against the entry's declared names and shapes and scattered back to full length.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .errors import HfusError
from .metrics.inputs import ScoringConfig, ScoringInputs
from .metrics.registry import Metric
from .metrics.registry import metrics as registry_metrics

__all__ = ["ScoringConfig", "ScoringInputs", "score_fold", "select_metrics"]


def select_metrics(
    selection: Iterable[str | Metric] | None = None,
    *,
    model: bool = True,
    extras: Iterable[str] | None = None,
) -> list[Metric]:
    """Registry entries to score: all (or ``selection``); without ``model`` only the maps-only ones; with
    ``extras`` (the names available) only those whose declared ``Metric.extras`` are among them."""
    chosen = registry_metrics(selection)
    if not model:
        chosen = [m for m in chosen if m.needs == "maps"]
    if extras is not None:
        have = set(extras)
        chosen = [m for m in chosen if set(m.extras) <= have]
    return chosen


def score_fold(
    inputs: ScoringInputs,
    metrics: Iterable[str | Metric] | None = None,
    *,
    config: ScoringConfig | None = None,
) -> dict[str, np.ndarray]:
    """Per-image values ``{"<metric id>/<value>": array (N, *shape)}`` of the chosen metrics (default: all).

    Images with ``inputs.ok`` false get NaN (a metric with ``empty_maps`` also scores ``inputs.empty``, one
    with ``every_image`` every image). A model-based metric without ``inputs.model`` is an error (choose
    the metrics with :func:`select_metrics` ``(model=False)`` to score maps only).
    """
    config = config or ScoringConfig()
    entries = registry_metrics(metrics)
    n = len(inputs)
    out: dict[str, np.ndarray] = {}
    for metric in entries:
        if metric.every_image:
            ok = np.ones(n, bool)
        else:
            ok = inputs.ok | inputs.empty if metric.empty_maps else inputs.ok
        scored = inputs if bool(ok.all()) else inputs.select(ok)
        if metric.needs == "model" and inputs.model is None:
            raise HfusError(
                f"metric {metric.id} needs the model; pass model and images, or score maps-only metrics"
            )
        missing = [name for name in metric.extras if name not in inputs.extras]
        if missing:
            raise HfusError(
                f"metric {metric.id} needs extras {missing} in its scoring inputs (the runner provides them)"
            )
        dims = {v.name: v.dims(config.thresholds, config.randomisations) for v in metric.values}
        full = {name: np.full((n, *shape), np.nan) for name, shape in dims.items()}
        if len(scored):
            got = metric.compute(scored, config)
            if set(got) != set(full):
                raise HfusError(
                    f"metric {metric.id} returned {sorted(got)}, its registry entry declares {sorted(full)}"
                )
            for name, array in got.items():
                values = np.asarray(
                    array.detach().cpu() if hasattr(array, "detach") else array, dtype=np.float64
                )
                if values.shape != (len(scored), *full[name].shape[1:]):
                    raise HfusError(
                        f"metric {metric.id}: value {name!r} has shape {values.shape}, expected "
                        f"{(len(scored), *full[name].shape[1:])}"
                    )
                full[name][ok] = values
        out.update({metric.key(name): array for name, array in full.items()})
    return out
