"""Discovery and import of an extracted HFUS archive (Mendeley 5p7fxjt7vs or the synthetic track).

Discovery rules (DATASET.md "So the importer must discover"), documented here because the real
archive's layout is not published:

* Folders whose name starts with ``_`` or ``.`` are ignored, and so are files starting with ``.``.
* Images: files with extension png, bmp, jpg, jpeg, tif, tiff that are not masks. The class is
  the nearest enclosing folder named AD/CG/PS/ST (any case, any depth; a folder name holding the
  upper-case token, e.g. ``AD_images``, also counts), else an upper-case token in the file stem
  (``33PS``). Images without a class are listed and left out (an error with ``strict=True``).
* Masks: image files inside a mask folder (``mask(s)``, ``segmentation(s)``, ``seg``,
  ``label(s)``, ``annotation(s)``, ``gt``, ``ground_truth`` or a structure-named folder
  ``epidermis``/``sleb``/``tumor``…) or whose stem ends with a mask suffix (``_mask``,
  ``_epidermis``, ``_epi``, ``_sleb``, ``_tumor``, ``_tumour``, ``_lesion``, ``_seg``…, separators
  ``_ - . space``, optional trailing digits). The structure comes from the suffix, else from a
  structure-named folder; otherwise the mask is *untyped*. Several masks of one structure for
  one image are united (``_lesion1``, ``_lesion2``).
* Pairing: a mask pairs with the image whose stem equals the mask stem without its suffixes
  (case-insensitive), restricted to the mask's class when the mask has one. A mask matching two
  images, or two images with the same stem and class, is an error naming the files.
* Untyped masks: for CG (healthy skin, only an entry echo is annotated) an untyped mask is the
  epidermis. For AD/PS/ST it would mix epidermis with SLEB/tumour, so the import refuses and
  asks for structure suffixes; untyped masks next to typed ones for the same image are refused too.
* Foreground: any non-zero pixel (for JPEG masks: > 127; for multi-channel masks: any channel).
* Resizing: images → RGB, ``img.resize((224, 224), Image.BILINEAR)`` (what torchvision's
  ``Resize((224, 224))`` does on PIL images). Masks → 0/255 at full size, same bilinear resize,
  then ``> 127`` → 0/255. The SLM is ``skin_layer_map`` of the three 224 masks.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..constants import BENCHMARK_VERSION, CLASSES, IMAGE_SIZE, NUM_FOLDS
from ..errors import HfusError
from ..hashing import sha256_file
from .folds import assign_folds, group_key
from .slm import SLM_VERSION, skin_layer_map

#: Number of images in the real archive (PROTOCOL §1).
EXPECTED_REAL_IMAGES = 631
IMAGE_EXTS = frozenset({".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"})
JPEG_EXTS = frozenset({".jpg", ".jpeg"})
STRUCTURES: tuple[str, ...] = ("epidermis", "sleb", "tumor")
MASK_DIR_NAMES = frozenset(
    {"mask", "masks", "segmentation", "segmentations", "seg", "segs", "label", "labels",
     "annotation", "annotations", "gt", "groundtruth", "ground_truth", "ground-truth"}
)
_STRUCTURE_WORDS = {
    "epidermis": "epidermis", "epi": "epidermis", "entryecho": "epidermis", "entry_echo": "epidermis",
    "sleb": "sleb",
    "tumor": "tumor", "tumour": "tumor", "tumors": "tumor", "tumours": "tumor",
    "lesion": "tumor", "lesions": "tumor",
}
_GENERIC_WORDS = ("masks", "mask", "segmentation", "seg", "label", "gt")
_SUFFIX_RE = re.compile(
    r"[_\-. ](" + "|".join(sorted([*_STRUCTURE_WORDS, *_GENERIC_WORDS], key=len, reverse=True)) + r")\d*$",
    re.IGNORECASE,
)
_CLASS_TOKEN_RE = re.compile(r"(?<![A-Za-z])(AD|CG|PS|ST)(?![A-Za-z])")
SYNTH_INFO = "SYNTH_INFO.json"
DATA_DIR = "data"


@dataclass
class ImageEntry:
    path: Path
    rel: str
    stem: str
    label: int
    masks: dict[str, list[Path]] = field(default_factory=dict)  # structure (or "") → files


@dataclass
class Discovery:
    """What ``discover_archive`` found in an archive tree."""

    root: Path
    images: list[ImageEntry]
    orphan_masks: list[str]
    unclassified_images: list[str]
    extensions: dict[str, int]
    dirs: dict[str, dict[str, int]]
    generator: dict | None

    def counts(self) -> dict[str, int]:
        c = Counter(e.label for e in self.images)
        return {name: c.get(i, 0) for i, name in enumerate(CLASSES)}

    @property
    def images_without_masks(self) -> list[str]:
        return sorted(e.rel for e in self.images if not e.masks)

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        return (
            f"{len(self.images)} images ({counts}); {len(self.images_without_masks)} without masks; "
            f"{len(self.orphan_masks)} masks without images; {len(self.unclassified_images)} images without class"
        )


def _tree_text(extensions: dict[str, int], dirs: dict[str, dict[str, int]], limit: int = 12) -> str:
    ext = ", ".join(f"{k or '(none)'}: {v}" for k, v in sorted(extensions.items())) or "no files"
    top = "; ".join(
        f"{d or '.'}: " + ", ".join(f"{e or '(none)'} {n}" for e, n in sorted(c.items()))
        for d, c in list(sorted(dirs.items()))[:limit]
    )
    return f"files by extension: {ext}; folders: {top or 'none'}"


def _short_list(items: Iterable[str], limit: int = 8) -> str:
    items = list(items)
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _class_of(parts: list[str], stem: str) -> int | None:
    for part in reversed(parts):  # nearest folder first
        up = part.upper()
        if up in CLASSES:
            return CLASSES.index(up)
        tokens = set(_CLASS_TOKEN_RE.findall(part))
        if len(tokens) == 1:
            return CLASSES.index(tokens.pop())
    tokens = set(_CLASS_TOKEN_RE.findall(stem))
    return CLASSES.index(tokens.pop()) if len(tokens) == 1 else None


def _parse_mask(parts: list[str], stem: str) -> tuple[bool, str, str | None]:
    """(is_mask, base stem, structure or None for untyped)."""
    lowered = [p.lower() for p in parts]
    in_mask_dir = any(p in MASK_DIR_NAMES or p in _STRUCTURE_WORDS for p in lowered)
    base, structure, had_suffix = stem, None, False
    while True:
        m = _SUFFIX_RE.search(base)
        if not m or m.start() == 0:
            break
        had_suffix = True
        word = m.group(1).lower()
        if structure is None and word in _STRUCTURE_WORDS:
            structure = _STRUCTURE_WORDS[word]
        base = base[: m.start()]
    if structure is None:
        structure = next((_STRUCTURE_WORDS[p] for p in reversed(lowered) if p in _STRUCTURE_WORDS), None)
    return (in_mask_dir or had_suffix), base, structure


def discover_archive(archive_dir: str | os.PathLike, *, strict: bool = False) -> Discovery:
    """Walk ``archive_dir`` and pair images with masks (rules in the module docstring).

    Raises ``HfusError`` on ambiguous pairings, untyped masks that cannot be resolved, or no images;
    warns (errors with ``strict=True``) on images without masks, masks without images and images
    without a class.
    """
    root = Path(archive_dir)
    if not root.is_dir():
        raise HfusError(f"archive folder {root} does not exist; pass the folder the archive was extracted into")
    extensions: Counter[str] = Counter()
    dirs: dict[str, dict[str, int]] = {}
    images: dict[tuple[str, int], list[ImageEntry]] = defaultdict(list)
    masks: list[tuple[str, Path, str, str | None, int | None]] = []
    unclassified: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
        rel_dir = Path(dirpath).relative_to(root)
        parts = list(rel_dir.parts)
        dir_counts: Counter[str] = Counter()
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            ext = path.suffix.lower()
            extensions[ext] += 1
            dir_counts[ext] += 1
            if ext not in IMAGE_EXTS:
                continue
            rel = (rel_dir / name).as_posix()
            stem = path.stem
            is_mask, base, structure = _parse_mask(parts, stem)
            label = _class_of(parts, stem)
            if is_mask:
                masks.append((rel, path, base, structure, label))
            elif label is None:
                unclassified.append(rel)
            else:
                images[(stem.lower(), label)].append(ImageEntry(path, rel, stem, label))
        if dir_counts:
            dirs[rel_dir.as_posix() if parts else ""] = dict(dir_counts)

    if not images:
        raise HfusError(
            f"no class-labelled images found under {root} ({_tree_text(dict(extensions), dirs)}); "
            "expected image files (png/bmp/jpg/tif) in AD/CG/PS/ST folders or with a class token in the name"
        )
    dupes = [e for v in images.values() if len(v) > 1 for e in v]
    if dupes:
        raise HfusError(
            "two images with the same stem and class: " + _short_list(e.rel for e in dupes)
            + "; remove or rename the duplicates"
        )
    by_stem: dict[str, list[ImageEntry]] = defaultdict(list)
    for (stem, _), (entry,) in images.items():
        by_stem[stem].append(entry)

    orphans: list[str] = []
    for rel, path, base, structure, label in masks:
        cands = [e for e in by_stem.get(base.lower(), []) if label is None or e.label == label]
        if not cands:
            orphans.append(rel)
        elif len(cands) > 1:
            raise HfusError(
                f"mask {rel} matches several images ({_short_list(e.rel for e in cands)}); "
                "put the mask in its class folder or give it the class token"
            )
        else:
            cands[0].masks.setdefault(structure or "", []).append(path)

    entries = sorted((v[0] for v in images.values()), key=lambda e: (e.label, e.stem))
    bad_mixed, bad_untyped = [], []
    for e in entries:
        if "" not in e.masks:
            continue
        if len(e.masks) > 1:
            bad_mixed.append(e.rel)
        elif CLASSES[e.label] == "CG":
            e.masks = {"epidermis": e.masks.pop("")}
        else:
            bad_untyped.append(e.rel)
    if bad_mixed:
        raise HfusError(
            "images with both untyped and structure masks (ambiguous): " + _short_list(bad_mixed)
            + "; keep one set of masks per image"
        )
    if bad_untyped:
        raise HfusError(
            "untyped masks (no _epidermis/_sleb/_tumor in name or folder) for AD/PS/ST images, which have "
            "several structures: " + _short_list(bad_untyped) + "; rename the masks with a structure suffix"
        )

    generator = None
    info = root / SYNTH_INFO
    if info.is_file():
        try:
            generator = json.loads(info.read_text())
        except (OSError, ValueError) as err:
            raise HfusError(f"{info} is not valid JSON ({err}); regenerate the synthetic archive") from err
        if not isinstance(generator, dict) or generator.get("complete") is False:
            raise HfusError(f"{info} says the synthetic archive is incomplete; regenerate it (hfus-bench data synth)")
        # the per-file lists are repeated in the manifest's sha256; keep the settings only
        generator = {k: v for k, v in generator.items() if k not in ("files", "images")}

    found = Discovery(root, entries, sorted(orphans), sorted(unclassified), dict(extensions), dirs, generator)
    problems = []
    if found.images_without_masks:
        problems.append(f"{len(found.images_without_masks)} images without masks: {_short_list(found.images_without_masks)}")
    if found.orphan_masks:
        problems.append(f"{len(found.orphan_masks)} masks without images: {_short_list(found.orphan_masks)}")
    if found.unclassified_images:
        problems.append(
            f"{len(found.unclassified_images)} images without a class (left out): {_short_list(found.unclassified_images)}"
        )
    if problems:
        msg = "; ".join(problems)
        if strict:
            raise HfusError(msg + " (strict mode; fix the archive or drop --strict)")
        warnings.warn(msg, stacklevel=2)
    return found


# ---------------------------------------------------------------------------------------- import

def _png(arr: np.ndarray) -> bytes:
    # zlib level 1 for speckled RGB (3x faster than the default 6, ~8 % larger), 3 for flat masks/SLM
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1 if arr.ndim == 3 else 3)
    return buf.getvalue()


def _foreground(data: bytes, jpeg: bool) -> tuple[np.ndarray, list[int]]:
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    if arr.dtype == np.uint8:
        values = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    else:
        values = np.unique(arr)
    fg = arr > 127 if jpeg else arr != 0
    return fg, [int(v) for v in values[:32]]


def _process(job: tuple[str, dict[str, list[str]]]) -> dict:
    """Decode, resize and encode one image with its masks (runs in a worker process)."""
    image_path, mask_paths = job
    data = Path(image_path).read_bytes()
    shas = {image_path: hashlib.sha256(data).hexdigest()}
    with Image.open(io.BytesIO(data)) as im:
        size = im.size
        rgb = im.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    out: dict = {"image": _png(np.asarray(rgb)), "size": size, "values": {}, "mask_sizes": {}}
    small: dict[str, np.ndarray] = {}
    for structure in STRUCTURES:
        fg_union = None
        for p in mask_paths.get(structure, []):
            mdata = Path(p).read_bytes()
            shas[p] = hashlib.sha256(mdata).hexdigest()
            fg, values = _foreground(mdata, Path(p).suffix.lower() in JPEG_EXTS)
            out["values"][p] = values
            out["mask_sizes"][p] = (fg.shape[1], fg.shape[0])
            fg_union = fg if fg_union is None else fg_union | fg
        if fg_union is None:
            m = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        else:
            full = Image.fromarray(fg_union.astype(np.uint8) * 255, mode="L")
            resized = np.asarray(full.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))
            m = np.where(resized > 127, 255, 0).astype(np.uint8)
        small[structure] = m
        out[structure] = _png(m)
    out["slm"] = _png(skin_layer_map(small["epidermis"], small["sleb"], small["tumor"]))
    out["sha256"] = shas
    return out


def features():
    """The dataset's ``datasets.Features`` (DEVELOPING.md shared contract)."""
    import datasets

    return datasets.Features(
        {
            "image_id": datasets.Value("string"),
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=list(CLASSES)),
            "epidermis": datasets.Image(),
            "sleb": datasets.Image(),
            "tumor": datasets.Image(),
            "slm": datasets.Image(),
            "fold": datasets.Value("int64"),
            "group_id": datasets.Value("string"),
        }
    )


