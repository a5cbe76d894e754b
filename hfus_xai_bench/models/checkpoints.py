"""Checkpoint registry, verified loading and saving of reference-model weights (PROTOCOL §2).

A checkpoint is a ``<name>.safetensors`` weights file plus a ``<name>.json`` card (arch, dataset +
revision, fold, sha256 of the weights file, storage dtype, recipe, test metrics, environment).
In the style of torchvision's ``Weights`` enums, :data:`REGISTRY` holds every card in the package folder
``hfus_xai_bench/checkpoints/`` (registering a checkpoint = dropping its ``.json`` card there, with its
``.safetensors`` where it is published). A card's ``published`` field says where its weights are
(:data:`PUBLISHED`): ``package`` (next to the card, in the wheel), ``repository`` (next to the card in a
git checkout, left out of the wheel for its size), ``hub`` (its ``hub`` field names a Hugging Face repo id +
pinned revision) or ``no`` (registered by sha256 only, with the card's recipe and ``command`` to reproduce
it). :func:`missing_weights` says, for a checkpoint whose weights are not here, where to get or how to make
them.

Checkpoints written by ``hfus-bench train`` live in the user cache (``cache_dir()/checkpoints``) and are
listed by :func:`list_checkpoints` next to the registry.

Loading order for a checkpoint: explicit local path → package data → user cache →
``huggingface_hub.hf_hub_download(repo_id, filename, revision=<pinned>)``. Only safetensors are read and
the sha256 of the file is verified before use. Weights stored as float16 (card ``dtype``) are upcast
to float32 on load.

Which checkpoints evaluate a dataset: its own (same dataset id), except an audit build (PROTOCOL §3: the
synthetic track rebuilt at an unpublished seed, a folder with :data:`AUDIT_BUILD_CARD`), which borrows the
checkpoints of the default track of the same generator version (:func:`checkpoint_source`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..constants import DEFAULT_ARCH, SYNTH_DATASET, cache_dir
from ..errors import HfusError
from ..hashing import sha256_file
from ..jsonio import load_json
from ..runtime import hub_offline
from .recipe import STUDY_RECIPE
from .zoo import ArchSpec, build_model, get_arch

CARD_SCHEMA = "hfus-bench-checkpoint/1"
#: The package-data folder of shipped checkpoints.
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
_STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
#: Where a registered checkpoint's weights are published (the card's ``published`` field).
PUBLISHED = ("package", "repository", "hub", "no")

#: The card that marks a dataset folder as an audit build of the synthetic track (PROTOCOL §3; written by
#: :mod:`hfus_xai_bench.audit`): format, generator and its version, never the seed. See
#: :func:`checkpoint_source`.
AUDIT_BUILD_CARD = "hfus-audit-build.json"
AUDIT_BUILD_FORMAT = "hfus-xai-bench/audit-build@1"


def user_checkpoint_dir() -> Path:
    """Where ``hfus-bench train`` writes checkpoints by default: ``cache_dir()/checkpoints``."""
    return cache_dir() / "checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    """One registered checkpoint (an entry of :data:`REGISTRY`, or a card found in the user cache)."""

    name: str
    arch: str
    dataset: str
    dataset_revision: str | None
    fold: int
    filename: str
    sha256: str
    dtype: str = "float32"
    transform_input: bool | None = None
    hub_repo_id: str | None = None
    hub_revision: str | None = None
    #: where the weights are published (:data:`PUBLISHED`); None for a card that is not in the registry
    published: str | None = None
    #: where the card was found: "package", "cache", "path"
    origin: str = "package"
    #: folder of the card (a Hub entry's is the package folder); the weights file is looked up next to it
    card_dir: Path | None = field(default=None, compare=False)
    #: everything else of the card: metrics, recipe, init, epochs, seed, environment ...
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def test_metrics(self) -> Mapping[str, float]:
        """Test-fold accuracy and weighted precision / recall / F1 (fractions in [0, 1])."""
        return self.meta.get("metrics", {}).get("test", {})

    @property
    def accuracy(self) -> float | None:
        return self.test_metrics.get("accuracy")

    @property
    def f1(self) -> float | None:
        return self.test_metrics.get("f1")

    def local_path(self) -> Path | None:
        """The weights file if it is on disk already, else None: next to the card, in the package folder,
        or in the user cache where its card there names the same sha256 (a reproduction of this very file;
        a file of the same name with other weights is another checkpoint, listed by its own card)."""
        candidates = []
        if self.card_dir is not None:
            candidates.append(self.card_dir / self.filename)
        candidates.append(PACKAGE_DIR / self.filename)
        for path in candidates:
            if path.is_file():
                return path
        cached = user_checkpoint_dir() / self.filename
        if cached.is_file() and (self.origin == "cache" or _card_sha256(cached) == self.sha256):
            return cached
        return None

    @classmethod
    def from_card(cls, card: Mapping[str, Any], origin: str, card_dir: Path | None = None) -> Checkpoint:
        """Build an entry from a card dict (the JSON written by :func:`save_checkpoint`)."""
        try:
            dataset = card["dataset"]
            if isinstance(dataset, str):
                dataset = {"id": dataset}
            hub = card.get("hub") or {}
            known = {"name", "arch", "dataset", "fold", "file", "sha256", "dtype", "transform_input", "hub"}
            published = card.get("published")
            if published is not None and published not in PUBLISHED:
                raise ValueError(f"'published' must be one of {', '.join(PUBLISHED)}, got {published!r}")
            return cls(
                name=str(card["name"]),
                arch=get_arch(card["arch"]).name,
                dataset=str(dataset["id"]),
                dataset_revision=dataset.get("revision"),
                fold=int(card["fold"]),
                filename=str(card["file"]),
                sha256=str(card["sha256"]).lower(),
                dtype=str(card.get("dtype", "float32")),
                transform_input=card.get("transform_input"),
                hub_repo_id=hub.get("repo_id"),
                hub_revision=hub.get("revision"),
                published="hub" if hub.get("repo_id") and published is None else published,
                origin=origin,
                card_dir=card_dir,
                meta={"dataset": dict(dataset), **{k: v for k, v in card.items() if k not in known}},
            )
        except (KeyError, TypeError, ValueError) as err:
            raise HfusError(
                f"invalid checkpoint card ({origin}, {card_dir}): missing or bad field {err}; "
                "re-create it with `hfus-bench train`"
            ) from err


@dataclass
class ModelInfo:
    """What :func:`load_model` returns next to the model."""

    spec: ArchSpec
    target_layer: nn.Module
    #: target-layer activations (B, C, h, w) -> logits (B, 4)
    head: Callable[[torch.Tensor], torch.Tensor]
    checkpoint: Checkpoint
    path: Path
    device: torch.device

    @property
    def sha256(self) -> str:
        return self.checkpoint.sha256


def read_cards(folder: str | Path, origin: str) -> list[Checkpoint]:
    """All checkpoint cards (``*.json`` with the card schema) in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.glob("*.json")):
        card = load_json(path, "checkpoint card")
        if isinstance(card, dict) and card.get("schema") == CARD_SCHEMA:
            entries.append(Checkpoint.from_card(card, origin, path.parent))
    return entries


