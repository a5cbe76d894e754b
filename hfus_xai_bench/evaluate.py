"""The runner: dataset × checkpoints × method → maps → protocol metrics → a result record.

``evaluate(method, **options)`` is the Python twin of ``hfus-bench evaluate``. Maps are made and
scored batch by batch on the model's device; every image is either evaluated or counted as failed
with a reason (PROTOCOL §3).
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
import torch.nn.functional as F
from tqdm.auto import tqdm

from .constants import IMAGE_SIZE, NUM_FOLDS, SYNTH_DATASET, THRESHOLDS
from .errors import HfusError
from .explainers.contract import ExplainContext
from .explainers.loader import Method, as_tensor, check_shape, load_method
from .models.zoo import ARCHS, get_arch

#: Per-image failure reasons (PROTOCOL §3): an exception, a wrong shape, NaN/Inf, an all-zero map.
FAIL_EXCEPTION, FAIL_SHAPE, FAIL_NONFINITE, FAIL_EMPTY = "exception", "wrong_shape", "non_finite", "empty_map"


@dataclass
class FoldRun:
    """Per-image values of one (arch, fold)."""

    arch: str
    fold: int
    checkpoint: dict[str, Any]
    image_ids: list[str]
    labels: np.ndarray
    preds: np.ndarray
    targets: np.ndarray
    failed: list[str | None]
    hr1: np.ndarray
    hr2: np.ndarray
    cov_top: np.ndarray
    cov_bg: np.ndarray
    iou: np.ndarray  # [N, T, 5]
    s0: np.ndarray
    s_keep: np.ndarray
    s_remove: np.ndarray
    s_keep_t: np.ndarray  # [N, T]
    s_remove_t: np.ndarray  # [N, T]
    seconds: float
    forward_images: int
    maps: np.ndarray | None = None  # uint8 m255 [N, 224, 224] (zeros where failed)
    messages: list[str] = field(default_factory=list)


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HfusError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    return torch.device(device)


def _parse_list(value: str | Sequence[str] | Sequence[int] | None, all_values: Sequence) -> list:
    """Comma-separated text or a sequence → list of strings; ``"all"`` → ``all_values``."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(v).strip() for v in items if str(v).strip()]
    if items == ["all"]:
        return list(all_values)
    return items


