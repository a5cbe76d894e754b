"""The result record (PROTOCOL §6): per-(arch, fold) scores, aggregation over images and folds, schema, I/O.

The per-image values of one (arch, fold) are a :class:`FoldScores`: ``values`` maps
``"<metric id>/<value>"`` to a per-image array (what :func:`hfus_xai_bench.scoring.score_fold`
returns). Everything below iterates over the metric registry (``metrics/registry.py``):

- ``record["per_image"]``: one row per image with every registry value (column = the value name);
- ``record["metrics"]``: record key of every output → arch → summary (mean of fold means, a
  fold-stratified bootstrap 95 % CI (``constants.BOOTSTRAP_RESAMPLES`` resamples, seed
  ``BOOTSTRAP_SEED``) or the output's own (``Output.ci``, e.g. ``randomisation@2``'s copies-then-images
  bootstrap), per fold, per class, correct / incorrect) and of every table (e.g.
  ``mask_iou@1``, ``confidence@1/thresholds``) → arch → section;
- the ``metrics`` part of the JSON schema (:func:`schema`) is generated from the registry.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .constants import (
    BENCHMARK_VERSION,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CLASSES,
    COST_STAGES,
    FE_EXCLUDED_STAGES,
    PROTOCOL_VERSION,
)
from .errors import HfusError
from .jsonio import check_schema, json_number, json_numbers, load_json, plain_json, shipped_schema
from .metrics import registry
from .metrics.stats import fold_bootstrap

if TYPE_CHECKING:
    from .explainers.loader import Method

SCHEMA_VERSION = 1


@dataclass
class FoldScores:
    """Per-image values of one (arch, fold): ids, classes, failures, and ``values`` (registry keys)."""

    arch: str
    fold: int
    checkpoint: dict[str, Any]
    image_ids: list[str]
    labels: np.ndarray
    preds: np.ndarray
    targets: np.ndarray
    failed: list[str | None]
    values: dict[str, np.ndarray]
    seconds: float = 0.0
    forward_images: float = 0.0
    maps: np.ndarray | None = None  # uint8 m255 [N, 224, 224] (zeros where failed, non_finite aside)
    #: per image, per randomised copy: why the copy's map failed (PROTOCOL §7.1.1; None = ok), None if not
    #: run; records made before §7.1.1 hold one reason per image (one copy)
    randomised_failed: list[list[str | None]] | list[str | None] | None = None
    #: the copies' m255 (N, K, 224, 224) (kept with ``maps``; zeros where failed)
    randomised_maps: np.ndarray | None = None
    #: per image: why the runner-up class's map failed (PROTOCOL §9; None = ok), None if not run
    runner_up_failed: list[str | None] | None = None
    #: per image: the runner-up class (PROTOCOL §9), None if not run
    runner_up: np.ndarray | None = None
    #: the runner-up maps (N, 224, 224) (kept with ``maps``)
    runner_up_maps: np.ndarray | None = None
    #: rows and seconds per stage (``forward_rows/<stage>``, ``backward_rows/<stage>``, ``seconds/<stage>``,
    #: PROTOCOL §6) and other counters summed over the fold (other counters are reported per image in
    #: ``cost``)
    cost: dict[str, float] = field(default_factory=dict)

    def metric_values(self, metric: registry.Metric) -> dict[str, np.ndarray] | None:
        """``{value name: array}`` of one metric, or None if this fold was not scored with it."""
        keys = {v.name: metric.key(v) for v in metric.values}
        if not all(k in self.values for k in keys.values()):
            return None
        return {name: self.values[key] for name, key in keys.items()}

    def output(self, key: str) -> np.ndarray:
        """Per-image values of a reported number, e.g. ``"hit_rate@1"`` or ``"confidence@1/dic"``."""
        metric, out = registry.output(key)
        values = self.metric_values(metric)
        if values is None:
            raise HfusError(f"{self.arch} fold {self.fold} was not scored with {metric.id}")
        return per_image_output(out, values)


def per_image_output(out: registry.Output, values: dict[str, np.ndarray]) -> np.ndarray:
    """The per-image array behind an output: a value, or the output's function of the values."""
    if isinstance(out.per_image, str) and ":" not in out.per_image:
        return np.asarray(values[out.per_image], dtype=np.float64)
    return np.asarray(registry.resolve(out.per_image)(values), dtype=np.float64)


