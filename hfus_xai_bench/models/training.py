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
:func:`.training_run.train` loads the dataset, trains, scores the test fold and writes a checkpoint + card.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import NUM_CLASSES
from ..errors import HfusError
from ..jsonio import load_json
from ..runtime import resolve_device
from ..seeding import seed_global
from .checkpoints import load_state_dict, sha256_file
from .pooling import GlobalPoolAsMean
from .recipe import DEFAULT_EPOCHS, STUDY_RECIPE
from .resume import ResumeFile, data_sha256
from .zoo import build_model, get_arch

MAX_ROTATION_DEG = 15.0
DETERMINISM_CUDA = "use_deterministic_algorithms(True); global average pooling trained as a spatial mean"
DETERMINISM_OTHER = "use_deterministic_algorithms(True, warn_only=True)"

ArrayLike = np.ndarray | torch.Tensor
Split = tuple[torch.Tensor, torch.Tensor]  # images and int64 labels on the device


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
    key = init_description(init)
    if key == "imagenet":
        return build_model(arch, imagenet=True), "imagenet"
    if key == "scratch":
        return build_model(arch, imagenet=False), "scratch"
    path = Path(init).expanduser()
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
    return model, key


def init_description(init: str | Path) -> str:
    """The card's ``init``: ``imagenet``, ``scratch`` or ``path:<file name>@sha256:<its sha256>``."""
    if str(init) in ("imagenet", "scratch"):
        return str(init)
    path = Path(init).expanduser()
    if not path.is_file():
        raise HfusError(f"--init {init}: not 'imagenet', 'scratch' or an existing .safetensors file")
    return f"path:{path.name}@sha256:{sha256_file(path)}"


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
    state_path: Path | None = None,
    state_every: float | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``arch`` with the study recipe on tensors. Seeded: the same inputs, seed and device give
    identical weights.

    Args:
        train_images, val_images: uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1]; labels int (N,).
        init: ``imagenet``, ``scratch`` or a safetensors path (:func:`init_model`).
        lr, momentum, step_size, gamma, batch_size: the recipe (SGD, StepLR; defaults: the study's);
            ``augment``: the train augmentation (:func:`augment_batch`).
        state_path: keep the run's resumable state there (at most every ``state_every`` seconds, default
            :data:`.resume.RESUME_INTERVAL_S`) and continue from a state found there (:mod:`.resume`); the
            caller deletes it.

    Returns:
        The best-validation model (eval mode, on ``device``) and a history dict (``epochs``: per-epoch
        records, ``best_epoch``, ``best_val_acc``, ``best_val_loss``, ``init``, ``device``,
        ``deterministic``, ``seconds_per_epoch``).
    """
    if epochs < 1 or batch_size < 1:
        raise HfusError("--epochs and --batch-size must be >= 1")
    dev = resolve_device(device)
    train_split = _split_tensors(train_images, train_labels, dev)
    val_split = _split_tensors(val_images, val_labels, dev)
    with _deterministic(dev):
        seed_global(seed)
        model, init_desc = init_model(arch, init)
        model = model.to(dev, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
        step = _Step(model, optimizer, torch.Generator().manual_seed(seed + 1), augment, dev.type == "cuda")
        loop = _EpochLoop(step, scheduler, torch.Generator().manual_seed(seed), batch_size, eval_batch_size)
        if state_path is not None:
            recipe = [lr, momentum, step_size, gamma, batch_size, augment]
            data = data_sha256(train_images, train_labels, val_images, val_labels)
            fingerprint = _fingerprint(arch, init_desc, seed, epochs, recipe, dev, data)
            every = {} if state_every is None else {"interval": state_every}
            loop.resume = ResumeFile(Path(state_path), fingerprint, **every)
        records, best = loop.run(train_split, val_split, epochs, f"train {get_arch(arch).name}", progress)
        model.load_state_dict(best.state)
        model = model.to(memory_format=torch.contiguous_format).eval()
    history = {
        "epochs": records,
        "best_epoch": best.epoch,
        "best_val_acc": best.acc,
        "best_val_loss": best.loss,
        "init": init_desc,
        "device": str(dev),
        "deterministic": DETERMINISM_CUDA if dev.type == "cuda" else DETERMINISM_OTHER,
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in records])),
    }
    return model, history


def _fingerprint(
    arch: str, init: str, seed: int, epochs: int, recipe: list[Any], dev: torch.device, data: str
) -> dict[str, Any]:
    """What a resumable state must share with the run that continues it (:class:`.ResumeFile`)."""
    return {
        "arch": get_arch(arch).name,
        "init": init,
        "seed": seed,
        "epochs": epochs,
        "recipe": recipe,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
        "torch": str(torch.__version__),
        "data": data,
    }


@dataclass
class _Best:
    """The best validation epoch so far and a copy of its weights: the highest accuracy, ties to the lower
    loss, then to the earlier epoch."""

    acc: float = -1.0
    loss: float = math.inf
    epoch: int = 0
    state: dict[str, torch.Tensor] = field(default_factory=dict)

    def offer(self, model: nn.Module, rec: dict[str, Any]) -> bool:
        """Keep ``model``'s weights if epoch ``rec`` is better; return whether it was."""
        acc, loss = rec["val_acc"], rec["val_loss"]
        improved = acc > self.acc or (acc == self.acc and loss < self.loss)
        if improved:
            self.acc, self.loss, self.epoch = acc, loss, rec["epoch"]
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return improved


