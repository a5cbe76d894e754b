"""The batches of a run: the plan, and one (arch, fold) in the process that runs some of its batches.

:func:`plan_run` cuts a run into whole batches (arch, fold, images start..stop), the single-process
plan; :func:`share` is one process's part of it (every N-th batch). For each (arch, fold) a process
prepares the fold, runs its batches and (the process with the first batch) repeats the first call:

:func:`prepare_fold` loads the checkpoint, builds the K randomised copies from the model **as loaded**
(PROTOCOL §7.1.1: copy k = ``randomised_model(model, seed=derive(0, "randomisation", k))``, before any
explainer has touched the model; they do not depend on the run seed), sets the run's precision, then
fingerprints each model just before it builds the method for it. :func:`run_batch` runs every explanation
call of a batch through :func:`hfus_xai_bench.calls.explain` — trained model (stage ``method``), each copy
(``randomisation``), the runner-up class (``runner_up``, §9) — from one random state, derive(run seed,
"batch", arch, fold, first row), and scores the model-based metrics of the batch, each under its own stage.
:func:`repeat_first` is §3's repeat: the trained model's call on the fold's first batch again, from the
same state.

The runner makes the inputs that take more explanation calls only if a metric of the run declares them
(``Metric.extras``):
``m255_randomised`` (B, K, 224, 224) uint8 + ``randomised_ok`` (B, K) bool (False only where the copy's map
failed: exception, shape, NaN; an all-zero map is not a failure); ``m255_runner_up`` (B, 224, 224) +
``runner_up_ok`` (B,) + ``runner_up`` (B,) int64 (the class with the highest logit other than the target,
lowest index on ties). It adds ``evidence`` (B, 224, 224) and ``twins`` (B, 224, 224, 3) from the dataset
when it has them, and gives the model-based metrics the predict forward's ``logits`` (B, classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from .calls import (
    Call,
    Explanation,
    PassCounter,
    explain,
    fingerprint,
    harness_passes,
    set_precision,
    stage_of,
)
from .config import RunConfig
from .errors import HfusError
from .explainers.contract import FAIL_EMPTY, ExplainContext, maps_agree
from .explainers.loader import Method
from .metrics.inputs import ScoringConfig, ScoringInputs
from .metrics.registry import Metric
from .metrics.registry import metrics as registry_metrics
from .models.zoo import get_arch
from .scoring import score_fold
from .seeding import derive_seed

#: the inputs the runner makes by explaining more (copies, runner-up)
COPY_EXTRAS = ("m255_randomised", "randomised_ok")
RUNNER_UP_EXTRAS = ("m255_runner_up", "runner_up_ok", "runner_up")
#: extras a track provides from its dataset columns (where it has them): evidence masks and twins
DATA_EXTRAS = ("evidence", "twins")


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
    labels, SLMs (and evidence masks where the dataset has them), the checkpoint summary and fold-level
    cost."""

    arch: str
    fold: int
    checkpoint: dict[str, Any]
    image_ids: list[str]
    labels: np.ndarray
    slms: np.ndarray
    #: (n, 224, 224) uint8 0/255 evidence masks (PROTOCOL §9), None on datasets without them
    evidence: np.ndarray | None = None
    cost: dict[str, float] = field(default_factory=dict)


@dataclass(kw_only=True)
class FoldJob(FoldMeta):
    """Everything one (arch, fold) needs in the process that runs (some of) its batches.

    ``images`` (n, 224, 224, 3) uint8 holds the decoded images of the rows this process evaluates (zeros
    elsewhere); ``twins`` likewise (None without twins); ``trained`` and ``copies``: the method built for
    the model and for each randomised copy (:class:`~hfus_xai_bench.calls.Call`); ``passes``: the counter
    watching all of them.
    """

    model: torch.nn.Module
    images: np.ndarray
    method: Method
    device: torch.device
    trained: Call
    passes: PassCounter
    copies: list[Call] = field(default_factory=list)
    twins: np.ndarray | None = None
    #: inputs the run's metrics need (names of ScoringInputs.extras)
    needs: frozenset[str] = frozenset()