def _card_sha256(weights: Path) -> str | None:
    """The sha256 the card next to ``weights`` names (None without a readable card)."""
    try:
        return str(json.loads(weights.with_suffix(".json").read_text())["sha256"]).lower()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _build_registry() -> dict[str, Checkpoint]:
    registry: dict[str, Checkpoint] = {}
    for entry in read_cards(PACKAGE_DIR, "package"):
        if entry.published is None:  # a card without the field registers with its weights only
            if not (PACKAGE_DIR / entry.filename).is_file():
                continue
            entry = replace(entry, published="package")
        registry[entry.name] = entry
    return registry


#: name -> Checkpoint: every card of the package folder, published or registered by sha256 only.
REGISTRY: dict[str, Checkpoint] = _build_registry()


def list_checkpoints(include_cache: bool = True) -> list[Checkpoint]:
    """Registered checkpoints, then (``include_cache``) the ones ``hfus-bench train`` wrote to the user
    cache (a cached card of a registered checkpoint's very weights is not listed twice)."""
    entries = list(REGISTRY.values())
    if include_cache:
        known = {(e.name, e.sha256) for e in entries}
        entries += [e for e in read_cards(user_checkpoint_dir(), "cache") if (e.name, e.sha256) not in known]
    return entries


def is_available(entry: Checkpoint) -> bool:
    """Whether ``entry``'s weights can be had without training: on disk or on the Hub."""
    return entry.local_path() is not None or bool(entry.hub_repo_id)


