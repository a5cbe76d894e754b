"""The metric registry: the single source of truth for what is scored, stored, reported and verified.

Every versioned metric (PROTOCOL §4, §7, §9) is one :class:`Metric` entry in :data:`METRICS`:

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
iterate over this registry. This module holds the entry types and the registry's mechanics (checks,
lookups, the record schema); the entries live in modules of their own, registered in report order when the
``metrics`` package is imported: PROTOCOL §4 and §7 in :mod:`.core_entries`, ``randomisation@2`` (§7.1.1) in
:mod:`.randomisation_entries`, §9 in :mod:`.section9`. Adding a metric = one entry + its function. A change
to any number a definition fixes is a new version (``hit_rate@2``), never a silent edit.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..constants import RANDOMISATION_COPIES, THRESHOLDS
from ..errors import HfusError

Direction = Literal["higher", "lower", "none"]
Needs = Literal["maps", "model"]
Scope = Literal["image", "fold"]
Category = Literal["localisation", "faithfulness", "sanity", "model"]

#: Columns of a ``per_image`` row that are not metric values.
ROW_KEYS = ("arch", "fold", "image_id", "label", "pred", "target", "failed", "randomised_failed")
#: More such columns, in the rows of a run that explained the runner-up class (PROTOCOL §9).
RUNNER_UP_ROW_KEYS = ("runner_up", "runner_up_failed")
#: The headline output: tables are sorted and ranked by it.
HEADLINE = "hit_rate@1"


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
    taken = {v.name for m in others for v in m.values} | set(ROW_KEYS) | set(RUNNER_UP_ROW_KEYS)
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
