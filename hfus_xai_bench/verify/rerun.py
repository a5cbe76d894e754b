"""``verify --rerun``: run a submission's method again and compare its maps with the saved ones."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import RERUN_DEFAULT_LIMIT
from ..explainers.contract import AGREE_MAX_DIFF, AGREE_MIN_IDENTICAL, maps_agree
from .report import VerifyReport

__all__ = ["RERUN_DEFAULT_LIMIT", "rerun_maps"]

_RERUN_ARRAYS = {
    "__maps": "maps",
    "__maps_randomised": "randomised-copy maps",
    "__maps_runner_up": "runner-up maps",
}


def rerun_maps(
    folder: Path,
    record: dict[str, Any],
    maps: dict[str, np.ndarray],
    report: VerifyReport,
    limit: int,
    device: str,
    progress: bool,
) -> None:
    """Run ``method.py`` again on the first ``limit`` images per (arch, fold); compare every map array.

    Args:
        folder: the submission folder.
        record: its result record (the run's config is read from it).
        maps: the arrays of its maps file.
        report: one check per re-run map array goes here (``maps_agree``).
        limit: images per (arch, fold) re-run.
        device: where the method runs.
        progress: progress bars.
    """
    from ..config import RunConfig
    from ..runner import evaluate

    config = RunConfig.from_record(record, limit=limit, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(
            folder / "method.py", config, out=tmp, save_maps=True, figure=False, progress=progress
        )
        with np.load(Path(tmp) / result.record["maps_file"]["path"]) as npz:
            fresh = {k: npz[k] for k in npz.files}
    for key in sorted(k for k in fresh if k.endswith(tuple(_RERUN_ARRAYS))):
        _compare_rerun(key, record, maps, fresh, report)


def _compare_rerun(
    key: str,
    record: dict[str, Any],
    maps: dict[str, np.ndarray],
    fresh: dict[str, np.ndarray],
    report: VerifyReport,
) -> None:
    """One re-run map array (``<arch>__fold<k>__maps…``) against the submitted one (``maps_agree``)."""
    stem = key.rsplit("__maps", 1)[0]
    ids = [str(s) for s in fresh[f"{stem}__image_ids"]]
    old_ids = {str(s): i for i, s in enumerate(maps.get(f"{stem}__image_ids", []))}
    if not all(i in old_ids for i in ids):
        report.add(f"rerun {stem}", False, "re-run images are not in the submitted maps")
        return
    randomised = key.endswith("__maps_randomised")
    if key not in maps:
        older = randomised and not any("rho" in row or "rand2_rho" in row for row in record["per_image"][:1])
        why = "the submitted maps file lacks these maps"
        report.add(
            f"rerun {key}", older, "recorded before randomisation@1 existed: not compared" if older else why
        )
        return
    what = _RERUN_ARRAYS[key[len(stem) :]]
    old, new = np.asarray(maps[key])[[old_ids[i] for i in ids]], np.asarray(fresh[key])
    if old.shape != new.shape:
        legacy = randomised and old.ndim == 3
        why = f"shape {old.shape} in the submission, {new.shape} re-run"
        legacy_why = "recorded with PROTOCOL §7.1's one run-seed copy: not compared"
        report.add(f"rerun {stem} ({what})", legacy, legacy_why if legacy else why)
        return
    good, same, worst = maps_agree(old.reshape(-1, *old.shape[-2:]), new.reshape(-1, *new.shape[-2:]))
    report.add(
        f"rerun {stem} ({len(ids)} {what})",
        bool(good.all()),
        f"min identical pixels {same.min():.4f}, max level difference {int(worst.max())} "
        f"(need ≥ {AGREE_MIN_IDENTICAL:.0%} identical or ≤ {AGREE_MAX_DIFF} level)",
    )
