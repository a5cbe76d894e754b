"""Submissions: ``hfus-bench submit`` (prepare ``submissions/<method>/``) and ``hfus-bench verify`` (re-score it).

A submission folder holds ``method.py``, ``README.md``, ``result.json`` (the full record, per_image
included) and ``maps.npz`` (the uint8 m255 maps; its sha256 is in the record).

``verify`` re-scores the saved maps with the current metric code on the dataset revision the record
names and rebuilds the record's aggregates with the runner's own :func:`results.aggregate` on
reconstructed :class:`evaluate.FoldRun` s. Tolerances:

- hashes (maps file, dataset shards, checkpoint weights) and counts: exact;
- map-only numbers (Hit Rate, coverage, mask IoU) and everything aggregated from the per-image values:
  ``MAP_ATOL`` = 1e-6 absolute;
- model outputs (confidence s0 / s_keep / s_remove and per threshold), re-computed on CPU through the
  checkpoint whose sha256 the record names: ``CONF_RTOL`` = 1e-4 relative (absolute below magnitude 1);
  predictions: exact. With ``confidence_limit`` only the first N evaluated images of each (arch, fold)
  are re-run through the model (CI uses this to stay fast); the other images keep their recorded values.
- ``--rerun``: the method is run again on the first ``rerun_limit`` test images per (arch, fold); each
  map must have ≥ 99 % identical m255 pixels or differ by at most 1 level everywhere.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .constants import SYNTH_DATASET, THRESHOLDS
from .errors import HfusError
from .hashing import sha256_file

MAP_ATOL = 1e-6
CONF_RTOL = 1e-4
RERUN_MIN_IDENTICAL = 0.99
RERUN_MAX_DIFF = 1
SUBMISSION_FILES = ("method.py", "README.md", "result.json", "maps.npz")
_CONF_FIELDS = ("s0", "s_keep", "s_remove", "s_keep_t", "s_remove_t")


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
        lines += [f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}" for name, ok, detail in self.checks]
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


def diff(recorded: Any, recomputed: Any, path: str, rtol: Callable[[str], float | None] = lambda p: None) -> list[str]:
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
        return [m for i, (a, b) in enumerate(zip(recorded, recomputed, strict=True)) for m in diff(a, b, f"{path}[{i}]", rtol)]
    tol = rtol(path)
    if _close(recorded, recomputed, tol):
        return []
    what = f"{MAP_ATOL:g} absolute" if tol is None else f"{tol:g} relative"
    return [f"{path}: recorded {recorded!r}, recomputed {recomputed!r} (tolerance {what})"]


def _conf_tol(path: str) -> float | None:
    return CONF_RTOL if any(f"/{f}" in path for f in _CONF_FIELDS) else None


# ------------------------------------------------------------------------------- model access

def load_checkpoint_model(arch: str, fold: int, sha256: str | None, dataset: str, device: str) -> Any:
    """The reference model whose weights file has ``sha256`` (verified on load)."""
    from .models.checkpoints import list_checkpoints, load_model

    matches = [c for c in list_checkpoints() if c.sha256 == sha256 and c.arch == arch]
    if not matches:
        raise HfusError(f"no {arch} checkpoint with sha256 {sha256} is installed (fold {fold}, {dataset}); "
                        "install the checkpoint the submission was made with, or pass --no-model")
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
            out[i] = np.array([np.nan if x is None else x for x in np.ravel(np.array(v, dtype=object))], float).reshape(shape)
    return out


def rescore(
    record: dict[str, Any],
    maps: dict[str, np.ndarray],
    ds: Any,
    report: VerifyReport,
    *,
    check_model: bool = True,
    confidence_limit: int | None = None,
    device: str = "cpu",
) -> list[Any]:
    """Rebuild the runner's FoldRuns from the saved maps + the dataset (+ the model); checks go to ``report``."""
    import torch

    from .data import hub
    from .evaluate import FoldRun
    from .metrics import confidence_change, hit_rate, mask_iou, slm_coverage

    options, dataset_id = record["options"], record["dataset"]["id"]
    runs = []
    nt = len(THRESHOLDS)
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
            report.add(f"maps.npz/{key}__image_ids", False, "images or order differ from result.json per_image")
            continue
        test = hub.fold_arrays(ds, fold, "test")
        index = {image_id: i for i, image_id in enumerate(test.image_ids)}
        missing = [i for i in ids if i not in index]
        if missing:
            report.add(f"per_image[{first}].image_id", False, f"{len(missing)} image(s) not in test fold {fold}, e.g. {missing[0]}")
            continue
        idx = np.array([index[i] for i in ids])
        labels = test.labels[idx]
        bad = np.flatnonzero(labels != np.array([r["label"] for r in rows]))
        if bad.size:
            report.add(f"per_image[{first + bad[0]}].label", False, f"dataset says {labels[bad[0]]}")
        slms = test.slms[idx]
        failed = [r["failed"] for r in rows]
        ok = np.array([f is None for f in failed])
        peak = m255.reshape(len(ids), -1).max(1) > 0
        bad = np.flatnonzero(ok & ~peak)
        if bad.size:
            report.add(f"per_image[{first + bad[0]}].failed", False, "an evaluated image has an all-zero map (empty_map)")
        preds = np.array([r["pred"] for r in rows], np.int64)
        targets = np.array([r["target"] for r in rows], np.int64)
        nan = np.full(len(ids), np.nan)
        hr1, hr2, cov_top, cov_bg = nan.copy(), nan.copy(), nan.copy(), nan.copy()
        iou = np.full((len(ids), nt, 5), np.nan)
        if ok.any():
            hr1[ok], hr2[ok] = hit_rate(m255[ok], slms[ok])
            cov_top[ok], cov_bg[ok] = slm_coverage(m255[ok], slms[ok])
            iou[ok] = mask_iou(m255[ok], slms[ok], thresholds=THRESHOLDS)
        conf = {k: _rows_to_float(rows, k, (nt,) if k.endswith("_t") else ()) for k in _CONF_FIELDS}
        if check_model:
            sha = record["checkpoints"].get(arch, {}).get(str(fold), {}).get("sha256")
            try:
                model = load_checkpoint_model(arch, fold, sha, dataset_id, device)
            except HfusError as err:
                report.add(f"checkpoints/{arch}/{fold}/sha256", False, str(err))
                model = None
            if model is not None:
                images = torch.from_numpy(test.images[idx]).permute(0, 3, 1, 2).float().div_(255.0).to(device)
                with torch.inference_mode():
                    new_preds = torch.cat([model(images[s:s + 32]).argmax(1) for s in range(0, len(ids), 32)]).cpu().numpy()
                bad = np.flatnonzero(new_preds != preds)
                report.add(f"{where}: predictions", not bad.size,
                           f"per_image[{first + bad[0]}].pred: recorded {preds[bad[0]]}, model says {new_preds[bad[0]]}"
                           if bad.size else f"{len(ids)} images")
                expected_targets = new_preds if options["target"] == "pred" else labels
                bad = np.flatnonzero(expected_targets != targets)
                if bad.size:
                    report.add(f"per_image[{first + bad[0]}].target", False, f"expected {expected_targets[bad[0]]}")
                sel = np.flatnonzero(ok)[: confidence_limit if confidence_limit is not None else None]
                if sel.size:
                    res = confidence_change(model, images[sel], torch.from_numpy(m255[sel]).to(device),
                                            torch.from_numpy(targets[sel]).to(device), unit=options["confidence"],
                                            thresholds=THRESHOLDS)
                    new = {"s0": res.s0, "s_keep": res.s_keep, "s_remove": res.s_remove,
                           "s_keep_t": res.s_keep_t, "s_remove_t": res.s_remove_t}
                    mismatches = []
                    for k, values in new.items():
                        rec = conf[k][sel]
                        tol = CONF_RTOL * np.maximum(1.0, np.abs(values))
                        off = ~(np.abs(rec - values) <= tol)
                        if off.any():
                            pos = np.argwhere(off)[0]
                            mismatches.append(f"per_image[{first + sel[pos[0]]}].{k}: recorded {rec[tuple(pos)]!r}, "
                                              f"recomputed {values[tuple(pos)]!r} (tolerance {CONF_RTOL:g} relative)")
                    report.add(f"{where}: confidence ({sel.size} images)", not mismatches, "; ".join(mismatches[:3]))
        runs.append(FoldRun(
            arch=arch, fold=fold, checkpoint=record["checkpoints"].get(arch, {}).get(str(fold), {}),
            image_ids=ids, labels=labels.astype(np.int64), preds=preds, targets=targets, failed=failed,
            hr1=hr1, hr2=hr2, cov_top=cov_top, cov_bg=cov_bg, iou=iou,
            s0=conf["s0"], s_keep=conf["s_keep"], s_remove=conf["s_remove"],
            s_keep_t=conf["s_keep_t"], s_remove_t=conf["s_remove_t"],
            seconds=0.0, forward_images=0, maps=m255,
        ))
    return runs


