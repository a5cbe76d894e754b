"""Submissions: :func:`submit` (prepare ``submissions/<method>/``) and :func:`verify_submission` (re-score one).

A submission folder holds ``method.py``, ``README.md``, ``result.json`` (the full record, per_image
included) and ``maps.npz`` (the uint8 m255 maps of the trained model, of every randomised copy
(PROTOCOL §7.1.1) and of the runner-up class (§9); its sha256 is in the record).

``verify`` re-scores the saved maps with the scoring core on the dataset revision the record names,
for every registry metric the record carries, and re-aggregates the record with the runner's own
:func:`results.aggregate`. What is exact and what is within a tolerance:

- exact: hashes (maps file, dataset content, checkpoint weights), counts (the randomised model's
  failures included), predictions and targets;
- exact (compared to ``MAP_ATOL`` = 1e-6 absolute; the recomputation is deterministic): the maps-only
  metrics (``needs="maps"``: Hit Rate, coverage, mask IoU, ``randomisation@1`` ρ and ρ_cross and its
  pass rule, re-scored from the saved maps, the randomised ones included) and everything aggregated from
  the per-image values;
- within ``MODEL_RTOL`` = 1e-4 relative (absolute below magnitude 1): the model-based metrics
  (``needs="model"``: ``confidence@1``, ``road@1``), re-computed from the saved maps through the
  checkpoint whose sha256 the record names, per batch of the runner's plan at the record's ``batch_size``
  through the runner's own batch scoring (``batches.score_model_metrics``; on the same machine and
  threads this reproduces them bitwise). Measured: ROAD
  probabilities differ by ≤ 6e-7 between forward batch sizes 7 / 64 / 512 and between 1 and 2 CPU
  threads; the imputation differs by ≤ ~2e-5 across machines; 1e-4 (absolute for probabilities) leaves
  a margin. With ``limit`` only the first N evaluated images of each (arch, fold) go through the model
  (CI uses this to stay fast); the other images keep their recorded values.
- ``rerun``: the method is run again (on the first ``limit`` test images per (arch, fold), default
  ``RERUN_DEFAULT_LIMIT``) on the model and on its randomised copy; each map must have ≥ 99 % identical
  m255 pixels or differ by at most 1 level (``maps_agree``; GPU backward passes are not bitwise
  reproducible).
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import HfusError
from .explainers.contract import AGREE_MAX_DIFF, AGREE_MIN_IDENTICAL, FAIL_EMPTY, maps_agree
from .hashing import sha256_file
from .metrics import registry

if TYPE_CHECKING:
    from .config import RunConfig
    from .results import FoldScores, Result

MAP_ATOL = 1e-6
MODEL_RTOL = 1e-4
RERUN_DEFAULT_LIMIT = 4
SUBMISSION_FILES = ("method.py", "README.md", "result.json", "maps.npz")


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_submission`: one line per check, failures name the field."""

    folder: Path
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.checks if not ok]

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, ok, detail))

    def render(self) -> str:
        lines = [f"verify {self.folder}"]
        lines += [
            f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}"
            for name, ok, detail in self.checks
        ]
        lines.append("PASSED" if self.ok else f"FAILED ({len(self.failures)} check(s))")
        return "\n".join(lines)


# ------------------------------------------------------------------------------- comparisons