@dataclass
class BatchOutput:
    """Per-image outputs of one batch (all arrays of length ``stop - start``).

    ``values``: the per-image values of the model-based metrics, scored on this batch (PROTOCOL §8);
    ``extras``: the per-image inputs of the maps-only metrics made by the runner (copies, runner-up);
    ``randomised_failed``: per image, per copy, why the copy's map failed (None = ok; None if no copies);
    ``runner_up_failed``: per image, why the runner-up map failed (None if not run); ``cost``: the batch's
    rows and seconds per stage (``forward_rows/<stage>``, ``backward_rows/<stage>``, ``seconds/<stage>``)
    and the metrics' own counters.
    """

    batch: Batch
    preds: np.ndarray
    targets: np.ndarray
    m255: np.ndarray  # uint8 (B, 224, 224), zeros where failed (non_finite: see to_m255)
    failed: list[str | None]
    seconds: float
    forward_images: int
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    randomised_failed: list[list[str | None]] | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    runner_up_failed: list[str | None] | None = None


def plan_batches(n_images: dict[tuple[str, int], int], batch_size: int) -> list[Batch]:
    """Whole batches in processing order: (arch, fold) in the given order, then image ranges."""
    return [
        Batch(arch, fold, start, min(start + batch_size, n))
        for (arch, fold), n in n_images.items()
        for start in range(0, n, batch_size)
    ]


def fold_size(ds: Any, fold: int, config: RunConfig) -> int:
    """Images evaluated of ``fold``: its test split's size, or ``config.limit`` if smaller."""
    from .data.dataset import split_size

    n = split_size(ds, fold, "test")
    return n if config.limit is None else min(config.limit, n)


def fold_sizes(ds: Any, config: RunConfig) -> dict[tuple[str, int], int]:
    """Images evaluated per (arch, fold) in run order (architectures, then folds): the test split's size, or
    ``config.limit`` if smaller."""
    sizes = {fold: fold_size(ds, fold, config) for fold in config.folds}
    empty = [fold for fold, n in sizes.items() if n == 0]
    if empty:
        raise HfusError(
            f"test fold {empty[0]} of this dataset holds no image: nothing to evaluate; choose other --folds"
        )
    return {(get_arch(arch).name, fold): sizes[fold] for arch in config.models for fold in config.folds}


def plan_run(ds: Any, config: RunConfig, device: torch.device) -> list[Batch]:
    """The single-process plan of a run: every (arch, fold) of the config, in whole batches of the batch
    size."""
    return plan_batches(fold_sizes(ds, config), config.resolved_batch_size(device))


def share(batches: Sequence[Batch], index: int, count: int) -> list[Batch]:
    """Process ``index`` of ``count``'s deterministic share of the plan: every ``count``-th whole batch
    (``batches[index::count]``, the stride of lm-evaluation-harness; balanced across architectures)."""
    if count < 1 or not 0 <= index < count:
        raise HfusError(f"a share is index/count with 0 <= index < count, got {index}/{count}")
    return list(batches[index::count])


def checkpoint_summary(info: Any) -> dict[str, Any]:
    """``record["checkpoints"][arch][fold]``: name, sha256, dataset revision, test accuracy of the card."""
    ckpt = info.checkpoint
    return {
        "name": ckpt.name,
        "sha256": ckpt.sha256,
        "dataset_revision": ckpt.dataset_revision,
        "test_accuracy": ckpt.accuracy,
    }


def model_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) → float (B, 3, H, W) in [0, 1] on ``device`` (channels_last on CPU), as the runner
    feeds the method and the model-based metrics."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


def batch_metrics(metrics: Sequence[Metric] | None = None) -> list[Metric]:
    """The metrics scored per run batch: the model-based ones (image scope, scored where the model is)."""
    return [m for m in registry_metrics(metrics) if m.needs == "model"]


