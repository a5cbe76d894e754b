"""The runner: dataset × checkpoints × method → maps → the scoring core → a result record.

``evaluate(method, config)`` is the Python twin of ``hfus-bench evaluate``. The work of a run is a list
of whole **batches** (arch, fold, images start..stop: :func:`hfus_xai_bench.batches.plan_run`, the
single-process plan); a process runs a share of them (:func:`hfus_xai_bench.batches.share`: one process
all of them, torchrun rank r of N or shard r of N the batches r, r + N, ...):

1. :func:`run_share` prepares each (arch, fold) once (:func:`hfus_xai_bench.batches.prepare_fold`: the
   checkpoint, the K randomised copies built from the model as loaded, only the share's test images
   decoded, the method built for the model and each copy), runs its batches
   (:func:`hfus_xai_bench.batches.run_batch`: every explanation call through
   :func:`hfus_xai_bench.calls.explain`, PROTOCOL §3; the model-based metrics scored on the batch) and,
   in the process that ran the fold's first batch, §3's repeat of that batch's call;
2. :func:`score_shares` gathers every batch of each (arch, fold) (:func:`score_fold_outputs`) and
   scores the **maps-only** metrics on the whole fold with :func:`hfus_xai_bench.scoring.score_fold`.

Model-based values are scored per batch of the plan, so an image's values depend only on its batch,
never on which other batches a process ran; every call of a batch starts from derive(run seed,
"batch", arch, fold, first row). With the same threads per process a split run therefore gives the
single-process record (PROTOCOL §8), and its pass counts (PROTOCOL §6) add up to the single
process's: :mod:`hfus_xai_bench.distributed` (torchrun), :mod:`hfus_xai_bench.merge` (shards). Every
image is either evaluated or counted as failed with a reason (PROTOCOL §3); a copy's failures are
counted apart and do not remove an image from §4.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .allocator import keep_freed_memory
from .batches import (
    Batch,
    BatchOutput,
    FoldJob,
    FoldMeta,
    batch_metrics,
    fold_meta,
    fold_metrics,
    fold_size,
    fold_sizes,
    model_input,
    needed_extras,
    plan_batches,
    plan_run,
    prepare_fold,
    repeat_first,
    run_batch,
    scoring_config,
    share,
)
from .calls import PassCounter
from .config import RunConfig
from .errors import HfusError
from .explainers.contract import FAIL_EMPTY, describe_reason
from .explainers.loader import Method, applicable_archs, load_method
from .metrics.inputs import ScoringInputs
from .metrics.registry import Metric
from .results import FoldScores, Result
from .scoring import score_fold


def _concat_reasons(outputs: Sequence[BatchOutput], name: str) -> list[Any] | None:
    lists = [getattr(o, name) for o in outputs]
    return None if any(v is None for v in lists) else [r for v in lists for r in v]


def score_fold_outputs(
    job: FoldMeta,
    outputs: Sequence[BatchOutput],
    config: RunConfig,
    *,
    keep_maps: bool,
    metrics: Sequence[Metric] | None = None,
) -> FoldScores:
    """Gather the batch outputs of one fold (in batch order): the model-based values they carry, plus the
    maps-only metrics (:func:`fold_metrics`) scored on the whole fold (those whose inputs the run made).

    Args:
        job: the fold's images, labels, SLMs, evidence and checkpoint
            (:func:`~hfus_xai_bench.batches.fold_meta`).
        outputs: the fold's batch outputs, any order; together images 0..n exactly once.
        keep_maps: keep the m255 maps (the model's, every copy's, the runner-up's) in the scores.
        metrics: the run's metrics (default: every current registry metric).
    """
    outputs = _in_batch_order(job, outputs)
    m255 = np.concatenate([o.m255 for o in outputs])
    failed = [r for o in outputs for r in o.failed]
    targets = np.concatenate([o.targets for o in outputs]).astype(np.int64)
    extras = _concatenated(outputs, "extras")
    if job.evidence is not None:
        extras["evidence"] = job.evidence
    inputs = ScoringInputs(
        m255=m255,
        slms=job.slms,
        image_ids=job.image_ids,
        labels=job.labels,
        targets=targets,
        ok=np.array([r is None for r in failed], bool),
        empty=np.array([r == FAIL_EMPTY for r in failed], bool),
        extras=extras,
    )
    chosen = [m for m in fold_metrics(metrics) if set(m.extras) <= set(extras)]
    values = score_fold(inputs, chosen, config=scoring_config(config))
    values.update(_concatenated(outputs, "values"))
    cost = dict(job.cost)
    for o in outputs:
        for key, value in o.cost.items():
            cost[key] = cost.get(key, 0.0) + float(value)
    return FoldScores(
        arch=job.arch,
        fold=job.fold,
        checkpoint=job.checkpoint,
        image_ids=job.image_ids,
        labels=job.labels,
        preds=np.concatenate([o.preds for o in outputs]).astype(np.int64),
        targets=targets,
        failed=failed,
        values=values,
        seconds=sum(o.seconds for o in outputs),
        forward_images=sum(o.forward_images for o in outputs),
        maps=m255 if keep_maps else None,
        randomised_failed=_concat_reasons(outputs, "randomised_failed"),
        randomised_maps=extras.get("m255_randomised") if keep_maps else None,
        runner_up_failed=_concat_reasons(outputs, "runner_up_failed"),
        runner_up=extras.get("runner_up"),
        runner_up_maps=extras.get("m255_runner_up") if keep_maps else None,
        cost=cost,
    )


def _in_batch_order(job: FoldMeta, outputs: Sequence[BatchOutput]) -> list[BatchOutput]:
    """``outputs`` sorted by their first image, checked to cover the fold's images 0..n exactly once."""
    ordered = sorted(outputs, key=lambda o: o.batch.start)
    n = len(job.image_ids)
    starts, stops = [o.batch.start for o in ordered], [o.batch.stop for o in ordered]
    if not ordered or starts[0] != 0 or stops[-1] != n or starts[1:] != stops[:-1]:
        raise HfusError(
            f"{job.arch} fold {job.fold}: the batch outputs do not cover images 0..{n} exactly once"
        )
    return ordered


def _concatenated(outputs: Sequence[BatchOutput], field: str) -> dict[str, np.ndarray]:
    """The per-image arrays in the outputs' ``field`` (``values`` or ``extras``), joined in batch order."""
    keys = {k for o in outputs for k in getattr(o, field)}
    return {key: np.concatenate([getattr(o, field)[key] for o in outputs]) for key in keys}


#: suffixes of the per-(arch, fold) arrays of a maps file besides ``__maps`` and ``__image_ids``: every copy's
#: maps (N, K, 224, 224), the runner-up maps (PROTOCOL §7.1.1, §9: verify re-scores both exactly from them)
MAPS_RANDOMISED, MAPS_RUNNER_UP = "maps_randomised", "maps_runner_up"


def write_maps(runs: Sequence[FoldScores], path: Path) -> str:
    """Write the uint8 m255 maps (compressed npz, arrays per arch/fold) and return the file's sha256."""
    arrays: dict[str, np.ndarray] = {}
    for run in runs:
        if run.maps is None:
            raise HfusError(f"{run.arch} fold {run.fold} kept no maps; evaluate with save_maps=True")
        stem = f"{run.arch}__fold{run.fold}"
        arrays[f"{stem}__maps"] = run.maps
        arrays[f"{stem}__image_ids"] = np.array(run.image_ids)
        if run.randomised_maps is not None:
            arrays[f"{stem}__{MAPS_RANDOMISED}"] = run.randomised_maps
        if run.runner_up_maps is not None:
            arrays[f"{stem}__{MAPS_RUNNER_UP}"] = run.runner_up_maps
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@dataclass
class ShareOutput:
    """What one process computed for its share of a run: the batch outputs (plan order) and, per (arch, fold)
    it touched, the checkpoint summary and fold-level cost."""

    outputs: list[BatchOutput]
    folds: dict[tuple[str, int], dict[str, Any]]
    #: torch threads of the process
    threads: int = 1


def _add(into: dict[str, float], more: dict[str, float]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0.0) + float(value)


def run_share(
    method: Method,
    config: RunConfig,
    ds: Any,
    device: torch.device,
    batches: Sequence[Batch],
    *,
    progress: bool,
    desc: str | None = None,
    metrics: Sequence[Metric] | None = None,
) -> ShareOutput:
    """Run a share of a run's plan in this process.

    Each (arch, fold) is prepared once, with only the images of these batches decoded; the model-based
    metrics are scored per batch; the process that ran a fold's first batch repeats its call after its
    last batch of the fold (PROTOCOL §3) and counts the passes made while building the method (PROTOCOL §6:
    split runs add up to one process).

    Args:
        batches: whole batches of the plan (:func:`~hfus_xai_bench.batches.plan_run`), in plan order.
        progress, desc: show a progress bar, with this label (default: the method's name).
        metrics: the run's metrics (default: every current registry metric).

    Returns:
        The batch outputs and, per (arch, fold) touched, the checkpoint summary and fold-level cost.
    """
    if device.type == "cpu":
        keep_freed_memory()  # CPU forwards reuse their pages instead of faulting fresh ones in
    outputs: list[BatchOutput] = []
    folds: dict[tuple[str, int], dict[str, Any]] = {}
    needs = needed_extras(metrics)
    bar = tqdm(
        total=sum(b.stop - b.start for b in batches),
        desc=desc or method.name,
        unit="img",
        disable=not progress,
        leave=False,
    )
    by_fold: dict[tuple[str, int], list[Batch]] = {}
    for batch in batches:
        by_fold.setdefault((batch.arch, batch.fold), []).append(batch)
    with bar:  # closed (its line cleared) before an error that stops the run is printed
        for mine in by_fold.values():
            passes = PassCounter(device)
            try:
                outputs += _run_fold(method, config, ds, device, mine, passes, folds, bar, metrics, needs)
            finally:
                passes.close()  # the counting hooks leave the models even when a call stops the run
    return ShareOutput(outputs=outputs, folds=folds, threads=torch.get_num_threads())


def _run_fold(
    method: Method,
    config: RunConfig,
    ds: Any,
    device: torch.device,
    mine: list[Batch],
    passes: PassCounter,
    folds: dict[tuple[str, int], dict[str, Any]],
    bar: Any,
    metrics: Sequence[Metric] | None,
    needs: frozenset[str],
) -> list[BatchOutput]:
    """One (arch, fold)'s batches of a share: prepare, run each batch, and (first batch here) §3's repeat."""
    arch, fold = mine[0].arch, mine[0].fold
    rows = sorted({i for b in mine for i in range(b.start, b.stop)})
    owner = mine[0].start == 0
    job: FoldJob = prepare_fold(
        method,
        arch,
        fold,
        ds,
        config,
        device,
        rows,
        fold_size(ds, fold, config),
        passes=passes,
        needs=needs,
        count_build=owner,
    )
    entry = folds.setdefault((job.arch, job.fold), {"checkpoint": job.checkpoint, "cost": {}})
    _add(entry["cost"], passes.snapshot())
    bar.set_postfix_str(f"{job.arch} fold {job.fold}")
    mine_out = []
    for batch in mine:
        mine_out.append(run_batch(job, batch, config, metrics))
        bar.update(batch.stop - batch.start)
    if owner:
        _add(mine_out[0].cost, repeat_first(job, mine_out[0], config))
    return mine_out


def score_shares(
    method_name: str,
    config: RunConfig,
    ds: Any,
    shares: Sequence[ShareOutput],
    *,
    keep_maps: bool,
    metrics: Sequence[Metric] | None = None,
    keys: Sequence[tuple[str, int]] | None = None,
) -> list[FoldScores]:
    """Gather the shares of a run and score each (arch, fold) with :func:`score_fold_outputs`.

    Args:
        shares: every process's :class:`ShareOutput`; together every batch of the plan exactly once.
        keep_maps: keep the m255 maps in the scores (for the maps file and the figure).
        metrics: the run's metrics (default: every current registry metric).
        keys: score only these (arch, fold), in this order (default: every one of the config, run order).

    Returns:
        One :class:`FoldScores` per (arch, fold). Raises HfusError when the processes used different
        checkpoints, no process ran an (arch, fold), or every image of one failed.
    """
    runs: list[FoldScores] = []
    by_fold: dict[tuple[str, int], list[BatchOutput]] = {}
    info: dict[tuple[str, int], dict[str, Any]] = {}
    for sh in shares:
        for o in sh.outputs:
            by_fold.setdefault((o.batch.arch, o.batch.fold), []).append(o)
        for key, entry in sh.folds.items():
            have = info.setdefault(key, {"checkpoint": entry["checkpoint"], "cost": {}})
            if have["checkpoint"] != entry["checkpoint"]:
                raise HfusError(
                    f"{key[0]} fold {key[1]}: the processes used different checkpoints "
                    f"({have['checkpoint'].get('sha256')} vs {entry['checkpoint'].get('sha256')})"
                )
            for k, v in entry["cost"].items():
                have["cost"][k] = have["cost"].get(k, 0.0) + v
    for arch, fold in keys if keys is not None else fold_sizes(ds, config):
        if (arch, fold) not in info:
            raise HfusError(f"{arch} fold {fold}: no process ran any of its batches")
        n = fold_size(ds, fold, config)
        meta = fold_meta(ds, arch, fold, n, info[(arch, fold)]["checkpoint"], info[(arch, fold)]["cost"])
        scores = score_fold_outputs(
            meta, by_fold.get((arch, fold), []), config, keep_maps=keep_maps, metrics=metrics
        )
        if all(r is not None for r in scores.failed):
            reason = describe_reason(Counter(scores.failed).most_common(1)[0][0])
            raise HfusError(f"method {method_name!r} failed on every image of {arch} fold {fold}: {reason}")
        runs.append(scores)
    return runs


def run(
    method: Method, config: RunConfig, ds: Any, device: torch.device, *, keep_maps: bool, progress: bool
) -> list[FoldScores]:
    """All (arch, fold) of the config in one process, batch by batch, scored fold by fold as it completes."""
    plan = plan_run(ds, config, device)
    runs: list[FoldScores] = []
    for key in fold_sizes(ds, config):
        batches = [b for b in plan if (b.arch, b.fold) == key]
        shared = run_share(
            method,
            config,
            ds,
            device,
            batches,
            progress=progress,
            desc=f"{method.name} {key[0]} fold {key[1]}",
        )
        runs += score_shares(method.name, config, ds, [shared], keep_maps=keep_maps, keys=[key])
    return runs


def run_environment(
    device: torch.device,
    *,
    world_size: int = 1,
    shards: int | None = None,
    threads: int | list[int] | None = None,
    launcher: str = "single process",
) -> dict[str, Any]:
    """``record["environment"]``: :func:`runtime.environment` plus ``run``, how the run was split (PROTOCOL
    §8): world size (torchrun ranks), shards (job-array parts merged), torch threads per process."""
    from .runtime import environment

    env = environment(device)
    env["run"] = {
        "launcher": launcher,
        "world_size": int(world_size),
        "shards": shards,
        "threads_per_process": torch.get_num_threads() if threads is None else threads,
    }
    return env


def out_folder(out: str | Path) -> Path:
    """``--out`` as a folder: HfusError when it exists and is not one, or when it cannot be created (its
    nearest existing parent is a file or not writable); checked before a run starts."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise HfusError(f"--out {path} is not a folder: give a folder (created if missing) for the results")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        what = "is not a folder" if not parent.is_dir() else "is not writable"
        raise HfusError(f"--out {path} cannot be created: {parent} {what}; give a folder you can write to")
    return path


def write_outputs(
    result: Result,
    runs: Sequence[FoldScores],
    ds: Any,
    out: str | Path,
    name: str,
    *,
    save_maps: bool,
    figure: bool,
) -> None:
    """Write ``<name>.json`` (+ ``<name>.maps.npz`` with ``save_maps``, + ``<name>.png`` with ``figure``) into
    ``out``: each file is written to a temporary name first and renamed into place, record last."""
    import os

    out_dir = out_folder(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if save_maps:
        maps_path = out_dir / f"{name}.maps.npz"
        tmp = out_dir / f".{name}.maps.npz.tmp"
        result.record["maps_file"] = {"path": maps_path.name, "sha256": write_maps(runs, tmp)}
        os.replace(tmp, maps_path)
    if figure:
        from .figures import best_worst_figure

        tmp = out_dir / f".{name}.tmp.png"
        best_worst_figure(runs, ds, tmp)
        os.replace(tmp, out_dir / f"{name}.png")
    tmp = out_dir / f".{name}.json.tmp"
    result.save(tmp)
    os.replace(tmp, out_dir / f"{name}.json")


def evaluate(
    method: str | Path | Method,
    config: RunConfig | None = None,
    *,
    out: str | Path | None = None,
    save_maps: bool = False,
    figure: bool = True,
    progress: bool = True,
    command: str | None = None,
    **options: Any,
) -> Result:
    """Evaluate a method with the benchmark protocol and return its :class:`~hfus_xai_bench.results.Result`.

    Args:
        method: a built-in name, a path to a method file, an installed entry point, or a loaded
            :class:`Method`.
        config: a :class:`RunConfig`; keyword ``options`` (its field names, e.g. ``limit=32,
            models="all"``) build one or change the given one.
        out: a folder for the result JSON (and the figure, and with ``save_maps`` the maps file).
        command: what to record as the command that produced the result (the CLI passes its argv).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank takes its share of whole batches
    (:func:`~hfus_xai_bench.batches.share`), rank 0 gathers, scores and writes; every rank returns the
    same result (:mod:`hfus_xai_bench.distributed`).
    """
    from . import distributed

    if config is None:
        config = RunConfig.build(**options)
    elif options:
        config = config.replace(**options)
    if out is not None:
        out_folder(out)
    outputs = _Outputs(out, save_maps, figure, command)
    ctx = distributed.detect()
    if ctx is not None:
        return _evaluate_ranks(method, config, ctx, outputs, progress=progress)
    loaded, config, device, ds = _load(method, config)
    runs = run(loaded, config, ds, device, keep_maps=outputs.keep_maps, progress=progress)
    return _finish(loaded, runs, config, device, ds, run_environment(device), outputs)


@dataclass(frozen=True)
class _Outputs:
    """Where and what :func:`evaluate` writes (see there) and the command it records."""

    out: str | Path | None
    save_maps: bool
    figure: bool
    command: str | None

    @property
    def keep_maps(self) -> bool:
        return self.save_maps or (self.figure and self.out is not None)


def _load(
    method: str | Path | Method, config: RunConfig, local_rank: int | None = None
) -> tuple[Method, RunConfig, torch.device, Any]:
    """The loaded method, the config without its n/a architectures (PROTOCOL §5: skipped), the device
    (``cuda:local_rank`` for a torchrun rank on CUDA) and the dataset."""
    from .data.dataset import load_dataset
    from .models.checkpoints import require_checkpoints

    loaded = method if isinstance(method, Method) else load_method(method)
    config = config.replace(models=applicable_archs(loaded, config.models))
    device = config.resolve_device()
    if device.type == "cuda" and local_rank is not None:
        device = torch.device("cuda", local_rank)
    ds = load_dataset(config.dataset, revision=config.revision)
    require_checkpoints(config.models, config.folds, config.dataset, config.revision)  # before any work
    return loaded, config, device, ds


def _finish(
    loaded: Method,
    runs: list[FoldScores],
    config: RunConfig,
    device: torch.device,
    ds: Any,
    environment: dict[str, Any],
    outputs: _Outputs,
) -> Result:
    """The result of the scored runs, written under ``outputs.out`` if given."""
    from .data.dataset import dataset_provenance
    from .results import build_result

    result = build_result(
        loaded,
        runs,
        options=config.to_options(device),
        dataset=dataset_provenance(ds),
        environment=environment,
        command=outputs.command,
    )
    if outputs.out is not None:
        write_outputs(
            result, runs, ds, outputs.out, loaded.name, save_maps=outputs.save_maps, figure=outputs.figure
        )
    return result


def _evaluate_ranks(
    method: str | Path | Method, config: RunConfig, ctx: Any, outputs: _Outputs, *, progress: bool
) -> Result:
    """One rank of a torchrun job (:func:`hfus_xai_bench.distributed.gather_and_finish`): run this rank's
    share, every step that can fail inside the rank's report; rank 0 scores the gathered shares and writes;
    every rank returns rank 0's result or raises its one message."""
    from . import distributed

    wants_cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    state: dict[str, Any] = {}

    def work() -> ShareOutput:
        loaded, cfg, device, ds = _load(method, config, ctx.local_rank)
        plan = plan_run(ds, cfg, device)
        mine = share(plan, ctx.rank, ctx.world_size)
        state.update(method=loaded, config=cfg, device=device, ds=ds)
        desc = f"{loaded.name} rank 0 of {ctx.world_size} ({len(mine)} of {len(plan)} batches)"
        return run_share(loaded, cfg, ds, device, mine, progress=progress and ctx.rank == 0, desc=desc)

    def finish(shares: list[ShareOutput]) -> dict[str, Any]:
        loaded, cfg, device, ds = state["method"], state["config"], state["device"], state["ds"]
        runs = score_shares(loaded.name, cfg, ds, shares, keep_maps=outputs.keep_maps)
        threads = [sh.threads for sh in shares]
        env = run_environment(
            device,
            world_size=ctx.world_size,
            launcher="torchrun",
            threads=threads[0] if len(set(threads)) == 1 else threads,
        )
        return _finish(loaded, runs, cfg, device, ds, env, outputs).record

    record = distributed.gather_and_finish(
        ctx, "cuda" if wants_cuda else "cpu", work, finish, finishing="scoring the gathered batches"
    )
    return Result(record)


__all__ = [
    "MAPS_RANDOMISED",
    "MAPS_RUNNER_UP",
    "Batch",
    "BatchOutput",
    "FoldJob",
    "FoldMeta",
    "ShareOutput",
    "batch_metrics",
    "evaluate",
    "fold_meta",
    "fold_metrics",
    "fold_sizes",
    "model_input",
    "out_folder",
    "plan_batches",
    "plan_run",
    "prepare_fold",
    "run",
    "run_batch",
    "run_environment",
    "run_share",
    "score_fold_outputs",
    "score_shares",
    "share",
    "write_maps",
    "write_outputs",
]
