"""Scoring protocol (PROTOCOL §3.1 and §4): pure, batched functions on maps, SLMs and models.

Pipeline: ``normalize_attribution`` (signed attributions only) → ``quantize`` → ``m255`` (uint8) →
``hit_rate`` / ``slm_coverage`` / ``mask_iou`` / ``confidence_change`` → ``summarize`` / ``bootstrap_ci``.
Map metrics accept ``m255`` uint8 maps (float maps are quantised first); results are float64 numpy.
"""

from __future__ import annotations

from .classification import classification_report, confusion_matrix
from .confidence import (
    ConfidenceResult,
    confidence_change,
    drop_in_confidence,
    increase_in_confidence,
)
from .localisation import (
    HR1_SCORES,
    HR2_SCORES,
    LocalisationResult,
    as_m255,
    hit_rate,
    joint_histogram,
    localisation_metrics,
    mask_iou,
    slm_coverage,
)
from .postprocess import normalize_attribution, quantize
from .registry import METRICS, MetricInfo, MetricOutput, get_metric
from .stats import BootstrapCI, bootstrap_ci, summarize

__all__ = [
    "HR1_SCORES",
    "HR2_SCORES",
    "METRICS",
    "BootstrapCI",
    "ConfidenceResult",
    "LocalisationResult",
    "MetricInfo",
    "MetricOutput",
    "as_m255",
    "bootstrap_ci",
    "classification_report",
    "confidence_change",
    "confusion_matrix",
    "drop_in_confidence",
    "get_metric",
    "hit_rate",
    "increase_in_confidence",
    "joint_histogram",
    "localisation_metrics",
    "mask_iou",
    "normalize_attribution",
    "quantize",
    "slm_coverage",
    "summarize",
]