def _close(a: Any, b: Any, rtol: float | None) -> bool:
    """Recorded ``a`` vs recomputed ``b`` (None = NaN)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    tol = MAP_ATOL if rtol is None else rtol * max(1.0, abs(float(b)))
    return abs(float(a) - float(b)) <= tol


def diff(
    recorded: Any, recomputed: Any, path: str, rtol: Callable[[str], float | None] = lambda p: None
) -> list[str]:
    """Every leaf where ``recorded`` and ``recomputed`` disagree, as ``path: recorded … recomputed …``."""
    if isinstance(recomputed, dict):
        if not isinstance(recorded, dict):
            return [f"{path}: recorded {recorded!r}, expected an object"]
        out = []
        for key in sorted(set(recomputed) | set(recorded)):
            sub = f"{path}/{key}"
            if key not in recorded or key not in recomputed:
                out.append(f"{sub}: present in only one of recorded/recomputed")
            else:
                out.extend(diff(recorded[key], recomputed[key], sub, rtol))
        return out
    if isinstance(recomputed, list):
        if not isinstance(recorded, list) or len(recorded) != len(recomputed):
            return [f"{path}: recorded {recorded!r}, recomputed {recomputed!r}"]
        return [
            m
            for i, (a, b) in enumerate(zip(recorded, recomputed, strict=True))
            for m in diff(a, b, f"{path}[{i}]", rtol)
        ]
    tol = rtol(path)
    if _close(recorded, recomputed, tol):
        return []
    what = f"{MAP_ATOL:g} absolute" if tol is None else f"{tol:g} relative"
    return [f"{path}: recorded {recorded!r}, recomputed {recomputed!r} (tolerance {what})"]


def _model_tol(model_values: set[str]) -> Callable[[str], float | None]:
    """Relative tolerance for per-image fields of model-based metrics, absolute elsewhere."""

    def tol(path: str) -> float | None:
        field_name = path.rsplit("/", 1)[-1].split("[", 1)[0]
        return MODEL_RTOL if field_name in model_values else None

    return tol


# ------------------------------------------------------------------------------- model access


def load_checkpoint_model(arch: str, fold: int, sha256: str | None, dataset: str, device: str) -> Any:
    """The reference model whose weights file has ``sha256`` (verified on load)."""
    from .models.checkpoints import list_checkpoints, load_model

    matches = [c for c in list_checkpoints() if c.sha256 == sha256 and c.arch == arch]
    if not matches:
        raise HfusError(
            f"no {arch} checkpoint with sha256 {sha256} is installed (fold {fold}, {dataset}); "
            "install the checkpoint the submission was made with, or pass --no-model"
        )
    model, _info = load_model(arch, dataset=dataset, fold=fold, checkpoint=matches[0], device=device)
    return model


# ------------------------------------------------------------------------------------ verify


def _groups(per_image: list[dict[str, Any]]) -> dict[tuple[str, int], list[tuple[int, dict[str, Any]]]]:
    groups: dict[tuple[str, int], list[tuple[int, dict[str, Any]]]] = {}
    for i, row in enumerate(per_image):
        groups.setdefault((row["arch"], int(row["fold"])), []).append((i, row))
    return groups


def _rows_to_float(rows: list[dict[str, Any]], key: str, shape: tuple[int, ...]) -> np.ndarray:
    out = np.full((len(rows), *shape), np.nan)
    for i, r in enumerate(rows):
        v = r.get(key)
        if v is not None:
            out[i] = np.array(
                [np.nan if x is None else x for x in np.ravel(np.array(v, dtype=object))], float
            ).reshape(shape)
    return out


def recorded_metrics(record: dict[str, Any]) -> tuple[list[registry.Metric], list[registry.Metric]]:
    """(registry metrics whose per-image values the record carries, registry metrics it lacks); a superseded
    metric (``randomisation@1``) the record does not carry is not lacking: new records never carry it."""
    first = record["per_image"][0] if record["per_image"] else {}
    have, lack = [], []
    for m in registry.METRICS.values():
        if all(v.name in first for v in m.values):
            have.append(m)
        elif m.superseded_by is None:
            lack.append(m)
    return have, lack


def _compare(
    where: str,
    first: int,
    sel: np.ndarray,
    recorded: dict[str, np.ndarray],
    fresh: dict[str, np.ndarray],
    rtol: float,
) -> list[str]:
    mismatches = []
    for key, values in fresh.items():
        name = key.rpartition("/")[2]  # the per_image column of "<metric id>/<value>"
        rec = recorded[key][sel]
        new = values[sel]
        off = ~((np.abs(rec - new) <= rtol * np.maximum(1.0, np.abs(new))) | (np.isnan(rec) & np.isnan(new)))
        if off.any():
            pos = np.argwhere(off)[0]
            mismatches.append(
                f"per_image[{first + sel[pos[0]]}].{name}: recorded {rec[tuple(pos)]!r}, "
                f"recomputed {new[tuple(pos)]!r} (tolerance {rtol:g} relative)"
            )
    return mismatches


def rescore(
    record: dict[str, Any],
    maps: dict[str, np.ndarray],
    ds: Any,
    report: VerifyReport,
    *,
    check_model: bool = True,
    limit: int | None = None,
    device: str = "auto",
) -> list[FoldScores]:
    """Re-score the saved maps (+ the dataset, + the model) with the scoring core; checks go to ``report``.

    Returns the per-(arch, fold) scores: maps-only metrics recomputed from the saved maps (exact; the
    randomised maps of §7.1 included), model-based metrics as recorded (after re-checking them through the
    model, per run batch as the runner scored them, on the first ``limit`` evaluated images; within
    :data:`MODEL_RTOL`).
    """
    import torch

    from .data.dataset import fold_arrays
    from .metrics.inputs import ScoringConfig, ScoringInputs
    from .results import FoldScores
    from .runner import model_input
    from .runtime import resolve_device
    from .scoring import score_fold

    options = record["options"]
    config = ScoringConfig.from_options(options)
    dev = resolve_device(device)
    have, _ = recorded_metrics(record)
    map_metrics = [m for m in have if m.needs == "maps"]
    model_metrics = [m for m in have if m.needs == "model"]
    batch_size = int(options.get("batch_size") or 16)
    runs = []
    for (arch, fold), indexed in _groups(record["per_image"]).items():
        where = f"{arch} fold {fold}"
        rows = [r for _, r in indexed]
        first = indexed[0][0]
        ids = [r["image_id"] for r in rows]
        key = f"{arch}__fold{fold}"
        if f"{key}__maps" not in maps or f"{key}__image_ids" not in maps:
            report.add(f"maps.npz/{key}", False, "missing from the maps file")
            continue
        m255 = np.asarray(maps[f"{key}__maps"])
        saved_ids = [str(s) for s in maps[f"{key}__image_ids"]]
        if saved_ids != ids or m255.shape[0] != len(ids) or m255.dtype != np.uint8:
            report.add(
                f"maps.npz/{key}__image_ids", False, "images or order differ from result.json per_image"
            )
            continue
        test = fold_arrays(ds, fold, "test")
        evidence = getattr(test, "evidence", None)
        data_extras = {n for n in ("evidence", "twins") if getattr(test, n, None) is not None}
        index = {image_id: i for i, image_id in enumerate(test.image_ids)}
        missing = [i for i in ids if i not in index]
        if missing:
            report.add(
                f"per_image[{first}].image_id",
                False,
                f"{len(missing)} image(s) not in test fold {fold}, e.g. {missing[0]}",
            )
            continue
        idx = np.array([index[i] for i in ids])
        labels = test.labels[idx].astype(np.int64)
        bad = np.flatnonzero(labels != np.array([r["label"] for r in rows]))
        if bad.size:
            report.add(f"per_image[{first + bad[0]}].label", False, f"dataset says {labels[bad[0]]}")
        failed = [r["failed"] for r in rows]
        ok = np.array([f is None for f in failed])
        peak = m255.reshape(len(ids), -1).max(1) > 0
        bad = np.flatnonzero(ok & ~peak)
        if bad.size:
            report.add(
                f"per_image[{first + bad[0]}].failed",
                False,
                "an evaluated image has an all-zero map (empty_map)",
            )
        preds = np.array([r["pred"] for r in rows], np.int64)
        targets = np.array([r["target"] for r in rows], np.int64)
        # PROTOCOL §7.1.1 and §9: every copy's maps and the runner-up maps, re-scored exactly like the other maps
        rand_failed, rand_maps, extras = _saved_extras(rows, maps, key, m255.shape)
        fold_map_metrics = [m for m in map_metrics if set(m.extras) <= set(extras) | data_extras]
        lacking: dict[str, list[str]] = {}
        for m in map_metrics:
            for name in sorted(set(m.extras) - set(extras) - data_extras):
                lacking.setdefault(_SAVED_AS.get(name, name), []).append(m.id)
        for array, metric_ids in lacking.items():
            report.add(
                f"maps.npz/{key}__{array}",
                False,
                f"the record has {', '.join(dict.fromkeys(metric_ids))} but the maps file lacks these maps (or the rows "
                "their failures); re-run with --save-maps",
            )
        if evidence is not None:
            extras["evidence"] = evidence[idx]
        inputs = ScoringInputs(
            m255=m255,
            slms=test.slms[idx],
            image_ids=ids,
            labels=labels,
            targets=targets,
            ok=ok,
            empty=np.array([f == FAIL_EMPTY for f in failed], bool),
            extras=extras,
        )
        values = score_fold(inputs, fold_map_metrics, config=config)
        kept = [m for m in have if m not in fold_map_metrics]  # model-based (+ unverifiable): recorded values
        recorded = {
            m.key(v): _rows_to_float(rows, v.name, v.dims(config.thresholds)) for m in kept for v in m.values
        }
        if check_model:
            sha = record["checkpoints"].get(arch, {}).get(str(fold), {}).get("sha256")
            try:
                model = load_checkpoint_model(arch, fold, sha, record["dataset"]["id"], str(dev))
            except HfusError as err:
                report.add(f"checkpoints/{arch}/{fold}/sha256", False, str(err))
                model = None
            if model is not None:
                if dev.type == "cpu":
                    model = model.to(memory_format=torch.channels_last)
                images = model_input(test.images[idx], dev)
                with torch.inference_mode():
                    new_preds = (
                        torch.cat(
                            [
                                model(images[s : s + batch_size]).argmax(1)
                                for s in range(0, len(ids), batch_size)
                            ]
                        )
                        .cpu()
                        .numpy()
                    )
                bad = np.flatnonzero(new_preds != preds)
                report.add(
                    f"{where}: predictions",
                    not bad.size,
                    f"per_image[{first + bad[0]}].pred: recorded {preds[bad[0]]}, model says {new_preds[bad[0]]}"
                    if bad.size
                    else f"{len(ids)} images",
                )
                expected_targets = new_preds if options["target"] == "pred" else labels
                bad = np.flatnonzero(expected_targets != targets)
                if bad.size:
                    report.add(
                        f"per_image[{first + bad[0]}].target", False, f"expected {expected_targets[bad[0]]}"
                    )
                n_sel, mismatches = _rescore_model(
                    model,
                    test,
                    idx,
                    (arch, fold, ids, labels, targets, m255, ok),
                    model_metrics,
                    config,
                    batch_size,
                    limit,
                    dev,
                    recorded,
                    first,
                )
                if n_sel and model_metrics:
                    names = ", ".join(m.id for m in model_metrics)
                    report.add(
                        f"{where}: {names} ({n_sel} images, within {MODEL_RTOL:g} relative)",
                        not mismatches,
                        "; ".join(mismatches[:3]),
                    )
        values.update(recorded)
        runs.append(
            FoldScores(
                arch=arch,
                fold=fold,
                checkpoint=record["checkpoints"].get(arch, {}).get(str(fold), {}),
                image_ids=ids,
                labels=labels,
                preds=preds,
                targets=targets,
                failed=failed,
                values=values,
                maps=m255,
                randomised_failed=rand_failed,
                randomised_maps=rand_maps,
                runner_up_failed=[r.get("runner_up_failed") for r in rows]
                if "m255_runner_up" in extras
                else None,
                runner_up=extras.get("runner_up"),
                runner_up_maps=extras.get("m255_runner_up"),
            )
        )
    return runs


#: the maps-file array (suffix) a runner-made metric input is kept in
_SAVED_AS = {
    "m255_randomised": "maps_randomised",
    "randomised_ok": "maps_randomised",
    "m255_runner_up": "maps_runner_up",
    "runner_up_ok": "maps_runner_up",
    "runner_up": "maps_runner_up",
}


def _saved_extras(
    rows: list[dict[str, Any]], maps: dict[str, np.ndarray], key: str, shape: tuple[int, ...]
) -> tuple[list[Any] | None, np.ndarray | None, dict[str, Any]]:
    """The runner-made metric inputs a maps file keeps: every copy's maps + their failures (per image a list of K
    reasons; records made before PROTOCOL §7.1.1: one reason, one copy) and the runner-up maps + failures."""
    from .runner import MAPS_RANDOMISED, MAPS_RUNNER_UP

    extras: dict[str, Any] = {}
    rand_failed = (
        [r.get("randomised_failed") for r in rows] if all("randomised_failed" in r for r in rows) else None
    )
    rand_maps = maps.get(f"{key}__{MAPS_RANDOMISED}")
    if rand_maps is not None and rand_failed is not None:
        rand_maps = np.asarray(rand_maps)
        per_copy = [f if isinstance(f, list) else [f] for f in rand_failed]
        stacked = rand_maps if rand_maps.ndim == 4 else rand_maps[:, None]
        if (
            stacked.shape[0] == shape[0]
            and stacked.shape[2:] == shape[1:]
            and all(len(f) == stacked.shape[1] for f in per_copy)
        ):
            extras["m255_randomised"] = stacked
            extras["randomised_ok"] = np.array([[r is None for r in f] for f in per_copy], bool)
        else:
            rand_maps = None
    else:
        rand_maps = None
    runner_maps = maps.get(f"{key}__{MAPS_RUNNER_UP}")
    if runner_maps is not None and all("runner_up" in r for r in rows):
        extras["m255_runner_up"] = np.asarray(runner_maps)
        extras["runner_up_ok"] = np.array([r.get("runner_up_failed") is None for r in rows], bool)
        extras["runner_up"] = np.array([r["runner_up"] for r in rows], np.int64)
    return rand_failed, rand_maps, extras


def _rescore_model(
    model: Any,
    test: Any,
    idx: np.ndarray,
    fold_data: tuple,
    model_metrics: list[registry.Metric],
    config: Any,
    batch_size: int,
    limit: int | None,
    dev: Any,
    recorded: dict[str, np.ndarray],
    first: int,
) -> tuple[int, list[str]]:
    """The model-based metrics re-scored per batch of the runner's plan (``plan_batches``) through the runner's
    batch scoring (``batches.score_model_metrics``), on the first ``limit`` evaluated images of the fold."""
    from .batches import FoldMeta, batch_inputs, score_model_metrics
    from .calls import PassCounter
    from .runner import model_input, plan_batches

    arch, fold, ids, labels, targets, m255, ok = fold_data
    keep = np.zeros(len(ids), bool)
    keep[np.flatnonzero(ok)[: limit if limit is not None else None]] = True
    if not keep.any() or not model_metrics:
        return 0, []
    meta = FoldMeta(
        arch=arch,
        fold=fold,
        checkpoint={},
        image_ids=ids,
        labels=labels,
        slms=test.slms[idx],
        evidence=None if getattr(test, "evidence", None) is None else test.evidence[idx],
    )
    twins = getattr(test, "twins", None)
    twins = None if twins is None else twins[idx]
    passes = PassCounter(dev)
    fresh = {m.key(v): np.full_like(recorded[m.key(v)], np.nan) for m in model_metrics for v in m.values}
    for batch in plan_batches({(arch, fold): len(ids)}, batch_size):
        sl = slice(batch.start, batch.stop)
        if not keep[sl].any():
            continue
        inputs = batch_inputs(
            meta,
            batch,
            m255[sl],
            keep[sl],
            targets[sl],
            {},
            model=model,
            images=model_input(test.images[idx[sl]], dev),
            twins=twins,
        )
        for k, v in score_model_metrics(inputs, model_metrics, config, passes).items():
            fresh[k][sl] = v
    sel = np.flatnonzero(keep)
    return int(sel.size), _compare(f"{arch} fold {fold}", first, sel, recorded, fresh, MODEL_RTOL)


def _first_problems(problems: list[str]) -> str:
    return "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")


def verify_submission(
    folder: str | Path,
    *,
    check_model: bool = True,
    limit: int | None = None,
    rerun: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> VerifyReport:
    """Check a submission folder: files, hashes, dataset revision, re-scored numbers (see the module doc)."""
    from .data.dataset import dataset_provenance, load_dataset
    from .results import Result, aggregate, per_image_rows

    folder = Path(folder)
    report = VerifyReport(folder)
    if not folder.is_dir():
        raise HfusError(f"submission folder not found: {folder}")
    missing = [f for f in SUBMISSION_FILES if not (folder / f).is_file()]
    if missing:
        raise HfusError(
            f"{folder} lacks {', '.join(missing)}; a submission holds {', '.join(SUBMISSION_FILES)} "
            "(`hfus-bench submit` writes them)"
        )
    record = Result.load(folder / "result.json").record
    report.add("result.json schema", True)

    maps_file = record["maps_file"]
    if maps_file is None:
        report.add(
            "maps_file",
            False,
            "the record names no maps file; re-run with --save-maps (hfus-bench submit does)",
        )
        return report
    actual = sha256_file(folder / "maps.npz")
    report.add(
        "maps_file.sha256",
        actual == maps_file["sha256"],
        "matches"
        if actual == maps_file["sha256"]
        else f"recorded {maps_file['sha256']}, maps.npz has {actual}",
    )
    if actual != maps_file["sha256"]:
        return report

    ds_rec = record["dataset"]
    try:
        ds = load_dataset(ds_rec["id"], revision=ds_rec["revision"])
        prov = dataset_provenance(ds)
    except HfusError as err:
        report.add(
            "dataset.revision", False, f"cannot load {ds_rec['id']} at revision {ds_rec['revision']}: {err}"
        )
        return report
    for key in ("revision", "sha256", "n_images"):
        same = prov.get(key) == ds_rec.get(key)
        why = f"recorded {ds_rec.get(key)!r}, loaded {prov.get(key)!r}"
        if key == "sha256" and not same:
            why += (
                "; the data here were generated (or imported) differently from the data the record was made on: "
                "`hfus-bench data info` shows this machine's content hash and whether it matches the golden one"
            )
        report.add(f"dataset.{key}", same, "" if same else why)
    if not all(ok for name, ok, _ in report.checks if name.startswith("dataset.")):
        return report

    have, lack = recorded_metrics(record)
    for m in lack:
        report.add(
            f"{m.id}: not in the record",
            not m.required,
            "recorded before this metric existed" if not m.required else "a required metric is missing",
        )
    with np.load(folder / "maps.npz", allow_pickle=False) as npz:
        maps = {k: npz[k] for k in npz.files}
    runs = rescore(record, maps, ds, report, check_model=check_model, limit=limit, device=device)
    if not runs:
        return report
    for run in runs:  # cost is measured, not recomputable: carry the recorded value through
        spi = record["cost"][run.arch]["seconds_per_image"] or 0.0
        fpi = record["cost"][run.arch]["forward_images_per_image"] or 0.0
        run.seconds, run.forward_images = spi * len(run.image_ids), fpi * len(run.image_ids)
    rows = per_image_rows(runs)
    model_values = {v.name for m in have if m.needs == "model" for v in m.values}
    problems = diff(record["per_image"], rows, "per_image", _model_tol(model_values))
    report.add("per_image values", not problems, _first_problems(problems))
    # aggregate the recorded model-based values (checked above) with the recomputed maps-only values
    agg = json.loads(json.dumps(aggregate(runs), default=float))
    for section in ("metrics", "classification", "counts"):
        problems = diff(record[section], agg[section], section)
        report.add(f"{section} (re-aggregated)", not problems, _first_problems(problems))
    if rerun:
        _rerun(
            folder, record, maps, report, RERUN_DEFAULT_LIMIT if limit is None else limit, device, progress
        )
    return report


def _rerun(
    folder: Path,
    record: dict[str, Any],
    maps: dict[str, np.ndarray],
    report: VerifyReport,
    limit: int,
    device: str,
    progress: bool,
) -> None:
    from .config import RunConfig
    from .runner import evaluate

    config = RunConfig.from_record(record, limit=limit, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(
            folder / "method.py", config, out=tmp, save_maps=True, figure=False, progress=progress
        )
        with np.load(Path(tmp) / result.record["maps_file"]["path"]) as npz:
            fresh = {k: npz[k] for k in npz.files}
    for key in sorted(k for k in fresh if k.endswith(("__maps", "__maps_randomised", "__maps_runner_up"))):
        stem = key.rsplit("__maps", 1)[0]
        ids = [str(s) for s in fresh[f"{stem}__image_ids"]]
        old_ids = {str(s): i for i, s in enumerate(maps.get(f"{stem}__image_ids", []))}
        if not all(i in old_ids for i in ids):
            report.add(f"rerun {stem}", False, "re-run images are not in the submitted maps")
            continue
        if key not in maps:
            older = key.endswith("__maps_randomised") and not any(
                "rho" in row or "rand2_rho" in row for row in record["per_image"][:1]
            )
            report.add(
                f"rerun {key}",
                older,
                "recorded before randomisation@1 existed: not compared"
                if older
                else "the submitted maps file lacks these maps",
            )
            continue
        what = {"__maps_randomised": "randomised-copy maps", "__maps_runner_up": "runner-up maps"}.get(
            key[len(stem) :], "maps"
        )
        old, new = np.asarray(maps[key])[[old_ids[i] for i in ids]], np.asarray(fresh[key])
        if old.shape != new.shape:
            legacy = key.endswith("__maps_randomised") and old.ndim == 3
            report.add(
                f"rerun {stem} ({what})",
                legacy,
                "recorded with PROTOCOL §7.1's one run-seed copy: not compared"
                if legacy
                else f"shape {old.shape} in the submission, {new.shape} re-run",
            )
            continue
        good, same, worst = maps_agree(old.reshape(-1, *old.shape[-2:]), new.reshape(-1, *new.shape[-2:]))
        report.add(
            f"rerun {stem} ({len(ids)} {what})",
            bool(good.all()),
            f"min identical pixels {same.min():.4f}, max level difference {int(worst.max())} "
            f"(need ≥ {AGREE_MIN_IDENTICAL:.0%} identical or ≤ {AGREE_MAX_DIFF} level)",
        )


# ------------------------------------------------------------------------------------ submit

README_TEMPLATE = """# {name}

