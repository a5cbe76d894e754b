"""Discovery and import of an extracted HFUS archive (Mendeley 5p7fxjt7vs or the synthetic track).

Discovery rules (DATASET.md "So the importer must discover"; docs/DATASET.md "Importing an
archive" lists them for users), documented here because the real archive's layout is not published:

* Folders whose name starts with ``_`` or ``.`` are ignored, and so are files starting with ``.``.
* Images: files with extension png, bmp, jpg, jpeg, tif, tiff that are not masks. The class is
  the nearest enclosing folder that names a class (:func:`.layouts.class_of_folder`: a
  ``--class-map`` entry; the code AD/CG/PS/ST in any case; an upper-case code token such as
  ``AD_images``; a class name such as ``Atopic dermatitis``, ``Healthy controls``, ``Psoriasis``,
  ``Skin tumours``), else a code token in the file stem (``33PS``). Images without a class are
  listed and left out (an error with ``strict=True``); a class-map ``ignore`` folder is left out.
* Masks: image files inside a mask folder (a name with the word ``mask(s)``, ``segmentation(s)``,
  ``seg``, ``label(s)``, ``annotation(s)``, ``gt``, ``ground_truth``, a layout ``mask_dirs`` name, or
  a structure-named folder ``epidermis``/``sleb``/``tumor``…), files whose stem ends with a mask
  suffix (``_mask``, ``_label``, ``_epidermis``, ``_epi``, ``_sleb``, ``_tumor``, ``_tumour``,
  ``_lesion``, ``_seg``…, separators ``_ - . space``, optional trailing digits), and every ``.mat``
  file. The structure comes from the suffix, else from a structure-named folder (a ``.mat`` file:
  from its variable names); otherwise the mask is *untyped*. ``tumor(s)``/``lesion(s)`` folders
  name a structure inside a class or mask folder and the ST class elsewhere.
* Pairing: a mask pairs with the image whose stem equals the mask stem without its suffixes
  (case-insensitive), restricted to the mask's class when the mask has one — so parallel trees
  (``images/<class>/x.bmp`` next to ``segmentations/<class>/<structure>/x.bmp``) pair by stem.
  A mask matching two images, or two images with the same stem and class, is an error naming
  the files. Several masks of one structure for one image are united (``_lesion1``, ``_lesion2``).
* Untyped masks, decided for the whole archive from their pixel values
  (:func:`.masks.codes_of`): label images (one code per structure) when ``--mask-values`` /
  ``--mask-colors`` is given or when they hold 2..8 non-background codes (grey values, or colours:
  colour masks); the code → structure map is then inferred only when the classes present leave
  one choice (:func:`.masks.infer_mapping`), else an error asks for the flag. Otherwise they are
  binary: for CG (healthy skin, only the entry echo is annotated) an untyped mask is the
  epidermis; for AD/PS/ST the import refuses (it would mix structures). Untyped binary masks next
  to typed ones for the same image are refused too.
* ``--index FILE`` replaces the discovery of images, classes and masks by a table
  (:mod:`.index`); the rules for untyped masks above still apply to its ``mask`` column.
* Foreground of a binary mask: any non-zero pixel (JPEG: > 127; several channels: any channel).
* Resizing: images → RGB → :func:`.resample.resize_bilinear` to 224×224 (bit-identical to
  Pillow's ``Image.BILINEAR``, what torchvision's ``Resize((224, 224))`` does on PIL images, on every
  machine). Every mask kind ends as one full-size boolean mask per structure → 0/255 → bilinear
  → ``> 127`` (:func:`.resample.resize_mask`), so the same segmentation gives the same bytes
  whatever its encoding. The SLM is ``skin_layer_map`` of the three 224 masks.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..constants import BENCHMARK_VERSION, CLASSES, IMAGE_SIZE, NUM_FOLDS
from ..errors import HfusError
from ..hashing import sha256_file
from .evidence import derived_evidence, evidence_mode, extra_kind, read_twin
from .folds import assign_folds, group_key
from .layouts import (
    GENERIC_MASK_WORDS,
    IGNORE,
    STRUCTURE_WORDS,
    STRUCTURES,
    ImportOptions,
    class_of_folder,
    class_of_stem,
    is_mask_dir,
    structure_of_word,
)
from .masks import (
    MAT_EXT,
    MAX_CODES,
    MaskSource,
    code_text,
    codes_of,
    decode_coded,
    foreground,
    infer_mapping,
    is_colour,
    load_array,
    mapping_text,
    mat_sources,
    pack,
    value_list,
)
from .resample import resize_bilinear, resize_mask
from .slm import SLM_VERSION, skin_layer_map

#: Number of images in the real archive (PROTOCOL §1).
EXPECTED_REAL_IMAGES = 631
IMAGE_EXTS = frozenset({".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"})
SYNTH_INFO = "SYNTH_INFO.json"
DATA_DIR = "data"


def _suffix_re(extra: dict[str, str] | None = None) -> re.Pattern:
    names = [*STRUCTURE_WORDS, *GENERIC_MASK_WORDS, *(extra or {})]
    return re.compile(
        r"[_\-. ](" + "|".join(re.escape(w) for w in sorted(set(names), key=len, reverse=True)) + r")\d*$",
        re.IGNORECASE,
    )


_SUFFIX_RE = _suffix_re()


@dataclass
class ImageEntry:
    path: Path
    rel: str
    stem: str
    label: int
    masks: dict[str, list[MaskSource]] = field(default_factory=dict)  # structure → binary masks
    coded: list[MaskSource] = field(
        default_factory=list
    )  # label images / colour masks (or untyped, in discovery)
    image_id: str | None = None  # from an index (default: the stem)
    group_id: str | None = None  # from an index (default: group_key of the id)
    evidence: str | None = None  # path of its evidence mask (synthetic v3; see .evidence)
    twin: str | None = None  # path of its counterfactual twin


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
    options: ImportOptions = field(default_factory=ImportOptions)
    #: {"kind": "label" | "colour", "mapping": {code: structure | None}, "given_by": ...} for label masks
    encoding: dict | None = None
    #: folder name → {"class", "rule", "files"} of every folder that gave a class
    class_folders: dict[str, dict] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)  # --index: image/mask files not in the index
    index: dict | None = None  # {"path", "sha256", "rows"}
    untyped_cg: set[str] = field(default_factory=set)  # keys of untyped binary masks read as CG epidermis
    #: mask key → {"values": [...], "shape": (h, w), "colour": bool} (untyped masks; all masks after a scan)
    scans: dict[str, dict] = field(default_factory=dict)
    evidence_mode: str | None = None  # "file" | "derived" | None (no evidence column; see .evidence)
    twins: bool = False  # the dataset gets a twin column

    def counts(self) -> dict[str, int]:
        c = Counter(e.label for e in self.images)
        return {name: c.get(i, 0) for i, name in enumerate(CLASSES)}

    @property
    def images_without_masks(self) -> list[str]:
        return sorted(e.rel for e in self.images if not e.masks and not e.coded)

    def image_ids(self) -> list[str]:
        stems = Counter(e.stem for e in self.images)
        return [
            e.image_id
            if e.image_id is not None
            else (e.stem if stems[e.stem] == 1 else f"{CLASSES[e.label]}_{e.stem}")
            for e in self.images
        ]

    def groups(self) -> list[str]:
        return [
            e.group_id if e.group_id is not None else group_key(e.image_id or e.stem) for e in self.images
        ]

    def mask_kinds(self) -> dict[str, int]:
        """How many masks of each kind were found (the manifest's ``import.mask_kinds``)."""
        c: Counter[str] = Counter()
        for e in self.images:
            for srcs in e.masks.values():
                for s in srcs:
                    if s.key in self.untyped_cg:
                        c["untyped binary, CG → epidermis"] += 1
                    else:
                        c[
                            "binary .mat variable per structure" if s.is_mat else "binary file per structure"
                        ] += 1
            kind = "colour mask" if self.encoding and self.encoding["kind"] == "colour" else "label image"
            for s in e.coded:
                c[f"{kind} (.mat array)" if s.is_mat else kind] += 1
        return {k: v for k, v in sorted(c.items()) if v}

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        return (
            f"{len(self.images)} images ({counts}); {len(self.images_without_masks)} without masks; "
            f"{len(self.orphan_masks)} masks without images; {len(self.unclassified_images)} images without class"
        )

    def rules(self) -> dict:
        """Which rules and flags produced the pairing (the manifest's ``import`` section)."""
        enc = None
        if self.encoding:
            colour = self.encoding["kind"] == "colour"
            enc = {
                "kind": self.encoding["kind"],
                "mapping": {
                    code_text(k, colour): v or "background"
                    for k, v in sorted(self.encoding["mapping"].items())
                },
                "given_by": self.encoding["given_by"],
            }
        return {
            "discovery": "index file" if self.index else "folder and file names (archive.py rules)",
            "options": self.options.to_manifest(),
            "class_folders": self.class_folders,
            "mask_kinds": self.mask_kinds(),
            "label_encoding": enc,
            "index": self.index,
            "ignored": self.ignored,
            "unreferenced": self.unreferenced,
        }

    def rules_text(self) -> str:
        """One paragraph for the dataset card."""
        how = (
            f"from the index file `{self.index['path']}`"
            if self.index
            else "by the folder and file naming rules of `hfus_xai_bench.data.archive`"
        )
        parts = [f"Images, classes and masks were found {how}"]
        if self.class_folders:
            parts.append(
                "class folders: "
                + ", ".join(f"`{k}` → {v['class']} ({v['rule']})" for k, v in self.class_folders.items())
            )
        kinds = self.mask_kinds()
        if kinds:
            parts.append("masks: " + ", ".join(f"{v} {k}" for k, v in kinds.items()))
        if self.encoding:
            colour = self.encoding["kind"] == "colour"
            parts.append(
                f"{self.encoding['kind']} codes {mapping_text(self.encoding['mapping'], colour)} "
                f"({self.encoding['given_by']})"
            )
        flags = self.options.flags_text()
        parts.append(f"flags: `{flags}`" if flags else "no layout flags")
        return "; ".join(parts) + "."


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


@dataclass
class _Where:
    label: int | None
    class_folder: str | None
    rule: str
    in_mask_dir: bool
    structure: str | None


def _interpret(parts: list[str], opts: ImportOptions) -> _Where:
    """Class, mask context and structure folder of a file from its folder names (top → down)."""
    info = [
        (
            class_of_folder(p, opts.class_map),
            structure_of_word(p, opts.structure_names),
            is_mask_dir(p, opts.mask_dirs),
        )
        for p in parts
    ]
    label = folder = None
    rule = ""
    in_mask, structure = False, None
    for i, (p, ((cls, crule), st, mk)) in enumerate(zip(parts, info, strict=True)):
        if cls is not None and st is not None and crule != "class-map":
            # "tumour(s)" / "lesion(s)": a structure inside a class or mask folder, the ST class elsewhere
            below = any(s is not None for _, s, _ in info[i + 1 :])
            if (in_mask and not below) or (not in_mask and label is not None):
                cls = None
            else:
                st = None
        if cls is not None:
            label, folder, rule = cls, p, crule
        if st is not None:
            structure, in_mask = st, True
        if mk:
            in_mask = True
    return _Where(label, folder, rule, in_mask, structure)


def _parse_stem(stem: str, suffix_re: re.Pattern, opts: ImportOptions) -> tuple[bool, str, str | None]:
    """(has a mask suffix, base stem, structure from the suffix or None)."""
    base, structure, had = stem, None, False
    while True:
        m = suffix_re.search(base)
        if not m or m.start() == 0:
            break
        had = True
        word = m.group(1).lower()
        if structure is None:
            structure = opts.structure_names.get(word) or STRUCTURE_WORDS.get(word)
        base = base[: m.start()]
    return had, base, structure


def _map(fn: Callable, items: list, workers: int | None, progress: bool, desc: str) -> list:
    from tqdm.auto import tqdm

    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    out = []
    with tqdm(total=len(items), desc=desc, unit="img", disable=not progress) as bar:
        if n_workers <= 1 or len(items) < 32:
            for it in items:
                out.append(fn(it))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                for r in pool.map(fn, items, chunksize=max(1, min(16, len(items) // (4 * n_workers)))):
                    out.append(r)
                    bar.update()
    return out


def _scan(src: MaskSource) -> dict:
    """Values of one mask (runs in a worker process)."""
    arr = load_array(src)
    colour = is_colour(arr)
    return {
        "values": value_list(arr),
        "codes": None if src.jpeg else codes_of(arr, colour),
        "colour": colour,
        "shape": [int(arr.shape[0]), int(arr.shape[1])],
    }


def _walk(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
        yield Path(dirpath), sorted(f for f in filenames if not f.startswith("."))


def discover_archive(
    archive_dir: str | os.PathLike,
    *,
    strict: bool = False,
    options: ImportOptions | None = None,
    scan: bool = False,
    workers: int | None = 1,
    progress: bool = False,
) -> Discovery:
    """Walk ``archive_dir`` and pair images with masks (rules in the module docstring).

    ``options`` carries what the user said about the layout (``--class-map``, ``--index``, …);
    ``scan=True`` also reads every binary mask for its value set (``--dry-run``). Raises
    ``HfusError`` on ambiguous pairings, untyped masks that cannot be resolved, or no images;
    warns (errors with ``strict=True``) on images without masks, masks without images and images
    without a class.
    """
    opts = options or ImportOptions()
    root = Path(archive_dir)
    if not root.is_dir():
        raise HfusError(
            f"archive folder {root} does not exist; pass the folder the archive was extracted into"
        )
    suffix_re = _suffix_re(opts.structure_names) if opts.structure_names else _SUFFIX_RE
    extensions: Counter[str] = Counter()
    dirs: dict[str, dict[str, int]] = {}
    images: dict[tuple[str, int], list[ImageEntry]] = defaultdict(list)
    masks: list[tuple[str, Path, str, str | None, int | None]] = []
    unclassified: list[str] = []
    ignored: list[str] = []
    extras: list[tuple[str, str, Path, str, int | None]] = []
    class_folders: dict[str, dict] = {}
    all_files: list[str] = []
    for dirpath, filenames in _walk(root):
        rel_dir = dirpath.relative_to(root)
        parts = list(rel_dir.parts)
        where = _interpret(parts, opts) if filenames else None
        dir_counts: Counter[str] = Counter()
        for name in filenames:
            path = dirpath / name
            ext = path.suffix.lower()
            extensions[ext] += 1
            dir_counts[ext] += 1
            if ext not in IMAGE_EXTS and ext != MAT_EXT:
                continue
            rel = (rel_dir / name).as_posix()
            all_files.append(rel)
            if opts.index is not None:
                continue
            stem = path.stem
            extra = extra_kind(parts, stem)
            if extra is not None:  # evidence mask or twin: paired below, never an image
                extras.append((extra[0], rel, path, extra[1], where.label))
                continue
            had_suffix, base, structure = _parse_stem(stem, suffix_re, opts)
            structure = structure or where.structure
            label = where.label if where.label is not None else class_of_stem(stem, opts.class_map)
            if label is not None:
                cname = "ignore" if label == IGNORE else CLASSES[label]
                key = (
                    where.class_folder if where.label is not None else f"(file names with the token {cname})"
                )
                cf = class_folders.setdefault(
                    key, {"class": cname, "rule": where.rule or "file-name token", "files": 0}
                )
                cf["files"] += 1
            if label == IGNORE:
                ignored.append(rel)
            elif ext == MAT_EXT or where.in_mask_dir or had_suffix:
                masks.append((rel, path, base, structure, label))
            elif label is None:
                unclassified.append(rel)
            else:
                images[(stem.lower(), label)].append(ImageEntry(path, rel, stem, label))
        if dir_counts:
            dirs[rel_dir.as_posix() if parts else ""] = dict(dir_counts)

    index_info = None
    orphans: list[str] = []
    unreferenced: list[str] = []
    if opts.index is not None:
        from .index import read_index

        rows, index_info = read_index(opts.index, root, opts)
        entries = [
            ImageEntry(r.path, r.rel, r.stem, r.label, r.masks, r.coded, r.image_id, r.group_id) for r in rows
        ]
        if not entries:
            raise HfusError(
                f"index {opts.index.name} lists no image of a class (every row is ignored); fix its class column"
            )
        referenced = (
            {e.rel for e in entries}
            | {s.rel for e in entries for s in e.coded}
            | {s.rel for e in entries for srcs in e.masks.values() for s in srcs}
        )
        unreferenced = sorted(set(all_files) - referenced)
    else:
        if not images:
            raise HfusError(
                f"no class-labelled images found under {root} ({_tree_text(dict(extensions), dirs)}); expected "
                "image files (png/bmp/jpg/tif) in class folders (AD/CG/PS/ST or names such as 'Atopic dermatitis') "
                'or with a class token in the name; name other folders with --class-map "FOLDER=AD,..." '
                "or list the files with --index FILE"
            )
        dupes = [e for v in images.values() if len(v) > 1 for e in v]
        if dupes:
            raise HfusError(
                "two images with the same stem and class: "
                + _short_list(e.rel for e in dupes)
                + "; remove or rename the duplicates, or list the images with --index FILE (column image_id)"
            )
        by_stem: dict[str, list[ImageEntry]] = defaultdict(list)
        for (stem, _), (entry,) in images.items():
            by_stem[stem].append(entry)
        for rel, path, base, structure, label in masks:
            cands = [e for e in by_stem.get(base.lower(), []) if label is None or e.label == label]
            if not cands:
                orphans.append(rel)
            elif len(cands) > 1:
                raise HfusError(
                    f"mask {rel} matches several images ({_short_list(e.rel for e in cands)}); "
                    "put the mask in its class folder or give it the class token, or use --index FILE"
                )
            elif path.suffix.lower() == MAT_EXT:
                for src in mat_sources(str(path), rel, structure, opts):
                    _attach(cands[0], src)
            else:
                _attach(cands[0], MaskSource(str(path), rel, None, structure))
        entries = [v[0] for v in images.values()]
        for kind, rel, path, base, label in extras:
            cands = [e for e in by_stem.get(base.lower(), []) if label is None or e.label == label]
            if len(cands) != 1 or getattr(cands[0], kind) is not None:
                orphans.append(rel)
            else:
                setattr(cands[0], kind, str(path))

    entries.sort(key=lambda e: (e.label, e.image_id if e.image_id is not None else e.stem))
    found = Discovery(
        root,
        entries,
        sorted(orphans),
        sorted(unclassified),
        dict(extensions),
        dirs,
        _generator(root),
        options=opts,
        class_folders=dict(sorted(class_folders.items())),
        ignored=sorted(ignored),
        unreferenced=unreferenced,
        index=index_info,
    )
    _resolve_untyped(found, workers, progress)
    found.evidence_mode, found.twins = evidence_mode(
        sum(e.evidence is not None for e in entries),
        sum(e.twin is not None for e in entries),
        len(entries),
        found.generator,
    )
    if scan:
        todo = [
            s for e in found.images for srcs in e.masks.values() for s in srcs if s.key not in found.scans
        ]
        for src, r in zip(todo, _map(_scan, todo, workers, progress, "scan masks"), strict=True):
            found.scans[src.key] = r

    problems = []
    if found.images_without_masks:
        problems.append(
            f"{len(found.images_without_masks)} images without masks: {_short_list(found.images_without_masks)}"
        )
    if found.orphan_masks:
        problems.append(f"{len(found.orphan_masks)} masks without images: {_short_list(found.orphan_masks)}")
    if found.unclassified_images:
        problems.append(
            f"{len(found.unclassified_images)} images without a class (left out; name their folder with --class-map): "
            f"{_short_list(found.unclassified_images)}"
        )
    if found.unreferenced:
        problems.append(
            f"{len(found.unreferenced)} image/mask files not in the index: {_short_list(found.unreferenced)}"
        )
    if problems:
        msg = "; ".join(problems)
        if strict:
            raise HfusError(msg + " (strict mode; fix the archive or drop --strict)")
        warnings.warn(msg, stacklevel=2)
    return found


def _attach(entry: ImageEntry, src: MaskSource) -> None:
    if src.structure is None:
        entry.coded.append(src)
    else:
        entry.masks.setdefault(src.structure, []).append(src)


def _generator(root: Path) -> dict | None:
    info = root / SYNTH_INFO
    if not info.is_file():
        return None
    try:
        generator = json.loads(info.read_text())
    except (OSError, ValueError) as err:
        raise HfusError(f"{info} is not valid JSON ({err}); regenerate the synthetic archive") from err
    if not isinstance(generator, dict) or generator.get("complete") is False:
        raise HfusError(
            f"{info} says the synthetic archive is incomplete; regenerate it (hfus-bench data synth)"
        )
    # the per-file lists are repeated in the manifest's sha256; keep the settings only
    return {k: v for k, v in generator.items() if k not in ("files", "images")}


def _resolve_untyped(found: Discovery, workers: int | None, progress: bool) -> None:
    """Decide what the untyped masks are (label images, colour masks or binary) for the whole archive."""
    opts = found.options
    untyped = [(e, s) for e in found.images for s in e.coded]
    given = opts.mask_values if opts.mask_values is not None else opts.mask_colors
    flag = "--mask-colors" if opts.mask_colors is not None else "--mask-values"
    index_map = found.index.get("mask_values") if found.index else None
    if index_map is not None:
        if given is not None and given != index_map["mapping"]:
            raise HfusError(
                f"the index's mask_values column and {flag} ({opts.sources.get('mask_values') or opts.sources.get('mask_colors')}) "
                "give different label codes; keep one of them"
            )
        if given is None:
            given, flag = index_map["mapping"], "the index's mask_values column"
            colour_given = index_map["colour"]
        else:
            colour_given = opts.mask_colors is not None
    else:
        colour_given = opts.mask_colors is not None
    if not untyped:
        if given is not None:
            raise HfusError(
                f"{flag} is given but no image has an untyped mask (label image, colour mask): every mask is a "
                "binary per-structure mask; drop the flag"
            )
        return
    srcs = [s for _, s in untyped]
    for src, r in zip(srcs, _map(_scan, srcs, workers, progress, "read label masks"), strict=True):
        found.scans[src.key] = r
    colour_srcs = [s.rel for s in srcs if found.scans[s.key]["colour"]]
    if given is not None:
        colour = colour_given
        if not colour and colour_srcs:
            raise HfusError(
                f"{flag} is for grey-level label images but these masks are colour-coded: {_short_list(colour_srcs)}; "
                'use --mask-colors "#rrggbb=epidermis,..."'
            )
    else:
        colour = bool(colour_srcs)

    def codes(src: MaskSource) -> list[int] | None:
        c = found.scans[src.key]["codes"]
        if c is None or not colour or found.scans[src.key]["colour"]:
            return c
        return [v * 0x010101 for v in c]  # grey codes in a colour archive

    if given is None:
        nz = set()
        for s in srcs:
            c = codes(s)
            if c is not None:
                nz.update(v for v in c if v != 0)
        coded = 2 <= len(nz) <= MAX_CODES
    else:
        coded = True
    if coded:
        jpeg = [s.rel for s in srcs if s.jpeg]
        if jpeg:
            raise HfusError(
                f"label masks must be lossless, these are JPEG: {_short_list(jpeg)}; use PNG/BMP/TIFF label images "
                "or binary masks with a structure suffix"
            )
        floats = [s.key for s in srcs if codes(s) is None]
        if floats:
            raise HfusError(
                f"label masks with non-integer values: {_short_list(floats)}; export integer labels"
            )
        if given is None:
            examples: dict[int, list[str]] = defaultdict(list)
            per_image = []
            for e in found.images:
                if e.coded:
                    per_image.append((e.label, frozenset(v for s in e.coded for v in codes(s))))
                    examples[e.label].append(e.coded[0].rel)
            mapping = infer_mapping(per_image, colour, examples)
            given_by = "inferred from the classes present"
        else:
            mapping, given_by = (
                dict(given),
                (opts.sources.get("mask_colors" if colour else "mask_values") or flag),
            )
            if not colour:
                mapping = {int(k): v for k, v in mapping.items()}
            else:
                mapping = {pack(k) if isinstance(k, tuple) else int(k): v for k, v in mapping.items()}
            unmapped: dict[int, list[str]] = defaultdict(list)
            for s in srcs:
                for v in codes(s) or []:
                    if v not in mapping:
                        unmapped[v].append(s.key)
            if unmapped:
                detail = "; ".join(
                    f"{code_text(v, colour)} in {_short_list(f, 4)}" for v, f in sorted(unmapped.items())
                )
                raise HfusError(
                    f"label value(s) that map to no structure with {flag} {mapping_text(mapping, colour)}: {detail}; "
                    f"add them to {flag} (as a structure, or =background)"
                )
        found.encoding = {"kind": "colour" if colour else "label", "mapping": mapping, "given_by": given_by}
        return
    # binary untyped masks
    bad_mixed, bad_untyped = [], []
    for e in found.images:
        if not e.coded:
            continue
        if e.masks:
            bad_mixed.append(e.rel)
        elif CLASSES[e.label] == "CG":
            e.masks = {"epidermis": [MaskSource(s.path, s.rel, s.var, "epidermis") for s in e.coded]}
            found.untyped_cg.update(s.key for s in e.coded)
            e.coded = []
        else:
            bad_untyped.append(e.rel)
    if bad_mixed:
        raise HfusError(
            "images with both untyped and structure masks (ambiguous): "
            + _short_list(bad_mixed)
            + "; keep one set of masks per image"
        )
    if bad_untyped:
        values = sorted({v for _, s in untyped for v in (found.scans[s.key]["values"] or [])})[:8]
        raise HfusError(
            "untyped masks (no _epidermis/_sleb/_tumor in name or folder) for AD/PS/ST images, which have "
            "several structures: "
            + _short_list(bad_untyped)
            + f" (mask values {values}); rename the masks with a "
            'structure suffix, or, if they are label images, give the codes with --mask-values "1=epidermis,2=sleb,3=tumor"'
        )


# ---------------------------------------------------------------------------------------- import


def _png(arr: np.ndarray) -> bytes:
    # zlib level 1 for speckled RGB (3x faster than the default 6, ~8 % larger), 3 for flat masks/SLM
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1 if arr.ndim == 3 else 3)
    return buf.getvalue()


def _job(e: ImageEntry, found: Discovery) -> tuple:
    enc = None
    if e.coded:
        enc = (found.encoding["mapping"], found.encoding["kind"] == "colour", found.encoding["given_by"])
    ev = (found.evidence_mode, e.evidence, e.twin if found.twins else None, e.label)
    return (str(e.path), {s: list(e.masks.get(s, [])) for s in STRUCTURES}, list(e.coded), enc, ev)


def _union(acc: np.ndarray | None, m: np.ndarray, what: str, keys: list[str]) -> np.ndarray:
    if acc is None:
        return m
    if acc.shape != m.shape:
        raise HfusError(
            f"the {what} masks of one image have different sizes: {', '.join(keys)}; fix the archive"
        )
    return acc | m


def _process(job: tuple) -> dict:
    """Decode, resize and encode one image with its masks (runs in a worker process)."""
    image_path, binary, coded, enc, ev = job
    data = Path(image_path).read_bytes()
    shas = {image_path: hashlib.sha256(data).hexdigest()}
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            rgb = resize_bilinear(np.asarray(im.convert("RGB")))
    except OSError as err:
        raise HfusError(f"{image_path} is not a readable image ({err}); remove or re-export it") from None
    out: dict = {"image": _png(rgb), "size": size, "values": {}, "mask_sizes": {}, "present": []}
    full: dict[str, np.ndarray | None] = dict.fromkeys(STRUCTURES)
    keys: dict[str, list[str]] = defaultdict(list)
    for structure in STRUCTURES:
        for src in binary.get(structure, []):
            if src.path not in shas:
                shas[src.path] = hashlib.sha256(Path(src.path).read_bytes()).hexdigest()
            arr = load_array(src)
            fg = foreground(arr, src.jpeg)
            out["values"][src.key] = value_list(arr)
            out["mask_sizes"][src.key] = (fg.shape[1], fg.shape[0])
            keys[structure].append(src.key)
            full[structure] = _union(full[structure], fg, structure, keys[structure])
    for src in coded:
        mapping, colour, flag = enc
        if src.path not in shas:
            shas[src.path] = hashlib.sha256(Path(src.path).read_bytes()).hexdigest()
        arr = load_array(src)
        out["values"][src.key] = codes_of(arr, colour) or []
        out["mask_sizes"][src.key] = (arr.shape[1], arr.shape[0])
        for structure, m in decode_coded(arr, mapping, colour, src.key, flag).items():
            keys[structure].append(src.key)
            full[structure] = _union(full[structure], m, structure, keys[structure])
    small: dict[str, np.ndarray] = {}
    for structure in STRUCTURES:
        if full[structure] is None:
            small[structure] = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        else:
            small[structure] = resize_mask(full[structure].astype(np.uint8) * np.uint8(255))
            if full[structure].any():
                out["present"].append(structure)
        out[structure] = _png(small[structure])
    slm = skin_layer_map(small["epidermis"], small["sleb"], small["tumor"])
    out["slm"] = _png(slm)
    _process_evidence(out, ev, full, shas, (size[1], size[0]))
    out["sha256"] = shas
    return out


def _process_evidence(out: dict, ev: tuple, full: dict, shas: dict, shape: tuple[int, int]) -> None:
    """Add the ``evidence`` (and ``twin``) PNGs of one image to ``out`` (rules in :mod:`.evidence`)."""
    mode, ev_path, twin_path, label = ev
    if mode is None:
        return
    if mode == "file":
        shas[ev_path] = hashlib.sha256(Path(ev_path).read_bytes()).hexdigest()
        src = MaskSource(ev_path, ev_path, None, "evidence")
        arr = load_array(src)
        fg = foreground(arr, src.jpeg)
        if fg.shape != shape:
            raise HfusError(
                f"evidence mask {ev_path} is {fg.shape[::-1]}, its image {shape[::-1]}; fix the archive"
            )
    else:
        fg = derived_evidence(label, full, shape)
    out["evidence"] = _png(resize_mask(fg.astype(np.uint8) * np.uint8(255)))
    if twin_path is not None:
        shas[twin_path] = hashlib.sha256(Path(twin_path).read_bytes()).hexdigest()
        out["twin"] = _png(resize_bilinear(read_twin(twin_path, (shape[1], shape[0]))))


def features(evidence: bool = False, twin: bool = False):
    """The dataset's ``datasets.Features`` (DEVELOPING.md shared contract; ``evidence`` / ``twin``: see .evidence)."""
    import datasets

    cols = {
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
    if evidence:
        cols["evidence"] = datasets.Image()
    if twin:
        cols["twin"] = datasets.Image()
    return datasets.Features(cols)


def _features_of(found: Discovery):
    return features(found.evidence_mode is not None, found.twins)


def _count_problem(found: Discovery, expect: int | None) -> str | None:
    n = len(found.images)
    if expect is not None:
        return None if n == expect else f"found {n} images but --expect {expect}; {found.summary()}"
    if found.generator is not None:
        want = found.generator.get("n")
        if want is not None and n != int(want):
            return f"synthetic archive declares n={want} in {SYNTH_INFO} but holds {n} images; regenerate it"
        return None
    if n != EXPECTED_REAL_IMAGES:
        return (
            f"found {n} images, the real archive has {EXPECTED_REAL_IMAGES} ({found.summary()}); "
            f"check the extraction, or pass --expect {n} to import anyway"
        )
    return None


def _check_count(found: Discovery, expect: int | None) -> None:
    problem = _count_problem(found, expect)
    if problem:
        raise HfusError(problem)


def _card(
    found: Discovery,
    counts: dict[str, int],
    fold_table: dict[str, list[int]],
    n_shards: int,
    n_folds: int,
    seed: int,
) -> str:
    import yaml

    header = {
        "license": "cc-by-4.0",
        "pretty_name": "HFUS skin ultrasound (hfus-xai-bench)" if found.generator is None else "hfus-synth",
        "task_categories": ["image-classification"],
        "tags": ["ultrasound", "dermatology", "saliency", "xai", "hfus-xai-bench"],
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/train-*"}]}
        ],
        "dataset_info": {
            "features": _features_of(found)._to_yaml_list(),
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
        f"{BENCHMARK_VERSION}). Images resized to 224×224 (bilinear, bit-identical to PIL's), masks resized "
        f"bilinear then > 127, skin layer map `{SLM_VERSION}`; {n_folds} folds stratified by class and grouped by "
        f"`YYYY-MM-DD_<series>` (seed {seed}); {n_shards} parquet shard(s) in `{DATA_DIR}/`.\n\n"
        "Columns: `image_id`, `image` (RGB), `label` (AD, CG, PS, ST), `epidermis`, `sleb`, `tumor` "
        "(L, 0/255, all-zero when absent), `slm` (L), `fold`, `group_id`" + _evidence_text(found) + ".\n\n"
        f"## Import rules\n\n{found.rules_text()} Details in `manifest.json` (`import`).\n\n"
        "## Counts per class and fold\n\n"
        "| class | " + " | ".join(f"fold {k}" for k in range(n_folds)) + " | total |\n"
        "|---|" + "---|" * (n_folds + 1) + "\n" + rows + "\n"
        "| total | " + " | ".join(str(t) for t in totals) + f" | {len(found.images)} |\n\n"
        f"## Licence\n\n{licence}\n\n"
        "## Citation\n\n"
        + (
            "Cite the benchmark; the synthetic track imitates the source dataset below:\n\n"
            if synth
            else "Cite the source dataset (Mendeley Data 5p7fxjt7vs, v1, DUB SkinScanner 75 HFUS images with "
            "epidermis / SLEB / tumour segmentations) and the benchmark:\n\n"
        )
        + "```bibtex\n@misc{hfus_skin_mendeley,\n  title = {High-frequency ultrasound skin images with segmentations},\n"
        "  howpublished = {Mendeley Data, v1},\n  doi = {10.17632/5p7fxjt7vs.1},\n  note = {verify on the landing page}\n}\n"
        f"@software{{hfus_xai_bench,\n  title = {{hfus-xai-bench}},\n  version = {{{BENCHMARK_VERSION}}}\n}}\n```\n"
    )


_EVIDENCE_WORDS = {
    "file": "from the archive's _evidence masks",
    "derived": "derived from the masks (ST tumour, AD/PS SLEB, CG empty; an approximation)",
    None: "none (synthetic archive before version 3)",
}


def _evidence_text(found: Discovery) -> str:
    if found.evidence_mode == "file":
        return (
            ", `evidence` (L, 0/255: where the class evidence is rendered, from the archive's `_evidence` masks)"
            + (
                ", `twin` (RGB: the same frame with the evidence removed; CG: the image itself)"
                if found.twins
                else ""
            )
        )
    if found.evidence_mode == "derived":
        return (
            ", `evidence` (L, 0/255) derived from the archive's own masks as an approximation: ST tumour, AD/PS SLEB, "
            "CG empty (no twins: counterfactual measures are unavailable)"
        )
    return ""


def _preview_rows(found: Discovery, results: dict[int, dict], ids: list[str]) -> list:
    from .preview import PreviewRow

    rows = []
    for i, r in sorted(results.items(), key=lambda kv: (found.images[kv[0]].label, kv[0])):
        e = found.images[i]
        dec = {k: np.asarray(Image.open(io.BytesIO(r[k]))) for k in ("image", *STRUCTURES, "slm")}
        rows.append(
            PreviewRow(
                f"{CLASSES[e.label]}  {ids[i]}", dec["image"], {s: dec[s] for s in STRUCTURES}, dec["slm"]
            )
        )
    return rows


def preview_indices(found: Discovery, per_class: int = 3) -> list[int]:
    """Up to ``per_class`` images of each class, evenly spread over the class (deterministic)."""
    out = []
    for c in range(len(CLASSES)):
        idx = [i for i, e in enumerate(found.images) if e.label == c]
        if idx:
            take = np.unique(np.linspace(0, len(idx) - 1, min(per_class, len(idx))).round().astype(int))
            out += [idx[k] for k in take]
    return out


def write_preview(
    found: Discovery, path: str | os.PathLike, *, per_class: int = 3, results: dict[int, dict] | None = None
) -> Path:
    """Draw the preview sheet of ``found`` (a few images per class: image, overlay, masks, SLM) to ``path``."""
    from .preview import draw_sheet

    picks = preview_indices(found, per_class)
    if results is None:
        results = {i: _process(_job(found.images[i], found)) for i in picks}
    else:
        results = {i: results[i] for i in picks}
    sheet = draw_sheet(_preview_rows(found, results, found.image_ids()), title=found.rules_text())
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(p, format="PNG")
    return p


def dry_run(
    archive_dir: str | os.PathLike,
    *,
    options: ImportOptions | None = None,
    expect: int | None = None,
    strict: bool = False,
    workers: int | None = None,
    progress: bool = False,
    write_index: str | os.PathLike | None = None,
    preview: str | os.PathLike | None = None,
) -> tuple[Discovery, str]:
    """Discover (reading every mask for its values) without writing a dataset; (discovery, report text).

    Writes the inferred index and the preview sheet when asked.
    """
    found = discover_archive(
        archive_dir, strict=strict, options=options, scan=True, workers=workers, progress=progress
    )
    if write_index is not None:
        from .index import write_index as _write_index

        _write_index(found, write_index)
    if preview is not None:
        write_preview(found, preview)
    return found, report(found, expect)


def report(found: Discovery, expect: int | None = None) -> str:
    """The ``--dry-run`` summary: counts, class folders, mask kinds, value sets, what is missing."""
    lines = [
        f"archive: {found.root}",
        f"images: {len(found.images)} (" + ", ".join(f"{k} {v}" for k, v in found.counts().items()) + ")",
    ]
    problem = _count_problem(found, expect)
    lines.append(f"count check: {problem}" if problem else "count check: ok")
    lines.append(f"discovery: {found.rules()['discovery']}")
    for name, info in found.class_folders.items():
        lines.append(f"class folder: {name!r} -> {info['class']} ({info['rule']}, {info['files']} files)")
    for kind, n in found.mask_kinds().items():
        lines.append(f"masks: {n} {kind}")
    lines.append(
        f"evidence column: {_EVIDENCE_WORDS[found.evidence_mode]}; twins: {'yes' if found.twins else 'no'}"
    )
    spc = {c: Counter() for c in CLASSES}
    for e in found.images:
        spc[CLASSES[e.label]].update(e.masks.keys())
        if e.coded:
            spc[CLASSES[e.label]]["label masks"] += 1
    for c in CLASSES:
        lines.append(
            f"masks per class {c}: " + (", ".join(f"{k} {v}" for k, v in sorted(spc[c].items())) or "none")
        )
    if found.encoding:
        colour = found.encoding["kind"] == "colour"
        lines.append(
            f"{found.encoding['kind']} codes: {mapping_text(found.encoding['mapping'], colour)} ({found.encoding['given_by']})"
        )
        per_class: dict[str, set] = {c: set() for c in CLASSES}
        for e in found.images:
            for s in e.coded:
                c = found.scans[s.key]["codes"] or []
                if colour and not found.scans[s.key]["colour"]:
                    c = [v * 0x010101 for v in c]
                per_class[CLASSES[e.label]].update(c)
        lines.append(
            "codes per class: "
            + "; ".join(
                f"{c} {{{', '.join(code_text(v, colour) for v in sorted(vs))}}}"
                for c, vs in per_class.items()
                if vs
            )
        )
    values: dict[str, set] = defaultdict(set)
    for e in found.images:
        for s, srcs in e.masks.items():
            for src in srcs:
                if src.key in found.scans:
                    values[s].update(found.scans[src.key]["values"])
    for s in STRUCTURES:
        if values[s]:
            lines.append(f"value set {s}: {sorted(values[s])[:32]}")
    lines.append(
        f"images without masks: {len(found.images_without_masks)}"
        + (f" ({_short_list(found.images_without_masks)})" if found.images_without_masks else "")
    )
    lines.append(
        f"masks without images: {len(found.orphan_masks)}"
        + (f" ({_short_list(found.orphan_masks)})" if found.orphan_masks else "")
    )
    lines.append(
        f"images without a class: {len(found.unclassified_images)}"
        + (f" ({_short_list(found.unclassified_images)})" if found.unclassified_images else "")
    )
    if found.ignored:
        lines.append(f"ignored by --class-map: {len(found.ignored)} files")
    if found.index:
        lines.append(f"files not in the index: {len(found.unreferenced)}")
    flags = found.options.flags_text()
    lines.append(f"flags: {flags or '(none)'}")
    return "\n".join(lines)


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
    options: ImportOptions | None = None,
    write_index: str | os.PathLike | None = None,
    preview: str | os.PathLike | None = None,
) -> Path:
    """Import an extracted archive into a Hub-style dataset folder; returns ``out_dir``.

    Writes ``data/train-0000X-of-0000N.parquet``, ``README.md`` (dataset card whose YAML lets
    ``datasets.load_dataset(out_dir)`` work) and ``manifest.json``; with ``write_index`` the index
    the discovery inferred, with ``preview`` the preview sheet (PNG).
    """
    import datasets

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HfusError(f"output folder {out} exists and is not empty; choose a new --out or delete it")
    found = discover_archive(archive_dir, strict=strict, options=options, workers=workers, progress=progress)
    _check_count(found, expect)
    if write_index is not None:
        from .index import write_index as _write_index

        _write_index(found, write_index)

    results = _map(_process, [_job(e, found) for e in found.images], workers, progress, "import")

    ids = found.image_ids()
    if len(set(ids)) != len(ids):
        dup = sorted(k for k, v in Counter(ids).items() if v > 1)
        raise HfusError(
            f"image ids are not unique: {_short_list(dup)}; give distinct image_id values in the index"
        )
    labels = np.array([e.label for e in found.images], dtype=np.int64)
    groups = found.groups()
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
    extra_cols = [c for c in ("evidence", "twin") if c in _features_of(found)]
    table.update({c: [img(r[c]) for r in results] for c in extra_cols})
    ds = datasets.Dataset.from_dict(table, features=_features_of(found))
    total_bytes = sum(
        len(r["image"]) + len(r["slm"]) + sum(len(r[s]) for s in (*STRUCTURES, *extra_cols)) for r in results
    )
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
    fold_table = {
        c: [int(np.sum((labels == i) & (folds == k))) for k in range(n_folds)] for i, c in enumerate(CLASSES)
    }
    root = found.root
    sha = {}
    for r in results:
        sha.update(
            {
                Path(p).relative_to(root).as_posix() if Path(p).is_relative_to(root) else p: h
                for p, h in r["sha256"].items()
            }
        )
    for dirpath, filenames in _walk(root):  # every other source file (small: json, txt …)
        for name in filenames:
            p = dirpath / name
            rel = p.relative_to(root).as_posix()
            if rel not in sha:
                sha[rel] = sha256_file(p)
    value_sets: dict[str, set] = defaultdict(set)
    n_masks: Counter[str] = Counter()
    size_mismatch = []
    coded_codes: set = set()
    for e, r in zip(found.images, results, strict=True):
        for s in STRUCTURES:
            for src in e.masks.get(s, []):
                value_sets[s].update(r["values"][src.key])
                n_masks[s] += 1
        for src in e.coded:
            coded_codes.update(r["values"][src.key])
        for src in [*e.coded, *(x for srcs in e.masks.values() for x in srcs)]:
            if tuple(r["mask_sizes"][src.key]) != tuple(r["size"]):
                size_mismatch.append(src.key)
    structures_per_class = {
        c: {
            s: sum(
                1
                for e, r in zip(found.images, results, strict=True)
                if e.label == i and (s in e.masks or (e.coded and s in r["present"]))
            )
            for s in STRUCTURES
        }
        for i, c in enumerate(CLASSES)
    }
    rules = found.rules()
    if found.encoding:
        colour = found.encoding["kind"] == "colour"
        rules["label_encoding"]["n_masks"] = sum(len(e.coded) for e in found.images)
        rules["label_encoding"]["codes"] = [code_text(v, colour) for v in sorted(coded_codes)]
    manifest = {
        "format": "hfus-xai-bench/manifest@1",
        "package_version": BENCHMARK_VERSION,
        "source_name": root.resolve().name,
        "n_images": len(found.images),
        "counts": counts,
        "counts_per_fold": fold_table,
        "folds": {"n_folds": n_folds, "seed": seed, "group_key": "YYYY-MM-DD_<series>"},
        "slm_version": SLM_VERSION,
        "image_sizes": {
            f"{w}x{h}": n for (w, h), n in sorted(Counter(tuple(r["size"]) for r in results).items())
        },
        "structures_per_class": structures_per_class,
        "mask_values": {s: {"n_masks": n_masks[s], "values": sorted(value_sets[s])} for s in STRUCTURES},
        "mask_size_mismatch": sorted(size_mismatch),
        "images_without_masks": found.images_without_masks,
        "orphan_masks": found.orphan_masks,
        "unclassified_images": found.unclassified_images,
        "import": rules,
        "tree": {"extensions": found.extensions, "dirs": found.dirs},
        "generator": found.generator,
        "evidence": {"mode": found.evidence_mode, "twins": found.twins},
        "shards": shard_sha,
        "sha256": dict(sorted(sha.items())),
    }
    (out / "README.md").write_text(_card(found, counts, fold_table, n_shards, n_folds, seed))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    if preview is not None:
        write_preview(found, preview, results=dict(enumerate(results)))
    return out
