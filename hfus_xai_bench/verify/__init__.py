"""``hfus-bench verify``: re-score a submission folder (:mod:`.submission` writes one), compare every number.

A submission folder holds ``method.py``, ``README.md``, ``result.json`` (the full record, per_image
included) and ``maps.npz`` (the uint8 m255 maps of the trained model, of every randomised copy
(PROTOCOL §7.1.1) and of the runner-up class (§9); its sha256 is in the record).

:func:`verify_submission` re-scores the saved maps with the scoring core on the dataset revision the
record names, for every registry metric the record carries, and re-aggregates the record with the
runner's own :func:`results.aggregate`. What is exact and what is within a tolerance:

- exact: hashes (maps file, dataset content, checkpoint weights), counts (the randomised copies'
  failures included), predictions and targets;
- exact (compared to ``MAP_ATOL`` = 1e-6 absolute; the recomputation is deterministic): the maps-only
  metrics (``needs="maps"``: Hit Rate, coverage, mask IoU, randomisation ρ, r, ρ_cross and the verdict,
  evidence hit and mass with their gains over the copies, class-sensitivity ρ; re-scored from the saved
  maps, the randomised and runner-up ones included) and everything aggregated from the per-image values;
- within ``MODEL_RTOL`` = 1e-4 relative (absolute below magnitude 1), or a metric's own ``verify_rtol``
  (ROAD: 1e-2): the model-based metrics (``needs="model"``: confidence, ROAD, counterfactual),
  re-computed from the saved maps through the checkpoint whose sha256 the record names.
  :func:`rescore_model` walks the runner's own batch plan (:func:`runner.plan_run` of the record's
  config) and scores each batch as :func:`batches.run_batch` does: the predict forward, then
  :func:`batches.batch_inputs` with the predict's logits and :func:`batches.score_model_metrics`; on
  the same machine and threads this reproduces them bitwise. The tolerances cover other machines
  (ROAD's probabilities move by up to 2.5e-3 across CPU kinds, its imputation not being bit-identical
  there; see docs/REPRODUCIBILITY.md). With ``limit`` only the first N evaluated images of each
  (arch, fold) are compared (CI uses this to stay fast); the other images keep their recorded values.
- ``rerun``: the method is run again (on the first ``limit`` test images per (arch, fold), default
  ``RERUN_DEFAULT_LIMIT``) on the model, on its randomised copies and for the runner-up class; each map
  must have ≥ 99 % identical m255 pixels or differ by at most 1 level (``maps_agree``; GPU backward passes
  are not bitwise reproducible).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import require_leaderboard_precision
from ..errors import HfusError
from ..hashing import sha256_file
from ..metrics import registry
from .report import MAP_ATOL, MODEL_RTOL, VerifyReport, diff, first_problems, model_tol
from .rerun import RERUN_DEFAULT_LIMIT, rerun_maps
from .scores import load_checkpoint_model, recorded_metrics, rescore, rescore_model

if TYPE_CHECKING:
    from ..results import FoldScores

#: the files of a submission folder (``hfus-bench submit`` writes them)
SUBMISSION_FILES = ("method.py", "README.md", "result.json", "maps.npz")

__all__ = [
    "MAP_ATOL",
    "MODEL_RTOL",
    "RERUN_DEFAULT_LIMIT",
    "SUBMISSION_FILES",
    "VerifyReport",
    "diff",
    "load_checkpoint_model",
    "recorded_metrics",
    "rescore",
    "rescore_model",
    "verify_submission",
]


def _open_record(folder: Path, report: VerifyReport) -> dict[str, Any] | None:
    """The record of a complete folder whose maps file matches its recorded sha256; None (reported) if not."""
    from ..results import Result

    if folder.is_file():
        raise HfusError(
            f"{folder} is a file: verify takes a submission folder (`hfus-bench submit` writes one; "
            "`hfus-bench verify submissions/<name>`)"
        )
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
    # submissions are fp32; a bf16 record is refused, not re-scored in fp32 (docs/REPRODUCIBILITY.md)
    require_leaderboard_precision(record["options"].get("precision", "fp32"), str(folder / "result.json"))
    maps_file = record["maps_file"]
    if maps_file is None:
        what = "the record names no maps file; re-run with --save-maps (hfus-bench submit does)"
        report.add("maps_file", False, what)
        return None
    actual = sha256_file(folder / "maps.npz")
    same = actual == maps_file["sha256"]
    detail = "matches" if same else f"recorded {maps_file['sha256']}, maps.npz has {actual}"
    report.add("maps_file.sha256", same, detail)
    expected, method_sha = record["method"].get("sha256"), sha256_file(folder / "method.py")
    what = "matches" if expected == method_sha else f"recorded {expected}, method.py has {method_sha}"
    report.add("method.py sha256 (the file that made the record)", expected == method_sha, what)
    return record if same else None


def _load_dataset(record: dict[str, Any], report: VerifyReport) -> Any:
    """The dataset at the record's revision if its revision, content hash and size match; None (reported)."""
    from ..data.dataset import dataset_provenance, load_dataset

    ds_rec = record["dataset"]
    try:
        ds = load_dataset(ds_rec["id"], revision=ds_rec["revision"])
        prov = dataset_provenance(ds)
    except HfusError as err:
        what = f"cannot load {ds_rec['id']} at revision {ds_rec['revision']}: {err}"
        report.add("dataset.revision", False, what)
        return None
    ok = True
    for key in ("revision", "sha256", "n_images"):
        same = prov.get(key) == ds_rec.get(key)
        why = f"recorded {ds_rec.get(key)!r}, loaded {prov.get(key)!r}"
        if key == "sha256" and not same:
            why += (
                "; the data here were generated (or imported) differently from the data the record was "
                "made on: `hfus-bench data info` shows this machine's content hash and whether it matches "
                "the golden one"
            )
        report.add(f"dataset.{key}", same, "" if same else why)
        ok = ok and same
    return ds if ok else None


