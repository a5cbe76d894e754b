"""Load the benchmark dataset (synthetic track, local folder, raw archive or Hub repo) + provenance.

``load_dataset(source)`` resolves ``source`` to a Hub-style dataset folder (parquet shards under
``data/`` + card + manifest) and reads the shards into an in-memory ``datasets.Dataset``:

* ``"hfus-synth"``: generated + imported once into
  ``cache_dir()/datasets/hfus-synth-v<version>-seed0`` (the revision's generator version, default
  ``SYNTH_VERSION``; built in a temporary folder under a file lock, then renamed into place atomically,
  so an interrupted build is never mistaken for a finished one), then read from there offline;
* a local dataset folder (the output of ``hfus-bench data import``);
* a raw archive folder: imported into ``cache_dir()/datasets/archive-<content sha256[:16]>``;
* a Hub repo id ``owner/name``: the repo snapshot is resolved with ``huggingface_hub``'s
  ``snapshot_download`` (the same cache and files ``datasets.load_dataset(repo_id, revision=...)``
  uses; ``local_files_only`` when ``HF_HUB_OFFLINE`` is set or the network fails), and its commit
  sha is recorded as the revision.

Provenance (id, revision, sha256 of the shards, n_images) is stored as JSON in
``ds.info.description`` so ``dataset_provenance`` works on any dataset returned here and on
datasets derived from it (``select``/``filter`` keep ``info``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..constants import CLASSES, IMAGE_SIZE, N_IMAGES, NUM_FOLDS, SYNTH_DATASET, cache_dir
from ..errors import HfusError
from ..hashing import sha256_file
from ..runtime import hub_offline
from .folds import split_folds

if TYPE_CHECKING:
    import datasets

_PROV_PREFIX = "hfus-xai-bench provenance: "
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
REQUIRED_COLUMNS = ("image_id", "image", "label", "slm", "fold", "group_id")
#: Images in the default synthetic build (tests may lower it to build a tiny cache).
SYNTH_N = N_IMAGES
SYNTH_SEED = 0
#: Processes for the synthetic build (None = all cores; tests use 1 for tiny builds).
SYNTH_WORKERS: int | None = None


@dataclass
class FoldArrays:
    """One split of one fold, decoded to arrays (row order = dataset order)."""

    image_ids: list[str]
    images: np.ndarray  # uint8 (N, 224, 224, 3)
    labels: np.ndarray  # int64 (N,)
    slms: np.ndarray  # uint8 (N, 224, 224)
    groups: list[str]
    evidence: np.ndarray | None = None  # uint8 (N, 224, 224) 0/255; None: the dataset has no evidence column
    twins: np.ndarray | None = None  # uint8 (N, 224, 224, 3); None: no twin column, or images=False


# ------------------------------------------------------------------------------------ helpers


def _shards(folder: Path) -> list[Path]:
    shards = sorted((folder / "data").glob("train-*.parquet"))
    if not shards:
        shards = sorted(p for p in folder.rglob("*.parquet") if not any(s.startswith(".") for s in p.parts))
    return shards


def is_dataset_folder(folder: Path) -> bool:
    """A folder holding parquet shards (the output of ``import_archive`` or a Hub snapshot)."""
    return folder.is_dir() and bool(_shards(folder))


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive lock between processes (``flock`` on ``lock_path``, created with its folder)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_atomic(final: Path, build) -> Path:
    """Run ``build(tmp_dir) -> dataset_folder`` once and rename the result to ``final``."""
    if is_dataset_folder(final):
        return final
    with file_lock(final.parent / f".{final.name}.lock"):
        if is_dataset_folder(final):  # built by another process meanwhile
            return final
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
        try:
            built = build(tmp)
            if final.exists():  # a leftover without shards (never produced by this code)
                shutil.rmtree(final)
            os.replace(built, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def synth_revision(version: str | None = None) -> str:
    """The revision name of generator ``version`` (default: the current one), e.g. ``synth-v3-seed0``."""
    from .synth import SYNTH_VERSION

    return f"synth-v{version or SYNTH_VERSION}-seed{SYNTH_SEED}"


def synth_dataset_dir(version: str | None = None) -> Path:
    from .synth import SYNTH_VERSION

    return cache_dir() / "datasets" / f"hfus-synth-v{version or SYNTH_VERSION}-seed{SYNTH_SEED}"


def _ensure_synth(version: str) -> Path:
    from .archive import import_archive
    from .golden import check, load_golden
    from .synth_archive import generate_archive
    from .synth_ops import INFO_NAME

    revision = synth_revision(version)
    golden = load_golden(revision)
    if golden is not None and golden["generator"]["n"] != SYNTH_N:
        golden = None  # golden hashes pin the canonical build only (tests may build a smaller one)

    def build(tmp: Path) -> Path:
        archive = generate_archive(
            tmp / "archive", n=SYNTH_N, seed=SYNTH_SEED, progress=True, workers=SYNTH_WORKERS, version=version
        )
        if golden is not None:
            files = json.loads((archive / INFO_NAME).read_text())["files"]
            raw = {f["path"]: f["pixels_sha256"] for f in files}
            check(golden["raw_pixels"], raw, revision=revision, stage="generated files (before import)")
        folder = import_archive(
            archive, tmp / "dataset", expect=SYNTH_N, progress=True, workers=SYNTH_WORKERS
        )
        if golden is not None:
            ds = read_folder(folder)
            check(golden["images"], image_sha256s(ds), revision=revision, stage="imported images")
            check(
                {"dataset": golden["dataset_sha256"]},
                {"dataset": content_sha256(ds)},
                revision=revision,
                stage="dataset hashes (labels, groups, folds)",
            )
        return folder

    return _build_atomic(synth_dataset_dir(version), build)


def archive_content_hash(root: Path) -> str:
    """sha256 over (relative path, file sha256) of every file the importer would look at."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _ensure_imported(archive: Path) -> Path:
    from .archive import import_archive

    key = archive_content_hash(archive)[:16]
    final = cache_dir() / "datasets" / f"archive-{key}"
    return _build_atomic(final, lambda tmp: import_archive(archive, tmp / "dataset", progress=True))