def summarize(
    runs: Sequence[FoldScores], values: Sequence[np.ndarray], ci: Sequence[float] | None = None
) -> dict[str, Any]:
    """Summary of one score over the folds of one arch (PROTOCOL §4: means over the images of each fold,
    then over folds): mean of fold means, fold-stratified CI (or ``ci`` when the output defines its own,
    ``Output.ci``), per fold, and per class and correct/incorrect as the mean over the folds that have
    such images of their means (:func:`metrics.summarize`); ``n`` / ``n_nan`` count every fold's images."""
    from .metrics import summarize as summarize_images

    views = [
        summarize_images(v, labels=run.labels, correct=run.preds == run.labels, n_resamples=1)
        for run, v in zip(runs, values, strict=True)
    ]
    fold_means = {str(run.fold): view["mean"] for run, view in zip(runs, views, strict=True)}
    return {
        "mean": _mean_over_folds(list(fold_means.values())),
        "ci95": [
            json_number(x)
            for x in (ci or fold_bootstrap(values, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED))
        ],
        "per_fold": fold_means,
        "per_class": {c: _mean_over_folds([view["per_class"][c] for view in views]) for c in CLASSES},
        "correct": _mean_over_folds([view["correct"] for view in views]),
        "incorrect": _mean_over_folds([view["incorrect"] for view in views]),
        "n": sum(view["n"] for view in views),
        "n_nan": sum(view["n_nan"] for view in views),
    }


def _mean_over_folds(means: Sequence[float | None]) -> float | None:
    """The mean of the folds' means that exist (None: no fold has a value)."""
    finite = [m for m in means if m is not None]
    return json_number(np.mean(finite)) if finite else None