def verify_submission(
    folder: str | Path,
    *,
    check_model: bool = True,
    confidence_limit: int | None = None,
    rerun: bool = False,
    rerun_limit: int = 4,
    device: str = "cpu",
    progress: bool = True,
) -> VerifyReport:
    """Check a submission folder: files, hashes, dataset revision, re-scored numbers (see the module doc)."""
    from .data import hub
    from .results import Result, aggregate, per_image_rows

    folder = Path(folder)
    report = VerifyReport(folder)
    if not folder.is_dir():
        raise HfusError(f"submission folder not found: {folder}")
    missing = [f for f in SUBMISSION_FILES if not (folder / f).is_file()]
    if missing:
        raise HfusError(f"{folder} lacks {', '.join(missing)}; a submission holds {', '.join(SUBMISSION_FILES)} "
                        "(`hfus-bench submit` writes them)")
    record = Result.load(folder / "result.json").record
    report.add("result.json schema", True)

    maps_file = record["maps_file"]
    if maps_file is None:
        report.add("maps_file", False, "the record names no maps file; re-run with --save-maps (hfus-bench submit does)")
        return report
    actual = sha256_file(folder / "maps.npz")
    report.add("maps_file.sha256", actual == maps_file["sha256"],
               "matches" if actual == maps_file["sha256"] else f"recorded {maps_file['sha256']}, maps.npz has {actual}")
    if actual != maps_file["sha256"]:
        return report

    ds_rec = record["dataset"]
    try:
        ds = hub.load_dataset(ds_rec["id"], revision=ds_rec["revision"])
        prov = hub.dataset_provenance(ds)
    except HfusError as err:
        report.add("dataset.revision", False, f"cannot load {ds_rec['id']} at revision {ds_rec['revision']}: {err}")
        return report
    for key in ("revision", "sha256", "n_images"):
        same = prov.get(key) == ds_rec.get(key)
        report.add(f"dataset.{key}", same, "" if same else f"recorded {ds_rec.get(key)!r}, loaded {prov.get(key)!r}")
    if not all(ok for name, ok, _ in report.checks if name.startswith("dataset.")):
        return report

    with np.load(folder / "maps.npz", allow_pickle=False) as npz:
        maps = {k: npz[k] for k in npz.files}
    runs = rescore(record, maps, ds, report, check_model=check_model, confidence_limit=confidence_limit, device=device)
    if not runs:
        return report
    for run in runs:  # cost is measured, not recomputable: carry the recorded value through
        spi = record["cost"][run.arch]["seconds_per_image"] or 0.0
        fpi = record["cost"][run.arch]["forward_images_per_image"] or 0.0
        run.seconds, run.forward_images = spi * len(run.image_ids), fpi * len(run.image_ids)
    rows = per_image_rows(runs)
    problems = diff(record["per_image"], rows, "per_image", _conf_tol)
    report.add("per_image values", not problems, "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
    # aggregate the recorded per-image model outputs (checked above) with the recomputed map metrics
    agg = json.loads(json.dumps(aggregate(runs), default=float))
    for section in ("metrics", "classification", "counts"):
        problems = diff(record[section], agg[section], section)
        report.add(f"{section} (re-aggregated)", not problems,
                   "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
    if rerun:
        _rerun(folder, record, maps, report, rerun_limit, device, progress)
    return report


def _rerun(folder: Path, record: dict[str, Any], maps: dict[str, np.ndarray], report: VerifyReport, limit: int,
           device: str, progress: bool) -> None:
    from .evaluate import evaluate

    o = record["options"]
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(folder / "method.py", dataset=record["dataset"]["id"], revision=record["dataset"]["revision"],
                          models=o["models"], folds=o["folds"], limit=limit, target=o["target"], sign=o["sign"],
                          confidence=o["confidence"], device=device, seed=o["seed"], out=tmp, save_maps_file=True,
                          figure=False, progress=progress)
        with np.load(Path(tmp) / result.record["maps_file"]["path"]) as npz:
            fresh = {k: npz[k] for k in npz.files}
    for key in sorted(k for k in fresh if k.endswith("__maps")):
        stem = key[: -len("__maps")]
        ids = [str(s) for s in fresh[f"{stem}__image_ids"]]
        old_ids = {str(s): i for i, s in enumerate(maps.get(f"{stem}__image_ids", []))}
        if not all(i in old_ids for i in ids):
            report.add(f"rerun {stem}", False, "re-run images are not in the submitted maps")
            continue
        old = maps[key][[old_ids[i] for i in ids]].astype(np.int16)
        new = fresh[key].astype(np.int16)
        d = np.abs(old - new).reshape(len(ids), -1)
        same = (d == 0).mean(1)
        good = (same >= RERUN_MIN_IDENTICAL) | (d.max(1) <= RERUN_MAX_DIFF)
        report.add(f"rerun {stem} ({len(ids)} maps)", bool(good.all()),
                   f"min identical pixels {same.min():.4f}, max level difference {int(d.max())} "
                   f"(need ≥ {RERUN_MIN_IDENTICAL:.0%} identical or ≤ {RERUN_MAX_DIFF} level)")


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
    for arch, s in record["metrics"]["hit_rate@1"].items():
        mean, (lo, hi) = s["mean"], s["ci95"]
        parts.append(f"{arch}: " + ("n/a" if mean is None else f"{mean:.3f}" + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]")))
    return "; ".join(parts)


def fill_readme(record: dict[str, Any]) -> str:
    m, o, t = record["method"], record["options"], record["counts"]["total"]
    env = record["environment"]
    cost = "; ".join(f"{a}: {c['seconds_per_image']:.4f} s/img, {c['forward_images_per_image']:.1f} forward images/img"
                     for a, c in record["cost"].items())
    authors = m.get("authors")
    return README_TEMPLATE.format(
        name=m["name"], kind=m["kind"],
        authors=", ".join(authors) if isinstance(authors, list) else (authors or "TODO"),
        url=m.get("url") or "TODO", licence=m.get("licence") or "TODO",
        hyperparameters=json.dumps(m.get("hyperparameters") or {}, sort_keys=True),
        tuning_split=m.get("tuning_split") or "TODO",
        dataset=f"{record['dataset']['id']} @ {record['dataset']['revision']}",
        models=", ".join(o["models"]), folds=", ".join(map(str, o["folds"])),
        n_evaluated=t["n_evaluated"], n_images=t["n_images"], n_failed=t["n_failed"],
        hr1=_fmt_hr1(record), cost=f"{cost} on {env.get('device_name')} ({o['device']})",
        command=record["command"] or "", citation=(m.get("citation") or "TODO: BibTeX of the method").strip(),
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
    *,
    out: str | Path | None = None,
    dataset: str = SYNTH_DATASET,
    models: str = "mobilenet_v2",
    folds: str = "0",
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool = True,
) -> Path:
    """Run ``hfus-bench check`` and ``evaluate --save-maps`` on a method file and write ``submissions/<name>/``."""
    from .check import check_method
    from .evaluate import evaluate
    from .explainers.loader import load_file

    file = Path(method)
    loaded = load_file(file)
    folder = Path(out) if out is not None else Path("submissions") / loaded.name
    if folder.exists() and any(folder.iterdir()):
        raise HfusError(f"{folder} already exists and is not empty; remove it or pass --out")
    check = check_method(loaded, device="cpu")
    if not check.ok:
        raise HfusError(f"`hfus-bench check {file}` failed; fix the method first:\n{check.render()}")
    if sys.argv[1:2] == ["submit"]:
        command = "hfus-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    else:
        command = (f"hfus-bench submit {shlex.quote(str(file))} --dataset {shlex.quote(dataset)} --models {models} "
                   f"--folds {folds} --device {device}")
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(loaded, dataset=dataset, models=models, folds=folds, device=device, batch_size=batch_size,
                          out=tmp, save_maps_file=True, figure=False, progress=progress, command=command)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / result.record["maps_file"]["path"], folder / "maps.npz")
    result.record["maps_file"]["path"] = "maps.npz"
    result.save(folder / "result.json")
    shutil.copyfile(file, folder / "method.py")
    (folder / "README.md").write_text(fill_readme(result.record))
    print(result.summary_table())
    print(CHECKLIST.format(readme=folder / "README.md", folder=folder))
    return folder