def _hub_cache() -> Path:
    """The hub cache as the environment says *now* (huggingface_hub reads it once at import)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def _hub_snapshot(repo_id: str, revision: str | None) -> tuple[Path, str]:
    from huggingface_hub import snapshot_download

    cache = _hub_cache()
    offline = hub_offline()
    rev = f" --revision {revision}" if revision else ""
    help_msg = (
        f"on a connected machine run `hf download --repo-type dataset {repo_id}{rev}` (older hubs: "
        f"`huggingface-cli download ...`) and copy its cache ({cache}, or set HF_HOME/HF_HUB_CACHE), or "
        "import the raw archive with `hfus-bench data import ARCHIVE --out DIR` and use DIR"
    )
    path = None
    err: Exception | None = None
    if not offline:
        try:
            path = snapshot_download(repo_id, repo_type="dataset", revision=revision, cache_dir=cache)
        except Exception as e:  # network down, repo/revision missing, auth … → try the cache
            err = e
    if path is None:
        try:
            path = snapshot_download(
                repo_id, repo_type="dataset", revision=revision, cache_dir=cache, local_files_only=True
            )
        except Exception as e:
            why = (
                "the hub is offline (HF_HUB_OFFLINE)"
                if offline
                else f"the hub is unreachable or refused ({err})"
            )
            raise HfusError(
                f"dataset {repo_id}{'@' + revision if revision else ''} is not in the Hugging Face cache "
                f"and {why}; " + help_msg
            ) from e
    return Path(path), Path(path).name


def read_folder(folder: Path) -> datasets.Dataset:
    """The dataset stored in ``folder`` (its parquet shards, read into memory; no provenance attached)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    shards = _shards(folder)
    if not shards:
        raise HfusError(f"{folder} holds no parquet shards; import an archive with `hfus-bench data import`")
    table = pa.concat_tables([pq.read_table(p) for p in shards])
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise HfusError(
            f"{folder} is not an hfus-xai-bench dataset (missing columns {', '.join(missing)}); "
            "build one with `hfus-bench data import`"
        )
    features = datasets.Features.from_arrow_schema(table.schema)
    return datasets.Dataset(
        InMemoryTable(table), info=datasets.DatasetInfo(features=features), split=datasets.Split.TRAIN
    )


# ----------------------------------------------------------------------------------- public API


