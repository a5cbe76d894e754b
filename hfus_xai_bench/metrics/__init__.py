"""Scoring protocol (PROTOCOL §3.1, §4, §7 and §9): pure, batched functions on maps, SLMs and models.

Pipeline: ``normalize_attribution`` (signed attributions only) → ``quantize`` → ``m255`` (uint8) →
``hit_rate`` / ``slm_coverage`` / ``mask_iou`` / ``confidence_change`` → ``summarize`` / ``bootstrap_ci``.
Map metrics accept ``m255`` uint8 maps (float maps are quantised first); results are float64 numpy.
"""

from __future__ import annotations

# the entry modules register in this order, which is the report order (table columns, record sections)
from . import (
    core_entries,  # noqa: F401  (registers the §4 / §7 entries: hit_rate@1 ... road@1)
    randomisation_entries,  # noqa: F401  (registers randomisation@2 after them)
    section9,  # noqa: F401  (registers the §9 entries: evidence@1, class_sensitivity@1, counterfactual@1)
)
from .classification import classification_report, confusion_matrix
from .confidence import (
    ConfidenceResult,
    confidence_change,
    drop_in_confidence,
    increase_in_confidence,
)
from .counterfactual import CounterfactualResult, counterfactual_scores
from .evidence import class_sensitivity, evidence_scores
from .inputs import ScoringConfig, ScoringInputs
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
from .registry import HEADLINE, METRICS, Metric, Output, Table, Value, get_metric, register
from .stats import BootstrapCI, bootstrap_ci, fold_bootstrap, nanmean0, summarize

__all__ = [
    "HEADLINE",
    "HR1_SCORES",
    "HR2_SCORES",
    "METRICS",
    "BootstrapCI",
    "ConfidenceResult",
    "CounterfactualResult",
    "LocalisationResult",
    "Metric",
    "Output",
    "ScoringConfig",
    "ScoringInputs",
    "Table",
    "Value",
    "as_m255",
    "bootstrap_ci",
    "class_sensitivity",
    "classification_report",
    "confidence_change",
    "confusion_matrix",
    "counterfactual_scores",
    "drop_in_confidence",
    "evidence_scores",
    "fold_bootstrap",
    "get_metric",
    "hit_rate",
    "increase_in_confidence",
    "joint_histogram",
    "localisation_metrics",
    "mask_iou",
    "nanmean0",
    "normalize_attribution",
    "quantize",
    "register",
    "slm_coverage",
    "summarize",
]
