"""Discovery of an extracted HFUS archive's layout (Mendeley 5p7fxjt7vs or the synthetic track).

Discovery rules (DATASET.md "So the importer must discover"; docs/DATASET.md "Importing an
archive" lists them for users), documented here because the real archive's layout is not published:

* Folders whose name starts with ``_`` or ``.`` are ignored, and so are files starting with ``.``.
* Images: files with extension png, bmp, jpg, jpeg, tif, tiff that are not masks (nor evidence masks
  or twins, set aside and paired by :mod:`.evidence`). The class is
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
* Untyped masks, decided for the whole archive from their pixel values (:mod:`.untyped`,
  :func:`.masks.codes_of`): label images (one code per structure) when ``--mask-values`` /
  ``--mask-colors`` is given or when they hold 2..8 non-background codes (grey values, or colours:
  colour masks); the code → structure map is then inferred only when the classes present leave
  one choice (:func:`.masks.infer_mapping`), else an error asks for the flag. Otherwise they are
  binary: for CG (healthy skin, only the entry echo is annotated) an untyped mask is the
  epidermis; for AD/PS/ST the import refuses (it would mix structures). Untyped binary masks next
  to typed ones for the same image are refused too.
* ``--index FILE`` replaces the discovery of images, classes and masks by a table
  (:mod:`.index`); the rules for untyped masks above still apply to its ``mask`` column.
* Foreground of a binary mask: any non-zero pixel (JPEG: > 127; several channels: any channel).
* Resizing (:mod:`.columns`): images → RGB → :func:`.resample.resize_bilinear` to 224×224
  (bit-identical to Pillow's ``Image.BILINEAR``, what torchvision's ``Resize((224, 224))`` does on PIL
  images, on every machine). Every mask kind ends as one full-size boolean mask per structure →
  0/255 → bilinear → ``> 127`` (:func:`.resample.resize_mask`), so the same segmentation gives the
  same bytes whatever its encoding. The SLM is ``skin_layer_map`` of the three 224 masks.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..constants import CLASSES
from ..errors import HfusError
from .columns import parallel_map
from .discovery import Discovery, ImageEntry, short_list
from .evidence import evidence_mode, extra_kind
from .layouts import (
    GENERIC_MASK_WORDS,
    IGNORE,
    STRUCTURE_WORDS,
    ImportOptions,
    class_of_folder,
    class_of_stem,
    is_mask_dir,
    structure_of_word,
)
from .masks import MAT_EXT, MaskSource, mat_sources, scan_mask
from .synth_ops import INFO_NAME
from .untyped import resolve_untyped

IMAGE_EXTS = frozenset({".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"})


def _suffix_re(extra: dict[str, str] | None = None) -> re.Pattern:
    names = [*STRUCTURE_WORDS, *GENERIC_MASK_WORDS, *(extra or {})]
    return re.compile(
        r"[_\-. ](" + "|".join(re.escape(w) for w in sorted(set(names), key=len, reverse=True)) + r")\d*$",
        re.IGNORECASE,
    )


_SUFFIX_RE = _suffix_re()


def _tree_text(extensions: dict[str, int], dirs: dict[str, dict[str, int]], limit: int = 12) -> str:
    ext = ", ".join(f"{k or '(none)'}: {v}" for k, v in sorted(extensions.items())) or "no files"
    top = "; ".join(
        f"{d or '.'}: " + ", ".join(f"{e or '(none)'} {n}" for e, n in sorted(c.items()))
        for d, c in list(sorted(dirs.items()))[:limit]
    )
    return f"files by extension: {ext}; folders: {top or 'none'}"


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


def walk_archive(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, file names) of every folder the importer looks at, sorted, hidden ones skipped."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
        yield Path(dirpath), sorted(f for f in filenames if not f.startswith("."))


@dataclass
class _MaskFile:
    rel: str
    path: Path
    base: str  # the stem without its mask suffixes
    structure: str | None
    label: int | None


@dataclass
class _Tree:
    """What the walk of an archive collected, before pairing."""

    extensions: Counter[str] = field(default_factory=Counter)
    dirs: dict[str, dict[str, int]] = field(default_factory=dict)
    images: dict[tuple[str, int], list[ImageEntry]] = field(default_factory=lambda: defaultdict(list))
    masks: list[_MaskFile] = field(default_factory=list)
    unclassified: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    extras: list[tuple[str, _MaskFile]] = field(default_factory=list)  # (evidence | twin, file)
    class_folders: dict[str, dict] = field(default_factory=dict)
    all_files: list[str] = field(default_factory=list)


def _count_class_folder(tree: _Tree, where: _Where, label: int) -> None:
    cname = "ignore" if label == IGNORE else CLASSES[label]
    key = where.class_folder if where.label is not None else f"(file names with the token {cname})"
    cf = tree.class_folders.setdefault(
        key, {"class": cname, "rule": where.rule or "file-name token", "files": 0}
    )
    cf["files"] += 1


def _add_file(
    tree: _Tree, path: Path, rel: str, parts: list[str], where: _Where, rx: re.Pattern, opts: ImportOptions
) -> None:
    """Sort one image-like file of the walk: an image, a mask, an evidence mask / twin, or left out."""
    stem = path.stem
    extra = extra_kind(parts, stem)
    if extra is not None:  # evidence mask or twin: paired below, never an image
        tree.extras.append((extra[0], _MaskFile(rel, path, extra[1], None, where.label)))
        return
    had_suffix, base, structure = _parse_stem(stem, rx, opts)
    structure = structure or where.structure
    label = where.label if where.label is not None else class_of_stem(stem, opts.class_map)
    if label is not None:
        _count_class_folder(tree, where, label)
    if label == IGNORE:
        tree.ignored.append(rel)
    elif path.suffix.lower() == MAT_EXT or where.in_mask_dir or had_suffix:
        tree.masks.append(_MaskFile(rel, path, base, structure, label))
    elif label is None:
        tree.unclassified.append(rel)
    else:
        tree.images[(stem.lower(), label)].append(ImageEntry(path, rel, stem, label))


def _walk_tree(root: Path, opts: ImportOptions) -> _Tree:
    """Walk ``root`` once: extensions and folders for the report, and (without an index) the sorting of
    every file into images, masks, extras, unclassified and ignored."""
    rx = _suffix_re(opts.structure_names) if opts.structure_names else _SUFFIX_RE
    tree = _Tree()
    for dirpath, filenames in walk_archive(root):
        rel_dir = dirpath.relative_to(root)
        parts = list(rel_dir.parts)
        where = _interpret(parts, opts) if filenames else None
        dir_counts: Counter[str] = Counter()
        for name in filenames:
            path = dirpath / name
            ext = path.suffix.lower()
            tree.extensions[ext] += 1
            dir_counts[ext] += 1
            if ext not in IMAGE_EXTS and ext != MAT_EXT:
                continue
            rel = (rel_dir / name).as_posix()
            tree.all_files.append(rel)
            if opts.index is None:
                _add_file(tree, path, rel, parts, where, rx, opts)
        if dir_counts:
            tree.dirs[rel_dir.as_posix() if parts else ""] = dict(dir_counts)
    return tree


def _entries_from_index(
    root: Path, opts: ImportOptions, all_files: list[str]
) -> tuple[list[ImageEntry], dict, list[str]]:
    """(entries, index record, files not in the index) of ``--index``."""
    from .index import read_index

    entries, index_info = read_index(opts.index, root, opts)
    if not entries:
        raise HfusError(
            f"index {opts.index.name} lists no image of a class (every row is ignored); fix its class column"
        )
    referenced = (
        {e.rel for e in entries}
        | {s.rel for e in entries for s in e.coded}
        | {s.rel for e in entries for s in e.binary_sources()}
    )
    return entries, index_info, sorted(set(all_files) - referenced)


def _check_images(root: Path, tree: _Tree) -> None:
    if not tree.images:
        raise HfusError(
            f"no class-labelled images found under {root} ({_tree_text(dict(tree.extensions), tree.dirs)}); "
            "expected image files (png/bmp/jpg/tif) in class folders (AD/CG/PS/ST or names such as "
            "'Atopic dermatitis') or with a class token in the name; name other folders with "
            '--class-map "FOLDER=AD,..." or list the files with --index FILE'
        )
    dupes = [e for v in tree.images.values() if len(v) > 1 for e in v]
    if dupes:
        raise HfusError(
            "two images with the same stem and class: "
            + short_list(e.rel for e in dupes)
            + "; remove or rename the duplicates, or list the images with --index FILE (column image_id)"
        )


def _candidates(by_stem: dict[str, list[ImageEntry]], f: _MaskFile) -> list[ImageEntry]:
    return [e for e in by_stem.get(f.base.lower(), []) if f.label is None or e.label == f.label]


def _entries_from_tree(root: Path, tree: _Tree, opts: ImportOptions) -> tuple[list[ImageEntry], list[str]]:
    """(images with their masks, evidence masks and twins; files that pair with no image)."""
    _check_images(root, tree)
    by_stem: dict[str, list[ImageEntry]] = defaultdict(list)
    for (stem, _), (entry,) in tree.images.items():
        by_stem[stem].append(entry)
    orphans: list[str] = []
    for f in tree.masks:
        cands = _candidates(by_stem, f)
        if not cands:
            orphans.append(f.rel)
        elif len(cands) > 1:
            raise HfusError(
                f"mask {f.rel} matches several images ({short_list(e.rel for e in cands)}); "
                "put the mask in its class folder or give it the class token, or use --index FILE"
            )
        elif f.path.suffix.lower() == MAT_EXT:
            for src in mat_sources(str(f.path), f.rel, f.structure, opts):
                cands[0].attach(src)
        else:
            cands[0].attach(MaskSource(str(f.path), f.rel, None, f.structure))
    for kind, f in tree.extras:
        cands = _candidates(by_stem, f)
        if len(cands) != 1 or getattr(cands[0], kind) is not None:
            orphans.append(f.rel)
        else:
            setattr(cands[0], kind, str(f.path))
    return [v[0] for v in tree.images.values()], orphans


def _generator(root: Path) -> dict | None:
    info = root / INFO_NAME
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


def _problems(found: Discovery) -> list[str]:
    """What is missing or left out (warnings; errors with ``strict``)."""
    problems = []
    if found.images_without_masks:
        problems.append(
            f"{len(found.images_without_masks)} images without masks: "
            f"{short_list(found.images_without_masks)}"
        )
    if found.orphan_masks:
        problems.append(f"{len(found.orphan_masks)} masks without images: {short_list(found.orphan_masks)}")
    if found.unclassified_images:
        problems.append(
            f"{len(found.unclassified_images)} images without a class (left out; name their folder with "
            f"--class-map): {short_list(found.unclassified_images)}"
        )
    if found.unreferenced:
        problems.append(
            f"{len(found.unreferenced)} image/mask files not in the index: {short_list(found.unreferenced)}"
        )
    return problems


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
    tree = _walk_tree(root, opts)
    index_info, orphans, unreferenced = None, [], []
    if opts.index is not None:
        entries, index_info, unreferenced = _entries_from_index(root, opts, tree.all_files)
    else:
        entries, orphans = _entries_from_tree(root, tree, opts)
    entries.sort(key=lambda e: (e.label, e.image_id if e.image_id is not None else e.stem))
    found = Discovery(
        root,
        entries,
        sorted(orphans),
        sorted(tree.unclassified),
        dict(tree.extensions),
        tree.dirs,
        _generator(root),
        options=opts,
        class_folders=dict(sorted(tree.class_folders.items())),
        ignored=sorted(tree.ignored),
        unreferenced=unreferenced,
        index=index_info,
    )
    resolve_untyped(found, workers, progress)
    found.evidence_mode, found.twins = evidence_mode(
        sum(e.evidence is not None for e in entries),
        sum(e.twin is not None for e in entries),
        len(entries),
        found.generator,
    )
    if scan:
        todo = [s for e in found.images for s in e.binary_sources() if s.key not in found.scans]
        for src, r in zip(todo, parallel_map(scan_mask, todo, workers, progress, "scan masks"), strict=True):
            found.scans[src.key] = r
    problems = _problems(found)
    if problems:
        msg = "; ".join(problems)
        if strict:
            raise HfusError(msg + " (strict mode; fix the archive or drop --strict)")
        warnings.warn(msg, stacklevel=2)
    return found
