"""`hfus-bench data synth|import|info`: build, import and inspect datasets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..constants import N_IMAGES, NUM_FOLDS, SYNTH_DATASET
from .common import add_quiet, group


def _synth(args: argparse.Namespace) -> int:
    from ..data.synth_archive import generate_archive

    out = generate_archive(args.out, n=args.n, seed=args.seed, progress=not args.quiet, workers=args.workers)
    print(f"wrote synthetic archive ({args.n} images, seed {args.seed}) to {out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..data.archive import dry_run, import_archive
    from ..data.layouts import check_import_paths, import_options

    check_import_paths(
        out=args.out,
        dry_run=args.dry_run,
        index=args.index,
        write_index=args.write_index,
        preview=args.preview,
    )
    options = import_options(
        class_map=args.class_map,
        mask_values=args.mask_values,
        mask_colors=args.mask_colors,
        layout=args.layout,
        index=args.index,
    )
    if args.dry_run:
        _, text = dry_run(
            args.archive,
            options=options,
            expect=args.expect,
            strict=args.strict,
            workers=args.workers,
            progress=not args.quiet,
            write_index=args.write_index,
            preview=args.preview,
        )
        print(text)
    else:
        out = import_archive(
            args.archive,
            args.out,
            n_folds=args.n_folds,
            seed=args.seed,
            expect=args.expect,
            progress=not args.quiet,
            strict=args.strict,
            workers=args.workers,
            options=options,
            write_index=args.write_index,
            preview=args.preview,
        )
        print(f"wrote dataset to {out} (see {out / 'manifest.json'} and {out / 'README.md'})")
        _warn_resized_masks(out / "manifest.json")
    for what, path in (("index", args.write_index), ("preview sheet", args.preview)):
        if path:
            print(f"wrote {what} to {path}")
    if args.dry_run:
        print("dry run: no dataset written")
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..data.dataset import dataset_provenance, describe, load_dataset
    from ..data.golden import golden_status

    ds = load_dataset(args.dataset, revision=args.revision)
    prov = dataset_provenance(ds)
    n_classes = len(ds.features["label"].names)
    matches, status = golden_status(prov)
    print(f"id:       {prov['id']}")
    print(f"revision: {prov['revision']}")
    content = "decoded pixels, masks, SLMs, evidence, twins, ids, labels, folds, groups"
    print(f"sha256:   {prov['sha256']} (content hash: {content})")
    print(f"golden:   {status}")
    print(f"images:   {prov['n_images']} ({n_classes} classes: {', '.join(ds.features['label'].names)})")
    print(describe(ds))
    return 1 if matches is False else 0


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    """Every flag of ``data import`` (one block: add new ones here)."""
    p.add_argument("archive", metavar="ARCHIVE_DIR", help="the extracted archive (one folder per class)")
    p.add_argument(
        "--out", default=None, metavar="DATASET_DIR", help="output dataset folder (not with --dry-run)"
    )
    p.add_argument(
        "--expect",
        type=int,
        default=None,
        help=f"expected image count (default {N_IMAGES} for a real archive)",
    )
    p.add_argument(
        "--strict", action="store_true", help="fail on images without masks / masks without images"
    )
    p.add_argument(
        "--n-folds", type=int, default=NUM_FOLDS, help=f"number of folds to assign (default {NUM_FOLDS})"
    )
    p.add_argument("--seed", type=int, default=0, help="fold seed (default 0)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores, at most 8)")
    lay = p.add_argument_group("archive layout (docs/DATASET.md, 'Importing an archive')")
    lay.add_argument(
        "--class-map",
        default=None,
        metavar="NAME=CODE,...",
        help='folder names -> classes, e.g. "Atopic dermatitis=AD,Kontrola=CG,Other=ignore"',
    )
    lay.add_argument(
        "--mask-values",
        default=None,
        metavar="VALUE=STRUCTURE,...",
        help='label-image codes, e.g. "1=epidermis,2=sleb,3=tumor" (default: inferred when unambiguous)',
    )
    lay.add_argument(
        "--mask-colors",
        default=None,
        metavar="COLOUR=STRUCTURE,...",
        help='colour-mask codes, e.g. "#ff0000=epidermis,#00ff00=sleb,#0000ff=tumor"',
    )
    lay.add_argument(
        "--layout", default=None, metavar="FILE", help="layout file (JSON, or YAML) with these settings"
    )
    lay.add_argument(
        "--index",
        default=None,
        metavar="FILE",
        help="take images, classes and masks from a CSV/TSV/JSON index",
    )
    lay.add_argument(
        "--write-index", default=None, metavar="FILE", help="write the index the discovery inferred"
    )
    lay.add_argument("--dry-run", action="store_true", help="print what would be imported; write no dataset")
    lay.add_argument(
        "--preview",
        default=None,
        metavar="FILE.png",
        help="draw a sheet of images per class with their masks and SLM",
    )
    add_quiet(p)


def _warn_resized_masks(manifest: Path) -> None:
    """PROTOCOL §1 (the importer never guesses silently): one stderr line when masks of another size than
    their image were scaled to it."""
    bad = json.loads(manifest.read_text())["mask_size_mismatch"]
    if bad:
        shown = ", ".join(bad[:3]) + (f", … ({len(bad) - 3} more)" if len(bad) > 3 else "")
        print(
            f"warning: {len(bad)} masks differ in size from their image and were scaled to it ({shown}); "
            f"check them (manifest.json: mask_size_mismatch)",
            file=sys.stderr,
        )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data synth|import|info``."""
    dsub = group(sub, "data", "build, import and inspect datasets", "data_command")

    p = dsub.add_parser("synth", help="write the synthetic archive (hfus-synth layout)")
    p.add_argument("--out", required=True, help="output folder for the archive")
    p.add_argument("--n", type=int, default=N_IMAGES, help=f"number of images (default {N_IMAGES})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    add_quiet(p)
    p.set_defaults(func=_synth)

    p = dsub.add_parser("import", help="import an extracted archive into a Hub-style dataset folder")
    add_import_arguments(p)
    p.set_defaults(func=_import)

    p = dsub.add_parser("info", help="id, revision and counts per class × fold of a dataset")
    p.add_argument(
        "dataset",
        nargs="?",
        default=SYNTH_DATASET,
        help=f"{SYNTH_DATASET} (default), a dataset or archive folder, or a Hub id owner/name",
    )
    p.add_argument(
        "--revision", default=None, help="dataset revision (Hub datasets: commit sha, tag or branch)"
    )
    p.set_defaults(func=_info)