def _compare_record(
    record: dict[str, Any], runs: list[FoldScores], have: list[registry.Metric], report: VerifyReport
) -> None:
    """The recorded per_image rows and aggregates against those of the re-scored runs."""
    from ..results import aggregate, per_image_rows

    model_values = {v.name: m.verify_rtol or MODEL_RTOL for m in have if m.needs == "model" for v in m.values}
    problems = diff(record["per_image"], per_image_rows(runs), "per_image", model_tol(model_values))
    report.add("per_image values", not problems, first_problems(problems))
    # the recorded model-based values (checked by rescore) with the recomputed maps-only values
    agg = json.loads(json.dumps(aggregate(runs), default=float))
    for section in ("metrics", "classification", "counts"):  # cost is measured, not recomputable
        problems = diff(record[section], agg[section], section)
        report.add(f"{section} (re-aggregated)", not problems, first_problems(problems))


def verify_submission(
    folder: str | Path,
    *,
    check_model: bool = True,
    limit: int | None = None,
    rerun: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> VerifyReport:
    """Check a submission folder: files, hashes, dataset revision, re-scored numbers (see the module doc).

    Args:
        folder: ``submissions/<method>``.
        check_model: also re-check predictions and the model-based metrics through the checkpoint.
        limit: images per (arch, fold) whose model-based metrics are compared (None: all); with
            ``rerun``, images re-run (None: :data:`RERUN_DEFAULT_LIMIT`).
        rerun: also run the method again and compare its maps with the saved ones.
        device: where the model runs (``auto``: CUDA when available).
        progress: progress bars of the re-run.

    Returns:
        The report (``ok``, ``failures``, ``render()``).
    """
    folder = Path(folder)
    report = VerifyReport(folder)
    record = _open_record(folder, report)
    if record is None:
        return report
    ds = _load_dataset(record, report)
    if ds is None:
        return report
    have, lack = recorded_metrics(record)
    for m in lack:
        why = "a required metric is missing" if m.required else "recorded before this metric existed"
        report.add(f"{m.id}: not in the record", not m.required, why)
    with np.load(folder / "maps.npz", allow_pickle=False) as npz:
        maps = {k: npz[k] for k in npz.files}
    runs = rescore(record, maps, ds, report, check_model=check_model, limit=limit, device=device)
    if not runs:
        return report
    _compare_record(record, runs, have, report)
    if rerun:
        n = RERUN_DEFAULT_LIMIT if limit is None else limit
        rerun_maps(folder, record, maps, report, n, device, progress)
    return report