def _check_count(found: Discovery, expect: int | None) -> None:
    n = len(found.images)
    if expect is not None:
        if n != expect:
            raise HfusError(f"found {n} images but --expect {expect}; {found.summary()}")
        return
    if found.generator is not None:
        want = found.generator.get("n")
        if want is not None and n != int(want):
            raise HfusError(f"synthetic archive declares n={want} in {SYNTH_INFO} but holds {n} images; regenerate it")
        return
    if n != EXPECTED_REAL_IMAGES:
        raise HfusError(
            f"found {n} images, the real archive has {EXPECTED_REAL_IMAGES} ({found.summary()}); "
            f"check the extraction, or pass --expect {n} to import anyway"
        )


def _card(found: Discovery, counts: dict[str, int], fold_table: dict[str, list[int]], n_shards: int,
          n_folds: int, seed: int) -> str:
    import yaml

    header = {
        "license": "cc-by-4.0",
        "pretty_name": "HFUS skin ultrasound (hfus-xai-bench)" if found.generator is None else "hfus-synth",
        "task_categories": ["image-classification"],
        "tags": ["ultrasound", "dermatology", "saliency", "xai", "hfus-xai-bench"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/train-*"}]}],
        "dataset_info": {
            "features": features()._to_yaml_list(),
            "splits": [{"name": "train", "num_examples": len(found.images)}],
        },
    }
    rows = "\n".join(
        f"| {c} | " + " | ".join(str(v) for v in fold_table[c]) + f" | {counts[c]} |" for c in CLASSES
    )
    totals = [sum(fold_table[c][k] for c in CLASSES) for k in range(n_folds)]
    synth = found.generator is not None
    source = (
        "Synthetic stand-in generated by hfus-xai-bench (generator "
        f"{ {k: found.generator.get(k) for k in ('generator', 'version', 'seed', 'n')} })."
        if synth
        else "Mendeley Data `5p7fxjt7vs` v1 (DOI probably 10.17632/5p7fxjt7vs.1): HFUS images, DUB SkinScanner 75."
    )
    licence = (
        "Synthetic data produced by hfus-xai-bench; CC-BY-4.0."
        if synth
        else "CC-BY-4.0 as stated for the source archive: **verify on the landing page "
        "(https://data.mendeley.com/datasets/5p7fxjt7vs/1) before redistributing.**"
    )
    return (
        "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n"
        f"# {header['pretty_name']}\n\n{source}\n\n"
        "Imported with `hfus-bench data import` (hfus-xai-bench "
        f"{BENCHMARK_VERSION}). Images resized to 224×224 (PIL bilinear), masks resized bilinear then "
        f"> 127, skin layer map `{SLM_VERSION}`; {n_folds} folds stratified by class and grouped by "
        f"`YYYY-MM-DD_<series>` (seed {seed}); {n_shards} parquet shard(s) in `{DATA_DIR}/`.\n\n"
        "Columns: `image_id`, `image` (RGB), `label` (AD, CG, PS, ST), `epidermis`, `sleb`, `tumor` "
        "(L, 0/255, all-zero when absent), `slm` (L), `fold`, `group_id`.\n\n"
        "## Counts per class and fold\n\n"
        "| class | " + " | ".join(f"fold {k}" for k in range(n_folds)) + " | total |\n"
        "|---|" + "---|" * (n_folds + 1) + "\n" + rows + "\n"
        "| total | " + " | ".join(str(t) for t in totals) + f" | {len(found.images)} |\n\n"
        f"## Licence\n\n{licence}\n\n"
        "## Citation\n\n"
        + ("Cite the benchmark; the synthetic track imitates the source dataset below:\n\n" if synth else
           "Cite the source dataset (Mendeley Data 5p7fxjt7vs, v1, DUB SkinScanner 75 HFUS images with "
           "epidermis / SLEB / tumour segmentations) and the benchmark:\n\n")
        +
        "```bibtex\n@misc{hfus_skin_mendeley,\n  title = {High-frequency ultrasound skin images with segmentations},\n"
        "  howpublished = {Mendeley Data, v1},\n  doi = {10.17632/5p7fxjt7vs.1},\n  note = {verify on the landing page}\n}\n"
        f"@software{{hfus_xai_bench,\n  title = {{hfus-xai-bench}},\n  version = {{{BENCHMARK_VERSION}}}\n}}\n```\n"
    )


def import_archive(
    archive_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    n_folds: int = NUM_FOLDS,
    seed: int = 0,
    expect: int | None = None,
    progress: bool = True,
    strict: bool = False,
    workers: int | None = None,
    max_shard_bytes: int = 256 << 20,
) -> Path:
    """Import an extracted archive into a Hub-style dataset folder; returns ``out_dir``.

    Writes ``data/train-0000X-of-0000N.parquet``, ``README.md`` (dataset card whose YAML lets
    ``datasets.load_dataset(out_dir)`` work) and ``manifest.json``.
    """
    import datasets
    from tqdm.auto import tqdm

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HfusError(f"output folder {out} exists and is not empty; choose a new --out or delete it")
    found = discover_archive(archive_dir, strict=strict)
    _check_count(found, expect)

    jobs = [(str(e.path), {s: [str(p) for p in e.masks.get(s, [])] for s in STRUCTURES}) for e in found.images]
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    bar = tqdm(total=len(jobs), desc="import", unit="img", disable=not progress)
    results: list[dict] = []
    if n_workers <= 1 or len(jobs) < 32:
        for job in jobs:
            results.append(_process(job))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            for r in pool.map(_process, jobs, chunksize=max(1, min(16, len(jobs) // (4 * n_workers)))):
                results.append(r)
                bar.update()
    bar.close()

    stems = Counter(e.stem for e in found.images)
    ids = [e.stem if stems[e.stem] == 1 else f"{CLASSES[e.label]}_{e.stem}" for e in found.images]
    labels = np.array([e.label for e in found.images], dtype=np.int64)
    groups = [group_key(e.stem) for e in found.images]
    folds = assign_folds(labels, groups, n_folds=n_folds, seed=seed)

    def img(b: bytes) -> dict:
        return {"bytes": b, "path": None}

    table = {
        "image_id": ids,
        "image": [img(r["image"]) for r in results],
        "label": labels.tolist(),
        **{s: [img(r[s]) for r in results] for s in STRUCTURES},
        "slm": [img(r["slm"]) for r in results],
        "fold": folds.tolist(),
        "group_id": groups,
    }
    ds = datasets.Dataset.from_dict(table, features=features())
    total_bytes = sum(len(r["image"]) + len(r["slm"]) + sum(len(r[s]) for s in STRUCTURES) for r in results)
    n_shards = max(1, -(-total_bytes // max_shard_bytes))
    data_dir = out / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    shard_sha = {}
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    quiet_before = are_progress_bars_disabled()
    disable_progress_bars()  # datasets' own per-shard bar; ours is the import bar above
    try:
        for k in range(n_shards):
            name = f"train-{k:05d}-of-{n_shards:05d}.parquet"
            ds.shard(n_shards, k, contiguous=True).to_parquet(str(data_dir / name))
            shard_sha[f"{DATA_DIR}/{name}"] = sha256_file(data_dir / name)
    finally:
        if not quiet_before:
            enable_progress_bars()

    counts = found.counts()
    fold_table = {c: [int(np.sum((labels == i) & (folds == k))) for k in range(n_folds)] for i, c in enumerate(CLASSES)}
    root = found.root
    sha = {}
    for r in results:
        sha.update({Path(p).relative_to(root).as_posix(): h for p, h in r["sha256"].items()})
    for dirpath, dirnames, filenames in os.walk(root):  # every other source file (small: json, txt …)
        dirnames[:] = [d for d in dirnames if not d.startswith(("_", "."))]
        for name in filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if not name.startswith(".") and rel not in sha:
                sha[rel] = sha256_file(p)
    value_sets: dict[str, set[int]] = defaultdict(set)
    n_masks: Counter[str] = Counter()
    size_mismatch = []
    for e, r in zip(found.images, results, strict=True):
        for s in STRUCTURES:
            for p in e.masks.get(s, []):
                value_sets[s].update(r["values"][str(p)])
                n_masks[s] += 1
                if tuple(r["mask_sizes"][str(p)]) != tuple(r["size"]):
                    size_mismatch.append(Path(p).relative_to(root).as_posix())
    structures_per_class = {
        c: {s: sum(1 for e in found.images if e.label == i and s in e.masks) for s in STRUCTURES}
        for i, c in enumerate(CLASSES)
    }
    manifest = {
        "format": "hfus-xai-bench/manifest@1",
        "package_version": BENCHMARK_VERSION,
        "source_name": root.resolve().name,
        "n_images": len(found.images),
        "counts": counts,
        "counts_per_fold": fold_table,
        "folds": {"n_folds": n_folds, "seed": seed, "group_key": "YYYY-MM-DD_<series>"},
        "slm_version": SLM_VERSION,
        "image_sizes": {f"{w}x{h}": n for (w, h), n in sorted(Counter(tuple(r["size"]) for r in results).items())},
        "structures_per_class": structures_per_class,
        "mask_values": {s: {"n_masks": n_masks[s], "values": sorted(value_sets[s])} for s in STRUCTURES},
        "mask_size_mismatch": sorted(size_mismatch),
        "images_without_masks": found.images_without_masks,
        "orphan_masks": found.orphan_masks,
        "unclassified_images": found.unclassified_images,
        "tree": {"extensions": found.extensions, "dirs": found.dirs},
        "generator": found.generator,
        "shards": shard_sha,
        "sha256": dict(sorted(sha.items())),
    }
    (out / "README.md").write_text(_card(found, counts, fold_table, n_shards, n_folds, seed))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return out
