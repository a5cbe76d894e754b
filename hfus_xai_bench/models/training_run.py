"""One training run as ``hfus-bench train`` makes it: load the fold, train with the study recipe
(:func:`.training.train_model`), score the weights as stored and write the checkpoint with its card."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..constants import CLASSES, SYNTH_DATASET
from ..data.folds import split_folds
from ..errors import HfusError
from ..metrics.classification import classification_report
from ..metrics.counterfactual import CASE_APPLICABLE, CG, counterfactual_scores, predict_lowest
from ..runtime import environment, resolve_device
from .checkpoints import save_checkpoint, user_checkpoint_dir
from .recipe import AUGMENTATION, DEFAULT_EPOCHS, SELECTION, STUDY_RECIPE
from .resume import finished_run, refuse_stale_state, resume_path
from .training import init_description, predict_logits, train_model
from .zoo import get_arch

if TYPE_CHECKING:
    from ..data.dataset import FoldArrays


def _as_stored(model: nn.Module, dtype: str) -> nn.Module:
    """What a checkpoint of ``dtype`` stores, upcast: float16 rounds a copy's weights; float32 is the
    model."""
    if dtype != "float16":
        return model
    stored = copy.deepcopy(model)
    with torch.no_grad():
        for t in list(stored.parameters()) + list(stored.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    return stored


def checkpoint_name(arch: str, dataset: str, fold: int, seed: int = 0) -> str:
    """``<arch>_<dataset>_fold<k>[_seed<s>]`` (file-name safe)."""
    ds = dataset.replace("/", "--").replace(" ", "_")
    return f"{get_arch(arch).name}_{ds}_fold{fold}" + (f"_seed{seed}" if seed else "")


def _load_folds(dataset: str, revision: str | None, fold: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from ..data.dataset import dataset_provenance, fold_arrays, load_dataset

    split_folds(fold)  # validates the fold number before loading anything heavy
    ds = load_dataset(source=dataset, revision=revision)
    arrays = {name: fold_arrays(ds, fold, split=name) for name in ("train", "val", "test")}
    return arrays, dict(dataset_provenance(ds))


def twin_flip_block(
    model: nn.Module, test: FoldArrays, fold: int, logits: torch.Tensor
) -> dict[str, Any] | None:
    """The card's ``counterfactual`` block: of the correctly classified AD/PS/ST test images, how many twins
    (the same image with its class evidence removed) the model predicts CG, per class and in all: PROTOCOL
    §9's ``flip`` (:func:`.counterfactual_scores`) with the prediction as target. ``logits``: the model's
    on the test images. None where the dataset has no twins (real data)."""
    if test.twins is None:
        return None
    labels = np.asarray(test.labels, dtype=np.int64)
    pred = predict_lowest(logits).numpy()
    res = counterfactual_scores(model.eval(), None, test.twins, labels, pred, logits=logits)
    kept = (pred == labels) & (res.case == CASE_APPLICABLE)
    twin_is_cg = res.flip == 1.0
    per_class = {
        name: {
            "flipped": int((kept & twin_is_cg & (labels == c)).sum()),
            "n": int((kept & (labels == c)).sum()),
        }
        for c, name in enumerate(CLASSES)
        if c != CG
    }
    n, flipped = int(kept.sum()), int((kept & twin_is_cg).sum())
    return {
        "definition": (
            f"share of the twins of correctly classified AD/PS/ST test images (fold {fold}) predicted CG"
        ),
        "twin_flip_rate": flipped / n if n else None,
        "n": n,
        "per_class": per_class,
    }


def _card(
    arch: str,
    dataset: str,
    provenance: dict[str, Any],
    fold: int,
    split: dict[str, Any],
    arrays: dict[str, Any],
    seed: int,
    epochs: int,
    dtype: str,
    recipe: dict[str, Any],
    history: dict[str, Any],
) -> dict[str, Any]:
    """The model card's first part (what was trained on what, how); :func:`train` adds the scores, the
    history and the environment, in the card's key order."""
    tr, va, te = arrays["train"], arrays["val"], arrays["test"]
    return {
        "arch": arch,
        "dataset": {**provenance, "id": provenance.get("id", dataset)},
        "fold": int(fold),
        "split": {**split, "n_train": len(tr.labels), "n_val": len(va.labels), "n_test": len(te.labels)},
        "seed": int(seed),
        "init": history["init"],
        "epochs": int(epochs),
        "best_epoch": history["best_epoch"],
        "dtype": dtype,
        "recipe": {
            **STUDY_RECIPE,
            **recipe,
            "epochs": int(epochs),
            "augmentation": AUGMENTATION,
            "selection": SELECTION,
            "image_size": int(np.asarray(te.images).shape[1]),
        },
    }


