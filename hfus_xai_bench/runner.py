"""The runner: dataset × checkpoints × method → maps → the scoring core → a result record.

``evaluate(method, config)`` is the Python twin of ``hfus-bench evaluate``. The work of a run is a list
of whole **batches** (arch, fold, images start..stop: :func:`plan_run`, the single-process plan); a
process runs a share of them (:func:`share`: one process all of them, torchrun rank r of N or shard r of
N the batches r, r + N, ...):

1. :func:`run_share` prepares each (arch, fold) once (:func:`prepare_fold`: the checkpoint, only the
   share's test images decoded, the depth prior from its cache, the method built for the model and
   for its randomised copy, PROTOCOL §7.1: a :class:`FoldJob`);
2. :func:`run_batch` runs the method on one batch with both models, post-processes the maps (§3.1)
   and scores the **model-based** metrics (:func:`batch_metrics`: confidence, ROAD) on that batch; it
   returns the per-image outputs (:class:`BatchOutput`: predictions, targets, ``m255`` maps, failure
   reasons, the randomised maps in ``extras``, the model-based ``values``, time and forwards);
3. :func:`score_shares` gathers every batch of each (arch, fold) (:func:`score_fold_outputs`) and
   scores the **maps-only** metrics (:func:`fold_metrics`, including fold-scope ones such as the
   cross-image ρ of ``randomisation@1``) on the whole fold with :func:`hfus_xai_bench.scoring.score_fold`.

Model-based values are scored per batch of the plan, so an image's values depend only on its batch
(the forward batches of confidence and ROAD see the same compositions however the run is split),
never on which other batches a process ran; the global RNG is reseeded per batch. With the same
threads per process a split run therefore gives the single-process record (PROTOCOL §8):
:mod:`hfus_xai_bench.distributed` (torchrun), :mod:`hfus_xai_bench.merge` (shards). Every image is
either evaluated or counted as failed with a reason (PROTOCOL §3); the randomised model's failures
are counted apart and do not remove an image from §4.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import RunConfig
from .errors import HfusError
from .explainers.contract import FAIL_EMPTY, ExplainContext, run_method, to_m255
from .explainers.loader import Method, load_method
from .metrics.inputs import ScoringConfig, ScoringInputs
from .metrics.registry import Metric
from .metrics.registry import metrics as registry_metrics
from .models.zoo import get_arch
from .results import FoldScores, Result
from .scoring import score_fold
from .seeding import derive_seed


@dataclass(frozen=True)
class Batch:
    """A whole batch of the single-process run: test images ``start:stop`` of (arch, fold)."""

    arch: str
    fold: int
    start: int
    stop: int


@dataclass(kw_only=True)
class FoldMeta:
    """What scoring one (arch, fold) needs besides its batch outputs: the first ``n`` test images' ids,
    labels and SLMs, the checkpoint summary, fold-level metric inputs (``extras``) and cost."""

    arch: str
    fold: int
    checkpoint: dict[str, Any]
    image_ids: list[str]
    labels: np.ndarray
    slms: np.ndarray
    #: fold-level inputs of the metrics (non-array objects); see ScoringInputs.extras
    extras: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)


@dataclass(kw_only=True)
class FoldJob(FoldMeta):
    """Everything one (arch, fold) needs in the process that runs (some of) its batches: the model, the method
    built for it and for the randomised copy (PROTOCOL §7.1: :func:`~hfus_xai_bench.metrics.randomisation.
    randomised_model` with the run seed, target layer and head resolved on the copy), and the images.

    ``images`` (n, 224, 224, 3) uint8 holds the decoded images of the rows this process evaluates (zeros
    elsewhere); ``slms`` likewise; ``cost``: fold-level seconds (building the randomised copy).
    """

    model: torch.nn.Module
    images: np.ndarray
    explainer: Any
    method: Method
    device: torch.device
    randomised: torch.nn.Module | None = None
    randomised_explainer: Any = None


@dataclass
class BatchOutput:
    """Per-image outputs of one batch (all arrays of length ``stop - start``).

    ``values``: the per-image values of the model-based metrics (``"<id>/<value>"``), scored on this
    batch (so they do not depend on which other batches a process ran, PROTOCOL §8); ``extras``: the
    per-image inputs of the maps-only metrics scored after the gather (``m255_randomised``,
    ``randomised_ok``); ``randomised_failed``: why the randomised model's map failed (None = ok);
    ``cost``: seconds and forward images besides the method's own (``seconds``, ``forward_images``).
    """

    batch: Batch
    preds: np.ndarray
    targets: np.ndarray
    m255: np.ndarray  # uint8 (B, 224, 224), zeros where failed
    failed: list[str | None]
    seconds: float
    forward_images: int
    #: per-image arrays for the metrics (first axis = image), concatenated over the fold's batches
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    randomised_failed: list[str | None] | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)


def checkpoint_summary(info: Any) -> dict[str, Any]:
    """``record["checkpoints"][arch][fold]``: name, sha256, dataset revision, test accuracy of the card."""
    ckpt = info.checkpoint
    return {
        "name": ckpt.name,
        "sha256": ckpt.sha256,
        "dataset_revision": ckpt.dataset_revision,
        "test_accuracy": ckpt.accuracy,
    }


def plan_batches(n_images: dict[tuple[str, int], int], batch_size: int) -> list[Batch]:
    """Whole batches in processing order: (arch, fold) in the given order, then image ranges."""
    return [
        Batch(arch, fold, start, min(start + batch_size, n))
        for (arch, fold), n in n_images.items()
        for start in range(0, n, batch_size)
    ]


def model_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) → float (B, 3, H, W) in [0, 1] on ``device`` (channels_last on CPU), as the runner feeds
    the method and the model-based metrics."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


def batch_metrics(metrics: Sequence[Metric] | None = None) -> list[Metric]:
    """The metrics scored per run batch: the model-based ones (image scope, scored where the model is)."""
    return [m for m in registry_metrics(metrics) if m.needs == "model"]


def fold_metrics(metrics: Sequence[Metric] | None = None) -> list[Metric]:
    """The metrics scored once per (arch, fold) after the gather: the maps-only ones (image and fold scope)."""
    return [m for m in registry_metrics(metrics) if m.needs != "model"]


def training_sample(ds: Any, fold: int, seed: int, device: torch.device) -> torch.Tensor:
    """``TRAINING_SAMPLE_SIZE`` training images of ``fold`` (seeded by the run seed and the fold), float in [0, 1]
    on ``device``: ``ExplainContext.training_sample`` (Expected Gradients' baselines, PROTOCOL §5)."""
    from .constants import TRAINING_SAMPLE_SIZE
    from .data.dataset import fold_arrays, split_size

    n = split_size(ds, fold, "train")
    rng = np.random.default_rng(derive_seed(seed, "training-sample", fold))
    rows = np.sort(rng.choice(n, size=min(TRAINING_SAMPLE_SIZE, n), replace=False))
    return model_input(fold_arrays(ds, fold, "train", rows=rows.tolist()).images, device)


def _context(
    spec: Any,
    model: torch.nn.Module,
    config: RunConfig,
    device: torch.device,
    prior: torch.Tensor,
    sample: torch.Tensor | None = None,
) -> ExplainContext:
    return ExplainContext(
        arch=spec.name,
        target_layer=spec.resolve_target_layer(model),
        device=device,
        head=spec.head(model),
        seed=config.seed,
        batch_size=config.resolved_batch_size(device),
        depth_prior=prior,
        training_sample=sample,
    )


def _fold_size(ds: Any, fold: int, config: RunConfig) -> int:
    from .data.dataset import split_size

    n = split_size(ds, fold, "test")
    return n if config.limit is None else min(config.limit, n)


def fold_sizes(ds: Any, config: RunConfig) -> dict[tuple[str, int], int]:
    """Images evaluated per (arch, fold) in run order (architectures, then folds): the test split's size, or
    ``config.limit`` if smaller."""
    sizes = {fold: _fold_size(ds, fold, config) for fold in config.folds}
    return {(get_arch(arch).name, fold): sizes[fold] for arch in config.models for fold in config.folds}


def plan_run(ds: Any, config: RunConfig, device: torch.device) -> list[Batch]:
    """The single-process plan of a run: every (arch, fold) of the config, in whole batches of the batch size."""
    return plan_batches(fold_sizes(ds, config), config.resolved_batch_size(device))


def share(batches: Sequence[Batch], index: int, count: int) -> list[Batch]:
    """Process ``index`` of ``count``'s deterministic share of the plan: every ``count``-th whole batch
    (``batches[index::count]``, the stride of lm-evaluation-harness; balanced across architectures)."""
    if count < 1 or not 0 <= index < count:
        raise HfusError(f"a share is index/count with 0 <= index < count, got {index}/{count}")
    return list(batches[index::count])


def fold_meta(
    ds: Any,
    arch: str,
    fold: int,
    config: RunConfig,
    checkpoint: dict[str, Any],
    cost: dict[str, float] | None = None,
) -> FoldMeta:
    """The :class:`FoldMeta` of (arch, fold) from the dataset: ids, labels, SLMs of the run's images (no image decoded)."""
    from .data.dataset import fold_arrays

    meta = fold_arrays(ds, fold, "test", rows=range(_fold_size(ds, fold, config)), images=False)
    return FoldMeta(
        arch=get_arch(arch).name,
        fold=fold,
        checkpoint=checkpoint,
        image_ids=meta.image_ids,
        labels=meta.labels,
        slms=meta.slms,
        cost=dict(cost or {}),
    )


def prepare_fold(
    method: Method,
    arch: str,
    fold: int,
    ds: Any,
    config: RunConfig,
    device: torch.device,
    batches: Sequence[Batch] | None = None,
) -> FoldJob:
    """Load the checkpoint of (arch, fold), decode the test images of ``batches`` only (default: all the run
    evaluates), and build the method for the model and for its randomised copy (PROTOCOL §7.1). The depth
    prior comes from :func:`hfus_xai_bench.data.dataset.depth_prior` (cached per dataset and fold)."""
    from .data.dataset import depth_prior, fold_arrays
    from .metrics.randomisation import randomised_model
    from .models.checkpoints import load_model

    spec = get_arch(arch)
    model, info = load_model(spec.name, dataset=config.dataset, fold=fold, device=str(device))
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    n = _fold_size(ds, fold, config)
    rows = (
        sorted({i for b in batches for i in range(b.start, b.stop)})
        if batches is not None
        else list(range(n))
    )
    if rows and rows[-1] >= n:
        raise HfusError(f"{spec.name} fold {fold}: batch rows beyond the {n} images of the run")
    meta = fold_arrays(ds, fold, "test", rows=range(n), images=False)
    decoded = fold_arrays(ds, fold, "test", rows=rows)
    images = np.zeros((n, *decoded.images.shape[1:]), np.uint8)
    images[rows] = decoded.images
    prior = torch.from_numpy(depth_prior(ds, fold)).to(device)
    sample = training_sample(ds, fold, config.seed, device)
    explainer = method.build(model, _context(spec, model, config, device, prior, sample))
    tic = time.perf_counter()
    rand = randomised_model(model, seed=config.seed)
    rand_explainer = method.build(rand, _context(spec, rand, config, device, prior, sample))
    return FoldJob(
        arch=spec.name,
        fold=fold,
        model=model,
        checkpoint=checkpoint_summary(info),
        image_ids=meta.image_ids,
        images=images,
        labels=meta.labels,
        slms=meta.slms,
        explainer=explainer,
        method=method,
        device=device,
        randomised=rand,
        randomised_explainer=rand_explainer,
        cost={"seconds_randomised": time.perf_counter() - tic},
    )


def _forward_counter(model: torch.nn.Module) -> tuple[list[int], Any]:
    count = [0]

    def hook(_module: torch.nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            count[0] += int(args[0].shape[0])

    return count, model.register_forward_pre_hook(hook)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _explain(
    explainer: Any,
    model: torch.nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    job: FoldJob,
    config: RunConfig,
) -> tuple[torch.Tensor, list[str | None], float, int]:
    """Run the method on one batch and post-process (§3.1): m255, failure reasons, seconds, forward images."""
    count, handle = _forward_counter(model)
    _sync(job.device)
    tic = time.perf_counter()
    try:
        outputs = run_method(explainer, x.clone(), targets.clone(), job.method.file)
        _sync(job.device)
    finally:
        handle.remove()
    seconds = time.perf_counter() - tic
    m255, reasons = to_m255(outputs, len(x), job.method.kind, config.sign, job.device)
    return m255, reasons, seconds, count[0]


def run_batch(
    job: FoldJob, batch: Batch, config: RunConfig, metrics: Sequence[Metric] | None = None
) -> BatchOutput:
    """One batch: predict, pick the targets, run the method on the model and on its randomised copy, post-process
    the maps (PROTOCOL §3, §7.1) and score the model-based metrics on this batch (:func:`batch_metrics`)."""
    device = job.device
    sl = slice(batch.start, batch.stop)
    # a method that draws from the global RNG gets the same draws however the run is split (PROTOCOL §8;
    # the built-ins seed per image and do not use it)
    torch.manual_seed(derive_seed(config.seed, "batch", job.arch, job.fold, batch.start))
    x = model_input(job.images[sl], device)
    with torch.inference_mode():
        preds = job.model(x).argmax(1)
    targets = preds if config.target == "pred" else torch.from_numpy(job.labels[sl]).to(device)
    m255, reasons, seconds, forwards = _explain(job.explainer, job.model, x, targets, job, config)
    cost: dict[str, float] = {}
    extras: dict[str, np.ndarray] = {}
    rand_failed = None
    if job.randomised is not None:
        m255_r, reasons_r, seconds_r, forwards_r = _explain(
            job.randomised_explainer, job.randomised, x, targets, job, config
        )
        # an all-zero randomised map is a constant map (ρ rules of §7.1), not a failure of the randomised model
        rand_failed = [None if r in (None, FAIL_EMPTY) else r for r in reasons_r]
        extras = {
            "m255_randomised": m255_r.cpu().numpy(),
            "randomised_ok": np.array([r is None for r in rand_failed]),
        }
        cost.update(seconds_randomised=seconds_r, forward_images_randomised=float(forwards_r))
    m255_np = m255.cpu().numpy()
    values: dict[str, np.ndarray] = {}
    chosen = batch_metrics(metrics)
    if chosen:
        inputs = ScoringInputs(
            m255=m255_np,
            slms=job.slms[sl],
            image_ids=job.image_ids[sl],
            labels=job.labels[sl],
            targets=targets.cpu().numpy(),
            ok=np.array([r is None for r in reasons], bool),
            model=job.model,
            images=x,
            extras=dict(extras),
        )
        _sync(device)
        tic = time.perf_counter()
        values = score_fold(inputs, chosen, config=scoring_config(config))
        _sync(device)
        cost["seconds_metrics"] = time.perf_counter() - tic
        cost.update(inputs.cost)
    return BatchOutput(
        batch=batch,
        preds=preds.cpu().numpy(),
        targets=targets.cpu().numpy(),
        m255=m255_np,
        failed=reasons,
        seconds=seconds,
        forward_images=forwards,
        extras=extras,
        randomised_failed=rand_failed,
        values=values,
        cost=cost,
    )


def scoring_config(config: RunConfig) -> ScoringConfig:
    return ScoringConfig(confidence=config.confidence, seed=config.seed)


def score_fold_outputs(
    job: FoldMeta,
    outputs: Sequence[BatchOutput],
    config: RunConfig,
    *,
    keep_maps: bool,
    metrics: Sequence[Metric] | None = None,
) -> FoldScores:
    """Gather the batch outputs of one fold (in batch order): the model-based values they carry, plus the
    maps-only metrics (:func:`fold_metrics`) scored on the whole fold."""
    outputs = sorted(outputs, key=lambda o: o.batch.start)
    n = len(job.image_ids)
    starts, stops = [o.batch.start for o in outputs], [o.batch.stop for o in outputs]
    if not outputs or starts[0] != 0 or stops[-1] != n or starts[1:] != stops[:-1]:
        raise HfusError(
            f"{job.arch} fold {job.fold}: the batch outputs do not cover images 0..{n} exactly once"
        )
    m255 = np.concatenate([o.m255 for o in outputs])
    failed = [r for o in outputs for r in o.failed]
    targets = np.concatenate([o.targets for o in outputs]).astype(np.int64)
    extras = dict(job.extras)
    for key in {k for o in outputs for k in o.extras}:
        extras[key] = np.concatenate([o.extras[key] for o in outputs])
    inputs = ScoringInputs(
        m255=m255,
        slms=job.slms,
        image_ids=job.image_ids,
        labels=job.labels,
        targets=targets,
        ok=np.array([r is None for r in failed], bool),
        extras=extras,
    )
    values = score_fold(inputs, fold_metrics(metrics), config=scoring_config(config))
    for key in {k for o in outputs for k in o.values}:
        values[key] = np.concatenate([o.values[key] for o in outputs])
    cost = dict(job.cost)
    for o in outputs:
        for key, value in o.cost.items():
            cost[key] = cost.get(key, 0.0) + float(value)
    rand_failed = None
    if all(o.randomised_failed is not None for o in outputs):
        rand_failed = [r for o in outputs for r in o.randomised_failed]
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
        randomised_failed=rand_failed,
        randomised_maps=extras.get("m255_randomised") if keep_maps else None,
        cost=cost,
    )


def write_maps(runs: Sequence[FoldScores], path: Path) -> str:
    """Write the uint8 m255 maps (compressed npz, one array per arch/fold) and return the file's sha256."""
    arrays: dict[str, np.ndarray] = {}
    for run in runs:
        if run.maps is None:
            raise HfusError(f"{run.arch} fold {run.fold} kept no maps; evaluate with save_maps=True")
        arrays[f"{run.arch}__fold{run.fold}__maps"] = run.maps
        arrays[f"{run.arch}__fold{run.fold}__image_ids"] = np.array(run.image_ids)
        if (
            run.randomised_maps is not None
        ):  # PROTOCOL §7.1: verify re-scores randomisation@1 exactly from these
            arrays[f"{run.arch}__fold{run.fold}__maps_randomised"] = run.randomised_maps
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
    """Run ``batches`` (whole batches of the plan, in order): each (arch, fold) is prepared once, with only the
    images of these batches decoded; the model-based metrics are scored per batch (:func:`run_batch`)."""
    outputs: list[BatchOutput] = []
    folds: dict[tuple[str, int], dict[str, Any]] = {}
    bar = tqdm(
        total=sum(b.stop - b.start for b in batches),
        desc=desc or method.name,
        unit="img",
        disable=not progress,
        leave=False,
    )
    job: FoldJob | None = None
    for batch in batches:
        if job is None or (job.arch, job.fold) != (batch.arch, batch.fold):
            job = None  # free the previous fold's models first
            mine = [b for b in batches if (b.arch, b.fold) == (batch.arch, batch.fold)]
            job = prepare_fold(method, batch.arch, batch.fold, ds, config, device, mine)
            entry = folds.setdefault((job.arch, job.fold), {"checkpoint": job.checkpoint, "cost": {}})
            for key, value in job.cost.items():
                entry["cost"][key] = entry["cost"].get(key, 0.0) + value
            bar.set_postfix_str(f"{job.arch} fold {job.fold}")
        outputs.append(run_batch(job, batch, config, metrics))
        bar.update(batch.stop - batch.start)
    bar.close()
    return ShareOutput(outputs=outputs, folds=folds, threads=torch.get_num_threads())


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
    """Gather the shares of a run (every batch of the plan exactly once) and score each (arch, fold) in run order
    (``keys``: only these) with :func:`score_fold_outputs`; an (arch, fold) where every image fails is an error."""
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
        meta = fold_meta(ds, arch, fold, config, info[(arch, fold)]["checkpoint"], info[(arch, fold)]["cost"])
        scores = score_fold_outputs(
            meta, by_fold.get((arch, fold), []), config, keep_maps=keep_maps, metrics=metrics
        )
        if all(r is not None for r in scores.failed):
            reason = Counter(scores.failed).most_common(1)[0][0]
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
    """``record["environment"]``: :func:`runtime.environment` plus ``run``, how the run was split (PROTOCOL §8):
    world size (torchrun ranks), shards (job-array parts merged), torch threads per process."""
    from .runtime import environment

    env = environment(device)
    env["run"] = {
        "launcher": launcher,
        "world_size": int(world_size),
        "shards": shards,
        "threads_per_process": torch.get_num_threads() if threads is None else threads,
    }
    return env


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

    out_dir = Path(out)
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

    ``method``: a built-in name, a path to a method file, an installed entry point, or a loaded
    :class:`Method`. ``config``: a :class:`RunConfig`; keyword ``options`` (its field names, e.g.
    ``limit=32, models="all"``) build one or change the given one. With ``out`` the result JSON (and
    the figure, and with ``save_maps`` the maps) are written there. ``command``: what to record as
    the command that produced the result (the CLI passes its argv).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank takes its share of whole batches
    (:func:`share`), rank 0 gathers, scores and writes; every rank returns the same result
    (:mod:`hfus_xai_bench.distributed`).
    """
    from . import distributed
    from .data.dataset import dataset_provenance, load_dataset
    from .results import build_result

    if config is None:
        config = RunConfig.build(**options)
    elif options:
        config = config.replace(**options)
    ctx = distributed.detect()
    if ctx is not None:
        return _evaluate_ranks(
            method,
            config,
            ctx,
            out=out,
            save_maps=save_maps,
            figure=figure,
            progress=progress,
            command=command,
        )
    loaded = method if isinstance(method, Method) else load_method(method)
    device = config.resolve_device()
    ds = load_dataset(config.dataset, revision=config.revision)
    runs = run(
        loaded, config, ds, device, keep_maps=save_maps or (figure and out is not None), progress=progress
    )
    result = build_result(
        loaded,
        runs,
        options=config.to_options(device),
        dataset=dataset_provenance(ds),
        environment=run_environment(device),
        command=command,
    )
    if out is not None:
        write_outputs(result, runs, ds, out, loaded.name, save_maps=save_maps, figure=figure)
    return result


def _evaluate_ranks(
    method: str | Path | Method,
    config: RunConfig,
    ctx: Any,
    *,
    out: Any,
    save_maps: bool,
    figure: bool,
    progress: bool,
    command: str | None,
) -> Result:
    """One rank of a torchrun job: join the group, run this rank's share (every step that can fail inside the
    rank's report), gather on rank 0, which scores and writes; every rank returns rank 0's result or raises
    its one message."""
    from . import distributed
    from .data.dataset import dataset_provenance, load_dataset
    from .results import build_result

    wants_cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    keep_maps = save_maps or (figure and out is not None)
    with distributed.session(ctx, "cuda" if wants_cuda else "cpu") as group:
        state: dict[str, Any] = {}
        try:
            loaded = method if isinstance(method, Method) else load_method(method)
            device = config.resolve_device()
            if device.type == "cuda":
                device = torch.device("cuda", ctx.local_rank)
            ds = load_dataset(config.dataset, revision=config.revision)
            plan = plan_run(ds, config, device)
            mine = share(plan, ctx.rank, ctx.world_size)
            state.update(method=loaded, device=device, ds=ds)
            payload: tuple[str, Any] = (
                "ok",
                run_share(
                    loaded,
                    config,
                    ds,
                    device,
                    mine,
                    progress=progress and ctx.rank == 0,
                    desc=f"{loaded.name} rank 0 of {ctx.world_size} ({len(mine)} of {len(plan)} batches)",
                ),
            )
        except Exception as err:  # reported by rank 0 for the whole job
            payload = ("error", distributed.describe_failure(err))
        gathered = group.gather(payload)
        status: tuple[str, Any] = ("ok", None)
        if ctx.rank == 0:
            failed = [(r, p[1]) for r, p in enumerate(gathered or []) if p[0] != "ok"]
            if failed:
                status = (
                    "error",
                    "; ".join(f"rank {r} failed: {why}" for r, why in failed)
                    + f" ({len(failed)} of {ctx.world_size} ranks; nothing written)",
                )
            else:
                try:
                    loaded, device, ds = state["method"], state["device"], state["ds"]
                    shares = [p[1] for p in gathered or []]
                    threads = [sh.threads for sh in shares]
                    runs = score_shares(loaded.name, config, ds, shares, keep_maps=keep_maps)
                    env = run_environment(
                        device,
                        world_size=ctx.world_size,
                        launcher="torchrun",
                        threads=threads[0] if len(set(threads)) == 1 else threads,
                    )
                    result = build_result(
                        loaded,
                        runs,
                        options=config.to_options(device),
                        dataset=dataset_provenance(ds),
                        environment=env,
                        command=command,
                    )
                    if out is not None:
                        write_outputs(result, runs, ds, out, loaded.name, save_maps=save_maps, figure=figure)
                    status = ("ok", result.record)
                except Exception as err:
                    status = (
                        "error",
                        f"rank 0 failed while scoring the gathered batches: "
                        f"{distributed.describe_failure(err)} (nothing written)",
                    )
        status = group.broadcast(status)
    if status[0] != "ok":
        raise HfusError(status[1])
    return Result(status[1])


__all__ = [
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
