"""Reproducible training of the reference models with the study recipe (PROTOCOL §2).

Recipe (defaults, all overridable and recorded in the card): SGD lr 1e-3 momentum 0.9,
StepLR(step 7, γ 0.1), cross-entropy, batch 8, the study's 100 epochs, best-validation checkpoint
(highest validation accuracy; ties go to the lower validation loss, then the earlier epoch), train
augmentation = random rotation ±15° (bilinear, black fill) + horizontal flip (p 0.5) at 224×224, applied
batched on the device with one affine grid per batch. Folds for fold k: test = k, validation = (k+1) % 5,
train = the other three.

Deterministic: seeded data order, augmentation and initialisation; ``torch.use_deterministic_algorithms``
(on CUDA strict, with global average pooling trained as a spatial mean: :mod:`.pooling`; elsewhere warn
only), so the same inputs, seed, device kind and torch give the same checkpoint sha256.

:func:`train_model` works on plain tensors / arrays (no ``datasets`` needed, e.g. on a GPU box);
:func:`train` loads the dataset, trains, evaluates the test fold and writes a checkpoint + card.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import CLASSES, NUM_CLASSES, SYNTH_DATASET
from ..data.folds import split_folds
from ..errors import HfusError
from ..jsonio import load_json
from ..metrics.classification import classification_report
from ..metrics.counterfactual import CASE_APPLICABLE, CG, counterfactual_scores, predict_lowest
from ..runtime import environment, resolve_device
from ..seeding import seed_global
from .checkpoints import load_state_dict, save_checkpoint, sha256_file, user_checkpoint_dir
from .pooling import GlobalPoolAsMean
from .recipe import DEFAULT_EPOCHS, STUDY_RECIPE
from .zoo import build_model, get_arch

if TYPE_CHECKING:
    from ..data.dataset import FoldArrays

MAX_ROTATION_DEG = 15.0
AUGMENTATION = (
    "random rotation ±15° (bilinear, zero fill) + horizontal flip p=0.5, batched affine grid, 224×224"
)
SELECTION = "best validation accuracy (ties: lower validation loss, then earlier epoch)"
DETERMINISM_CUDA = "use_deterministic_algorithms(True); global average pooling trained as a spatial mean"
DETERMINISM_OTHER = "use_deterministic_algorithms(True, warn_only=True)"

ArrayLike = np.ndarray | torch.Tensor


def augment_batch(
    x: torch.Tensor, generator: torch.Generator, max_degrees: float = MAX_ROTATION_DEG, flip_p: float = 0.5
) -> torch.Tensor:
    """Random rotation in ±``max_degrees`` + horizontal flip with probability ``flip_p``, per image, batched.

    ``x``: float (B, C, H, W). Random numbers come from ``generator`` (a CPU generator, so the draw is
    the same on every device); one ``affine_grid`` + ``grid_sample`` call for the whole batch, black fill.
    """
    b, _, h, w = x.shape
    angles = (torch.rand(b, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(max_degrees)
    flips = torch.rand(b, generator=generator, dtype=torch.float64) < flip_p
    cos, sin = torch.cos(angles), torch.sin(angles)
    sx = 1.0 - 2.0 * flips.double()  # -1 flips: the sampling x coordinate is mirrored
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = sx * cos
    theta[:, 0, 1] = -sx * sin * (h / w)
    theta[:, 1, 0] = sin * (w / h)
    theta[:, 1, 1] = cos
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _as_tensor(images: ArrayLike, device: torch.device) -> torch.Tensor:
    """Images as a tensor on ``device``: uint8 (N, H, W, 3) kept as is, float (N, 3, H, W) in [0, 1] kept."""
    t = torch.as_tensor(images)
    if t.ndim != 4:
        raise HfusError(
            f"images must be (N, H, W, 3) uint8 or (N, 3, H, W) float, got shape {tuple(t.shape)}"
        )
    if t.dtype == torch.uint8:
        if t.shape[-1] != 3:
            raise HfusError(f"uint8 images must be (N, H, W, 3), got {tuple(t.shape)}")
    elif t.is_floating_point():
        if t.shape[1] != 3:
            raise HfusError(f"float images must be (N, 3, H, W) in [0, 1], got {tuple(t.shape)}")
    else:
        raise HfusError(f"images must be uint8 or float, got {t.dtype}")
    return t.to(device)


def _batch_input(images: torch.Tensor, idx: torch.Tensor | slice) -> torch.Tensor:
    """Model input (B, 3, H, W) float in [0, 1], channels_last, from the stored images."""
    batch = images[idx]
    batch = batch.permute(0, 3, 1, 2).float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()
    return batch.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: ArrayLike, device: str | torch.device = "cpu", batch_size: int = 64
) -> torch.Tensor:
    """Logits (N, num_classes) on the CPU for uint8 (N, H, W, 3) or float (N, 3, H, W) images; eval mode."""
    dev = torch.device(device)
    data = _as_tensor(images, dev)
    model.eval()
    out = [
        model(_batch_input(data, slice(i, i + batch_size))).float().cpu()
        for i in range(0, len(data), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, NUM_CLASSES)


def init_model(arch: str, init: str | Path = "imagenet") -> tuple[nn.Module, str]:
    """A fresh model: ``imagenet`` (torchvision weights from the local torch cache), ``scratch``, or a
    safetensors PATH (layers whose shape differs, e.g. another head, stay freshly initialised).

    Returns the model and the init description recorded in the card.
    """
    key = str(init)
    if key == "imagenet":
        return build_model(arch, imagenet=True), "imagenet"
    if key == "scratch":
        return build_model(arch, imagenet=False), "scratch"
    path = Path(init).expanduser()
    if not path.is_file():
        raise HfusError(f"--init {init}: not 'imagenet', 'scratch' or an existing .safetensors file")
    card = path.with_suffix(".json")
    dtype = "float32"
    transform_input = None
    if card.is_file():
        meta = load_json(card, "checkpoint card")
        dtype = meta.get("dtype", "float32")
        transform_input = meta.get("transform_input")
    model = build_model(arch, imagenet=False, transform_input=transform_input)
    state = load_state_dict(path, dtype)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise HfusError(
            f"--init {path}: no tensor fits {get_arch(arch).name}; is it a checkpoint of this architecture?"
        )
    model.load_state_dict(fitting, strict=False)
    return model, f"path:{path.name}@sha256:{sha256_file(path)}"


# train_model and train are ~85 lines, ~40 of them the recipe's keyword arguments and the docstring
def train_model(
    arch: str,
    train_images: ArrayLike,
    train_labels: ArrayLike,
    val_images: ArrayLike,
    val_labels: ArrayLike,
    *,
    epochs: int = DEFAULT_EPOCHS,
    init: str | Path = "imagenet",
    seed: int = 0,
    device: str | torch.device = "auto",
    lr: float = STUDY_RECIPE["lr"],
    momentum: float = STUDY_RECIPE["momentum"],
    step_size: int = STUDY_RECIPE["step_size"],
    gamma: float = STUDY_RECIPE["gamma"],
    batch_size: int = STUDY_RECIPE["batch_size"],
    augment: bool = True,
    progress: bool = True,
    eval_batch_size: int = 64,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``arch`` with the study recipe on tensors. Seeded: the same inputs, seed and device give
    identical weights.

    Args:
        train_images, val_images: uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1]; labels int (N,).
        init: ``imagenet``, ``scratch`` or a safetensors path (:func:`init_model`).
        lr, momentum, step_size, gamma, batch_size: the recipe (SGD, StepLR; defaults: the study's);
            ``augment``: the train augmentation (:func:`augment_batch`).

    Returns:
        The best-validation model (eval mode, on ``device``) and a history dict (``epochs``: per-epoch
        records, ``best_epoch``, ``best_val_acc``, ``best_val_loss``, ``init``, ``device``,
        ``seconds_per_epoch``).
    """
    from tqdm.auto import tqdm

    if epochs < 1 or batch_size < 1:
        raise HfusError("--epochs and --batch-size must be >= 1")
    dev = resolve_device(device)
    x_train, y_train = _split_tensors(train_images, train_labels, dev)
    x_val, y_val = _split_tensors(val_images, val_labels, dev)
    with _deterministic(dev):
        seed_global(seed)
        model, init_desc = init_model(arch, init)
        model = model.to(dev, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
        step = _Step(model, optimizer, torch.Generator().manual_seed(seed + 1), augment, dev.type == "cuda")
        shuffle_gen = torch.Generator().manual_seed(seed)
        steps = math.ceil(len(x_train) / batch_size)
        records: list[dict[str, Any]] = []
        best = (-1.0, math.inf)
        best_state: dict[str, torch.Tensor] = {}
        best_epoch = 0
        bar = tqdm(
            total=epochs * steps, desc=f"train {get_arch(arch).name}", unit="step", disable=not progress
        )
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            rec: dict[str, Any] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
            rec["train_loss"], rec["train_acc"] = _epoch(step, x_train, y_train, batch_size, shuffle_gen, bar)
            scheduler.step()
            rec["val_loss"], rec["val_acc"] = _validate(model, x_val, y_val, dev, eval_batch_size)
            rec["seconds"] = time.perf_counter() - t0
            records.append(rec)
            val_acc, val_loss = rec["val_acc"], rec["val_loss"]
            improved = val_acc > best[0] or (val_acc == best[0] and val_loss < best[1])
            if improved:
                best, best_epoch = (val_acc, val_loss), epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress:
                bar.write(_epoch_line(rec, epochs, improved))
        bar.close()
        model.load_state_dict(best_state)
        model = model.to(memory_format=torch.contiguous_format).eval()
    history = {
        "epochs": records,
        "best_epoch": best_epoch,
        "best_val_acc": best[0],
        "best_val_loss": best[1],
        "init": init_desc,
        "device": str(dev),
        "deterministic": DETERMINISM_CUDA if dev.type == "cuda" else DETERMINISM_OTHER,
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in records])),
    }
    return model, history


