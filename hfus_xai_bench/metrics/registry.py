"""The metric registry: the single source of truth for what is scored, stored, reported and verified.

Every versioned metric (PROTOCOL §4, §7) is one :class:`Metric` entry in :data:`METRICS`:

- ``id`` (``name@version``), ``category``, ``needs`` (``"maps"``: maps + SLMs only, re-scored exactly
  from saved maps; ``"model"``: also the model, the images and the targets, re-checked through the
  checkpoint within a relative tolerance);
- ``scope`` (``"image"``, the default: an image's values depend only on that image's inputs, never on
  which other images are scored with it, so the runner may score any subset, e.g. one run batch;
  ``"fold"``: the values need every evaluated image of the (arch, fold) at once, e.g. the cross-image
  reference of ``randomisation@1``; scored once per fold, after the batches are gathered). A
  model-based metric is image-scope (it is scored per run batch, where the model is);
- ``function``: the per-image function ``f(inputs: ScoringInputs, config: ScoringConfig) -> {value: array}``
  (a callable or ``"module:function"``), pure, no I/O (:mod:`.inputs`);
- ``values``: the per-image arrays it returns and the record keeps (one ``per_image`` column each);
- ``outputs``: the reported numbers (record key, direction, range, unit, one-line definition, how to
  get the per-image value from ``values``, the table column label if shown);
- ``tables``: reported sections that are not a mean with a CI (e.g. IoU per threshold × level).

The scoring core (:func:`hfus_xai_bench.scoring.score_fold`), the record (``results``: per-image rows,
aggregation, the ``metrics`` section of the JSON schema), the leaderboard columns and ``verify`` all
iterate over this registry. Adding a metric = one entry here + its function (``randomisation@2``, PROTOCOL
§7.1.1, lives in :mod:`.randomisation_entries` and the entries of PROTOCOL §9 in :mod:`.section9`, registered
after these when the ``metrics`` package is imported). A change to any number a
definition fixes is a new version (``hit_rate@2``), never a silent edit.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..constants import (
    IMAGE_SIZE,
    RANDOMISATION_COPIES,
    RANDOMISATION_PASS_BELOW,
    ROAD_FRACTIONS,
    SLM_LEVELS,
    THRESHOLDS,
)
from ..errors import HfusError

Direction = Literal["higher", "lower", "none"]
Needs = Literal["maps", "model"]
Scope = Literal["image", "fold"]
Category = Literal["localisation", "faithfulness", "sanity", "model"]

#: Columns of a ``per_image`` row that are not metric values.
ROW_KEYS = ("arch", "fold", "image_id", "label", "pred", "target", "failed", "randomised_failed")
#: The headline output: tables are sorted and ranked by it.
HEADLINE = "hit_rate@1"

# protocol numbers as the definitions below print them (read from constants, never re-typed)
_LEVELS = ", ".join(str(v) for v in SLM_LEVELS)
_FRACTIONS = ", ".join(f"{p:g}" for p in ROAD_FRACTIONS)
_RHO_BELOW = f"{RANDOMISATION_PASS_BELOW:g}"


def resolve(ref: str | Callable) -> Callable:
    """A callable, or ``"module:function"`` imported on first use (the registry imports no metric code)."""
    if callable(ref):
        return ref
    module, _, attr = str(ref).partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise HfusError(f"metric function {ref!r} cannot be imported ({err})") from err


@dataclass(frozen=True)
class Value:
    """A per-image array a metric keeps: ``per_image`` column ``name`` (unique over the registry).

    ``shape``: the trailing shape per image; ``"T"`` stands for the number of mask thresholds, ``"K"`` for the
    number of randomised copies (PROTOCOL §7.1.1; the run's ``randomisations``).
    """

    name: str
    shape: tuple[int | str, ...] = ()
    definition: str = ""

    def dims(
        self, thresholds: tuple[int, ...] = THRESHOLDS, copies: int = RANDOMISATION_COPIES
    ) -> tuple[int, ...]:
        sizes = {"T": len(thresholds), "K": int(copies)}
        return tuple(sizes[d] if isinstance(d, str) else int(d) for d in self.shape)


@dataclass(frozen=True)
class Output:
    """A reported number: per architecture the mean over images, then over folds, with a bootstrap CI,
    per fold, per class and for correct / incorrect images (``results.summarize``).

    ``name``: ``""`` for the metric's main number (record key = the metric id), else the record key is
    ``<id>/<name>``; ``per_image``: a value name, or ``f(values) -> (N,)`` (callable or "module:function")
    on the metric's value arrays; ``label``: the column header in tables (None: not a column); ``ci``: None
    for the fold-stratified image bootstrap, else ``f(per_fold) -> (low, high)`` on the metric's value arrays
    of each fold (folds ascending), e.g. ``randomisation@2``'s copies-then-images bootstrap.
    """

    name: str
    direction: Direction
    range: tuple[float, float]
    definition: str
    per_image: str | Callable
    unit: str = ""
    label: str | None = None
    digits: int = 3
    ci: str | Callable | None = None


@dataclass(frozen=True)
class Table:
    """A reported section per architecture computed by ``summarise(per_fold) -> JSON object`` from the
    metric's value arrays of each fold (full length, NaN where not scored); ``schema``: its JSON schema."""

    name: str
    summarise: str | Callable
    schema: Mapping[str, Any]
    definition: str


@dataclass(frozen=True)
class Metric:
    """One versioned metric (see the module docstring)."""

    id: str
    category: Category
    needs: Needs
    function: str | Callable
    values: tuple[Value, ...]
    outputs: tuple[Output, ...]
    description: str
    tables: tuple[Table, ...] = ()
    #: records must carry it (the schema requires its outputs); False for metrics newer than some records
    required: bool = True
    #: names of the ``ScoringInputs.extras`` the function reads (the runner must provide them)
    extras: tuple[str, ...] = field(default=())
    #: "image": per-image values independent of the other images scored with it; "fold": needs the whole
    #: (arch, fold) at once (scored after the gather; maps-only metrics only)
    scope: Scope = "image"
    #: True: also scored on the images whose map is all zero (``empty_map``; ``ScoringInputs.ok`` False
    #: there), e.g. ``randomisation@2`` counts their pairs as degenerate
    empty_maps: bool = False
    #: True: scored on every image whatever its map (the metric measures the model; its map-derived values
    #: are NaN where ``ScoringInputs.ok`` is False), e.g. ``counterfactual@1``
    every_image: bool = False
    #: the id of the metric that replaces this one: kept so old records validate, render and verify, never
    #: scored for new records (``metrics()`` leaves it out)
    superseded_by: str | None = None
    #: model-based metrics: the relative tolerance (absolute below magnitude 1) ``verify`` re-checks this
    #: metric's values with on another machine; None: ``verify``'s default
    verify_rtol: float | None = None

    @property
    def name(self) -> str:
        return self.id.partition("@")[0]

    @property
    def version(self) -> int:
        return int(self.id.partition("@")[2])

    @property
    def primary(self) -> Output:
        return self.outputs[0]

    def key(self, part: Output | Table | Value | str) -> str:
        """Record key of an output / table (``<id>`` or ``<id>/<name>``), or score key of a value."""
        name = part if isinstance(part, str) else part.name
        return self.id if not name else f"{self.id}/{name}"

    def compute(self, inputs: Any, config: Any) -> dict[str, Any]:
        return resolve(self.function)(inputs, config)


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

_BUILTIN: tuple[Metric, ...] = (
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
                f"× SLM level ({_LEVELS}); NaNs counted",
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

#: id -> Metric, in report order (the order of table columns and record sections).
METRICS: dict[str, Metric] = {}


def check_metric(metric: Metric, others: Iterable[Metric] = ()) -> None:
    """Raise HfusError if ``metric`` is malformed or collides with ``others`` (ids, record keys, value
    names)."""
    name, _, version = metric.id.partition("@")
    if not name or not version.isdigit():
        raise HfusError(f"metric id {metric.id!r} must be name@version, e.g. hit_rate@2")
    if metric.needs not in ("maps", "model"):
        raise HfusError(f"metric {metric.id}: needs must be 'maps' or 'model', got {metric.needs!r}")
    if metric.scope not in ("image", "fold"):
        raise HfusError(f"metric {metric.id}: scope must be 'image' or 'fold', got {metric.scope!r}")
    if metric.scope == "fold" and metric.needs == "model":
        raise HfusError(
            f"metric {metric.id}: a model-based metric must be image-scope (it is scored per run batch, "
            "where the model is); split the fold-level part into a maps-only metric"
        )
    if not metric.values:
        raise HfusError(f"metric {metric.id}: declare at least one per-image value")
    names = [v.name for v in metric.values]
    taken = {v.name for m in others for v in m.values} | set(ROW_KEYS)
    clash = sorted((set(names) & taken) | {n for n in names if names.count(n) > 1})
    if clash:
        raise HfusError(
            f"metric {metric.id}: per-image value name(s) {clash} already used; pick unique names"
        )
    keys = [metric.key(p) for p in (*metric.outputs, *metric.tables)]
    taken_keys = {m.key(p) for m in others for p in (*m.outputs, *m.tables)}
    clash = sorted((set(keys) & taken_keys) | {k for k in keys if keys.count(k) > 1})
    if clash:
        raise HfusError(f"metric {metric.id}: record key(s) {clash} already used")
    for out in metric.outputs:
        if out.direction not in ("higher", "lower", "none"):
            raise HfusError(f"metric {metric.id}: direction of {out.name!r} must be higher, lower or none")
        if isinstance(out.per_image, str) and ":" not in out.per_image and out.per_image not in names:
            raise HfusError(f"metric {metric.id}: output {out.name!r} reads unknown value {out.per_image!r}")


def register(metric: Metric) -> Metric:
    """Add a metric to :data:`METRICS` (checked against the ones already there); returns it."""
    if metric.id in METRICS:
        raise HfusError(f"metric {metric.id} is already registered; a changed definition needs a new version")
    check_metric(metric, METRICS.values())
    METRICS[metric.id] = metric
    return metric


for _m in _BUILTIN:
    register(_m)


def get_metric(metric_id: str) -> Metric:
    """The :class:`Metric` of ``metric_id`` (e.g. ``"hit_rate@1"``); a bare name gets its latest version."""
    if metric_id in METRICS:
        return METRICS[metric_id]
    versions = [m for m in METRICS.values() if m.name == metric_id]
    if versions:
        return max(versions, key=lambda m: m.version)
    raise HfusError(f"unknown metric {metric_id!r}; known: {', '.join(METRICS)}")


def metrics(selection: Iterable[str | Metric] | None = None) -> list[Metric]:
    """Registry entries: the current ones (None: every entry not superseded) or the given ids / entries."""
    if selection is None:
        return [m for m in METRICS.values() if m.superseded_by is None]
    return [m if isinstance(m, Metric) else get_metric(m) for m in selection]


def outputs() -> list[tuple[Metric, Output]]:
    """Every reported number, in report order."""
    return [(m, o) for m in METRICS.values() for o in m.outputs]


def columns() -> list[tuple[str, Metric, Output]]:
    """Table columns: ``(record key, metric, output)`` of every output with a label, in report order."""
    return [(m.key(o), m, o) for m, o in outputs() if o.label is not None]


def output(key: str) -> tuple[Metric, Output]:
    """The (metric, output) of a record key such as ``"slm_coverage@1/top"``."""
    for m, o in outputs():
        if m.key(o) == key:
            return m, o
    raise HfusError(f"unknown score {key!r}; known: {', '.join(m.key(o) for m, o in outputs())}")


def metrics_schema() -> dict[str, Any]:
    """The JSON schema of ``record["metrics"]``, generated from the registry."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for m in METRICS.values():
        for o in m.outputs:
            props[m.key(o)] = {"$ref": "#/$defs/perArchSummary"}
        for t in m.tables:
            props[m.key(t)] = {"type": "object", "additionalProperties": dict(t.schema)}
        if m.required:
            required += [m.key(p) for p in (*m.outputs, *m.tables)]
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}