def load_dataset(source: str = SYNTH_DATASET, revision: str | None = None) -> datasets.Dataset:
    """The benchmark dataset from ``source`` (see the module docstring), provenance attached."""
    source = str(source)
    if source == SYNTH_DATASET:
        from .synth import SYNTH_VERSION, SYNTH_VERSIONS

        known = {synth_revision(v): v for v in SYNTH_VERSIONS}
        rev = revision or synth_revision(SYNTH_VERSION)
        if rev not in known:
            raise HfusError(
                f"{SYNTH_DATASET} has no revision {revision!r}; "
                f"use {synth_revision(SYNTH_VERSION)} (default, portable)"
                f" or one of {', '.join(known)}"
            )
        folder = _ensure_synth(known[rev])
        ident = SYNTH_DATASET
    elif Path(source).expanduser().is_dir():
        path = Path(source).expanduser()
        if revision not in (None, "local"):
            raise HfusError(f"{source} is a local folder: it has no revision {revision!r}; drop --revision")
        folder = path if is_dataset_folder(path) else _ensure_imported(path)
        ident, rev = str(path.resolve()), "local"
    elif _REPO_RE.match(source) and not Path(source).expanduser().exists():
        folder, rev = _hub_snapshot(source, revision)
        ident = source
    else:
        raise HfusError(
            f"dataset {source!r} is neither {SYNTH_DATASET!r}, an existing folder, nor a Hub id owner/name; "
            "check the spelling or path"
        )
    ds = read_folder(folder)
    shards = {p.relative_to(folder).as_posix(): sha256_file(p) for p in _shards(folder)}
    files_sha256 = hashlib.sha256("".join(shards[k] for k in sorted(shards)).encode()).hexdigest()
    prov = {
        "id": ident,
        "revision": rev,
        "sha256": _cached_content_sha256(folder, files_sha256, ds),
        "files_sha256": files_sha256,
        "shards": shards,
        "n_images": len(ds),
    }
    if ident == SYNTH_DATASET:
        _check_cached_synth(folder, ds, rev, prov["sha256"])
    attach_provenance(ds, prov)
    return ds


def _check_cached_synth(folder: Path, ds: datasets.Dataset, revision: str, sha256: str) -> None:
    """PROTOCOL §1: a cached copy of the synthetic track whose content differs from the golden hashes is an
    error naming the images that differ, never a silent other dataset (the build checks them once; this
    catches a copy changed or left by another build since). Skipped where no golden hash applies (a smaller
    build, :data:`SYNTH_N`, in tests)."""
    from .golden import load_golden, mismatches, shown

    golden = load_golden(revision)
    n = golden["generator"]["n"] if golden else None
    if golden is None or n != SYNTH_N or sha256 == golden["dataset_sha256"]:
        return
    if len(ds) != n:
        what = f"holds {len(ds)} images, not {n}"
    else:
        bad = mismatches(golden["images"], image_sha256s(ds))
        what = (
            f"differs from its golden hashes in {len(bad)} images ({shown(bad)})"
            if bad
            else "differs from its golden content hash in labels, groups or folds (every image matches)"
        )
    raise HfusError(
        f"the cached {revision} at {folder} {what}; delete that folder and run again to rebuild it"
    )


# Absent columns hash as b"" (a no-op), so adding evidence / twin left the v1 / v2 hashes unchanged.
_CONTENT_COLUMNS = {
    "image": "RGB",
    "epidermis": "L",
    "sleb": "L",
    "tumor": "L",
    "slm": "L",
    "evidence": "L",
    "twin": "RGB",
}


def _decoded_rows(ds: datasets.Dataset) -> Iterator[tuple[dict, list[bytes]]]:
    """Row by row: (id/label/fold/group, decoded bytes of image, masks (absent: b"") and SLM)."""
    for start in range(0, len(ds), 128):
        rows = ds.select(range(start, min(start + 128, len(ds)))).with_format("arrow")[:]
        meta = {c: rows.column(c).to_pylist() for c in ("image_id", "label", "fold", "group_id")}
        decoded = {
            c: _decode(
                rows.column(c).to_pylist(),
                mode,
                (IMAGE_SIZE, IMAGE_SIZE, 3) if mode == "RGB" else (IMAGE_SIZE, IMAGE_SIZE),
            )
            for c, mode in _CONTENT_COLUMNS.items()
            if c in rows.column_names
        }
        for i in range(rows.num_rows):
            yield (
                {c: v[i] for c, v in meta.items()},
                [decoded[c][i].tobytes() if c in decoded else b"" for c in _CONTENT_COLUMNS],
            )


