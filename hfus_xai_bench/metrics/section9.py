"""Registry entries of PROTOCOL §9 (class-dependent ground truth): ``evidence@1``, ``class_sensitivity@1``,
``counterfactual@1`` (functions in :mod:`.evidence` and :mod:`.counterfactual`).

Registered into :data:`.registry.METRICS` when the ``metrics`` package is imported (``metrics/__init__.py``
imports this module; every import of a ``metrics`` submodule runs the package first), after the entries of
:mod:`.core_entries` and :mod:`.randomisation_entries`; kept apart so each module stays a readable size.
"""

from __future__ import annotations

import math
from typing import Any

from .registry import Metric, Output, Table, Value, register

_EV = "hfus_xai_bench.metrics.evidence"
_CF = "hfus_xai_bench.metrics.counterfactual"


def count_table_schema(*names: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(names),
        "properties": {n: {"type": "integer", "minimum": 0} for n in names},
    }


# PROTOCOL §9 (evidence tracks: synth-v3 and later, real data with masks). Not required: records of tracks
# without an evidence column (or without twins, for counterfactual@1) do not carry them.
SECTION9: tuple[Metric, ...] = (
    Metric(
        id="evidence@1",
        category="localisation",
        needs="maps",
        required=False,
        function=f"{_EV}:score_evidence",
        extras=("evidence",),
        values=(
            Value("ev_hit", definition="|P ∩ E| / |P|, P = peak pixels (m255 == 255), E = evidence mask"),
            Value("ev_mass", definition="Σ_E m255 / Σ m255"),
            Value("ev_peak_pixels", definition="|P|, the number of peak pixels"),
            Value("ev_evidence_pixels", definition="|E| (0: the image has no evidence, not applicable)"),
            Value("ev_hit_copies", definition="mean hit over the randomised copies whose map has a value"),
            Value("ev_mass_copies", definition="mean mass over the randomised copies whose map has a value"),
            Value("ev_hit_gain", definition="mean over those copies of (hit − the copy's hit)"),
            Value("ev_mass_gain", definition="mean over those copies of (mass − the copy's mass)"),
            Value(
                "ev_copies", definition="number of copies in the gain (failed or all-zero copy maps left out)"
            ),
        ),
        outputs=(
            Output(
                "hit",
                "higher",
                (0.0, 1.0),
                "share of the map's peak pixels (m255 == 255, ties averaged) inside the class evidence E",
                "ev_hit",
                label="ev hit",
            ),
            Output(
                "mass",
                "higher",
                (0.0, 1.0),
                "share of the map's mass (Σ m255) inside the class evidence E",
                "ev_mass",
                label="ev mass",
            ),
            Output(
                "hit_gain",
                "higher",
                (-1.0, 1.0),
                "hit of the trained model's map − mean hit of the randomised copies' maps "
                "(model-blind maps: 0)",
                "ev_hit_gain",
                label="Δev hit rand.",
            ),
            Output(
                "mass_gain",
                "higher",
                (-1.0, 1.0),
                "mass of the trained model's map − mean mass of the randomised copies' maps",
                "ev_mass_gain",
                label="Δev mass rand.",
            ),
            Output(
                "peak_pixels",
                "none",
                (0.0, math.inf),
                "mean number of peak pixels |P| of the scored maps",
                "ev_peak_pixels",
                unit="pixels",
                digits=0,
            ),
        ),
        tables=(
            Table(
                "counts",
                f"{_EV}:evidence_count_table",
                count_table_schema("n_scored", "n_not_applicable", "n_no_map", "n_no_gain"),
                "images scored, not applicable (empty evidence), without a map (failed or empty_map), and "
                "scored without a gain (no randomised copy had a value)",
            ),
        ),
        description=(
            "Evidence localisation (PROTOCOL §9). E = the image's class-evidence mask (dataset column "
            "evidence, 224x224, 0/255); images with an empty E (CG) are not applicable (NaN, never 0). P = "
            "the peak set of hit_rate@1 (every pixel with m255 == 255, each weighing 1/|P|). hit = |P ∩ E| / "
            "|P|; mass = sum of m255 over E / sum of m255 (relevance mass accuracy). An all-zero map has "
            "neither (empty_map, counted). Model dependence: hit and mass are also scored on every "
            "randomised copy's maps (§7.1.1, no extra passes); hit_gain / mass_gain = mean over the copies "
            "whose map has a value (not failed, not all zero) of (trained value - copy value), NaN without "
            "such a copy (counted)."
        ),
    ),
    Metric(
        id="class_sensitivity@1",
        category="sanity",
        needs="maps",
        required=False,
        function=f"{_EV}:score_class_sensitivity",
        extras=("m255_runner_up", "runner_up_ok", "runner_up"),
        values=(
            Value("cs_rho", definition="Spearman ρ between the maps for the target and the runner-up class"),
            Value(
                "cs_pair", definition="pair status: 0 scored, 1 degenerate (either map constant), 2 failed"
            ),
            Value(
                "cs_runner_up", definition="the runner-up class r (highest other logit, lowest index on ties)"
            ),
        ),
        outputs=(
            Output(
                "rho",
                "lower",
                (-1.0, 1.0),
                "Spearman ρ between the map for the target class and the map for the runner-up class (a "
                "diagnostic, not ranked; any map that ignores the class scores 1)",
                "cs_rho",
                label="ρ class",
            ),
        ),
        tables=(
            Table(
                "counts",
                f"{_EV}:pair_count_table",
                count_table_schema("n_scored", "n_degenerate", "n_failed"),
                "target / runner-up pairs: scored, degenerate (either map constant: no ρ) and failed "
                "(the runner-up map failed)",
            ),
        ),
        description=(
            "Class sensitivity (PROTOCOL §9). r = the class with the highest trained-model logit other than "
            "the target (lowest index on ties); the method explains each image once more for r, from the "
            "same random state (§3). rho = Spearman rank correlation (average ranks) between the m255 maps "
            "for the target and for r over all pixels. A pair is failed when the runner-up map failed "
            "(exception, shape, NaN), else degenerate when either map is constant; neither gets a rho "
            "(counted apart). Lower is better; a diagnostic, shown and never ranked."
        ),
    ),
    Metric(
        id="counterfactual@1",
        category="model",
        needs="model",
        required=False,
        function=f"{_CF}:score_counterfactual",
        extras=("twins", "evidence"),
        every_image=True,
        values=(
            Value(
                "cf_case", definition="0 applicable, 1 CG label (not applicable), 2 target CG (counted apart)"
            ),
            Value("cf_effect", definition="p_c(image) − p_c(twin), softmax probability of the target c"),
            Value("cf_flip", definition="1 if pred(image) ≠ CG and pred(twin) = CG, else 0"),
            Value("cf_pred_twin", definition="the model's prediction on the twin (lowest index on ties)"),
            Value("cf_flip_hit", definition="evidence@1 hit of the images with flip 1 (NaN elsewhere)"),
            Value("cf_flip_mass", definition="evidence@1 mass of the images with flip 1 (NaN elsewhere)"),
        ),
        outputs=(
            Output(
                "effect",
                "none",
                (-1.0, 1.0),
                "the model's drop in target probability when the class evidence is removed (the twin); "
                "measures the model, not the method",
                "cf_effect",
                unit="probability",
                label="CF effect",
            ),
            Output(
                "flip",
                "none",
                (0.0, 1.0),
                "share of the applicable images (label and target not CG) that the model classifies as not "
                "CG and whose twin it classifies as CG",
                "cf_flip",
                label="CF flip",
            ),
            Output(
                "flip_hit",
                "higher",
                (0.0, 1.0),
                "evidence@1 hit on the images whose twin flips the model to CG",
                "cf_flip_hit",
                label="flip ev hit",
            ),
            Output(
                "flip_mass",
                "higher",
                (0.0, 1.0),
                "evidence@1 mass on the images whose twin flips the model to CG",
                "cf_flip_mass",
                label="flip ev mass",
            ),
        ),
        tables=(
            Table(
                "counts",
                f"{_CF}:case_count_table",
                count_table_schema("n_applicable", "n_label_cg", "n_target_cg", "n_flip"),
                "applicable images, CG-labelled images (not applicable), images with target CG (counted "
                "apart) and applicable images with flip 1",
            ),
        ),
        description=(
            "Counterfactual effect (PROTOCOL §9; measures the model, not the method). For images whose label "
            "and target class c are not CG: effect = p_c(image) - p_c(twin), softmax probabilities, the twin "
            "being the same image rendered without its class evidence; flip = the prediction on the image is "
            "not CG and on the twin is CG (argmax, lowest index on ties). CG-labelled images are not "
            "applicable; images with target CG are counted apart. Unavailable (not scored, never 0) on data "
            "without twins. flip_hit / flip_mass = evidence@1 hit / mass on the images with flip 1."
        ),
    ),
)


for _m in SECTION9:
    register(_m)