def _classification(runs: Sequence[FoldScores]) -> dict[str, Any]:
    from .metrics import classification_report

    def report(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
        rep = classification_report(y, p, num_classes=len(CLASSES))
        return {k: json_number(rep[k]) for k in ("accuracy", "precision", "recall", "f1")}

    per_fold = {str(run.fold): report(run.labels, run.preds) for run in runs}
    keys = ("accuracy", "precision", "recall", "f1")
    summary = {k: json_number(np.mean([v[k] for v in per_fold.values()])) for k in keys}
    return {**summary, "per_fold": per_fold}


def _counts(runs: Sequence[FoldScores]) -> dict[str, Any]:
    reasons = [r for run in runs for r in run.failed if r is not None]
    kinds = Counter(r.split(":", 1)[0] for r in reasons)
    examples: dict[str, str] = {}
    for r in reasons:
        examples.setdefault(r.split(":", 1)[0], r)
    n_images = sum(len(run.failed) for run in runs)
    out = {
        "n_images": n_images,
        "n_evaluated": n_images - len(reasons),
        "n_failed": len(reasons),
        "failures": dict(sorted(kinds.items())),
        "failure_examples": examples,
    }
    if runs and all(run.randomised_failed is not None for run in runs):
        # the copies' failures (PROTOCOL §7.1.1: failed pairs), over the images evaluated in §4
        rand = [
            r
            for run in runs
            for per_copy, f in zip(run.randomised_failed, run.failed, strict=True)
            for r in (per_copy if isinstance(per_copy, list) else [per_copy])
            if r is not None and f is None
        ]
        out["randomised_failed"] = len(rand)
        out["randomised_failures"] = dict(sorted(Counter(r.split(":", 1)[0] for r in rand).items()))
    return out


def per_image_rows(runs: Sequence[FoldScores]) -> list[dict[str, Any]]:
    """One row per image: ids, classes, failure reason and every per-image registry value it was scored
    with."""
    rows = []
    metrics = [(m, [v.name for v in m.values]) for m in registry.METRICS.values()]
    for run in runs:
        present = [(names, vals) for m, names in metrics if (vals := run.metric_values(m)) is not None]
        for i, image_id in enumerate(run.image_ids):
            row: dict[str, Any] = {
                "arch": run.arch,
                "fold": run.fold,
                "image_id": image_id,
                "label": int(run.labels[i]),
                "pred": int(run.preds[i]),
                "target": int(run.targets[i]),
                "failed": run.failed[i],
            }
            if run.randomised_failed is not None:
                row["randomised_failed"] = run.randomised_failed[i]
            if run.runner_up_failed is not None and run.runner_up is not None:
                row["runner_up"] = int(run.runner_up[i])
                row["runner_up_failed"] = run.runner_up_failed[i]
            for names, vals in present:
                for name in names:
                    row[name] = json_numbers(vals[name][i])
            rows.append(row)
    return rows


def fold_scores_from_record(record: dict[str, Any]) -> list[FoldScores]:
    """The per-(arch, fold) scores a result record carries, in record order: the inverse of
    :func:`per_image_rows` (ids, classes, failures, every registry value its rows hold, runner-up) with the
    record's checkpoints and cost. Maps are not read (``maps`` stays None). An architecture's cost block is
    a sum over its folds: it goes to its first fold (rows and seconds per stage, the other counters as
    totals), so :func:`cost_block` over the same folds gives its rows back."""
    from .batches import scoring_config
    from .config import RunConfig
    from .jsonio import from_json_numbers

    config = scoring_config(RunConfig.from_record(record))
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in record["per_image"]:
        groups.setdefault((row["arch"], int(row["fold"])), []).append(row)
    runs, costed = [], set()
    for (arch, fold), rows in groups.items():
        values = {}
        for metric in registry.METRICS.values():
            if all(v.name in rows[0] for v in metric.values):
                for v in metric.values:
                    nan = np.full(v.dims(config.thresholds, config.randomisations), np.nan)
                    stacked = [nan if r[v.name] is None else from_json_numbers(r[v.name]) for r in rows]
                    values[metric.key(v)] = np.stack(stacked)
        block = record["cost"].get(arch, {}) if arch not in costed else {}
        costed.add(arch)
        runs.append(_recorded_fold(record, arch, fold, rows, values, block))
    return runs


def _recorded_fold(
    record: dict[str, Any],
    arch: str,
    fold: int,
    rows: list[dict[str, Any]],
    values: dict[str, np.ndarray],
    cost: dict[str, Any],
) -> FoldScores:
    """One :class:`FoldScores` of :func:`fold_scores_from_record`; ``cost``: the arch's block, or {}."""
    n = sum(r["arch"] == arch for r in record["per_image"])
    counters = {
        k: float(v)
        for k, v in cost.items()
        if k.startswith(("forward_rows/", "backward_rows/", "seconds/")) and k.split("/", 1)[1] in COST_STAGES
    }
    special = {"seconds_per_image", "forward_images_per_image", "fe_per_image"}
    for key, value in cost.items():
        if key.endswith("_per_image") and key not in special and value is not None:
            counters[key.removesuffix("_per_image")] = float(value) * n
    runner_up = all("runner_up" in r for r in rows)
    return FoldScores(
        arch=arch,
        fold=fold,
        checkpoint=record["checkpoints"].get(arch, {}).get(str(fold), {}),
        image_ids=[r["image_id"] for r in rows],
        labels=np.array([r["label"] for r in rows], np.int64),
        preds=np.array([r["pred"] for r in rows], np.int64),
        targets=np.array([r["target"] for r in rows], np.int64),
        failed=[r["failed"] for r in rows],
        values=values,
        seconds=float(cost.get("seconds_per_image") or 0.0) * n,
        forward_images=float(cost.get("forward_images_per_image") or 0.0) * n,
        randomised_failed=[r["randomised_failed"] for r in rows]
        if all("randomised_failed" in r for r in rows)
        else None,
        runner_up_failed=[r["runner_up_failed"] for r in rows] if runner_up else None,
        runner_up=np.array([r["runner_up"] for r in rows], np.int64) if runner_up else None,
        cost=counters,
    )


def forward_equivalents(cost: dict[str, Any], n_images: int) -> float | None:
    """PROTOCOL §6's FE/img of one architecture's ``cost`` block: (forward_rows + 2 · backward_rows, the
    integrity check's repeat excluded) / images (all folds, failures included); None without row counts."""
    if "forward_rows" not in cost or not n_images:
        return None
    fwd = cost["forward_rows"] - sum(cost.get(f"forward_rows/{s}", 0) for s in FE_EXCLUDED_STAGES)
    bwd = cost["backward_rows"] - sum(cost.get(f"backward_rows/{s}", 0) for s in FE_EXCLUDED_STAGES)
    return (fwd + 2 * bwd) / n_images


def cost_block(runs: Sequence[FoldScores]) -> dict[str, Any]:
    """``record["cost"][arch]`` (PROTOCOL §6): rows of every forward and backward pass per stage and in total
    (integers, run totals), seconds per stage (totals), FE/img, seconds per image (the method's calls on the
    trained model), and every other counter per image (e.g. ``road_seconds_impute_per_image``)."""
    n = sum(len(run.image_ids) for run in runs)
    total = Counter()
    for run in runs:
        total.update({k: float(v) for k, v in run.cost.items()})
    out: dict[str, Any] = {
        "seconds_per_image": json_number(sum(run.seconds for run in runs) / n),
        "forward_images_per_image": json_number(sum(run.forward_images for run in runs) / n),
    }
    for kind in ("forward_rows", "backward_rows"):
        per_stage = {s: int(round(total.get(f"{kind}/{s}", 0.0))) for s in COST_STAGES}
        out[kind] = sum(per_stage.values())
        out.update({f"{kind}/{s}": v for s, v in per_stage.items()})
    out.update({f"seconds/{s}": float(total.get(f"seconds/{s}", 0.0)) for s in COST_STAGES})
    fe = forward_equivalents(out, n)
    out["fe_per_image"] = None if fe is None else json_number(fe)
    for key in sorted(k for k in total if "/" not in k):
        out[f"{key}_per_image"] = json_number(total[key] / n)
    return out


def aggregate(runs: Sequence[FoldScores]) -> dict[str, Any]:
    """``metrics``, ``classification``, ``counts`` and ``cost`` sections, per arch (registry order)."""
    by_arch: dict[str, list[FoldScores]] = {}
    for run in runs:
        by_arch.setdefault(run.arch, []).append(run)
    for arch_runs in by_arch.values():  # folds ascending, whatever order they were run in (§4's CIs)
        arch_runs.sort(key=lambda r: r.fold)
    metrics: dict[str, dict[str, Any]] = {}
    classification, counts, cost = {}, {}, {}
    for metric in registry.METRICS.values():
        for arch, arch_runs in by_arch.items():
            per_fold = [run.metric_values(metric) for run in arch_runs]
            if any(v is None for v in per_fold):
                continue
            for out in metric.outputs:
                values = [per_image_output(out, v) for v in per_fold]
                ci = None if out.ci is None else registry.resolve(out.ci)(per_fold)
                metrics.setdefault(metric.key(out), {})[arch] = summarize(arch_runs, values, ci)
            for table in metric.tables:
                metrics.setdefault(metric.key(table), {})[arch] = registry.resolve(table.summarise)(per_fold)
    for arch, arch_runs in by_arch.items():
        classification[arch] = _classification(arch_runs)
        counts[arch] = _counts(arch_runs)
        cost[arch] = cost_block(arch_runs)
    counts["total"] = _counts(runs)
    return {"metrics": metrics, "classification": classification, "counts": counts, "cost": cost}


@dataclass
class Result:
    """A result record (a JSON-able dict following ``schemas/result.schema.json``)."""

    record: dict[str, Any]

    def save(self, path: str | Path) -> Path:
        validate(self.record)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record, indent=1, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Result:
        path = Path(path)
        record = load_json(path, "result record")
        require_record(record, path)
        validate(record, source=str(path))
        return cls(record)

    def headline(self, key: str = registry.HEADLINE, arch: str | None = None) -> float | None:
        """The mean of a reported score (default: the headline ``hit_rate@1``; first arch if none is
        given)."""
        if key not in self.record["metrics"]:
            registry.output(key)  # an unknown key is an error that lists the known ones
            raise HfusError(f"this record has no {key!r} (made before the metric existed?)")
        per_arch = self.record["metrics"][key]
        return per_arch[arch or next(iter(per_arch))]["mean"]

    def summary_table(self) -> str:
        """A readable table: one row per arch with every column of the registry (mean [CI]), a ``pass`` /
        ``verdict`` column after a metric that reports one (``randomisation@1/pass``,
        ``randomisation@2/verdict`` with its degenerate share D), counts and cost."""
        from tabulate import tabulate

        metrics = self.record["metrics"]
        cols: list[tuple[str, str, bool]] = []  # (record key, header, is a pass table)
        for metric in registry.METRICS.values():
            shown = [
                (metric.key(o), o.label, False)
                for o in metric.outputs
                if o.label and metric.key(o) in metrics
            ]
            passes = [
                (metric.key(t), t.name, True)
                for t in metric.tables
                if t.name in ("pass", "verdict") and metric.key(t) in metrics
            ]
            cols += shown + (passes if shown else [])
        rows = []
        for arch in self.record["options"]["models"]:
            counts = self.record["counts"][arch]
            row = [
                arch,
                f"{counts['n_evaluated']}/{counts['n_images']}",
                f"{self.record['classification'][arch]['accuracy']:.3f}",
            ]
            for key, _label, is_pass in cols:
                s = metrics[key].get(arch)
                if is_pass and s is not None and "verdict" in s:  # randomisation@2 (PROTOCOL §7.1.1)
                    d = s["degenerate_share"]
                    row.append(f"{s['verdict']} (D {'n/a' if d is None else f'{d:.2f}'})")
                elif is_pass:
                    row.append("n/a" if s is None else ("yes" if s["pass"] else "no"))
                else:
                    row.append("n/a" if s is None else format_score(s["mean"], s["ci95"]))
            row.append(f"{self.record['cost'][arch]['seconds_per_image']:.3f}")
            rows.append(row)
        headers = ["arch", "evaluated", "acc", *(label for _, label, _ in cols), "s/img"]
        return tabulate(rows, headers=headers, disable_numparse=True)


def format_score(mean: float | None, ci: Sequence[float | None], digits: int = 3) -> str:
    """``mean [low, high]`` (``n/a`` for a missing mean; the mean alone without a CI)."""
    if mean is None:
        return "n/a"
    if ci[0] is None or ci[1] is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def method_record(method: Method) -> dict[str, Any]:
    """``record["method"]``: name, source, kind, the METADATA it declares, and the file's sha256 (file
    methods)."""
    meta = {k: v for k, v in method.metadata.items() if k not in ("name", "kind")}
    out = {"name": method.name, "source": method.source, "kind": method.kind, **meta}
    if method.sha256 is not None:
        out["sha256"] = method.sha256
    return out


def build_result(
    method: Method | dict[str, Any],
    runs: Sequence[FoldScores],
    *,
    options: dict[str, Any],
    dataset: dict[str, Any],
    environment: dict[str, Any],
    command: str | None = None,
) -> Result:
    """Assemble the full record from the per-(arch, fold) scores.

    Args:
        method: a loaded method, or its ``record["method"]`` section (e.g. from shard records).
        runs: the scores of every (arch, fold), in run order.
        options: ``record["options"]`` (:meth:`RunConfig.to_options`).
        dataset: ``record["dataset"]``, the dataset's provenance.
        environment: ``record["environment"]`` (:func:`hfus_xai_bench.runner.run_environment`).
        command: the command line that produced the result.
    """
    checkpoints: dict[str, dict[str, Any]] = {}
    for run in runs:
        checkpoints.setdefault(run.arch, {})[str(run.fold)] = run.checkpoint
    record = {
        "schema_version": SCHEMA_VERSION,
        "benchmark_version": BENCHMARK_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "method": dict(method) if isinstance(method, dict) else method_record(method),
        "options": options,
        "dataset": dataset,
        "checkpoints": checkpoints,
        **aggregate(runs),
        "environment": environment,
        "command": command,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "maps_file": None,
        "per_image": per_image_rows(runs),
    }
    for block in record["cost"].values():
        block.update(device=str(options.get("device")), precision=str(options.get("precision", "fp32")))
    record = plain_json(record)
    return Result(record)


SCHEMA_NAMES = ("result", "entry")


def schema_file(name: str = "result") -> dict[str, Any]:
    """A JSON schema file as shipped with the package (``schemas/<name>.schema.json``)."""
    if name not in SCHEMA_NAMES:
        raise HfusError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return shipped_schema(name)


def schema(name: str = "result") -> dict[str, Any]:
    """The JSON schema records (or leaderboard entries) are validated with: the shipped file, its
    ``metrics`` section generated from the metric registry (so a newly registered metric is part of it)."""
    out = schema_file(name)
    out["properties"]["metrics"] = registry.metrics_schema()
    return out


def write_schema_files(folder: str | Path | None = None) -> list[Path]:
    """Rewrite the ``metrics`` section of the shipped schema files from the registry (after adding a
    metric)."""
    base = (
        Path(folder)
        if folder is not None
        else Path(str(resources.files("hfus_xai_bench").joinpath("schemas")))
    )
    written = []
    for name in SCHEMA_NAMES:
        path = base / f"{name}.schema.json"
        path.write_text(json.dumps(schema(name), indent=1, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def require_record(value: Any, path: str | Path, entries: bool = False) -> None:
    """Raise HfusError unless ``value`` looks like a result record (or, with ``entries``, a leaderboard
    entry) at all; the schema then names the first wrong field of one that does."""
    if isinstance(value, dict) and {"schema_version", "method"} & value.keys():
        if "track" in value and not entries:
            raise HfusError(
                f"{path} is a leaderboard entry, not a result record: this command takes the "
                "<out>/<method>.json that `hfus-bench evaluate` writes"
            )
        return
    what = "a result record or a leaderboard entry" if entries else "a result record"
    raise HfusError(
        f"{path} is not {what} (neither `schema_version` nor `method`): `hfus-bench evaluate` writes records "
        "as <out>/<method>.json"
    )


def validate(record: dict[str, Any], source: str = "result", name: str = "result") -> None:
    """Raise HfusError naming the first field that breaks the schema."""
    check_schema(record, schema(name), source)
