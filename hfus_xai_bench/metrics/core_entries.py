"""Registry entries of PROTOCOL §4 (the study's metrics: ``hit_rate@1``, ``hit_rate_binary@1``,
``slm_coverage@1``, ``mask_iou@1``, ``confidence@1``) and §7 (``randomisation@1``, ``road@1``); functions in
:mod:`.localisation`, :mod:`.confidence`, :mod:`.randomisation` and :mod:`.road`.

Registered into :data:`.registry.METRICS` when the ``metrics`` package is imported (``metrics/__init__.py``
imports this module first: these entries open the report order), before :mod:`.randomisation_entries` and
:mod:`.section9`; kept apart so the registry module holds the mechanics only.
"""

from __future__ import annotations

import math
from typing import Any

from ..constants import (
    IMAGE_SIZE,
    RANDOMISATION_PASS_BELOW,
    ROAD_FRACTIONS,
    SLM_LEVELS,
    THRESHOLDS,
)
from .registry import Metric, Output, Table, Value, register

# protocol numbers as the definitions below print them (read from constants, never re-typed)
_LEVELS = ", ".join(str(v) for v in SLM_LEVELS)
_FRACTIONS = ", ".join(f"{p:g}" for p in ROAD_FRACTIONS)
_RHO_BELOW = f"{RANDOMISATION_PASS_BELOW:g}"


def _iou_table_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["thresholds", "levels", "mean", "n_nan"],
        "properties": {
            "thresholds": {"type": "array", "items": {"type": "integer"}},
            "levels": {"type": "array", "items": {"type": "integer"}},
            "mean": {"type": "array", "items": {"$ref": "#/$defs/numArray"}},
            "n_nan": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
        },
    }


def _confidence_table_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["thresholds", "dic", "iic"],
        "properties": {
            "thresholds": {"type": "array", "items": {"type": "integer"}},
            "dic": {"$ref": "#/$defs/numArray"},
            "iic": {"$ref": "#/$defs/numArray"},
        },
    }


def _pass_table_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["pass", "rho_mean", "rho_ci95_high", "threshold", "rule"],
        "properties": {
            "pass": {"type": "boolean"},
            "rho_mean": {"$ref": "#/$defs/num"},
            "rho_ci95_high": {"$ref": "#/$defs/num"},
            "threshold": {"type": "number"},
            "rule": {"type": "string"},
        },
    }


_LOC = "hfus_xai_bench.metrics.localisation"
_CONF = "hfus_xai_bench.metrics.confidence"
_RAND = "hfus_xai_bench.metrics.randomisation"
_ROAD = "hfus_xai_bench.metrics.road"

