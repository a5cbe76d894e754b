"""Versioned metric ids (PROTOCOL §4): what each one measures, its outputs, direction and range.

A change to any number a definition fixes is a new version (``hit_rate@2``), never a silent edit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import HfusError

Direction = Literal["higher", "lower", "none"]


@dataclass(frozen=True)
class MetricOutput:
    """One reported number of a metric."""

    name: str
    direction: Direction  # which way is better ("none": descriptive only)
    range: tuple[float, float]
    unit: str = ""


@dataclass(frozen=True)
class MetricInfo:
    """A versioned metric: id ``name@version``, category, outputs and its PROTOCOL definition."""

    id: str
    name: str
    version: int
    category: Literal["localisation", "faithfulness"]
    function: str  # "module:function" computing the per-image values
    outputs: tuple[MetricOutput, ...]
    description: str

    @property
    def primary(self) -> MetricOutput:
        return self.outputs[0]


_IOU_DIRECTIONS: dict[int, Direction] = {255: "higher", 128: "none", 64: "none", 32: "none", 0: "lower"}

METRICS: dict[str, MetricInfo] = {
    m.id: m
    for m in (
        MetricInfo(
            id="hit_rate@1",
            name="hit_rate",
            version=1,
            category="localisation",
            function="hfus_xai_bench.metrics.localisation:hit_rate",
            outputs=(MetricOutput("hr1", "higher", (-1.0, 3.0)),),
            description=(
                "Hit Rate 1 (HR1). Peak set P = {pixels with m255 == 255} (all ties kept; plateaus are "
                "averaged). HR1 = mean over P of the skin-layer-map level score: 255 (epidermis / SLEB / "
                "tumour) +3, 128 (36 px band below) +2, 64 (next 36 px) +1, 32 (next 36 px and 16 px above "
                "the skin surface) 0, 0 (everything else) -1. An all-zero map has no peak: the image is "
                "counted as failed (empty_map). Dataset value: mean over images, then over folds."
            ),
        ),
        MetricInfo(
            id="hit_rate_binary@1",
            name="hit_rate_binary",
            version=1,
            category="localisation",
            function="hfus_xai_bench.metrics.localisation:hit_rate",
            outputs=(MetricOutput("hr2", "higher", (-1.0, 1.0)),),
            description=(
                "Binary Hit Rate (HR2). Same peak set as hit_rate@1 (m255 == 255, ties kept); the score "
                "is +1 for SLM level 255, 0 for 128 / 64 / 32 and -1 for level 0, averaged over the peak."
            ),
        ),
        MetricInfo(
            id="slm_coverage@1",
            name="slm_coverage",
            version=1,
            category="localisation",
            function="hfus_xai_bench.metrics.localisation:slm_coverage",
            outputs=(
                MetricOutput("cov_top", "higher", (0.0, 1.0)),
                MetricOutput("cov_bg", "lower", (0.0, 1.0)),
            ),
            description=(
                "Skin-layer-map coverage. cov_top = mean of m255/255 over pixels with SLM == 255 (higher "
                "is better); cov_bg = mean of m255/255 over pixels with SLM == 0 (lower is better). "
                "Undefined (NaN, excluded and counted) where the region is empty."
            ),
        ),
        MetricInfo(
            id="mask_iou@1",
            name="mask_iou",
            version=1,
            category="localisation",
            function="hfus_xai_bench.metrics.localisation:mask_iou",
            outputs=tuple(MetricOutput(f"iou_{lv}", d, (0.0, 1.0)) for lv, d in _IOU_DIRECTIONS.items()),
            description=(
                "Mask IoU. For t in {50, 55, ..., 95}: mask M_t = (m255/255) > t/100 (strict); "
                "IoU(M_t, SLM == L) for each level L in {255, 128, 64, 32, 0}. An empty union gives NaN "
                "for that image, excluded from the mean and counted. IoU with level 255 is higher-better, "
                "with level 0 lower-better; the other levels are descriptive."
            ),
        ),
        MetricInfo(
            id="confidence@1",
            name="confidence",
            version=1,
            category="faithfulness",
            function="hfus_xai_bench.metrics.confidence:confidence_change",
            outputs=(
                MetricOutput("dic", "higher", (0.0, math.inf), "logit (or probability with unit prob)"),
                MetricOutput("iic", "higher", (0.0, 100.0), "%"),
            ),
            description=(
                "Confidence change (the study's reliability check). s(x) = raw logit of the target class "
                "(unit logit, default) or its softmax probability (unit prob). With h = m255/255 broadcast "
                "over channels in the image's orientation (no transpose): keep = x*h, remove = x*(1-h); "
                "with masks keep_t = x*M_t, remove_t = x*(1-M_t) for every t. DiC = mean over images of "
                "max(0, s0 - s_remove) (higher = the map found what matters); IiC = percentage of images "
                "with s_keep > s0 (higher is better). Reported for the heat map and each mask threshold."
            ),
        ),
    )
}


def get_metric(metric_id: str) -> MetricInfo:
    """The :class:`MetricInfo` of ``metric_id`` (e.g. ``"hit_rate@1"``); a bare name gets its latest version."""
    if metric_id in METRICS:
        return METRICS[metric_id]
    versions = [m for m in METRICS.values() if m.name == metric_id]
    if versions:
        return max(versions, key=lambda m: m.version)
    raise HfusError(f"unknown metric {metric_id!r}; known: {', '.join(METRICS)}")