def fold_metrics(metrics: Sequence[Metric] | None = None) -> list[Metric]:
    """The metrics scored once per (arch, fold) after the gather: the maps-only ones (image and fold
    scope)."""
    return [m for m in registry_metrics(metrics) if m.needs != "model"]


def needed_extras(metrics: Sequence[Metric] | None = None) -> frozenset[str]:
    """Every ScoringInputs extra a metric of the run declares."""
    return frozenset(name for m in registry_metrics(metrics) for name in m.extras)


def scoring_config(config: RunConfig) -> ScoringConfig:
    return ScoringConfig(confidence=config.confidence, seed=config.seed, randomisations=config.randomisations)


def call_seed(config: RunConfig, batch: Batch) -> int:
    """PROTOCOL §3: the state of every explanation call of ``batch``: derive(run seed, "batch", arch, fold,
    first row)."""
    return derive_seed(config.seed, "batch", batch.arch, batch.fold, batch.start)


def training_sample(ds: Any, fold: int, seed: int, device: torch.device) -> torch.Tensor:
    """``TRAINING_SAMPLE_SIZE`` training images of ``fold`` (seeded by the run seed and the fold), float in
    [0, 1] on ``device``: ``ExplainContext.training_sample`` (Expected Gradients' baselines, PROTOCOL §5)."""
    from .constants import TRAINING_SAMPLE_SIZE
    from .data.dataset import fold_arrays, split_size

    n = split_size(ds, fold, "train")
    rng = np.random.default_rng(derive_seed(seed, "training-sample", fold))
    rows = np.sort(rng.choice(n, size=min(TRAINING_SAMPLE_SIZE, n), replace=False))
    return model_input(fold_arrays(ds, fold, "train", rows=rows.tolist()).images, device)


def _build(
    method: Method,
    label: str,
    model: torch.nn.Module,
    *,
    spec: Any,
    config: RunConfig,
    device: torch.device,
    prior: torch.Tensor,
    sample: torch.Tensor | None,
) -> Call:
    """The method built for ``model`` (the trained model or a copy), with its context and fingerprint."""
    context = ExplainContext.for_model(
        spec,
        model,
        device,
        seed=config.seed,
        batch_size=config.resolved_batch_size(device),
        depth_prior=prior,
        training_sample=sample,
    )
    reference = fingerprint(model)
    return Call(label, model, method.build(model, context), context, reference)


def fold_meta(
    ds: Any, arch: str, fold: int, n: int, checkpoint: dict[str, Any], cost: dict[str, float] | None = None
) -> FoldMeta:
    """The :class:`FoldMeta` of (arch, fold) from the dataset: ids, labels, SLMs (+ evidence) of the first
    ``n`` test images, the run's (no image decoded)."""
    from .data.dataset import fold_arrays

    meta = fold_arrays(ds, fold, "test", rows=range(n), images=False)
    return FoldMeta(
        arch=get_arch(arch).name,
        fold=fold,
        checkpoint=checkpoint,
        image_ids=meta.image_ids,
        labels=meta.labels,
        slms=meta.slms,
        evidence=getattr(meta, "evidence", None),
        cost=dict(cost or {}),
    )