def _forward_counter(model: torch.nn.Module) -> tuple[list[int], Any]:
    count = [0]

    def hook(_module: torch.nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            count[0] += int(args[0].shape[0])

    return count, model.register_forward_pre_hook(hook)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _call(explainer: Any, images: torch.Tensor, targets: torch.Tensor, method: Method) -> list[tuple[Any, str | None]]:
    """Run the method on the batch; on an exception retry image by image so failures are per image."""
    try:
        return [(explainer(images, targets), None)]
    except HfusError:
        raise
    except Exception as err:
        if len(images) == 1:
            from .explainers.loader import _describe

            return [(None, f"{FAIL_EXCEPTION}: {_describe(err, method.file)}")]
    return [item for i in range(len(images)) for item in _call(explainer, images[i : i + 1], targets[i : i + 1], method)]


def _postprocess(
    outputs: list[tuple[Any, str | None]], batch: int, method: Method, sign: str, device: torch.device
) -> tuple[torch.Tensor, list[str | None]]:
    """Raw method outputs → m255 uint8 (B, 224, 224) on ``device`` and a failure reason per image."""
    from .metrics import normalize_attribution, quantize

    maps = torch.zeros(batch, IMAGE_SIZE, IMAGE_SIZE, device=device)
    reasons: list[str | None] = []
    start = 0
    for raw, error in outputs:
        n = batch if len(outputs) == 1 else 1
        if error is not None:
            reasons.append(error)
            start += n
            continue
        try:
            tensor = as_tensor(raw, device)
            check_shape(tensor, n, method.kind)
        except HfusError as err:
            reasons.extend([f"{FAIL_SHAPE}: {err}"] * n)
            start += n
            continue
        finite = torch.isfinite(tensor.flatten(1)).all(1)
        tensor = torch.where(torch.isfinite(tensor), tensor, torch.zeros((), device=device))
        if method.kind == "attribution":
            tensor = normalize_attribution(tensor, sign=sign)
        else:
            tensor = tensor.squeeze(1) if tensor.ndim == 4 else tensor
            tensor = tensor.clamp(min=0)
        tensor = torch.as_tensor(tensor, device=device, dtype=torch.float32)
        if tensor.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            tensor = F.interpolate(tensor[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)[:, 0]
        maps[start : start + n] = tensor
        reasons.extend(None if ok else FAIL_NONFINITE for ok in finite.tolist())
        start += n
    m255 = torch.as_tensor(quantize(maps), device=device)
    empty = m255.flatten(1).amax(1) == 0
    reasons = [FAIL_EMPTY if (r is None and e) else r for r, e in zip(reasons, empty.tolist(), strict=True)]
    return m255, reasons


def _run_fold(
    method: Method,
    arch: str,
    fold: int,
    ds: Any,
    *,
    dataset: str,
    target: str,
    sign: str,
    confidence: str,
    device: torch.device,
    batch_size: int,
    limit: int | None,
    seed: int,
    keep_maps: bool,
    progress: bool,
) -> FoldRun:
    from .data.dataset import fold_arrays, fold_slms
    from .metrics import confidence_change, localisation_metrics
    from .models.checkpoints import load_model

    spec = get_arch(arch)
    model, info = load_model(spec.name, dataset=dataset, fold=fold, device=str(device))
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    checkpoint = _checkpoint_summary(info)
    test = fold_arrays(ds, fold, "test")
    n = len(test.image_ids) if limit is None else min(limit, len(test.image_ids))
    prior = torch.from_numpy(fold_slms(ds, fold, "train").astype(np.float32).mean(0) / 255.0).to(device)
    context = ExplainContext(
        arch=spec.name,
        target_layer=spec.resolve_target_layer(model),
        device=device,
        head=spec.head(model),
        seed=seed,
        batch_size=batch_size,
        depth_prior=prior,
    )
    explainer = method.build(model, context)

    labels = test.labels[:n].astype(np.int64)
    preds = np.zeros(n, np.int64)
    targets = np.zeros(n, np.int64)
    failed: list[str | None] = []
    m255_all = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    seconds, total_forward = 0.0, 0
    bar = tqdm(total=n, desc=f"{method.name} {arch} fold {fold}", unit="img", disable=not progress, leave=False)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        x = torch.from_numpy(test.images[start:stop]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            batch_preds = model(x).argmax(1)
        batch_targets = batch_preds if target == "pred" else torch.from_numpy(labels[start:stop]).to(device)
        preds[start:stop] = batch_preds.cpu().numpy()
        targets[start:stop] = batch_targets.cpu().numpy()
        count, handle = _forward_counter(model)
        _sync(device)
        tic = time.perf_counter()
        try:
            outputs = _call(explainer, x.clone(), batch_targets.clone(), method)
            _sync(device)
        finally:
            handle.remove()
        seconds += time.perf_counter() - tic
        total_forward += count[0]
        m255, reasons = _postprocess(outputs, stop - start, method, sign, device)
        m255_all[start:stop] = m255.cpu().numpy()
        failed.extend(reasons)
        bar.update(stop - start)
    bar.close()

    ok = np.array([r is None for r in failed], bool)
    nan = np.full(n, np.nan)
    hr1, hr2, cov_top, cov_bg = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    iou = np.full((n, len(THRESHOLDS), 5), np.nan)
    s0, s_keep, s_remove = nan.copy(), nan.copy(), nan.copy()
    s_keep_t = np.full((n, len(THRESHOLDS)), np.nan)
    s_remove_t = s_keep_t.copy()
    if ok.any():
        maps_ok, slms_ok = m255_all[ok], test.slms[:n][ok]
        loc = localisation_metrics(maps_ok, slms_ok, thresholds=THRESHOLDS)
        hr1[ok], hr2[ok], cov_top[ok], cov_bg[ok], iou[ok] = loc.hr1, loc.hr2, loc.cov_top, loc.cov_bg, loc.iou
        images_ok = torch.from_numpy(test.images[:n][ok]).permute(0, 3, 1, 2).float().div_(255.0)
        conf = confidence_change(
            model,
            images_ok.to(device),
            torch.from_numpy(maps_ok).to(device),
            torch.from_numpy(targets[ok]).to(device),
            unit=confidence,
            thresholds=THRESHOLDS,
            batch_size=512 if device.type == "cuda" else 64,
        )
        s0[ok], s_keep[ok], s_remove[ok] = conf.s0, conf.s_keep, conf.s_remove
        s_keep_t[ok], s_remove_t[ok] = conf.s_keep_t, conf.s_remove_t
    return FoldRun(
        arch=spec.name,
        fold=fold,
        checkpoint=checkpoint,
        image_ids=list(test.image_ids[:n]),
        labels=labels,
        preds=preds,
        targets=targets,
        failed=failed,
        hr1=hr1,
        hr2=hr2,
        cov_top=cov_top,
        cov_bg=cov_bg,
        iou=iou,
        s0=s0,
        s_keep=s_keep,
        s_remove=s_remove,
        s_keep_t=s_keep_t,
        s_remove_t=s_remove_t,
        seconds=seconds,
        forward_images=total_forward,
        maps=m255_all if keep_maps else None,
    )


def _checkpoint_summary(info: Any) -> dict[str, Any]:
    ckpt = getattr(info, "checkpoint", None)
    if ckpt is None:
        return {"name": None, "sha256": None}
    meta = getattr(ckpt, "meta", {}) or {}
    return {
        "name": getattr(ckpt, "name", None),
        "sha256": getattr(ckpt, "sha256", None),
        "dataset_revision": getattr(ckpt, "dataset_revision", None),
        "test_accuracy": meta.get("test_accuracy") if isinstance(meta, dict) else None,
    }


def save_maps(runs: Sequence[FoldRun], path: Path) -> str:
    """Write the uint8 m255 maps (compressed npz, one array per arch/fold) and return the file's sha256."""
    arrays: dict[str, np.ndarray] = {}
    for run in runs:
        assert run.maps is not None
        arrays[f"{run.arch}__fold{run.fold}__maps"] = run.maps
        arrays[f"{run.arch}__fold{run.fold}__image_ids"] = np.array(run.image_ids)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def evaluate(
    method: str | Path | Method,
    *,
    dataset: str = SYNTH_DATASET,
    revision: str | None = None,
    models: str | Sequence[str] = "mobilenet_v2",
    folds: str | Sequence[int] = "0",
    limit: int | None = None,
    target: str = "pred",
    sign: str = "pos",
    confidence: str = "logit",
    device: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    save_maps_file: bool = False,
    figure: bool = True,
    progress: bool = True,
    command: str | None = None,
):
    """Evaluate a method with the benchmark protocol and return a :class:`~hfus_xai_bench.results.Result`.

    ``method``: a built-in name, a path to a method file, or an installed entry point. ``models``:
    comma-separated architecture names or ``"all"``; ``folds``: fold numbers or ``"all"``.
    With ``out`` the result JSON (and the figure, and with ``save_maps_file`` the maps) are written there.
    """
    from .data.dataset import dataset_provenance, load_dataset
    from .results import build_result

    if target not in ("pred", "label"):
        raise HfusError(f"--target must be 'pred' or 'label', got {target!r}")
    if sign not in ("pos", "abs", "neg"):
        raise HfusError(f"--sign must be 'pos', 'abs' or 'neg', got {sign!r}")
    if confidence not in ("logit", "prob"):
        raise HfusError(f"--confidence must be 'logit' or 'prob', got {confidence!r}")
    if limit is not None and limit < 1:
        raise HfusError(f"--limit must be at least 1, got {limit}")
    loaded = method if isinstance(method, Method) else load_method(method)
    archs = [get_arch(a).name for a in _parse_list(models, list(ARCHS))]
    fold_list = [int(f) for f in _parse_list(folds, list(range(NUM_FOLDS)))]
    if not archs or not fold_list:
        raise HfusError("nothing to evaluate: give at least one model and one fold")
    bad = [f for f in fold_list if not 0 <= f < NUM_FOLDS]
    if bad:
        raise HfusError(f"folds must be in 0..{NUM_FOLDS - 1}, got {bad}")
    dev = resolve_device(device)
    bs = batch_size or (64 if dev.type == "cuda" else 16)
    torch.manual_seed(seed)
    ds = load_dataset(dataset, revision=revision)
    provenance = dataset_provenance(ds)

    runs: list[FoldRun] = []
    for arch in archs:
        for fold in fold_list:
            run = _run_fold(
                loaded, arch, fold, ds, dataset=dataset, target=target, sign=sign, confidence=confidence,
                device=dev, batch_size=bs, limit=limit, seed=seed, keep_maps=save_maps_file or figure, progress=progress,
            )
            n_failed = sum(r is not None for r in run.failed)
            if n_failed == len(run.failed):
                reason = Counter(run.failed).most_common(1)[0][0]
                raise HfusError(f"method {loaded.name!r} failed on every image of {arch} fold {fold}: {reason}")
            runs.append(run)

    options = {
        "models": archs, "folds": fold_list, "limit": limit, "target": target, "sign": sign,
        "confidence": confidence, "batch_size": bs, "seed": seed, "precision": "fp32", "device": str(dev),
    }
    result = build_result(loaded, runs, options=options, dataset=provenance, device=dev, command=command)
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        if save_maps_file:
            maps_path = out_dir / f"{loaded.name}.maps.npz"
            result.record["maps_file"] = {"path": maps_path.name, "sha256": save_maps(runs, maps_path)}
        result.save(out_dir / f"{loaded.name}.json")
        if figure:
            from .report import best_worst_figure

            best_worst_figure(runs, ds, out_dir / f"{loaded.name}.png")
    return result
