"""The runner: dataset × checkpoints × method → maps → the scoring core → a result record.

``evaluate(method, config)`` is the Python twin of ``hfus-bench evaluate``. The work of a run is a list
of whole **batches** (arch, fold, images start..stop, :func:`plan_batches`), processed in order:

1. :func:`prepare_fold` loads the checkpoint of (arch, fold), the test images and builds the method
   (a :class:`FoldJob`; fold-level inputs of the metrics go to ``FoldJob.extras``);
2. :func:`run_batch` runs the method on one batch and returns its per-image outputs
   (:class:`BatchOutput`: predictions, targets, ``m255`` maps, failure reasons, time, forwards, and
   per-image ``extras``);
3. :func:`score_fold_outputs` gathers the outputs of a fold's batches (in batch order) and scores
   them with :func:`hfus_xai_bench.scoring.score_fold` (``ScoringInputs.extras`` = the fold's
   extras + the batches' extras, concatenated).

A split run (torchrun ranks or shards) can hand whole batches to processes and gather the
:class:`BatchOutput` s before step 3: the per-image values do not depend on who computed a batch
(PROTOCOL §8). Every image is either evaluated or counted as failed with a reason (PROTOCOL §3).
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
from .explainers.contract import ExplainContext, run_method, to_m255
from .explainers.loader import Method, load_method
from .metrics.inputs import ScoringConfig, ScoringInputs
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
    """Everything one (arch, fold) needs: model, test images (first ``n``), the built method, provenance."""

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
    #: fold-level inputs of model-based metrics (e.g. a randomised copy of the model); see ScoringInputs.extras
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchOutput:
    """Per-image outputs of one batch (all arrays of length ``stop - start``)."""

    batch: Batch
    preds: np.ndarray
    targets: np.ndarray
    m255: np.ndarray  # uint8 (B, 224, 224), zeros where failed
    failed: list[str | None]
    seconds: float
    forward_images: int
    #: per-image arrays for the metrics (first axis = image), concatenated over the fold's batches
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def checkpoint_summary(info: Any) -> dict[str, Any]:
    """``record["checkpoints"][arch][fold]``: name, sha256, dataset revision, test accuracy of the card."""
    ckpt = info.checkpoint
    return {"name": ckpt.name, "sha256": ckpt.sha256, "dataset_revision": ckpt.dataset_revision,
            "test_accuracy": ckpt.accuracy}


def plan_batches(n_images: dict[tuple[str, int], int], batch_size: int) -> list[Batch]:
    """Whole batches in processing order: (arch, fold) in the given order, then image ranges."""
    return [Batch(arch, fold, start, min(start + batch_size, n))
            for (arch, fold), n in n_images.items() for start in range(0, n, batch_size)]


def _as_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) → float (B, 3, H, W) in [0, 1] on ``device`` (channels_last on CPU)."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


def prepare_fold(method: Method, arch: str, fold: int, ds: Any, config: RunConfig, device: torch.device) -> FoldJob:
    """Load the checkpoint and the test images of (arch, fold) and build the method for that model."""
    from .data.dataset import fold_arrays, fold_slms
    from .models.checkpoints import load_model

    spec = get_arch(arch)
    model, info = load_model(spec.name, dataset=config.dataset, fold=fold, device=str(device))
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    test = fold_arrays(ds, fold, "test")
    n = len(test.image_ids) if config.limit is None else min(config.limit, len(test.image_ids))
    prior = torch.from_numpy(fold_slms(ds, fold, "train").astype(np.float32).mean(0) / 255.0).to(device)
    context = ExplainContext(
        arch=spec.name, target_layer=spec.resolve_target_layer(model), device=device, head=spec.head(model),
        seed=config.seed, batch_size=config.resolved_batch_size(device), depth_prior=prior,
    )
    return FoldJob(
        arch=spec.name, fold=fold, model=model, checkpoint=checkpoint_summary(info), image_ids=list(test.image_ids[:n]),
        images=test.images[:n], labels=test.labels[:n].astype(np.int64), slms=test.slms[:n],
        explainer=method.build(model, context), method=method, device=device,
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


def run_batch(job: FoldJob, batch: Batch, config: RunConfig) -> BatchOutput:
    """Predict, pick the targets, run the method on one batch and post-process its maps (PROTOCOL §3)."""
    device = job.device
    x = _as_input(job.images[batch.start : batch.stop], device)
    with torch.inference_mode():
        preds = job.model(x).argmax(1)
    targets = preds if config.target == "pred" else torch.from_numpy(job.labels[batch.start : batch.stop]).to(device)
    count, handle = _forward_counter(job.model)
    _sync(device)
    tic = time.perf_counter()
    try:
        outputs = run_method(job.explainer, x.clone(), targets.clone(), job.method.file)
        _sync(device)
    finally:
        handle.remove()
    seconds = time.perf_counter() - tic
    m255, reasons = to_m255(outputs, batch.stop - batch.start, job.method.kind, config.sign, device)
    return BatchOutput(batch=batch, preds=preds.cpu().numpy(), targets=targets.cpu().numpy(), m255=m255.cpu().numpy(),
                       failed=reasons, seconds=seconds, forward_images=count[0])


def scoring_config(config: RunConfig) -> ScoringConfig:
    return ScoringConfig(confidence=config.confidence, seed=config.seed)


def score_fold_outputs(job: FoldJob, outputs: Sequence[BatchOutput], config: RunConfig, *, keep_maps: bool) -> FoldScores:
    """Gather the batch outputs of one fold (in batch order) and score them with the whole registry."""
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
    inputs = ScoringInputs(
        m255=m255, slms=job.slms, image_ids=job.image_ids, labels=job.labels, targets=targets,
        ok=np.array([r is None for r in failed], bool), model=job.model,
        images=torch.from_numpy(job.images).permute(0, 3, 1, 2).float().div_(255.0), extras=extras,
    )
    values = score_fold(inputs, config=scoring_config(config))
    return FoldScores(
        arch=job.arch, fold=job.fold, checkpoint=job.checkpoint, image_ids=job.image_ids, labels=job.labels,
        preds=np.concatenate([o.preds for o in outputs]).astype(np.int64), targets=targets, failed=failed,
        values=values, seconds=sum(o.seconds for o in outputs), forward_images=sum(o.forward_images for o in outputs),
        maps=m255 if keep_maps else None,
    )


def write_maps(runs: Sequence[FoldScores], path: Path) -> str:
    """Write the uint8 m255 maps (compressed npz, one array per arch/fold) and return the file's sha256."""
    arrays: dict[str, np.ndarray] = {}
    for run in runs:
        if run.maps is None:
            raise HfusError(f"{run.arch} fold {run.fold} kept no maps; evaluate with save_maps=True")
        arrays[f"{run.arch}__fold{run.fold}__maps"] = run.maps
        arrays[f"{run.arch}__fold{run.fold}__image_ids"] = np.array(run.image_ids)
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


__all__ = ["Batch", "BatchOutput", "FoldJob", "evaluate", "plan_batches", "prepare_fold", "run", "run_batch",
           "score_fold_outputs", "write_maps"]