def _decode(ds: Any, fold: int, rows: Sequence[int], n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The test images (and twins, None without) of ``rows`` decoded into (n, 224, 224, 3) uint8, zeros
    elsewhere."""
    from .data.dataset import fold_arrays

    decoded = fold_arrays(ds, fold, "test", rows=rows)
    images = np.zeros((n, *decoded.images.shape[1:]), np.uint8)
    images[list(rows)] = decoded.images
    twins = None
    if getattr(decoded, "twins", None) is not None:
        twins = np.zeros_like(images)
        twins[list(rows)] = decoded.twins
    return images, twins


def prepare_fold(
    method: Method,
    arch: str,
    fold: int,
    ds: Any,
    config: RunConfig,
    device: torch.device,
    rows: Sequence[int],
    n: int,
    *,
    passes: PassCounter,
    needs: frozenset[str],
    count_build: bool = True,
) -> FoldJob:
    """Load (arch, fold)'s checkpoint, decode the test images ``rows``, build the K randomised copies from
    the pristine model, set the run's precision on every model (:func:`~hfus_xai_bench.calls.set_precision`:
    every pass of the run goes through one of them), then fingerprint each model and build the method for it.

    Args:
        rows: the test images this process evaluates (indices < ``n``).
        n: the images of the fold the run evaluates (:func:`fold_size`).
        passes: the counter that watches the model and the copies (PROTOCOL §6).
        needs: the metric inputs the run makes (:func:`needed_extras`): copies only if one needs them.
        count_build: count the passes a method makes while it is built (one process per (arch, fold)
            does, so split runs add up to the single-process counts).
    """
    from .data.dataset import depth_prior
    from .metrics.randomisation import randomised_model
    from .models.checkpoints import load_model

    spec = get_arch(arch)
    model, info = load_model(
        spec.name, dataset=config.dataset, fold=fold, device=str(device), revision=config.revision
    )
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    k_copies = config.randomisations if needs & set(COPY_EXTRAS) else 0
    with passes.stage("randomisation"):  # PROTOCOL §7.1.1: from the model as loaded, before any explainer
        copies = [randomised_model(model, seed=derive_seed(0, "randomisation", k)) for k in range(k_copies)]
    meta = fold_meta(ds, spec.name, fold, n, checkpoint_summary(info))
    images, twins = _decode(ds, fold, rows, n)
    prior = torch.from_numpy(depth_prior(ds, fold)).to(device)
    sample = training_sample(ds, fold, config.seed, device)
    on = {"spec": spec, "config": config, "device": device, "prior": prior, "sample": sample}
    counting, passes.counting = passes.counting, count_build
    try:
        for net in (model, *copies):  # copies first built from the float32 model, then each set alike
            set_precision(net, config.precision, device)
            passes.watch(net)
        with passes.stage("method"):
            trained = _build(method, "the trained model", model, **on)
        with passes.stage("randomisation"):
            built = [_build(method, f"randomised copy {k}", c, **on) for k, c in enumerate(copies)]
    finally:
        passes.counting = counting
    return FoldJob(
        **{f.name: getattr(meta, f.name) for f in fields(FoldMeta)},
        model=model,
        images=images,
        twins=twins,
        method=method,
        device=device,
        trained=trained,
        copies=built,
        passes=passes,
        needs=needs,
    )


def _evidence_extra(job: FoldJob, sl: slice) -> dict[str, Any] | None:
    """``context.extra["evidence"]`` for reference rows that declare ``"reads": ("evidence",)`` (PROTOCOL
    §9)."""
    if "evidence" not in tuple(job.method.metadata.get("reads", ()) or ()):
        return None
    if job.evidence is None:
        raise HfusError(
            f"method {job.method.name!r} reads the evidence masks; this dataset has none (PROTOCOL §9)"
        )
    return {"evidence": torch.from_numpy(job.evidence[sl] > 0).to(job.device)}


def _explain(
    job: FoldJob,
    call: Call,
    x: torch.Tensor,
    targets: torch.Tensor,
    batch: Batch,
    config: RunConfig,
    stage: str,
) -> Explanation:
    sl = slice(batch.start, batch.stop)
    return explain(
        call,
        x,
        targets,
        method=job.method,
        seed=call_seed(config, batch),
        stage=stage,
        passes=job.passes,
        sign=config.sign,
        extra=_evidence_extra(job, sl),
    )


def _copy_failed(reasons: Sequence[str | None]) -> list[str | None]:
    """A copy's (or the runner-up's) failure reasons: an all-zero map is a constant map, not a failure
    (§7.1.1)."""
    return [None if r in (None, FAIL_EMPTY) else r for r in reasons]


def runner_up_classes(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """PROTOCOL §9: per image the class with the highest logit other than the target (lowest index on
    ties)."""
    masked = logits.detach().float().clone()
    masked[torch.arange(len(masked), device=masked.device), targets] = -torch.inf
    return masked.argmax(1)  # torch.argmax returns the first maximal index


def _more_calls(
    job: FoldJob,
    batch: Batch,
    config: RunConfig,
    x: torch.Tensor,
    targets: torch.Tensor,
    logits: torch.Tensor,
) -> tuple[dict[str, np.ndarray], list[list[str | None]] | None, list[str | None] | None]:
    """The copies' and the runner-up's calls of a batch: their metric inputs and failure reasons."""
    extras: dict[str, np.ndarray] = {}
    rand_failed = runner_failed = None
    if job.copies:
        done = [_explain(job, c, x, targets, batch, config, "randomisation") for c in job.copies]
        per_copy = [_copy_failed(e.reasons) for e in done]
        rand_failed = [list(r) for r in zip(*per_copy, strict=True)]
        extras["m255_randomised"] = torch.stack([e.m255 for e in done], 1).cpu().numpy()
        extras["randomised_ok"] = np.array([[r is None for r in row] for row in rand_failed], bool)
    if job.needs & set(RUNNER_UP_EXTRAS):
        runner_up = runner_up_classes(logits, targets)
        done1 = _explain(job, job.trained, x, runner_up, batch, config, "runner_up")
        runner_failed = _copy_failed(done1.reasons)
        extras["m255_runner_up"] = done1.m255.cpu().numpy()
        extras["runner_up_ok"] = np.array([r is None for r in runner_failed], bool)
        extras["runner_up"] = runner_up.cpu().numpy().astype(np.int64)
    return extras, rand_failed, runner_failed


def score_model_metrics(
    inputs: ScoringInputs, metrics: Sequence[Metric], config: ScoringConfig, passes: PassCounter
) -> dict[str, np.ndarray]:
    """The model-based metrics of one run batch, each under its cost stage (the runner and ``verify`` both
    score through this); a metric whose inputs are absent is skipped (e.g. counterfactual@1 without twins:
    unavailable, never 0). The metrics' own counters are left in ``inputs.cost``."""
    values: dict[str, np.ndarray] = {}
    for metric in metrics:
        if not set(metric.extras) <= set(inputs.extras):
            continue
        with passes.stage(stage_of(metric)), harness_passes(inputs.model):
            values.update(score_fold(inputs, [metric], config=config))
    return values