# PROTOCOL §4 (the study) and §7 (faithfulness and sanity, v1.1), in report order
CORE: tuple[Metric, ...] = (
    Metric(
        id="hit_rate@1",
        category="localisation",
        needs="maps",
        function=f"{_LOC}:score_hit_rate",
        values=(Value("hr1", definition="mean SLM score over the peak pixels (m255 == 255)"),),
        outputs=(
            Output(
                "",
                "higher",
                (-1.0, 3.0),
                "mean SLM score (255→3, 128→2, 64→1, 32→0, 0→−1) over the "
                "map's peak pixels (m255 == 255, ties averaged)",
                "hr1",
                label="HR1",
            ),
        ),
        description=(
            "Hit Rate 1 (HR1). Peak set P = {pixels with m255 == 255} (all ties kept; plateaus are "
            "averaged). HR1 = mean over P of the skin-layer-map level score: 255 (epidermis / SLEB / "
            "tumour) +3, 128 (36 px band below) +2, 64 (next 36 px) +1, 32 (next 36 px and 16 px above "
            "the skin surface) 0, 0 (everything else) -1. An all-zero map has no peak: the image is "
            "counted as failed (empty_map). Dataset value: mean over images, then over folds."
        ),
    ),
    Metric(
        id="hit_rate_binary@1",
        category="localisation",
        needs="maps",
        function=f"{_LOC}:score_hit_rate_binary",
        values=(Value("hr2", definition="mean binary SLM score over the peak pixels"),),
        outputs=(
            Output(
                "",
                "higher",
                (-1.0, 1.0),
                "same peak, score +1 in the 255 region, −1 in the background, 0 in the bands",
                "hr2",
                label="HR2",
            ),
        ),
        description=(
            "Binary Hit Rate (HR2). Same peak set as hit_rate@1 (m255 == 255, ties kept); the score "
            "is +1 for SLM level 255, 0 for 128 / 64 / 32 and -1 for level 0, averaged over the peak."
        ),
    ),
    Metric(
        id="slm_coverage@1",
        category="localisation",
        needs="maps",
        function=f"{_LOC}:score_slm_coverage",
        values=(
            Value("cov_top", definition="mean m255/255 over SLM == 255"),
            Value("cov_bg", definition="mean m255/255 over SLM == 0"),
        ),
        outputs=(
            Output(
                "top",
                "higher",
                (0.0, 1.0),
                "mean map value over the most important region (SLM 255)",
                "cov_top",
                label="cov top",
            ),
            Output(
                "bg",
                "lower",
                (0.0, 1.0),
                "mean map value over the background (SLM 0)",
                "cov_bg",
                label="cov bg",
            ),
        ),
        description=(
            "Skin-layer-map coverage. cov_top = mean of m255/255 over pixels with SLM == 255 (higher "
            "is better); cov_bg = mean of m255/255 over pixels with SLM == 0 (lower is better). "
            "Undefined (NaN, excluded and counted) where the region is empty."
        ),
    ),
    Metric(
        id="mask_iou@1",
        category="localisation",
        needs="maps",
        function=f"{_LOC}:score_mask_iou",
        values=(Value("iou", ("T", len(SLM_LEVELS)), "IoU(M_t, SLM == L) per threshold t and level L"),),
        outputs=(),
        tables=(
            Table(
                "",
                f"{_LOC}:iou_table",
                _iou_table_schema(),
                f"mean IoU per threshold ({THRESHOLDS[0]}, {THRESHOLDS[1]}, …, {THRESHOLDS[-1]} %) "
                f"× SLM level ({_LEVELS}); n_nan: images without a value there (empty union or failed map)",
            ),
        ),
        description=(
            f"Mask IoU. For t in {{{THRESHOLDS[0]}, {THRESHOLDS[1]}, ..., {THRESHOLDS[-1]}}}: mask M_t = "
            f"(m255/255) > t/100 (strict); IoU(M_t, SLM == L) for each level L in {{{_LEVELS}}}. An empty "
            "union gives NaN "
            "for that image, excluded from the mean and counted. IoU with level 255 is higher-better, "
            "with level 0 lower-better; the other levels are descriptive."
        ),
    ),
    Metric(
        id="confidence@1",
        category="faithfulness",
        needs="model",
        function=f"{_CONF}:score_confidence",
        values=(
            Value("s0", definition="confidence of the target class on the image"),
            Value("s_keep", definition="confidence on x·h (h = m255/255)"),
            Value("s_remove", definition="confidence on x·(1−h)"),
            Value("s_keep_t", ("T",), "confidence on x·M_t per threshold"),
            Value("s_remove_t", ("T",), "confidence on x·(1−M_t) per threshold"),
        ),
        outputs=(
            Output(
                "dic",
                "higher",
                (0.0, math.inf),
                "drop in confidence: mean max(0, s(x) − s(x·(1−h))) — removing "
                "what the map marks should hurt",
                f"{_CONF}:dic_values",
                unit="logit (or probability with unit prob)",
                label="DiC",
            ),
            Output(
                "iic",
                "higher",
                (0.0, 100.0),
                "increase in confidence: % of images with s(x·h) > s(x) — keeping "
                "only what the map marks should help",
                f"{_CONF}:iic_values",
                unit="%",
                label="IiC %",
                digits=1,
            ),
        ),
        tables=(
            Table(
                "thresholds",
                f"{_CONF}:threshold_table",
                _confidence_table_schema(),
                "DiC and IiC % for each mask threshold (M_t instead of h)",
            ),
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
    Metric(
        id="randomisation@1",
        category="sanity",
        needs="maps",
        scope="fold",
        required=False,
        superseded_by="randomisation@2",
        function=f"{_RAND}:score_randomisation",
        extras=("m255_randomised", "randomised_ok"),
        values=(
            Value(
                "rho",
                definition="Spearman ρ between the trained and the randomised model's m255 (NaN where the "
                "randomised model's map failed)",
            ),
            Value(
                "cross_image",
                definition="Spearman ρ between this image's m255 and that of image π(i), π = the "
                "seeded derangement (seed 0) of the evaluated images of the (arch, fold)",
            ),
        ),
        outputs=(
            Output(
                "rho",
                "lower",
                (-1.0, 1.0),
                "Spearman ρ between the maps of the trained and of the randomised "
                "model (§7.1); any model-independent map scores 1",
                "rho",
                label="ρ rand.",
            ),
            Output(
                "cross_image",
                "none",
                (-1.0, 1.0),
                "reference: Spearman ρ between the maps of two different "
                "images (a fixed derangement of the evaluated images)",
                "cross_image",
                label="ρ cross",
            ),
        ),
        tables=(
            Table(
                "pass",
                f"{_RAND}:pass_table",
                _pass_table_schema(),
                f"pass = the upper bound of the 95 % CI of mean ρ is below {_RHO_BELOW} "
                "(mean and bound as in randomisation@1/rho)",
            ),
        ),
        description=(
            "Model-parameter randomisation (Adebayo et al. 2018; reference value as in Arun et al. 2021). "
            "The randomised model is a copy of the evaluated model with every Conv2d / Linear re-initialised "
            "(torch's default, seeded by the run seed) and every BatchNorm set to weight 1, bias 0; the "
            "method is built for it and explains the same images with the same targets. Per image rho = "
            "Spearman rank correlation (average ranks for ties) of the two m255 maps over all pixels "
            "(exactly one constant: 0; both: 1); the randomised model's failures are counted separately and "
            "give NaN. cross_image = rho between the trained model's maps of image i and of image pi(i), pi "
            "a seeded derangement (seed 0) of the evaluated images of the (arch, fold): a fold-scope value. "
            f"pass: the upper bound of the 95 % CI of mean rho is below {_RHO_BELOW}."
        ),
    ),
    Metric(
        id="road@1",
        category="faithfulness",
        needs="model",
        required=False,
        # the imputation is not bit-identical across CPU kinds (docs/REPRODUCIBILITY.md)
        verify_rtol=1e-2,
        function=f"{_ROAD}:score_road",
        values=(
            Value("road_s0", definition="softmax probability of the target class on the clean image"),
            Value(
                "road_morf_p",
                (len(ROAD_FRACTIONS),),
                "s_MoRF(p): probability after removing (imputing) the top p of the map's "
                f"pixels, p = {_FRACTIONS}",
            ),
            Value(
                "road_lerf_p",
                (len(ROAD_FRACTIONS),),
                "s_LeRF(p): probability after removing the bottom p of the map's pixels",
            ),
        ),
        outputs=(
            Output(
                "morf",
                "lower",
                (-1.0, 1.0),
                "mean over p of s_MoRF(p) − s0: imputing the most important "
                "pixels should lower the probability",
                f"{_ROAD}:morf_values",
                unit="probability",
                label="MoRF",
            ),
            Output(
                "lerf",
                "higher",
                (-1.0, 1.0),
                "mean over p of s_LeRF(p) − s0: imputing the least important pixels should not",
                f"{_ROAD}:lerf_values",
                unit="probability",
                label="LeRF",
            ),
            Output(
                "combined",
                "higher",
                (-0.5, 0.5),
                "ROAD combined (LeRF − MoRF) / 2",
                f"{_ROAD}:combined_values",
                unit="probability",
                label="ROAD",
            ),
        ),
        description=(
            f"RemOve And Debias (Rong et al. 2022). For p in {{{_FRACTIONS}}}, k = round(p * {IMAGE_SIZE}^2) "
            "pixels ordered by m255 descending, ties broken by a permutation seeded per image (run seed, "
            "image id); MoRF removes the first k, LeRF the last k. Removed pixels are filled by noisy linear "
            "imputation (8-neighbour weights 1/6 direct, 1/12 diagonal, solved to relative residual 1e-5, "
            "then N(0, 0.01^2) noise seeded per image and fraction, clipped to [0, 1]). s = softmax "
            "probability of the target class. morf = mean_p (s_MoRF(p) - s0) (lower is better), lerf = "
            "mean_p (s_LeRF(p) - s0) (higher), combined = (lerf - morf) / 2 in -0.5..0.5 (higher is better)."
        ),
    ),
)

for _m in CORE:
    register(_m)