<!-- filled by `hfus-bench submit`; complete every TODO before opening the pull request -->

**What it is:** TODO: one paragraph: the idea, the family (CAM / attribution / other), what it needs (gradients, forward passes).

| field | value |
|---|---|
| method name | `{name}` |
| kind | {kind} |
| authors | {authors} |
| paper / home page | {url} |
| licence of method.py | {licence} |
| hyper-parameters | `{hyperparameters}` |
| tuned on | {tuning_split} (must not be a test fold) |
| dataset | {dataset} |
| models / folds | {models} / {folds} |
| evaluated images | {n_evaluated} of {n_images} ({n_failed} failed) |
| HR1 (hit_rate@1) | {hr1} |
| cost | {cost} |
| produced by | `{command}` |

## Citation

```bibtex
{citation}
```

## Checklist

- [ ] No tuning on test folds (tuning split stated above).
- [ ] Licence of `method.py` stated above and compatible with redistribution in this repository.
- [ ] Cost reported (seconds per image and device are in result.json and above).
- [x] `hfus-bench check method.py` passed (run by `hfus-bench submit`).
- [ ] `hfus-bench verify submissions/{name}` passes locally.
"""


def _fmt_hr1(record: dict[str, Any]) -> str:
    parts = []
    for arch, s in record["metrics"][registry.HEADLINE].items():
        mean, (lo, hi) = s["mean"], s["ci95"]
        parts.append(
            f"{arch}: "
            + ("n/a" if mean is None else f"{mean:.3f}" + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]"))
        )
    return "; ".join(parts)


def fill_readme(record: dict[str, Any]) -> str:
    m, o, t = record["method"], record["options"], record["counts"]["total"]
    env = record["environment"]
    cost = "; ".join(
        f"{a}: {c['seconds_per_image']:.4f} s/img, {c['forward_images_per_image']:.1f} forward images/img"
        for a, c in record["cost"].items()
    )
    authors = m.get("authors")
    return README_TEMPLATE.format(
        name=m["name"],
        kind=m["kind"],
        authors=", ".join(authors) if isinstance(authors, list) else (authors or "TODO"),
        url=m.get("url") or "TODO",
        licence=m.get("licence") or "TODO",
        hyperparameters=json.dumps(m.get("hyperparameters") or {}, sort_keys=True),
        tuning_split=m.get("tuning_split") or "TODO",
        dataset=f"{record['dataset']['id']} @ {record['dataset']['revision']}",
        models=", ".join(o["models"]),
        folds=", ".join(map(str, o["folds"])),
        n_evaluated=t["n_evaluated"],
        n_images=t["n_images"],
        n_failed=t["n_failed"],
        hr1=_fmt_hr1(record),
        cost=f"{cost} on {env.get('device_name')} ({o['device']})",
        command=record["command"] or "",
        citation=(m.get("citation") or "TODO: BibTeX of the method").strip(),
    )


CHECKLIST = """Before opening the pull request (see CONTRIBUTING.md):
  [ ] no tuning on test folds (METADATA["tuning_split"] says which split you tuned on)
  [ ] licence of method.py stated (METADATA["licence"]) and in README.md
  [ ] cost reported (s/img and device are in result.json; say if a GPU was needed)
  [x] hfus-bench check passed
  [ ] complete the TODOs in {readme}
  [ ] hfus-bench verify {folder}
