"""Re-score a record's saved maps (and, through its checkpoint, its model-based metrics): :func:`rescore`.

Each (arch, fold) of the record is matched to its saved maps and test images; its maps-only metrics are
re-scored from the saved maps by the scoring core, and its model-based metrics by :func:`rescore_model`
through the runner's own batch plan and batch scoring (see :mod:`hfus_xai_bench.verify`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import HfusError
from ..explainers.contract import FAIL_EMPTY
from ..jsonio import from_json_numbers
from ..metrics import registry
from .report import MODEL_RTOL, VerifyReport, mismatches

if TYPE_CHECKING:
    import torch

    from ..batches import Batch
    from ..config import RunConfig
    from ..results import FoldScores

__all__ = ["load_checkpoint_model", "recorded_metrics", "rescore", "rescore_model"]


# ------------------------------------------------------------------------------- model access


def load_checkpoint_model(arch: str, fold: int, sha256: str | None, dataset: str, device: str) -> Any:
    """The reference model whose weights file has ``sha256`` (verified on load).

    Args:
        arch: the architecture of the record.
        fold: its fold.
        sha256: the checkpoint's sha256 as the record names it.
        dataset: the dataset id (for the message and the lookup).
        device: where to load it.

    Returns:
        The model in eval mode; HfusError when no installed checkpoint has that sha256.
    """
    from ..models.checkpoints import is_available, list_checkpoints, load_model, user_checkpoint_dir

    matches = [c for c in list_checkpoints() if c.sha256 == sha256 and c.arch == arch]
    if not matches:
        raise HfusError(
            f"no registered or cached {arch} checkpoint has sha256 {sha256} (fold {fold}, {dataset}): put "
            f"the weights the record was made with and their card into {user_checkpoint_dir()} (`hfus-bench "
            "models` lists what is here), or pass --no-model"
        )
    # a registered checkpoint whose weights are not here says where to get them or how to make them
    entry = min(matches, key=lambda c: not is_available(c))
    model, _info = load_model(arch, dataset=dataset, fold=fold, checkpoint=entry, device=device)
    return model


# ------------------------------------------------------------------------------- one (arch, fold)


def recorded_metrics(record: dict[str, Any]) -> tuple[list[registry.Metric], list[registry.Metric]]:
    """(registry metrics whose per-image values the record carries, registry metrics it lacks).

    A superseded metric (``randomisation@1``) the record does not carry is not lacking: new records never
    carry it.
    """
    first = record["per_image"][0] if record["per_image"] else {}
    have, lack = [], []
    for m in registry.METRICS.values():
        if all(v.name in first for v in m.values):
            have.append(m)
        elif m.superseded_by is None:
            lack.append(m)
    return have, lack


@dataclass
class _Fold:
    """One (arch, fold) of the record: its rows, its saved maps and its test images in the dataset."""

    arch: str
    fold: int
    first: int  # the index of its first row in record["per_image"]
    rows: list[dict[str, Any]]
    m255: np.ndarray
    test: Any  # the fold's test split (data.dataset.fold_arrays)
    idx: np.ndarray  # each row's position in ``test``
    labels: np.ndarray
    #: the runner-made inputs read from the maps file (copies, runner-up) and the copies' failures and maps
    extras: dict[str, Any] = field(default_factory=dict)
    rand_failed: list[Any] | None = None
    rand_maps: np.ndarray | None = None

    @property
    def failed(self) -> list[str | None]:
        return [r["failed"] for r in self.rows]

    @property
    def ok(self) -> np.ndarray:
        return np.array([r["failed"] is None for r in self.rows], bool)

    @property
    def preds(self) -> np.ndarray:
        return np.array([r["pred"] for r in self.rows], np.int64)

    @property
    def targets(self) -> np.ndarray:
        return np.array([r["target"] for r in self.rows], np.int64)

    @property
    def key(self) -> str:
        return f"{self.arch}__fold{self.fold}"

    @property
    def ids(self) -> list[str]:
        return [r["image_id"] for r in self.rows]


def _groups(per_image: list[dict[str, Any]]) -> dict[tuple[str, int], list[tuple[int, dict[str, Any]]]]:
    groups: dict[tuple[str, int], list[tuple[int, dict[str, Any]]]] = {}
    for i, row in enumerate(per_image):
        groups.setdefault((row["arch"], int(row["fold"])), []).append((i, row))
    return groups


def _rows_to_float(rows: list[dict[str, Any]], key: str, shape: tuple[int, ...]) -> np.ndarray:
    out = np.full((len(rows), *shape), np.nan)
    for i, r in enumerate(rows):
        if r.get(key) is not None:
            out[i] = from_json_numbers(r[key]).reshape(shape)
    return out


def _load_fold(
    arch: str,
    fold: int,
    indexed: list[tuple[int, dict[str, Any]]],
    maps: dict[str, np.ndarray],
    ds: Any,
    report: VerifyReport,
) -> _Fold | None:
    """The rows of (arch, fold) matched to their saved maps and test images; None (reported) if they do not
    match. Labels and empty maps are checked here."""
    from ..data.dataset import fold_arrays

    first, rows = indexed[0][0], [r for _, r in indexed]
    ids = [r["image_id"] for r in rows]
    key = f"{arch}__fold{fold}"
    if f"{key}__maps" not in maps or f"{key}__image_ids" not in maps:
        report.add(f"maps.npz/{key}", False, "missing from the maps file")
        return None
    m255 = np.asarray(maps[f"{key}__maps"])
    saved_ids = [str(s) for s in maps[f"{key}__image_ids"]]
    if saved_ids != ids or m255.shape[0] != len(ids) or m255.dtype != np.uint8:
        report.add(f"maps.npz/{key}__image_ids", False, "images or order differ from result.json per_image")
        return None
    test = fold_arrays(ds, fold, "test")
    index = {image_id: i for i, image_id in enumerate(test.image_ids)}
    missing = [i for i in ids if i not in index]
    if missing:
        what = f"{len(missing)} image(s) not in test fold {fold}, e.g. {missing[0]}"
        report.add(f"per_image[{first}].image_id", False, what)
        return None
    idx = np.array([index[i] for i in ids])
    f = _Fold(arch, fold, first, rows, m255, test, idx, test.labels[idx].astype(np.int64))
    bad = np.flatnonzero(f.labels != np.array([r["label"] for r in rows]))
    if bad.size:
        report.add(f"per_image[{first + bad[0]}].label", False, f"dataset says {f.labels[bad[0]]}")
    bad = np.flatnonzero(f.ok & ~(m255.reshape(len(ids), -1).max(1) > 0))
    if bad.size:
        what = "an evaluated image has an all-zero map (empty_map)"
        report.add(f"per_image[{first + bad[0]}].failed", False, what)
    return f


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
    """The runner-made metric inputs a maps file keeps: every copy's maps + their failures (per image a list
    of K reasons; records made before PROTOCOL §7.1.1: one reason, one copy) and the runner-up maps +
    failures. Returns (the copies' failures, their maps, the metric inputs)."""
    from ..runner import MAPS_RANDOMISED, MAPS_RUNNER_UP

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


def _report_lacking(key: str, metrics: list[registry.Metric], have: set[str], report: VerifyReport) -> None:
    """A failure per maps-file array that a recorded maps-only metric needs and the file lacks."""
    lacking: dict[str, list[str]] = {}
    for m in metrics:
        for name in sorted(set(m.extras) - have):
            lacking.setdefault(_SAVED_AS.get(name, name), []).append(m.id)
    for array, metric_ids in lacking.items():
        report.add(
            f"maps.npz/{key}__{array}",
            False,
            f"the record has {', '.join(dict.fromkeys(metric_ids))} but the maps file lacks these maps "
            "(or the rows their failures); re-run with --save-maps",
        )


def _score_maps(
    f: _Fold, maps: dict[str, np.ndarray], metrics: list[registry.Metric], config: Any, report: VerifyReport
) -> tuple[dict[str, np.ndarray], list[registry.Metric]]:
    """The maps-only metrics re-scored from the saved maps (every copy's and the runner-up maps included,
    PROTOCOL §7.1.1 and §9; kept in ``f``). Returns (values, the metrics scored)."""
    from ..batches import DATA_EXTRAS
    from ..metrics.inputs import ScoringInputs
    from ..scoring import score_fold

    f.rand_failed, f.rand_maps, f.extras = _saved_extras(f.rows, maps, f.key, f.m255.shape)
    available = set(f.extras) | {n for n in DATA_EXTRAS if getattr(f.test, n, None) is not None}
    scored = [m for m in metrics if set(m.extras) <= available]
    _report_lacking(f.key, metrics, available, report)
    if getattr(f.test, "evidence", None) is not None:
        f.extras["evidence"] = f.test.evidence[f.idx]
    inputs = ScoringInputs(
        m255=f.m255,
        slms=f.test.slms[f.idx],
        image_ids=f.ids,
        labels=f.labels,
        targets=f.targets,
        ok=f.ok,
        empty=np.array([r == FAIL_EMPTY for r in f.failed], bool),
        extras=f.extras,
    )
    return score_fold(inputs, scored, config=config), scored


# ------------------------------------------------------------------------------- model-based metrics


def rescore_model(
    f: _Fold,
    model: torch.nn.Module,
    batches: list[Batch],
    metrics: list[registry.Metric],
    run_config: RunConfig,
    keep: np.ndarray,
    device: torch.device,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every batch of the runner's plan of (arch, fold), scored as :func:`batches.run_batch` scores it.

    Per batch: the predict forward (its logits are the batch's predictions and counterfactual@1's input),
    then :func:`batches.batch_inputs` and :func:`batches.score_model_metrics` (the runner's batch scoring),
    on the saved maps and the recorded targets; rows outside ``keep`` are not scored.

    Args:
        f: the (arch, fold) as :func:`rescore` loaded it.
        model: its checkpoint, on ``device``.
        batches: the runner's batches of (arch, fold) (:func:`runner.plan_run`), covering every row.
        metrics: the model-based metrics to score.
        run_config: the record's config (``RunConfig.from_record``).
        keep: (N,) bool, the rows to score.
        device: where the model is.

    Returns:
        (the model's predictions (N,), ``{"<metric id>/<value>": (N, ...) array}``; NaN outside ``keep``).
    """
    import torch

    from ..batches import FoldMeta, batch_inputs, model_input, score_model_metrics, scoring_config
    from ..calls import PassCounter

    meta = FoldMeta(
        arch=f.arch,
        fold=f.fold,
        checkpoint={},
        image_ids=f.ids,
        labels=f.labels,
        slms=f.test.slms[f.idx],
        evidence=None if getattr(f.test, "evidence", None) is None else f.test.evidence[f.idx],
    )
    twins = None if getattr(f.test, "twins", None) is None else f.test.twins[f.idx]
    config, passes = scoring_config(run_config), PassCounter(device)
    preds = np.empty(len(f.rows), np.int64)
    dims = (config.thresholds, config.randomisations)
    # a metric whose inputs are absent stays NaN (score_model_metrics skips it): unavailable, never a value
    fresh = {m.key(v): np.full((len(f.rows), *v.dims(*dims)), np.nan) for m in metrics for v in m.values}
    for batch in batches:
        sl = slice(batch.start, batch.stop)
        x = model_input(f.test.images[f.idx[sl]], device)
        with torch.inference_mode():
            logits = model(x)
        preds[sl] = logits.argmax(1).cpu().numpy()
        if not keep[sl].any():
            continue
        extras = {"logits": logits}
        inputs = batch_inputs(
            meta, batch, f.m255[sl], keep[sl], f.targets[sl], extras, model=model, images=x, twins=twins
        )
        for key, values in score_model_metrics(inputs, metrics, config, passes).items():
            fresh[key][sl] = values
    return preds, fresh


def _check_model(
    f: _Fold,
    record: dict[str, Any],
    batches: list[Batch],
    metrics: list[registry.Metric],
    recorded: dict[str, np.ndarray],
    run_config: RunConfig,
    limit: int | None,
    device: torch.device,
    report: VerifyReport,
) -> None:
    """Predictions, targets and the model-based metrics of (arch, fold) through the recorded checkpoint."""
    import torch

    where = f"{f.arch} fold {f.fold}"
    if sum(b.stop - b.start for b in batches) != len(f.rows):
        planned = sum(b.stop - b.start for b in batches)
        report.add(f"{where}: images", False, f"per_image has {len(f.rows)}, the record's options {planned}")
        return
    sha = record["checkpoints"].get(f.arch, {}).get(str(f.fold), {}).get("sha256")
    try:
        model = load_checkpoint_model(f.arch, f.fold, sha, record["dataset"]["id"], str(device))
    except HfusError as err:
        report.add(f"checkpoints/{f.arch}/{f.fold}/sha256", False, str(err))
        return
    if device.type == "cpu":  # as the runner holds it (batches.prepare_fold)
        model = model.to(memory_format=torch.channels_last)
    keep = np.zeros(len(f.rows), bool)
    keep[np.flatnonzero(f.ok)[:limit]] = True
    preds, fresh = rescore_model(f, model, batches, metrics, run_config, keep, device)
    bad = np.flatnonzero(preds != f.preds)
    detail = f"{len(f.rows)} images"
    if bad.size:
        detail = f"per_image[{f.first + bad[0]}].pred: recorded {f.preds[bad[0]]}, model says {preds[bad[0]]}"
    report.add(f"{where}: predictions", not bad.size, detail)
    expected = preds if run_config.target == "pred" else f.labels
    bad = np.flatnonzero(expected != f.targets)
    if bad.size:
        report.add(f"per_image[{f.first + bad[0]}].target", False, f"expected {expected[bad[0]]}")
    sel = np.flatnonzero(keep)
    if sel.size and metrics:
        rtols = {m.id: m.verify_rtol or MODEL_RTOL for m in metrics}
        problems = mismatches(f.first, sel, recorded, fresh, rtols)
        names = ", ".join(m.id for m in metrics)
        own = "".join(f"; {m.id} {m.verify_rtol:g}" for m in metrics if m.verify_rtol)
        what = f"{where}: {names} ({sel.size} images, within {MODEL_RTOL:g} relative{own})"
        report.add(what, not problems, "; ".join(problems[:3]))


def _fold_scores(record: dict[str, Any], f: _Fold, values: dict[str, np.ndarray]) -> FoldScores:
    from ..results import FoldScores

    runner_up = "m255_runner_up" in f.extras
    return FoldScores(
        arch=f.arch,
        fold=f.fold,
        checkpoint=record["checkpoints"].get(f.arch, {}).get(str(f.fold), {}),
        image_ids=f.ids,
        labels=f.labels,
        preds=f.preds,
        targets=f.targets,
        failed=f.failed,
        values=values,
        maps=f.m255,
        randomised_failed=f.rand_failed,
        randomised_maps=f.rand_maps,
        runner_up_failed=[r.get("runner_up_failed") for r in f.rows] if runner_up else None,
        runner_up=f.extras.get("runner_up"),
        runner_up_maps=f.extras.get("m255_runner_up"),
    )


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

    Args:
        record: the submission's result record.
        maps: the arrays of its maps file.
        ds: the dataset at the record's revision.
        report: where every check goes.
        check_model: also check predictions, targets and the model-based metrics through the checkpoint.
        limit: compare the model-based metrics on the first ``limit`` evaluated images per (arch, fold).
        device: where the model runs (``auto``: CUDA when available).

    Returns:
        The per-(arch, fold) scores: the maps-only metrics recomputed from the saved maps (exact), the
        model-based ones as recorded (after :func:`rescore_model`'s check, within their tolerances).
    """
    from ..batches import scoring_config
    from ..config import RunConfig
    from ..runner import plan_run
    from ..runtime import resolve_device

    run_config = RunConfig.from_record(record)
    config = scoring_config(run_config)
    dev = resolve_device(device)
    have, _ = recorded_metrics(record)
    plan: dict[tuple[str, int], list[Batch]] = {}
    for batch in plan_run(ds, run_config, dev) if check_model else []:
        plan.setdefault((batch.arch, batch.fold), []).append(batch)
    runs = []
    for (arch, fold), indexed in _groups(record["per_image"]).items():
        f = _load_fold(arch, fold, indexed, maps, ds, report)
        if f is None:
            continue
        values, scored = _score_maps(f, maps, [m for m in have if m.needs == "maps"], config, report)
        kept = [m for m in have if m not in scored]  # model-based (+ unverifiable): the recorded values
        dims = (config.thresholds, config.randomisations)
        recorded = {m.key(v): _rows_to_float(f.rows, v.name, v.dims(*dims)) for m in kept for v in m.values}
        if check_model:
            model_metrics = [m for m in have if m.needs == "model"]
            batches = plan.get((arch, fold), [])
            _check_model(f, record, batches, model_metrics, recorded, run_config, limit, dev, report)
        runs.append(_fold_scores(record, f, {**values, **recorded}))
    return runs
