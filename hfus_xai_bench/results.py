"""The result record (PROTOCOL §6): aggregation over images and folds, provenance, schema, I/O.

Layout of ``record["metrics"]``: score key → arch → summary. Headline score keys (each with a
bootstrap 95 % CI, per fold, per class and correct/incorrect breakdowns):

- ``hit_rate@1``, ``hit_rate_binary@1``
- ``slm_coverage@1/top`` (higher is better), ``slm_coverage@1/bg`` (lower is better)
- ``confidence@1/dic`` (mean max(0, s0 − s_remove)), ``confidence@1/iic`` (% of images with s_keep > s0)

plus ``mask_iou@1`` (mean IoU per threshold × SLM level) and ``confidence@1/thresholds`` (DiC and
IiC per mask threshold). Dataset values are means over the evaluated images of one (arch, fold),
then the mean over folds; the CI resamples images within each fold (1000 resamples, seed 0).
"""

from __future__ import annotations

import json
import platform
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .constants import BENCHMARK_VERSION, CLASSES, PROTOCOL_VERSION, SLM_LEVELS, THRESHOLDS
from .errors import HfusError

if TYPE_CHECKING:
    import torch

    from .evaluate import FoldRun
    from .explainers.loader import Method

SCHEMA_VERSION = 1
N_RESAMPLES = 1000
CI_SEED = 0

#: score key -> (label for tables, direction)
HEADLINE: dict[str, tuple[str, str]] = {
    "hit_rate@1": ("HR1", "higher"),
    "hit_rate_binary@1": ("HR2", "higher"),
    "slm_coverage@1/top": ("cov top", "higher"),
    "slm_coverage@1/bg": ("cov bg", "lower"),
    "confidence@1/dic": ("DiC", "higher"),
    "confidence@1/iic": ("IiC %", "higher"),
}


def _f(value: float) -> float | None:
    """A JSON-safe float (NaN → None)."""
    value = float(value)
    return None if not np.isfinite(value) else value


def fold_bootstrap(per_fold: Sequence[np.ndarray], n_resamples: int = N_RESAMPLES, seed: int = CI_SEED) -> tuple[float, float]:
    """95 % CI of the mean of fold means, resampling images within each fold; NaNs excluded.

    With a single fold this is exactly :func:`hfus_xai_bench.metrics.bootstrap_ci`.
    """
    from .metrics import bootstrap_ci

    finite = [v[np.isfinite(v)] for v in per_fold]
    finite = [v for v in finite if v.size]
    if len(finite) <= 1:
        ci = bootstrap_ci(finite[0] if finite else np.array([]), n_resamples=n_resamples, seed=seed)
        return float(ci.low), float(ci.high)
    rng = np.random.default_rng(seed)
    means = np.mean([v[rng.integers(0, v.size, size=(n_resamples, v.size))].mean(axis=1) for v in finite], axis=0)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def summarize(runs: Sequence[FoldRun], values: Sequence[np.ndarray]) -> dict[str, Any]:
    """Summary of one score over the folds of one arch: mean of fold means, fold-stratified CI,
    per fold; per class and correct/incorrect over the pooled images (:func:`metrics.summarize`)."""
    from .metrics import summarize as summarize_images

    fold_means = {str(run.fold): summarize_images(v, n_resamples=1)["mean"] for run, v in zip(runs, values, strict=True)}
    finite = [m for m in fold_means.values() if m is not None]
    labels = np.concatenate([run.labels for run in runs])
    correct = np.concatenate([run.preds == run.labels for run in runs])
    pooled = summarize_images(np.concatenate(values), labels=labels, correct=correct, n_resamples=1)
    return {
        "mean": _f(np.mean(finite)) if finite else None,
        "ci95": [_f(x) for x in fold_bootstrap(values)],
        "per_fold": fold_means,
        "per_class": pooled["per_class"],
        "correct": pooled["correct"],
        "incorrect": pooled["incorrect"],
        "n": pooled["n"],
        "n_nan": pooled["n_nan"],
    }