def batch_inputs(
    job: FoldMeta,
    batch: Batch,
    m255: np.ndarray,
    ok: np.ndarray,
    targets: np.ndarray,
    extras: dict[str, Any],
    *,
    model: torch.nn.Module | None = None,
    images: Any = None,
    twins: np.ndarray | None = None,
) -> ScoringInputs:
    """The scoring inputs of one run batch: the fold's per-image data sliced to the batch, the dataset's
    evidence and twins (where it has them) among the extras.

    Args:
        job: the fold's per-image data (whole fold; sliced here).
        m255, ok, targets: the batch's maps, which of them succeeded, and the explained classes.
        extras: the batch's metric inputs the runner made (copies, runner-up, logits).
        model, images, twins: for the model-based metrics (``images`` the batch's model input; ``twins``
            the whole fold's, sliced here).
    """
    sl = slice(batch.start, batch.stop)
    data: dict[str, Any] = dict(extras)
    if job.evidence is not None:
        data["evidence"] = job.evidence[sl]
    if twins is not None:
        data["twins"] = twins[sl]
    return ScoringInputs(
        m255=m255,
        slms=job.slms[sl],
        image_ids=job.image_ids[sl],
        labels=job.labels[sl],
        targets=targets,
        ok=ok,
        model=model,
        images=images,
        extras=data,
    )