def preferred(matches: list[Checkpoint]) -> Checkpoint | None:
    """The first of ``matches`` whose weights are here or on the Hub, else the first (registered ones come
    first: a reproduction in the user cache stands in for a registered checkpoint that is not published)."""
    return min(matches, key=lambda e: not is_available(e)) if matches else None  # min: the first of equals


def published(sha256: str) -> str | None:
    """Where the registered checkpoint with ``sha256`` is published (:data:`PUBLISHED`); None: not
    registered."""
    return next((e.published for e in REGISTRY.values() if e.sha256 == sha256.lower()), None)


def reproduce_command(entry: Checkpoint, arch: str | None = None, fold: int | str | None = None) -> str:
    """The ``hfus-bench train`` command of ``entry``'s card (architecture, fold, dataset + revision, epochs,
    init, seed, storage dtype, device, and every recipe value that is not the study's); ``arch`` / ``fold``:
    the same recipe for another architecture or fold (the reference set's missing checkpoints)."""
    meta = entry.meta
    parts = [
        "hfus-bench train",
        f"--models {arch or entry.arch}",
        f"--folds {entry.fold if fold is None else fold}",
    ]
    if entry.dataset != SYNTH_DATASET:
        parts.append(f"--dataset {entry.dataset}")
    if entry.dataset_revision:
        parts.append(f"--revision {entry.dataset_revision}")
    parts += [f"--{key} {meta[key]}" for key in ("epochs", "init", "seed") if key in meta]
    parts.append(f"--dtype {entry.dtype}")
    recipe = meta.get("recipe", {})
    parts += [
        f"--{key.replace('_', '-')} {recipe[key]}"
        for key in ("lr", "momentum", "step_size", "gamma", "batch_size")
        if key in recipe and recipe[key] != STUDY_RECIPE[key]
    ]
    device = meta.get("environment", {}).get("device")
    if device and arch is None:
        parts.append(f"--device {device}")
    return " ".join(parts)


def missing_weights(entry: Checkpoint) -> str:
    """One line: why ``entry``'s weights are not here and how to get or make them."""
    make = f"reproduce it with `{reproduce_command(entry)}`"
    made_on = entry.meta.get("environment", {}).get("device_name")
    same = f" (on {made_on} and the card's torch this gives sha256 {entry.sha256[:12]}…)" if made_on else ""
    if entry.published == "repository":
        return (
            f"the weights of {entry.name} are published in the repository's hfus_xai_bench/checkpoints/, not "
            f"in the wheel (their size): install from a git checkout (`pip install -e .`), or {make}{same}"
        )
    if entry.published == "no":
        return f"{entry.name} is registered by its sha256 only (its weights are not published): {make}{same}"
    return f"weights file {entry.filename} of checkpoint {entry.name} not found; {make}"


def train_hint(arch: str, fold: int | str, dataset: str) -> str:
    """The shortest ``hfus-bench train`` command for (arch, fold) of ``dataset``: the command's defaults."""
    ds = "" if dataset == SYNTH_DATASET else f" --dataset {dataset}"
    return f"hfus-bench train --models {arch}{ds} --folds {fold}"