def _headline_values(run: FoldRun) -> dict[str, np.ndarray]:
    from .metrics import drop_in_confidence, increase_in_confidence

    return {
        "hit_rate@1": run.hr1,
        "hit_rate_binary@1": run.hr2,
        "slm_coverage@1/top": run.cov_top,
        "slm_coverage@1/bg": run.cov_bg,
        "confidence@1/dic": drop_in_confidence(run.s0, run.s_remove),
        "confidence@1/iic": 100.0 * increase_in_confidence(run.s0, run.s_keep),
    }


def _nanmean0(stack: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, reported as null
        return np.nanmean(stack, axis=0)


def _threshold_tables(runs: Sequence[FoldRun]) -> tuple[dict, dict]:
    from .metrics import drop_in_confidence, increase_in_confidence

    iou_folds = [_nanmean0(run.iou) for run in runs]
    dic_folds = [_nanmean0(drop_in_confidence(run.s0, run.s_remove_t)) for run in runs]
    iic_folds = [_nanmean0(100.0 * increase_in_confidence(run.s0, run.s_keep_t)) for run in runs]
    iou = {
        "thresholds": list(THRESHOLDS),
        "levels": list(SLM_LEVELS),
        "mean": [[_f(x) for x in row] for row in _nanmean0(np.stack(iou_folds))],
        "n_nan": [[int(x) for x in row] for row in sum((~np.isfinite(run.iou)).sum(0) for run in runs)],
    }
    conf = {
        "thresholds": list(THRESHOLDS),
        "dic": [_f(x) for x in _nanmean0(np.stack(dic_folds))],
        "iic": [_f(x) for x in _nanmean0(np.stack(iic_folds))],
    }
    return iou, conf


def _classification(runs: Sequence[FoldRun]) -> dict[str, Any]:
    from .metrics import classification_report

    def report(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
        rep = classification_report(y, p, num_classes=len(CLASSES))
        return {k: _f(rep[k]) for k in ("accuracy", "precision", "recall", "f1")}

    per_fold = {str(run.fold): report(run.labels, run.preds) for run in runs}
    keys = ("accuracy", "precision", "recall", "f1")
    summary = {k: _f(np.mean([v[k] for v in per_fold.values()])) for k in keys}
    return {**summary, "per_fold": per_fold}


def _counts(runs: Sequence[FoldRun]) -> dict[str, Any]:
    reasons = [r for run in runs for r in run.failed if r is not None]
    kinds = Counter(r.split(":", 1)[0] for r in reasons)
    examples: dict[str, str] = {}
    for r in reasons:
        examples.setdefault(r.split(":", 1)[0], r)
    n_images = sum(len(run.failed) for run in runs)
    return {
        "n_images": n_images,
        "n_evaluated": n_images - len(reasons),
        "n_failed": len(reasons),
        "failures": dict(sorted(kinds.items())),
        "failure_examples": examples,
    }


def _package_version(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware that produced a result."""
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {
        "hfus_xai_bench": BENCHMARK_VERSION,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "grad_cam": _package_version("grad-cam"),
        "captum": _package_version("captum"),
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
    }


def per_image_rows(runs: Sequence[FoldRun]) -> list[dict[str, Any]]:
    """One row per image: ids, classes, failure reason and every per-image value."""
    rows = []
    for run in runs:
        for i, image_id in enumerate(run.image_ids):
            rows.append(
                {
                    "arch": run.arch,
                    "fold": run.fold,
                    "image_id": image_id,
                    "label": int(run.labels[i]),
                    "pred": int(run.preds[i]),
                    "target": int(run.targets[i]),
                    "failed": run.failed[i],
                    "hr1": _f(run.hr1[i]),
                    "hr2": _f(run.hr2[i]),
                    "cov_top": _f(run.cov_top[i]),
                    "cov_bg": _f(run.cov_bg[i]),
                    "s0": _f(run.s0[i]),
                    "s_keep": _f(run.s_keep[i]),
                    "s_remove": _f(run.s_remove[i]),
                    "s_keep_t": [_f(x) for x in run.s_keep_t[i]],
                    "s_remove_t": [_f(x) for x in run.s_remove_t[i]],
                    "iou": [[_f(x) for x in row] for row in run.iou[i]],
                }
            )
    return rows


def aggregate(runs: Sequence[FoldRun]) -> dict[str, Any]:
    """``metrics``, ``classification``, ``counts`` and ``cost`` sections, per arch."""
    by_arch: dict[str, list[FoldRun]] = {}
    for run in runs:
        by_arch.setdefault(run.arch, []).append(run)
    metrics: dict[str, dict[str, Any]] = {key: {} for key in HEADLINE}
    metrics["mask_iou@1"], metrics["confidence@1/thresholds"] = {}, {}
    classification, counts, cost = {}, {}, {}
    for arch, arch_runs in by_arch.items():
        values = [_headline_values(run) for run in arch_runs]
        for key in HEADLINE:
            metrics[key][arch] = summarize(arch_runs, [v[key] for v in values])
        metrics["mask_iou@1"][arch], metrics["confidence@1/thresholds"][arch] = _threshold_tables(arch_runs)
        classification[arch] = _classification(arch_runs)
        counts[arch] = _counts(arch_runs)
        n = sum(len(run.image_ids) for run in arch_runs)
        cost[arch] = {
            "seconds_per_image": _f(sum(run.seconds for run in arch_runs) / n),
            "forward_images_per_image": _f(sum(run.forward_images for run in arch_runs) / n),
        }
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
        if not path.is_file():
            raise HfusError(f"result file not found: {path}")
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise HfusError(f"{path} is not valid JSON: {err}") from err
        validate(record, source=str(path))
        return cls(record)

    def headline(self, key: str = "hit_rate@1", arch: str | None = None) -> float | None:
        """The mean of a headline score (first arch if none is given)."""
        per_arch = self.record["metrics"][key]
        return per_arch[arch or next(iter(per_arch))]["mean"]

    def summary_table(self) -> str:
        """A readable table: one row per arch with the headline scores, CIs, counts and cost."""
        from tabulate import tabulate

        rows = []
        for arch in self.record["options"]["models"]:
            counts = self.record["counts"][arch]
            row = [arch, f"{counts['n_evaluated']}/{counts['n_images']}", f"{self.record['classification'][arch]['accuracy']:.3f}"]
            for key in HEADLINE:
                s = self.record["metrics"][key][arch]
                row.append(_fmt(s["mean"], s["ci95"]))
            row.append(f"{self.record['cost'][arch]['seconds_per_image']:.3f}")
            rows.append(row)
        headers = ["arch", "evaluated", "acc", *(label for label, _ in HEADLINE.values()), "s/img"]
        return tabulate(rows, headers=headers, disable_numparse=True)


def _fmt(mean: float | None, ci: Sequence[float | None]) -> str:
    if mean is None:
        return "n/a"
    if ci[0] is None or ci[1] is None:
        return f"{mean:.3f}"
    return f"{mean:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def build_result(
    method: Method,
    runs: Sequence[FoldRun],
    *,
    options: dict[str, Any],
    dataset: dict[str, Any],
    device: torch.device,
    command: str | None = None,
) -> Result:
    """Assemble the full record from the per-(arch, fold) runs."""
    meta = {k: v for k, v in method.metadata.items() if k != "name"}
    checkpoints: dict[str, dict[str, Any]] = {}
    for run in runs:
        checkpoints.setdefault(run.arch, {})[str(run.fold)] = run.checkpoint
    record = {
        "schema_version": SCHEMA_VERSION,
        "benchmark_version": BENCHMARK_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "method": {"name": method.name, "source": method.source, "kind": method.kind, **meta},
        "options": options,
        "dataset": dataset,
        "checkpoints": checkpoints,
        **aggregate(runs),
        "environment": environment(device),
        "command": command,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "maps_file": None,
        "per_image": per_image_rows(runs),
    }
    record = json.loads(json.dumps(record, default=_json_default))
    return Result(record)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def schema(name: str = "result") -> dict[str, Any]:
    """A JSON schema shipped with the package (``schemas/<name>.schema.json``)."""
    text = resources.files("hfus_xai_bench").joinpath("schemas", f"{name}.schema.json").read_text()
    return json.loads(text)


def validate(record: dict[str, Any], source: str = "result", name: str = "result") -> None:
    """Raise HfusError naming the first field that breaks the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema(name))
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise HfusError(f"{source}: invalid at {where}: {err.message}")