def run_batch(
    job: FoldJob, batch: Batch, config: RunConfig, metrics: Sequence[Metric] | None = None
) -> BatchOutput:
    """One batch: predict, pick the targets, explain with the model, each copy and (§9) the runner-up class
    from one state, post-process (§3.1) and score the model-based metrics of the batch
    (:func:`batch_metrics`)."""
    before = job.passes.snapshot()
    sl = slice(batch.start, batch.stop)
    x = model_input(job.images[sl], job.device)
    with job.passes.stage("predict"), harness_passes(job.model), torch.inference_mode():
        logits = job.model(x)
    preds = logits.argmax(1)
    targets = preds if config.target == "pred" else torch.from_numpy(job.labels[sl]).to(job.device)
    main = _explain(job, job.trained, x, targets, batch, config, "method")
    forwards = int(job.passes.forward["method"] - before.get("forward_rows/method", 0))
    extras, rand_failed, runner_failed = _more_calls(job, batch, config, x, targets, logits)
    m255 = main.m255.cpu().numpy()
    ok = np.array([r is None for r in main.reasons], bool)
    # the predict forward's logits: counterfactual@1 reads the image's prediction from them (no second
    # forward)
    inputs = batch_inputs(
        job,
        batch,
        m255,
        ok,
        targets.cpu().numpy(),
        {**extras, "logits": logits},
        model=job.model,
        images=x,
        twins=job.twins,
    )
    values = score_model_metrics(inputs, batch_metrics(metrics), scoring_config(config), job.passes)
    cost = {k: v - before.get(k, 0.0) for k, v in job.passes.snapshot().items()}
    cost.update(inputs.cost)
    return BatchOutput(
        batch=batch,
        preds=preds.cpu().numpy(),
        targets=targets.cpu().numpy(),
        m255=m255,
        failed=main.reasons,
        seconds=main.seconds,
        forward_images=forwards,
        extras=extras,
        randomised_failed=rand_failed,
        values=values,
        cost={k: v for k, v in cost.items() if v},
        runner_up_failed=runner_failed,
    )


def repeat_first(job: FoldJob, first: BatchOutput, config: RunConfig) -> dict[str, float]:
    """PROTOCOL §3's repeat: the trained model's call on the fold's first batch again, from the same state.

    Maps outside ``verify --rerun``'s agreement (``maps_agree``), or another set of failed images, stop the
    run (HfusError). Returns the repeat's rows and seconds (stage ``repeat``).
    """
    batch = first.batch
    if batch.start != 0:
        raise HfusError("internal: the repeat is made on the first batch of an (arch, fold)")
    before = job.passes.snapshot()
    x = model_input(job.images[batch.start : batch.stop], job.device)
    targets = torch.from_numpy(np.asarray(first.targets, np.int64)).to(job.device)
    again = _explain(job, job.trained, x, targets, batch, config, "repeat")
    was_ok = np.array([r is None for r in first.failed])
    now_ok = np.array([r is None for r in again.reasons])
    good, same, worst = maps_agree(first.m255, again.m255.cpu().numpy())
    bad = (was_ok != now_ok) | (was_ok & now_ok & ~good)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        why = (
            f"image {i} {'failed' if not now_ok[i] else 'succeeded'} this time"
            if was_ok[i] != now_ok[i]
            else f"image {i}: {same[i]:.1%} identical pixels, max level difference {int(worst[i])}"
        )
        raise HfusError(
            f"method {job.method.name!r} gave other maps when its first call on {job.arch} fold {job.fold} "
            f"was repeated from the same state ({int(bad.sum())} of {len(bad)} maps; {why}); "
            "a method must give the same maps for the same call (PROTOCOL §3): the run is stopped and "
            "nothing is recorded"
        )
    return {k: v - before.get(k, 0.0) for k, v in job.passes.snapshot().items() if v - before.get(k, 0.0)}


__all__ = [
    "COPY_EXTRAS",
    "DATA_EXTRAS",
    "RUNNER_UP_EXTRAS",
    "Batch",
    "BatchOutput",
    "FoldJob",
    "FoldMeta",
    "batch_inputs",
    "batch_metrics",
    "call_seed",
    "checkpoint_summary",
    "fold_meta",
    "fold_metrics",
    "fold_size",
    "fold_sizes",
    "model_input",
    "needed_extras",
    "plan_batches",
    "plan_run",
    "prepare_fold",
    "repeat_first",
    "run_batch",
    "runner_up_classes",
    "score_model_metrics",
    "scoring_config",
    "share",
]
