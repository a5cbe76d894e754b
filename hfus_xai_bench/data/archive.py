"""Import of an extracted HFUS archive into a Hub-style dataset folder, and the ``--dry-run``.

The archive's layout is discovered by :mod:`.discover` (its docstring lists the rules), each image
is converted to the dataset's columns by :mod:`.columns`, and this module writes the result:
``data/train-0000X-of-0000N.parquet``, the dataset card ``README.md`` (:mod:`.report`) and
``manifest.json`` (what was found, with which rules, the sha256 of every source file).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ..constants import BENCHMARK_VERSION, CLASSES, NUM_FOLDS
from ..errors import HfusError
from ..hashing import sha256_file
from .columns import DATA_DIR, convert, features, job, parallel_map
from .discover import discover_archive, walk_archive
from .discovery import Discovery, short_list
from .folds import assign_folds
from .layouts import STRUCTURES, ImportOptions
from .masks import code_text
from .preview import write_preview
from .report import card, check_count, report
from .slm import SLM_VERSION


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


def _image_ids(found: Discovery) -> list[str]:
    ids = found.image_ids()
    if len(set(ids)) != len(ids):
        dup = sorted(k for k, v in Counter(ids).items() if v > 1)
        raise HfusError(
            f"image ids are not unique: {short_list(dup)}; give distinct image_id values in the index"
        )
    return ids


def _dataset(found: Discovery, results: list[dict], ids: list[str], labels: np.ndarray, folds, groups):
    """The ``datasets.Dataset`` of the import (in memory)."""
    import datasets

    def img(b: bytes) -> dict:
        return {"bytes": b, "path": None}

    feats = features(found.evidence_mode is not None, found.twins)
    table = {
        "image_id": ids,
        "image": [img(r["image"]) for r in results],
        "label": labels.tolist(),
        **{s: [img(r[s]) for r in results] for s in STRUCTURES},
        "slm": [img(r["slm"]) for r in results],
        "fold": folds.tolist(),
        "group_id": groups,
    }
    table.update({c: [img(r[c]) for r in results] for c in ("evidence", "twin") if c in feats})
    return datasets.Dataset.from_dict(table, features=feats)


def _write_shards(ds, results: list[dict], out: Path, max_shard_bytes: int) -> dict[str, str]:
    """Write the parquet shards (each ≤ ~``max_shard_bytes`` of PNG bytes); {relative path: sha256}."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    extra_cols = [c for c in ("evidence", "twin") if c in ds.features]
    total_bytes = sum(
        len(r["image"]) + len(r["slm"]) + sum(len(r[s]) for s in (*STRUCTURES, *extra_cols)) for r in results
    )
    n_shards = max(1, -(-total_bytes // max_shard_bytes))
    data_dir = out / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    shard_sha = {}
    quiet_before = are_progress_bars_disabled()
    disable_progress_bars()  # datasets' own per-shard bar; ours is the import bar
    try:
        for k in range(n_shards):
            name = f"train-{k:05d}-of-{n_shards:05d}.parquet"
            ds.shard(n_shards, k, contiguous=True).to_parquet(str(data_dir / name))
            shard_sha[f"{DATA_DIR}/{name}"] = sha256_file(data_dir / name)
    finally:
        if not quiet_before:
            enable_progress_bars()
    return shard_sha


def _source_sha(root: Path, results: list[dict]) -> dict[str, str]:
    """sha256 of every source file: those the conversion read, then every other file of the tree."""
    sha = {}
    for r in results:
        sha.update(
            {
                Path(p).relative_to(root).as_posix() if Path(p).is_relative_to(root) else p: h
                for p, h in r["sha256"].items()
            }
        )
    for dirpath, filenames in walk_archive(root):  # every other source file (small: json, txt …)
        for name in filenames:
            p = dirpath / name
            rel = p.relative_to(root).as_posix()
            if rel not in sha:
                sha[rel] = sha256_file(p)
    return dict(sorted(sha.items()))


def _mask_facts(found: Discovery, results: list[dict]) -> dict:
    """The manifest's mask sections: value sets, structures per class, size mismatches, label codes."""
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
        for src in [*e.coded, *e.binary_sources()]:
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
        rules["label_encoding"]["n_masks"] = sum(len(e.coded) for e in found.images)
        rules["label_encoding"]["codes"] = [code_text(v, found.colour) for v in sorted(coded_codes)]
    return {
        "structures_per_class": structures_per_class,
        "mask_values": {s: {"n_masks": n_masks[s], "values": sorted(value_sets[s])} for s in STRUCTURES},
        "mask_size_mismatch": sorted(size_mismatch),
        "import": rules,
    }


def _manifest(found: Discovery, results: list[dict], fold_table: dict, folds: dict, shard_sha: dict) -> dict:
    facts = _mask_facts(found, results)
    return {
        "format": "hfus-xai-bench/manifest@1",
        "package_version": BENCHMARK_VERSION,
        "source_name": found.root.resolve().name,
        "n_images": len(found.images),
        "counts": found.counts(),
        "counts_per_fold": fold_table,
        "folds": folds,
        "slm_version": SLM_VERSION,
        "image_sizes": {
            f"{w}x{h}": n for (w, h), n in sorted(Counter(tuple(r["size"]) for r in results).items())
        },
        "structures_per_class": facts["structures_per_class"],
        "mask_values": facts["mask_values"],
        "mask_size_mismatch": facts["mask_size_mismatch"],
        "images_without_masks": found.images_without_masks,
        "orphan_masks": found.orphan_masks,
        "unclassified_images": found.unclassified_images,
        "import": facts["import"],
        "tree": {"extensions": found.extensions, "dirs": found.dirs},
        "generator": found.generator,
        "evidence": {"mode": found.evidence_mode, "twins": found.twins},
        "shards": shard_sha,
        "sha256": _source_sha(found.root, results),
    }


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
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HfusError(f"output folder {out} exists and is not empty; choose a new --out or delete it")
    found = discover_archive(archive_dir, strict=strict, options=options, workers=workers, progress=progress)
    check_count(found, expect)
    if write_index is not None:
        from .index import write_index as _write_index

        _write_index(found, write_index)

    results = parallel_map(convert, [job(e, found) for e in found.images], workers, progress, "import")
    ids = _image_ids(found)
    labels = np.array([e.label for e in found.images], dtype=np.int64)
    groups = found.groups()
    folds = assign_folds(labels, groups, n_folds=n_folds, seed=seed)
    ds = _dataset(found, results, ids, labels, folds, groups)
    shard_sha = _write_shards(ds, results, out, max_shard_bytes)

    fold_table = {
        c: [int(np.sum((labels == i) & (folds == k))) for k in range(n_folds)] for i, c in enumerate(CLASSES)
    }
    fold_rule = {"n_folds": n_folds, "seed": seed, "group_key": "YYYY-MM-DD_<series>"}
    manifest = _manifest(found, results, fold_table, fold_rule, shard_sha)
    (out / "README.md").write_text(card(found, found.counts(), fold_table, len(shard_sha), n_folds, seed))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    if preview is not None:
        write_preview(found, preview, results=dict(enumerate(results)))
    return out