def content_sha256(ds: datasets.Dataset) -> str:
    """sha256 of what the benchmark reads, independent of how it is encoded on disk.

    Row by row: image id, label, fold, group, then the decoded pixels of ``image``, the three masks
    (absent columns hash as empty), ``slm``, ``evidence`` and ``twin`` (absent: empty, so datasets without
    them keep their hashes). PNG (zlib) and parquet (pyarrow) bytes differ between
    library builds; the decoded content does not, so results from any machine can be verified.
    """
    h = hashlib.sha256()
    for meta, blobs in _decoded_rows(ds):
        h.update(json.dumps([meta["image_id"], meta["label"], meta["fold"], meta["group_id"]]).encode())
        for b in blobs:
            h.update(b)
    return h.hexdigest()


def image_sha256s(ds: datasets.Dataset) -> dict[str, str]:
    """Per image id: sha256 of id, label, group and the decoded image, masks, SLM, evidence and twin (not the
    fold).

    The fold depends on which images are in the dataset; everything else of an image does not, so
    a partial build can be checked image by image against the golden hashes.
    """
    out: dict[str, str] = {}
    for meta, blobs in _decoded_rows(ds):
        h = hashlib.sha256(json.dumps([meta["image_id"], meta["label"], meta["group_id"]]).encode())
        for b in blobs:
            h.update(b)
        out[meta["image_id"]] = h.hexdigest()
    return out


def _cached_content_sha256(folder: Path, files_sha256: str, ds: datasets.Dataset) -> str:
    """:func:`content_sha256`, computed once per set of shard files (cached in ``folder`` when writable)."""
    cache = folder / ".hfus_content_sha256.json"
    try:
        known = json.loads(cache.read_text())
        if known.get("files_sha256") == files_sha256:
            return known["content_sha256"]
    except (OSError, ValueError, KeyError):
        pass
    digest = content_sha256(ds)
    with contextlib.suppress(OSError):
        cache.write_text(json.dumps({"files_sha256": files_sha256, "content_sha256": digest}))
    return digest


def attach_provenance(ds: datasets.Dataset, provenance: dict) -> datasets.Dataset:
    """Store ``provenance`` (id, revision, sha256, n_images, ...) in ``ds.info`` (see dataset_provenance)."""
    ds.info.description = _PROV_PREFIX + json.dumps(provenance, sort_keys=True)
    return ds


def dataset_provenance(ds: datasets.Dataset) -> dict:
    """``{"id", "revision", "sha256", "files_sha256", "shards", "n_images"}`` of a ``load_dataset`` dataset.

    ``sha256`` is :func:`content_sha256` (portable across machines and library builds);
    ``files_sha256`` the sha256 of the concatenated hex digests of the parquet shards (sorted by path).
    """
    desc = ds.info.description or ""
    if not desc.startswith(_PROV_PREFIX):
        raise HfusError(
            "this dataset was not loaded with hfus_xai_bench.load_dataset; "
            "load it with that to get provenance"
        )
    prov = json.loads(desc[len(_PROV_PREFIX) :])
    prov["n_images"] = len(ds)
    return prov


def _decode(blobs: list, mode: str, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(blobs), *shape), dtype=np.uint8)

    def one(i: int) -> None:
        b = blobs[i]
        src = io.BytesIO(b["bytes"]) if b.get("bytes") is not None else b["path"]
        with Image.open(src) as im:
            arr = np.asarray(im.convert(mode))
        if arr.shape != shape:
            raise HfusError(f"image {i} has shape {arr.shape}, expected {shape}; re-import the dataset")
        out[i] = arr

    if len(blobs) < 16:
        for i in range(len(blobs)):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(one, range(len(blobs))))
    return out


def _split_rows(ds: datasets.Dataset, fold: int, split: str):
    """The arrow rows of one split ("test" = fold k, "val" = fold (k+1)%5, "train" = the other three)."""
    parts = split_folds(fold)
    if split not in parts:
        raise HfusError(f"split must be one of test, val, train; got {split!r}")
    table = ds.with_format("arrow")[:]
    folds = table.column("fold").to_numpy()
    return table.take(np.flatnonzero(np.isin(folds, parts[split])))