"""


def submit(
    method: str | Path,
    config: RunConfig | None = None,
    *,
    out: str | Path | None = None,
    progress: bool = True,
    command: str | None = None,
    **options: Any,
) -> tuple[Path, Result]:
    """Run the contract check and ``evaluate --save-maps`` on a method file and write ``submissions/<name>/``.

    ``config`` / ``options`` as for :func:`hfus_xai_bench.runner.evaluate`. ``command``: what the record
    names as its command (the CLI passes its argv; by default the equivalent ``hfus-bench submit`` line).
    Returns the folder and the result.
    """
    from .check import check_method
    from .config import RunConfig
    from .explainers.loader import load_file
    from .runner import evaluate

    if config is None:
        config = RunConfig.build(**options)
    elif options:
        config = config.replace(**options)
    file = Path(method)
    loaded = load_file(file)
    folder = Path(out) if out is not None else Path("submissions") / loaded.name
    if folder.exists() and any(folder.iterdir()):
        raise HfusError(f"{folder} already exists and is not empty; remove it or pass --out")
    check = check_method(loaded, arch=config.models[0], device="cpu")
    if not check.ok:
        failed = "; ".join(text for passed, text in check.lines if not passed)
        raise HfusError(f"`hfus-bench check {file}` failed ({failed}); fix the method first")
    if command is None:
        command = shlex.join(["hfus-bench", "submit", str(file), *config.cli_args()])
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(
            loaded, config, out=tmp, save_maps=True, figure=False, progress=progress, command=command
        )
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / result.record["maps_file"]["path"], folder / "maps.npz")
    result.record["maps_file"]["path"] = "maps.npz"
    result.save(folder / "result.json")
    shutil.copyfile(file, folder / "method.py")
    (folder / "README.md").write_text(fill_readme(result.record))
    return folder, result