def reference_train_command(arch: str, fold: int | str) -> str:
    """The command that makes (arch, fold) of the default track with the reference recipe (PROTOCOL §2): the
    recipe of the default model's registered fold-0 card on the current revision (:func:`reproduce_command`),
    else :func:`train_hint`."""
    from ..data.dataset import synth_revision

    key = (DEFAULT_ARCH, 0, SYNTH_DATASET, synth_revision())
    registered = (e for e in REGISTRY.values() if (e.arch, e.fold, e.dataset, e.dataset_revision) == key)
    recipe = next(registered, None)
    return reproduce_command(recipe, arch, fold) if recipe else train_hint(arch, fold, SYNTH_DATASET)


def _hub_download(entry: Checkpoint) -> Path:
    hint = reproduce_command(entry)  # the card's own recipe, as missing_weights gives it
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:  # pragma: no cover
        raise HfusError(
            f"checkpoint {entry.name} is not cached and huggingface_hub is not installed; "
            f"install it or train one with `{hint}`"
        ) from err
    offline = hub_offline()
    try:
        path = hf_hub_download(
            entry.hub_repo_id,
            entry.filename,
            revision=entry.hub_revision,
            cache_dir=os.environ.get("HF_HUB_CACHE") or None,
            local_files_only=offline,
        )
    except Exception as err:  # network, offline-without-cache, missing repo/revision/file
        where = (
            "offline and not in the Hugging Face cache"
            if offline
            else f"download failed ({type(err).__name__})"
        )
        raise HfusError(
            f"checkpoint {entry.name} ({entry.hub_repo_id}@{entry.hub_revision}/{entry.filename}): {where}; "
            f"connect and retry, or train it locally with `{hint}`"
        ) from err
    return Path(path)


def resolve_file(entry: Checkpoint) -> Path:
    """The weights file of ``entry``: its own folder → package data → user cache → Hub download."""
    local = entry.local_path()
    if local is not None:
        return local
    if entry.hub_repo_id:
        return _hub_download(entry)
    raise HfusError(missing_weights(entry))


def verify_sha256(path: str | Path, expected: str) -> str:
    """Raise HfusError unless the file's sha256 is ``expected``; return it."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise HfusError(
            f"sha256 mismatch for {path}: expected {expected.lower()}, got {actual}; the file is corrupt or "
            "was modified: delete it and download or train it again"
        )
    return actual


def checkpoint_source(dataset: str, revision: str | None = None) -> tuple[str, str | None]:
    """The (dataset id, revision; None = any) whose checkpoints evaluate ``dataset`` at ``revision``.

    The rule (PROTOCOL §2, §3): the synthetic track's revisions are different data (generator versions), so
    ``hfus-synth`` is evaluated only with checkpoints trained on the same revision (default: the current
    one). A folder holding :data:`AUDIT_BUILD_CARD` is the synthetic track rebuilt at an unpublished seed
    with generator version V (an audit build); no checkpoint has seen any of its images, and it is evaluated
    with the checkpoints trained on the default track of the same version (``hfus-synth``,
    ``synth-vV-seed0``), never another version's. Every other dataset uses its own checkpoints (a
    local folder's id is its resolved path, as :func:`~hfus_xai_bench.data.dataset.load_dataset` names it).
    """
    if str(dataset) == SYNTH_DATASET:
        from ..data.dataset import synth_revision

        return SYNTH_DATASET, revision or synth_revision()
    folder = Path(str(dataset)).expanduser()
    card_path = folder / AUDIT_BUILD_CARD
    if not card_path.is_file():  # a local folder as its cards name it (load_dataset's id), however typed
        return (str(folder.resolve()) if folder.is_dir() else str(dataset)), None
    from ..data.dataset import synth_revision
    from ..data.synth import SYNTH_VERSIONS

    try:
        card = json.loads(card_path.read_text())
        ok = card["format"] == AUDIT_BUILD_FORMAT and card["generator"] == SYNTH_DATASET
        version = str(card["version"])
    except (OSError, ValueError, KeyError, TypeError):
        ok, version = False, ""
    if not ok or version not in SYNTH_VERSIONS:
        raise HfusError(
            f"{card_path} is not a readable audit build card of {SYNTH_DATASET} (generator versions "
            f"{', '.join(SYNTH_VERSIONS)}); delete the folder and run `hfus-bench audit` again"
        )
    return SYNTH_DATASET, synth_revision(version)


def find_checkpoint(
    arch: str, dataset: str = SYNTH_DATASET, fold: int = 0, revision: str | None = None
) -> Checkpoint:
    """The checkpoint for (arch, dataset, fold): registry first, then the user cache, one whose weights can
    be had first (:func:`preferred`); on ``hfus-synth`` one trained on ``revision`` (default: the current
    one), and an audit build borrows the default track's (:func:`checkpoint_source`)."""
    name = get_arch(arch).name
    source, revision = checkpoint_source(dataset, revision)
    matches = [
        entry
        for entry in list_checkpoints(include_cache=True)
        if entry.arch == name
        and entry.dataset == source
        and entry.fold == int(fold)
        and revision in (None, entry.dataset_revision)
    ]
    entry = preferred(matches)
    if entry is not None:
        return entry
    offline = " (offline)" if hub_offline() else ""
    if source == SYNTH_DATASET and str(dataset) != SYNTH_DATASET:
        raise HfusError(
            f"no checkpoint for {name} on {source} {revision} fold {fold}{offline}: an audit build is "
            f"evaluated with the checkpoints of the default track of its generator version; train one with "
            f"`{train_hint(name, int(fold), source)} --revision {revision}`"
        )
    if dataset == SYNTH_DATASET:
        hint = _synth_train_command(name, int(fold), str(revision))
        where = f"{dataset} {revision}"
    else:
        hint, where = train_hint(name, int(fold), str(dataset)), str(dataset)
    raise HfusError(
        f"no checkpoint for {name} on {where} fold {fold}{offline}: none is registered or cached in "
        f"{user_checkpoint_dir()}; train one with `{hint}`, or put a trained one there (its .safetensors and "
        "card .json, as `hfus-bench train` writes them); `hfus-bench models` lists the checkpoints found"
    )