def _split_tensors(
    images: ArrayLike, labels: ArrayLike, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's images and int64 labels on ``dev``, checked: equal lengths, not empty."""
    x = _as_tensor(images, dev)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64).to(dev)
    if len(x) != len(y):
        raise HfusError("images and labels differ in length")
    if len(x) == 0:
        raise HfusError("empty training or validation split; check the dataset's fold column")
    return x, y


def _epoch(
    step: _Step, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle_gen: torch.Generator, bar: Any
) -> tuple[float, float]:
    """One pass over the training split in shuffled batches: mean loss and accuracy."""
    order = torch.randperm(len(x), generator=shuffle_gen).to(x.device)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        loss, hits = step(_batch_input(x, idx), y[idx])
        loss_sum += loss * len(idx)
        correct += hits
        bar.update(1)
    return float(loss_sum) / len(x), float(correct) / len(x)


@contextmanager
def _deterministic(dev: torch.device) -> Iterator[None]:
    """Deterministic algorithms inside: strict on CUDA (cuBLAS workspace pinned, cuDNN benchmark off /
    deterministic on), warn only elsewhere (the CPU kernels we use are deterministic already)."""
    previous_det = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if dev.type == "cuda":
        # cuBLAS is deterministic only with a fixed workspace; read when the first handle is made
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=dev.type != "cuda")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_det, warn_only=previous_warn)


