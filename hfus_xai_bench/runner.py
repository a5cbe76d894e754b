"""The runner: dataset × checkpoints × method → maps → the scoring core → a result record.

``evaluate(method, config)`` is the Python twin of ``hfus-bench evaluate``. The work of a run is a list
of whole **batches** (arch, fold, images start..stop, :func:`plan_batches`), processed in order:

1. :func:`prepare_fold` loads the checkpoint of (arch, fold), the test images, builds the method for the
   model and for its randomised copy (PROTOCOL §7.1) (a :class:`FoldJob`);
2. :func:`run_batch` runs the method on one batch with both models, post-processes the maps (§3.1)
   and scores the **model-based** metrics (:func:`batch_metrics`: confidence, ROAD) on that batch; it
   returns the per-image outputs (:class:`BatchOutput`: predictions, targets, ``m255`` maps, failure
   reasons, the randomised maps in ``extras``, the model-based ``values``, time and forwards);
3. :func:`score_fold_outputs` gathers the outputs of a fold's batches (in batch order) and scores the
   **maps-only** metrics (:func:`fold_metrics`, including fold-scope ones such as the cross-image
   ρ of ``randomisation@1``) on the whole fold with :func:`hfus_xai_bench.scoring.score_fold`.

Model-based values are scored per run batch so that an image's values depend only on the batch it was
in (the forward batches of confidence and ROAD see the same compositions however the run is split),
never on which other batches a process ran: a split run (torchrun ranks or shards) hands whole batches
to processes and gathers the :class:`BatchOutput` s before step 3 (PROTOCOL §8). Every image is either
evaluated or counted as failed with a reason (PROTOCOL §3); the randomised model's failures are counted
apart and do not remove an image from §4.
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


@dataclass(frozen=True)
class Batch:
    """A whole batch of the single-process run: test images ``start:stop`` of (arch, fold)."""

    arch: str
    fold: int
    start: int
    stop: int


@dataclass
class FoldJob:
    """Everything one (arch, fold) needs: model, test images (first ``n``), the built method, provenance.

    ``randomised`` / ``randomised_explainer``: the randomised copy of the model (PROTOCOL §7.1,
    :func:`~hfus_xai_bench.metrics.randomisation.randomised_model` with the run seed) and the method built
    for it (target layer and head resolved on the copy); ``cost``: fold-level seconds (building them).
    """

    arch: str
    fold: int
    model: torch.nn.Module
    checkpoint: dict[str, Any]
    image_ids: list[str]
    images: np.ndarray  # uint8 (n, 224, 224, 3)
    labels: np.ndarray
    slms: np.ndarray
    explainer: Any
    method: Method
    device: torch.device
    #: fold-level inputs of the metrics (non-array objects); see ScoringInputs.extras
    extras: dict[str, Any] = field(default_factory=dict)
    randomised: torch.nn.Module | None = None
    randomised_explainer: Any = None
    cost: dict[str, float] = field(default_factory=dict)


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
    return {"name": ckpt.name, "sha256": ckpt.sha256, "dataset_revision": ckpt.dataset_revision,
            "test_accuracy": ckpt.accuracy}


def plan_batches(n_images: dict[tuple[str, int], int], batch_size: int) -> list[Batch]:
    """Whole batches in processing order: (arch, fold) in the given order, then image ranges."""
    return [Batch(arch, fold, start, min(start + batch_size, n))
            for (arch, fold), n in n_images.items() for start in range(0, n, batch_size)]


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


def _context(spec: Any, model: torch.nn.Module, config: RunConfig, device: torch.device, prior: torch.Tensor) -> ExplainContext:
    return ExplainContext(
        arch=spec.name, target_layer=spec.resolve_target_layer(model), device=device, head=spec.head(model),
        seed=config.seed, batch_size=config.resolved_batch_size(device), depth_prior=prior,
    )


def prepare_fold(method: Method, arch: str, fold: int, ds: Any, config: RunConfig, device: torch.device) -> FoldJob:
    """Load the checkpoint and the test images of (arch, fold), build the method for that model and for its
    randomised copy (PROTOCOL §7.1)."""
    from .data.dataset import fold_arrays, fold_slms
    from .metrics.randomisation import randomised_model
    from .models.checkpoints import load_model

    spec = get_arch(arch)
    model, info = load_model(spec.name, dataset=config.dataset, fold=fold, device=str(device))
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    test = fold_arrays(ds, fold, "test")
    n = len(test.image_ids) if config.limit is None else min(config.limit, len(test.image_ids))
    prior = torch.from_numpy(fold_slms(ds, fold, "train").astype(np.float32).mean(0) / 255.0).to(device)
    explainer = method.build(model, _context(spec, model, config, device, prior))
    tic = time.perf_counter()
    rand = randomised_model(model, seed=config.seed)
    rand_explainer = method.build(rand, _context(spec, rand, config, device, prior))
    return FoldJob(
        arch=spec.name, fold=fold, model=model, checkpoint=checkpoint_summary(info), image_ids=list(test.image_ids[:n]),
        images=test.images[:n], labels=test.labels[:n].astype(np.int64), slms=test.slms[:n],
        explainer=explainer, method=method, device=device, randomised=rand, randomised_explainer=rand_explainer,
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


def _explain(explainer: Any, model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor, job: FoldJob,
             config: RunConfig) -> tuple[torch.Tensor, list[str | None], float, int]:
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


def run_batch(job: FoldJob, batch: Batch, config: RunConfig, metrics: Sequence[Metric] | None = None) -> BatchOutput:
    """One batch: predict, pick the targets, run the method on the model and on its randomised copy, post-process
    the maps (PROTOCOL §3, §7.1) and score the model-based metrics on this batch (:func:`batch_metrics`)."""
    device = job.device
    sl = slice(batch.start, batch.stop)
    x = model_input(job.images[sl], device)
    with torch.inference_mode():
        preds = job.model(x).argmax(1)
    targets = preds if config.target == "pred" else torch.from_numpy(job.labels[sl]).to(device)
    m255, reasons, seconds, forwards = _explain(job.explainer, job.model, x, targets, job, config)
    cost: dict[str, float] = {}
    extras: dict[str, np.ndarray] = {}
    rand_failed = None
    if job.randomised is not None:
        m255_r, reasons_r, seconds_r, forwards_r = _explain(job.randomised_explainer, job.randomised, x, targets, job,
                                                            config)
        # an all-zero randomised map is a constant map (ρ rules of §7.1), not a failure of the randomised model
        rand_failed = [None if r in (None, FAIL_EMPTY) else r for r in reasons_r]
        extras = {"m255_randomised": m255_r.cpu().numpy(), "randomised_ok": np.array([r is None for r in rand_failed])}
        cost.update(seconds_randomised=seconds_r, forward_images_randomised=float(forwards_r))
    m255_np = m255.cpu().numpy()
    values: dict[str, np.ndarray] = {}
    chosen = batch_metrics(metrics)
    if chosen:
        inputs = ScoringInputs(
            m255=m255_np, slms=job.slms[sl], image_ids=job.image_ids[sl], labels=job.labels[sl],
            targets=targets.cpu().numpy(), ok=np.array([r is None for r in reasons], bool), model=job.model, images=x,
            extras=dict(extras),
        )
        _sync(device)
        tic = time.perf_counter()
        values = score_fold(inputs, chosen, config=scoring_config(config))
        _sync(device)
        cost["seconds_metrics"] = time.perf_counter() - tic
        cost.update(inputs.cost)
    return BatchOutput(batch=batch, preds=preds.cpu().numpy(), targets=targets.cpu().numpy(), m255=m255_np,
                       failed=reasons, seconds=seconds, forward_images=forwards, extras=extras,
                       randomised_failed=rand_failed, values=values, cost=cost)


def scoring_config(config: RunConfig) -> ScoringConfig:
    return ScoringConfig(confidence=config.confidence, seed=config.seed)


def score_fold_outputs(job: FoldJob, outputs: Sequence[BatchOutput], config: RunConfig, *, keep_maps: bool,
                       metrics: Sequence[Metric] | None = None) -> FoldScores:
    """Gather the batch outputs of one fold (in batch order): the model-based values they carry, plus the
    maps-only metrics (:func:`fold_metrics`) scored on the whole fold."""
    outputs = sorted(outputs, key=lambda o: o.batch.start)
    n = len(job.image_ids)
    starts, stops = [o.batch.start for o in outputs], [o.batch.stop for o in outputs]
    if not outputs or starts[0] != 0 or stops[-1] != n or starts[1:] != stops[:-1]:
        raise HfusError(f"{job.arch} fold {job.fold}: the batch outputs do not cover images 0..{n} exactly once")
    m255 = np.concatenate([o.m255 for o in outputs])
    failed = [r for o in outputs for r in o.failed]
    targets = np.concatenate([o.targets for o in outputs]).astype(np.int64)
    extras = dict(job.extras)
    for key in {k for o in outputs for k in o.extras}:
        extras[key] = np.concatenate([o.extras[key] for o in outputs])
    inputs = ScoringInputs(m255=m255, slms=job.slms, image_ids=job.image_ids, labels=job.labels, targets=targets,
                           ok=np.array([r is None for r in failed], bool), extras=extras)
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
        arch=job.arch, fold=job.fold, checkpoint=job.checkpoint, image_ids=job.image_ids, labels=job.labels,
        preds=np.concatenate([o.preds for o in outputs]).astype(np.int64), targets=targets, failed=failed,
        values=values, seconds=sum(o.seconds for o in outputs), forward_images=sum(o.forward_images for o in outputs),
        maps=m255 if keep_maps else None, randomised_failed=rand_failed,
        randomised_maps=extras.get("m255_randomised") if keep_maps else None, cost=cost,
    )


def write_maps(runs: Sequence[FoldScores], path: Path) -> str:
    """Write the uint8 m255 maps (compressed npz, one array per arch/fold) and return the file's sha256."""
    arrays: dict[str, np.ndarray] = {}
    for run in runs:
        if run.maps is None:
            raise HfusError(f"{run.arch} fold {run.fold} kept no maps; evaluate with save_maps=True")
        arrays[f"{run.arch}__fold{run.fold}__maps"] = run.maps
        arrays[f"{run.arch}__fold{run.fold}__image_ids"] = np.array(run.image_ids)
        if run.randomised_maps is not None:  # PROTOCOL §7.1: verify re-scores randomisation@1 exactly from these
            arrays[f"{run.arch}__fold{run.fold}__maps_randomised"] = run.randomised_maps
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def run(method: Method, config: RunConfig, ds: Any, device: torch.device, *, keep_maps: bool, progress: bool) -> list[FoldScores]:
    """All (arch, fold) of the config, batch by batch, scored; an (arch, fold) where every image fails is an error."""
    runs: list[FoldScores] = []
    for arch in config.models:
        for fold in config.folds:
            job = prepare_fold(method, arch, fold, ds, config, device)
            batches = plan_batches({(job.arch, fold): len(job.image_ids)}, config.resolved_batch_size(device))
            bar = tqdm(total=len(job.image_ids), desc=f"{method.name} {arch} fold {fold}", unit="img",
                       disable=not progress, leave=False)
            outputs = []
            for batch in batches:
                outputs.append(run_batch(job, batch, config))
                bar.update(batch.stop - batch.start)
            bar.close()
            scores = score_fold_outputs(job, outputs, config, keep_maps=keep_maps)
            if all(r is not None for r in scores.failed):
                reason = Counter(scores.failed).most_common(1)[0][0]
                raise HfusError(f"method {method.name!r} failed on every image of {arch} fold {fold}: {reason}")
            runs.append(scores)
    return runs


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
    """
    from .data.dataset import dataset_provenance, load_dataset
    from .results import build_result
    from .runtime import environment

    if config is None:
        config = RunConfig.build(**options)
    elif options:
        config = config.replace(**options)
    loaded = method if isinstance(method, Method) else load_method(method)
    device = config.resolve_device()
    torch.manual_seed(config.seed)
    ds = load_dataset(config.dataset, revision=config.revision)
    runs = run(loaded, config, ds, device, keep_maps=save_maps or (figure and out is not None), progress=progress)
    result = build_result(loaded, runs, options=config.to_options(device), dataset=dataset_provenance(ds),
                          environment=environment(device), command=command)
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        if save_maps:
            maps_path = out_dir / f"{loaded.name}.maps.npz"
            result.record["maps_file"] = {"path": maps_path.name, "sha256": write_maps(runs, maps_path)}
        result.save(out_dir / f"{loaded.name}.json")
        if figure:
            from .figures import best_worst_figure

            best_worst_figure(runs, ds, out_dir / f"{loaded.name}.png")
    return result


__all__ = ["Batch", "BatchOutput", "FoldJob", "batch_metrics", "evaluate", "fold_metrics", "model_input", "plan_batches",
           "prepare_fold", "run", "run_batch", "score_fold_outputs", "write_maps"]