def require_checkpoints(
    archs: Sequence[str], folds: Sequence[int], dataset: str = SYNTH_DATASET, revision: str | None = None
) -> None:
    """Every (arch, fold)'s checkpoint is here, checked before a run starts (one missing would end the run
    at its fold, the folds done before it lost): the first missing one's :func:`find_checkpoint` error."""
    for arch in archs:
        for fold in folds:
            find_checkpoint(arch, dataset, fold, revision)


def _synth_train_command(arch: str, fold: int, revision: str) -> str:
    """The reference recipe's command on the current revision (:func:`reference_train_command`); on an
    older one the command's defaults on that revision."""
    from ..data.dataset import synth_revision

    if revision == synth_revision():
        return reference_train_command(arch, fold)
    return f"{train_hint(arch, fold, SYNTH_DATASET)} --revision {revision}"


def _entry_for_path(path: Path, arch: str | None) -> Checkpoint:
    if path.suffix == ".json":
        card_path, weights = path, None
    else:
        card_path, weights = path.with_suffix(".json"), path
    if card_path.is_file():
        card = load_json(card_path, "checkpoint card")
        entry = Checkpoint.from_card(card, "path", card_path.parent)
        if weights is not None and weights.name != entry.filename:
            entry = replace(entry, filename=weights.name)
        if arch is not None and get_arch(arch).name != entry.arch:
            raise HfusError(f"checkpoint {path} is a {entry.arch} checkpoint, not {get_arch(arch).name}")
        return entry
    if weights is None or not weights.is_file():
        raise HfusError(f"checkpoint file {path} not found; pass a .safetensors file or its .json card")
    if arch is None:
        raise HfusError(f"{path} has no card ({card_path.name}); pass the architecture (--arch)")
    # a bare weights file: nothing to verify against; its hash is recorded
    return Checkpoint(
        name=weights.stem,
        arch=get_arch(arch).name,
        dataset="unknown",
        dataset_revision=None,
        fold=-1,
        filename=weights.name,
        sha256=sha256_file(weights),
        origin="path",
        card_dir=weights.parent,
    )