def fold_slms(ds: datasets.Dataset, fold: int, split: str = "train") -> np.ndarray:
    """Only the skin layer maps of one split, uint8 (N, 224, 224) (no image decoding)."""
    return _decode(_split_rows(ds, fold, split).column("slm").to_pylist(), "L", (IMAGE_SIZE, IMAGE_SIZE))


def fold_arrays(
    ds: datasets.Dataset,
    fold: int,
    split: str = "test",
    rows: Sequence[int] | None = None,
    images: bool = True,
) -> FoldArrays:
    """Decode one split ("test" = fold k, "val" = fold (k+1)%5, "train" = the other three).

    ``rows``: only these positions within the split (in this order), so a process decodes only the
    images it evaluates; ``images=False``: ids, labels, SLMs only (``images`` is then an empty
    (0, 224, 224, 3) array). ``evidence`` / ``twins``: decoded when the dataset has the column
    (``twins`` only with ``images``), else None.
    """
    sub = _split_rows(ds, fold, split)
    if rows is not None:
        sub = sub.take(np.asarray(rows, dtype=np.int64))
    pixels = (
        _decode(sub.column("image").to_pylist(), "RGB", (IMAGE_SIZE, IMAGE_SIZE, 3))
        if images
        else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    )
    slms = _decode(sub.column("slm").to_pylist(), "L", (IMAGE_SIZE, IMAGE_SIZE))
    names = sub.column_names
    evidence = (
        _decode(sub.column("evidence").to_pylist(), "L", (IMAGE_SIZE, IMAGE_SIZE))
        if "evidence" in names
        else None
    )
    twins = (
        _decode(sub.column("twin").to_pylist(), "RGB", (IMAGE_SIZE, IMAGE_SIZE, 3))
        if images and "twin" in names
        else None
    )
    return FoldArrays(
        image_ids=[str(s) for s in sub.column("image_id").to_pylist()],
        images=pixels,
        labels=sub.column("label").to_numpy().astype(np.int64),
        slms=slms,
        groups=[str(s) for s in sub.column("group_id").to_pylist()],
        evidence=evidence,
        twins=twins,
    )


def split_size(ds: datasets.Dataset, fold: int, split: str = "test") -> int:
    """Number of images in one split of one fold (nothing decoded)."""
    return _split_rows(ds, fold, split).num_rows


def depth_prior(ds: datasets.Dataset, fold: int) -> np.ndarray:
    """Mean skin layer map of the training split of ``fold`` / 255, float32 (224, 224) (``depth_prior``).

    Cached per dataset content hash and fold under ``cache_dir()/derived/`` (content-addressed, so it is
    never stale; written atomically), so a process does not decode the 379 training SLMs again.
    """
    try:
        digest = dataset_provenance(ds)["sha256"]
    except (HfusError, KeyError):
        digest = None
    path = cache_dir() / "derived" / f"{digest}" / f"depth_prior_fold{int(fold)}.npy" if digest else None
    if path is not None and path.is_file():
        with contextlib.suppress(OSError, ValueError):
            prior = np.load(path, allow_pickle=False)
            if prior.shape == (IMAGE_SIZE, IMAGE_SIZE) and prior.dtype == np.float32:
                return prior
    prior = fold_slms(ds, fold, "train").astype(np.float32).mean(0) / 255.0
    if path is not None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, prior, allow_pickle=False)
            os.replace(tmp, path)
    return prior


def counts_table(ds: datasets.Dataset, n_folds: int = NUM_FOLDS) -> np.ndarray:
    """(n_classes, n_folds) counts."""
    table = ds.with_format("arrow")[:]
    labels = table.column("label").to_numpy().astype(np.int64)
    folds = table.column("fold").to_numpy().astype(np.int64)
    n_folds = max(n_folds, int(folds.max()) + 1 if folds.size else n_folds)
    return np.bincount(labels * n_folds + folds, minlength=len(CLASSES) * n_folds).reshape(
        len(CLASSES), n_folds
    )


def describe(ds: datasets.Dataset) -> str:
    """Counts per class × fold as a table (tabulate)."""
    from tabulate import tabulate

    counts = counts_table(ds)
    n_folds = counts.shape[1]
    rows = [[c, *counts[i].tolist(), int(counts[i].sum())] for i, c in enumerate(CLASSES)]
    rows.append(["total", *counts.sum(axis=0).tolist(), int(counts.sum())])
    return tabulate(
        rows, headers=["class", *(f"fold {k}" for k in range(n_folds)), "total"], tablefmt="github"
    )
