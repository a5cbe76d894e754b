"""Registry entry of ``randomisation@2`` (PROTOCOL §7.1.1; functions in :mod:`.randomisation`).

Registered into :data:`.registry.METRICS` when the ``metrics`` package is imported (``metrics/__init__.py``
imports this module), after the entries of :mod:`.core_entries`; kept apart so each module stays a readable
size. ``randomisation@1`` stays in :mod:`.core_entries`, superseded by this entry.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ..constants import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    RANDOMISATION_MAX_DEGENERATE,
    RANDOMISATION_MIN_SCORED,
    RANDOMISATION_PASS_BELOW,
)
from .registry import Metric, Output, Table, Value, register

_RAND = "hfus_xai_bench.metrics.randomisation"
#: the share bounds as the description writes them (1/2)
_MAX_D, _MIN_S = Fraction(RANDOMISATION_MAX_DEGENERATE), Fraction(RANDOMISATION_MIN_SCORED)


def _verdict_table_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "verdict",
            "copies",
            "rho_ci95_high",
            "pearson_ci95_high",
            "degenerate_share",
            "scored_share",
            "rule",
        ],
        "properties": {
            "verdict": {"enum": ["pass", "fail", "undetermined"]},
            "copies": {"type": "integer", "minimum": 0},
            "rho_ci95_high": {"$ref": "#/$defs/num"},
            "pearson_ci95_high": {"$ref": "#/$defs/num"},
            "degenerate_share": {"$ref": "#/$defs/num"},
            "scored_share": {"$ref": "#/$defs/num"},
            "rule": {"type": "string"},
        },
    }


def _pairs_table_schema() -> dict[str, Any]:
    counts = (
        "copies",
        "pairs",
        "scored",
        "degenerate",
        "failed",
        "images_without_value",
        "dropped_resamples",
    )
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [*counts, "degenerate_share", "scored_share"],
        "properties": {
            **{c: {"type": "integer", "minimum": 0} for c in counts},
            "degenerate_share": {"$ref": "#/$defs/num"},
            "scored_share": {"$ref": "#/$defs/num"},
        },
    }


def _per_copy_table_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["rho", "pearson", "scored"],
        "properties": {
            "rho": {"$ref": "#/$defs/numArray"},
            "pearson": {"$ref": "#/$defs/numArray"},
            "scored": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        },
    }


RANDOMISATION2 = Metric(
    id="randomisation@2",
    category="sanity",
    needs="maps",
    scope="fold",
    required=False,
    empty_maps=True,
    function=f"{_RAND}:score_randomisation2",
    extras=("m255_randomised", "randomised_ok"),
    values=(
        Value(
            "rand2_rho",
            ("K",),
            "per copy: Spearman ρ between the trained model's and the copy's m255 (NaN unless the pair is "
            "scored)",
        ),
        Value("rand2_pearson", ("K",), "per copy: Pearson r on m255/255 (NaN unless the pair is scored)"),
        Value(
            "rand2_pair",
            ("K",),
            "per copy: 0 scored, 1 degenerate (a constant map), 2 failed (the copy's map)",
        ),
        Value(
            "rand2_cross",
            definition="Spearman ρ between this image's m255 and that of image π(i), π = the seeded "
            "derangement (seed 0) of the evaluated images of the (arch, fold)",
        ),
    ),
    outputs=(
        Output(
            "rho",
            "lower",
            (-1.0, 1.0),
            "mean over the scored copies of the Spearman ρ between the maps of the trained model and of "
            "a randomised copy (§7.1.1); any model-independent map scores 1",
            f"{_RAND}:rho_values",
            label="ρ rand.",
            ci=f"{_RAND}:rho_ci",
        ),
        Output(
            "pearson",
            "lower",
            (-1.0, 1.0),
            "the same with Pearson's r on m255/255: a model-blind blob over a background ordered by the "
            "model has a low ρ but r near 1",
            f"{_RAND}:pearson_values",
            label="r rand.",
            ci=f"{_RAND}:pearson_ci",
        ),
        Output(
            "cross_image",
            "none",
            (-1.0, 1.0),
            "reference: Spearman ρ between the maps of two different "
            "images (a fixed derangement of the evaluated images)",
            "rand2_cross",
            label="ρ cross",
        ),
    ),
    tables=(
        Table(
            "verdict",
            f"{_RAND}:verdict_table",
            _verdict_table_schema(),
            "pass / fail / undetermined and what it rests on (K, the CI upper bounds of ρ and r, D, S)",
        ),
        Table(
            "pairs",
            f"{_RAND}:pairs_table",
            _pairs_table_schema(),
            "pairs (images × copies): scored, degenerate (D = their share), failed; images without a value",
        ),
        Table(
            "per_copy",
            f"{_RAND}:per_copy_table",
            _per_copy_table_schema(),
            "mean ρ and mean r of each copy over its scored pairs (the copies' effect)",
        ),
    ),
    description=(
        "Model-parameter randomisation over K fixed copies (PROTOCOL §7.1.1; Adebayo et al. 2018). "
        "Copy k is the evaluated model as loaded from its checkpoint with every Conv2d / Linear "
        "re-initialised (torch's default, seed derive(0, 'randomisation', k), independent of the run seed) "
        "and every BatchNorm set to weight 1, bias 0, running statistics kept; it explains the same images "
        "with the same targets. Pairs = images whose trained map was produced (all-zero included) × "
        "copies: failed when the copy's map failed, else degenerate when either map is constant (no value, "
        "never 0), else scored: Spearman rho (average ranks) and Pearson r on m255/255. An image's rho / r "
        "= the mean over its scored copies. CI: "
        f"one default_rng({BOOTSTRAP_SEED}); each of {BOOTSTRAP_RESAMPLES} resamples draws K copies with "
        "replacement (shared by the folds), then each fold's images with replacement; percentiles "
        "2.5 / 97.5. "
        f"D, S = degenerate and scored shares of all pairs. verdict: undetermined if D > {_MAX_D}; pass if "
        f"S >= {_MIN_S} and both CI upper bounds are below {RANDOMISATION_PASS_BELOW:g}; else fail. "
        "cross_image as in randomisation@1 (over the evaluated images)."
    ),
)

register(RANDOMISATION2)