def load_state_dict(path: str | Path, dtype: str = "float32") -> dict[str, torch.Tensor]:
    """Read a safetensors file; floating tensors stored in a lower precision are upcast to float32."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise HfusError(f"{path}: only .safetensors checkpoints are loaded (no pickles); convert it first")
    if dtype not in _STORAGE_DTYPES:
        raise HfusError(f"unsupported storage dtype {dtype!r}; use one of {', '.join(_STORAGE_DTYPES)}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise HfusError(
            f"cannot read {path} as safetensors ({err}); delete it and train/download again"
        ) from err
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def load_model(
    arch: str,
    dataset: str = SYNTH_DATASET,
    fold: int = 0,
    checkpoint: str | Path | Checkpoint | None = None,
    device: str | torch.device = "cpu",
    revision: str | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Load a verified reference model in eval mode on ``device``.

    ``checkpoint``: None (the registered or cached checkpoint for (arch, dataset, fold), on ``hfus-synth``
    trained on ``revision``: :func:`find_checkpoint`), a registry name, a :class:`Checkpoint`, or a local
    path (``.safetensors`` with its ``.json`` card next to it, or the card itself). The sha256 of the
    weights file is checked against the card before use.
    """
    if isinstance(checkpoint, Checkpoint):
        entry = checkpoint
    elif checkpoint is None:
        entry = find_checkpoint(arch, dataset, fold, revision)
    elif isinstance(checkpoint, str) and checkpoint in REGISTRY:
        entry = REGISTRY[checkpoint]
    else:
        entry = _entry_for_path(Path(checkpoint).expanduser(), arch)
    spec = get_arch(entry.arch if arch is None else arch)
    if spec.name != entry.arch:
        raise HfusError(f"checkpoint {entry.name} is a {entry.arch} checkpoint, not {spec.name}")
    path = resolve_file(entry)
    verify_sha256(path, entry.sha256)
    state = load_state_dict(path, entry.dtype)
    model = build_model(spec.name, transform_input=entry.transform_input)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise HfusError(f"{path} does not fit {spec.name}: {str(err).splitlines()[0]}") from err
    dev = torch.device(device)
    model = model.to(dev).eval()
    info = ModelInfo(spec, spec.resolve_target_layer(model), spec.head(model), entry, path, dev)
    return model, info


def save_checkpoint(model: nn.Module, path: str | Path, card: dict[str, Any]) -> str:
    """Write ``<name>.safetensors`` + ``<name>.json`` and return the weights' sha256.

    ``path`` is the weights file (``.safetensors``) or its stem. ``card`` must hold at least ``arch``,
    ``dataset`` and ``fold``; ``name``, ``file``, ``sha256``, ``dtype`` (default float32; ``float16``
    halves the size and is upcast on load) and ``schema`` are filled in.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    dtype = str(card.get("dtype", "float32"))
    if dtype not in _STORAGE_DTYPES:
        raise HfusError(f"unsupported storage dtype {dtype!r}; use one of {', '.join(_STORAGE_DTYPES)}")
    for key in ("arch", "dataset", "fold"):
        if key not in card:
            raise HfusError(f"checkpoint card needs {key!r}")
    from safetensors.torch import save_file

    target = _STORAGE_DTYPES[dtype]
    state = {
        k: (v.detach().to("cpu", target) if v.is_floating_point() else v.detach().cpu()).contiguous().clone()
        for k, v in model.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    arch = get_arch(card["arch"]).name
    # one metadata key only: safetensors writes the metadata map in hash order, which would make
    # the bytes (and the sha256) of identical weights differ between runs
    save_file(state, str(path), metadata={"format": "pt"})
    digest = sha256_file(path)
    transform_input = getattr(model, "transform_input", None)  # GoogLeNet's input transform (models.zoo)
    full = {
        "schema": CARD_SCHEMA,
        "name": path.stem,
        **card,
        "arch": arch,
        "file": path.name,
        "sha256": digest,
        "dtype": dtype,
        "size_bytes": path.stat().st_size,
    }
    full.setdefault("transform_input", transform_input)
    path.with_suffix(".json").write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
    return digest