@dataclass
class _EpochLoop:
    """Epochs of training (:func:`_epoch`), a scheduler step and validation each, the best one kept."""

    step: _Step
    scheduler: torch.optim.lr_scheduler.LRScheduler
    shuffle_gen: torch.Generator
    batch_size: int
    eval_batch_size: int
    resume: ResumeFile | None = None

    def run(
        self, train: Split, val: Split, epochs: int, desc: str, progress: bool
    ) -> tuple[list[dict[str, Any]], _Best]:
        """Per-epoch records and the best epoch (continued from :attr:`resume`'s state where it has one)."""
        from tqdm.auto import tqdm

        model, dev = self.step.model, train[0].device
        steps = math.ceil(len(train[0]) / self.batch_size)
        saved = self.resume.load() if self.resume is not None else None
        records, best = self._restore(saved, dev) if saved is not None else ([], _Best())
        bar = tqdm(
            total=epochs * steps, initial=len(records) * steps, desc=desc, unit="step", disable=not progress
        )
        if saved is not None and progress:
            bar.write(f"resumed after epoch {len(records)} from {self.resume.path}")
        for epoch in range(len(records) + 1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            rec: dict[str, Any] = {"epoch": epoch, "lr": self.step.optimizer.param_groups[0]["lr"]}
            rec["train_loss"], rec["train_acc"] = _epoch(
                self.step, *train, self.batch_size, self.shuffle_gen, bar
            )
            self.scheduler.step()
            rec["val_loss"], rec["val_acc"] = _validate(model, *val, dev, self.eval_batch_size)
            rec["seconds"] = time.perf_counter() - t0
            records.append(rec)
            improved = best.offer(model, rec)
            if progress:
                bar.write(_epoch_line(rec, epochs, improved))
            if self.resume is not None and epoch < epochs:
                self.resume.save_due(lambda: self._state(records, best))
        bar.close()
        return records, best

    def _state(self, records: list[dict[str, Any]], best: _Best) -> dict[str, Any]:
        """Everything the following epochs depend on, for :class:`.ResumeFile`."""
        step = self.step
        dev = next(step.model.parameters()).device
        return {
            "model": step.model.state_dict(),
            "optimizer": step.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "shuffle_rng": self.shuffle_gen.get_state(),
            "augment_rng": step.aug_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
            "records": records,
            "best": {"acc": best.acc, "loss": best.loss, "epoch": best.epoch, "state": best.state},
        }

    def _restore(self, saved: dict[str, Any], dev: torch.device) -> tuple[list[dict[str, Any]], _Best]:
        """Put a :meth:`_state` back; return its records and best epoch."""
        step = self.step
        step.model.load_state_dict(saved["model"])
        step.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.shuffle_gen.set_state(saved["shuffle_rng"])
        step.aug_gen.set_state(saved["augment_rng"])
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], dev)
        b = saved["best"]
        best = _Best(b["acc"], b["loss"], b["epoch"], {k: v.to(dev) for k, v in b["state"].items()})
        return list(saved["records"]), best


def _split_tensors(images: ArrayLike, labels: ArrayLike, dev: torch.device) -> Split:
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


__all__: Sequence[str] = (
    "STUDY_RECIPE",
    "augment_batch",
    "init_description",
    "init_model",
    "predict_logits",
    "train_model",
)