def _measured(
    stored: nn.Module,
    arrays: dict[str, Any],
    fold: int,
    dev: torch.device,
    history: dict[str, Any],
) -> dict[str, Any]:
    """The card's measured part: test and validation scores of the weights as stored, the training history,
    the environment, the time made and, where the dataset has twins, the twin flip block."""
    va, te = arrays["val"], arrays["test"]
    test_logits = predict_logits(stored, te.images, dev)
    val_pred = predict_logits(stored, va.images, dev).argmax(1).numpy()
    measured: dict[str, Any] = {
        "metrics": {
            "test": classification_report(np.asarray(te.labels), test_logits.argmax(1).numpy()),
            "val": classification_report(np.asarray(va.labels), val_pred),
        },
        "history": history["epochs"],
        "environment": {
            **environment(dev),
            "seconds_per_epoch": history["seconds_per_epoch"],
            "deterministic": history["deterministic"],
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    flips = twin_flip_block(stored, te, fold, test_logits)
    if flips is not None:
        measured["counterfactual"] = flips
    return measured


def _finished(
    card_path: Path, run: dict[str, Any], recipe: dict[str, Any], provenance: dict[str, Any]
) -> bool:
    """Whether ``card_path`` is the card of the run ``run`` (arch, fold, seed, epochs, dtype, init) with
    ``recipe`` on the data ``provenance``, finished before (:func:`.resume.finished_run`)."""
    values = {**run, "init": init_description(run["init"])}
    values.update({f"recipe.{k}": v for k, v in recipe.items()})
    values.update({f"dataset.{k}": provenance[k] for k in ("revision", "sha256") if k in provenance})
    return finished_run(card_path, values)


def train(
    arch: str,
    dataset: str = SYNTH_DATASET,
    fold: int = 0,
    epochs: int = DEFAULT_EPOCHS,
    init: str | Path = "imagenet",
    device: str = "auto",
    out_dir: str | Path | None = None,
    seed: int = 0,
    *,
    revision: str | None = None,
    dtype: str = "float32",
    lr: float = STUDY_RECIPE["lr"],
    momentum: float = STUDY_RECIPE["momentum"],
    step_size: int = STUDY_RECIPE["step_size"],
    gamma: float = STUDY_RECIPE["gamma"],
    batch_size: int = STUDY_RECIPE["batch_size"],
    name: str | None = None,
    progress: bool = True,
    command: str | None = None,
    resume: bool = False,
) -> Path:
    """Train (arch, dataset, fold), evaluate on the test fold, write ``<name>.safetensors`` + ``<name>.json``
    into ``out_dir`` (default: the user cache, where :func:`load_model` finds it); return the card path.

    The card records ``command`` (what the CLI was given) and, where the dataset has twins, the twin flip
    block (:func:`twin_flip_block`): both are measured where the weights are, which matters for a checkpoint
    registered by sha256 only. The run keeps a resumable state next to the checkpoint until it is written
    (:mod:`.resume`); ``resume`` continues from it (without ``resume`` a state found there is an error) and
    keeps a checkpoint that the same run finished before (:func:`.resume.finished_run`)."""
    if dtype not in ("float32", "float16"):
        raise HfusError(f"--dtype must be float32 or float16, got {dtype!r}")
    spec = get_arch(arch)
    folds = split_folds(fold)
    split = {"test": folds["test"][0], "val": folds["val"][0], "train": folds["train"]}
    arrays, provenance = _load_folds(dataset, revision, fold)
    out = Path(out_dir).expanduser() if out_dir is not None else user_checkpoint_dir()
    stem = name or checkpoint_name(spec.name, provenance.get("id", dataset), fold, seed)
    state_path = refuse_stale_state(resume_path(out, stem), resume)
    recipe = {
        "lr": lr,
        "momentum": momentum,
        "step_size": step_size,
        "gamma": gamma,
        "batch_size": batch_size,
    }
    run = {"arch": spec.name, "fold": fold, "seed": seed, "epochs": epochs, "dtype": dtype, "init": init}
    if resume and not state_path.is_file() and _finished(out / f"{stem}.json", run, recipe, provenance):
        return out / f"{stem}.json"
    dev = resolve_device(device)
    tr, va = arrays["train"], arrays["val"]
    model, history = train_model(
        spec.name,
        tr.images,
        tr.labels,
        va.images,
        va.labels,
        epochs=epochs,
        init=init,
        seed=seed,
        device=dev,
        progress=progress,
        state_path=state_path,
        **recipe,
    )
    stored = _as_stored(model, dtype)
    card = _card(spec.name, dataset, provenance, fold, split, arrays, seed, epochs, dtype, recipe, history)
    card.update(_measured(stored, arrays, fold, dev, history))
    if command:
        card["command"] = command
    save_checkpoint(model, out / f"{stem}.safetensors", card)
    state_path.unlink(missing_ok=True)
    return out / f"{stem}.json"


__all__: Sequence[str] = ("checkpoint_name", "train", "twin_flip_block")