class _Step:
    """One SGD step on a batch (augmented if asked): returns the batch's mean loss and correct count.

    ``pool_as_mean``: the forward pools globally through a spatial mean (:class:`GlobalPoolAsMean`; CUDA's
    ``adaptive_avg_pool2d`` backward is not deterministic). Off on the CPU, whose checkpoints stay as before.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        aug_gen: torch.Generator,
        augment: bool,
        pool_as_mean: bool = False,
    ) -> None:
        self.model, self.optimizer, self.aug_gen, self.augment = model, optimizer, aug_gen, augment
        self.pool_as_mean = pool_as_mean
        self.criterion = nn.CrossEntropyLoss()

    def _pooling(self) -> AbstractContextManager[Any]:
        return GlobalPoolAsMean() if self.pool_as_mean else nullcontext()

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.augment:
            xb = augment_batch(xb, self.aug_gen).contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        with self._pooling():
            logits = self.model(xb)
            loss = self.criterion(logits, yb)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (logits.detach().argmax(1) == yb).sum()


def _validate(
    model: nn.Module, x_val: torch.Tensor, y_val: torch.Tensor, dev: torch.device, batch_size: int
) -> tuple[float, float]:
    """Validation loss and accuracy."""
    val_logits = predict_logits(model, x_val, dev, batch_size)
    y_val_cpu = y_val.cpu()
    val_loss = float(F.cross_entropy(val_logits, y_val_cpu))
    return val_loss, float((val_logits.argmax(1) == y_val_cpu).double().mean())


def _epoch_line(rec: dict[str, Any], epochs: int, improved: bool) -> str:
    return (
        f"epoch {rec['epoch']:3d}/{epochs} lr {rec['lr']:.0e} train loss {rec['train_loss']:.4f} "
        f"acc {rec['train_acc']:.4f} | val loss {rec['val_loss']:.4f} acc {rec['val_acc']:.4f}"
        f"{' *' if improved else ''} ({rec['seconds']:.1f} s)"
    )


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
) -> Path:
    """Train (arch, dataset, fold), evaluate on the test fold, write ``<name>.safetensors`` + ``<name>.json``
    into ``out_dir`` (default: the user cache, where :func:`load_model` finds it); return the card path.

    The card records ``command`` (what the CLI was given) and, where the dataset has twins, the twin flip
    block (:func:`twin_flip_block`): both are measured where the weights are, which matters for a checkpoint
    registered by sha256 only."""
    if dtype not in ("float32", "float16"):
        raise HfusError(f"--dtype must be float32 or float16, got {dtype!r}")
    spec = get_arch(arch)
    folds = split_folds(fold)
    split = {"test": folds["test"][0], "val": folds["val"][0], "train": folds["train"]}
    arrays, provenance = _load_folds(dataset, revision, fold)
    dev = resolve_device(device)
    tr, va, te = arrays["train"], arrays["val"], arrays["test"]
    recipe = {
        "lr": lr,
        "momentum": momentum,
        "step_size": step_size,
        "gamma": gamma,
        "batch_size": batch_size,
    }
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
        **recipe,
    )
    stored = _as_stored(model, dtype)
    card = _card(spec.name, dataset, provenance, fold, split, arrays, seed, epochs, dtype, recipe, history)
    test_logits = predict_logits(stored, te.images, dev)
    card["metrics"] = {
        "test": classification_report(np.asarray(te.labels), test_logits.argmax(1).numpy()),
        "val": classification_report(
            np.asarray(va.labels), predict_logits(stored, va.images, dev).argmax(1).numpy()
        ),
    }
    card["history"] = history["epochs"]
    card["environment"] = {
        **environment(dev),
        "seconds_per_epoch": history["seconds_per_epoch"],
        "deterministic": history["deterministic"],
    }
    card["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if command:
        card["command"] = command
    if hasattr(model, "transform_input"):  # GoogLeNet's input transform (models.zoo)
        card["transform_input"] = bool(model.transform_input)
    flips = twin_flip_block(stored, te, fold, test_logits)
    if flips is not None:
        card["counterfactual"] = flips
    out = Path(out_dir).expanduser() if out_dir is not None else user_checkpoint_dir()
    stem = name or checkpoint_name(spec.name, card["dataset"]["id"], fold, seed)
    save_checkpoint(model, out / f"{stem}.safetensors", card)
    return out / f"{stem}.json"


__all__: Sequence[str] = (
    "STUDY_RECIPE",
    "augment_batch",
    "classification_report",
    "init_model",
    "predict_logits",
    "train",
    "train_model",
    "twin_flip_block",
)
