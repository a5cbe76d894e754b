"""`hfus-bench data …`: synth, import, info (registered by ``hfus_xai_bench.cli``)."""

from __future__ import annotations

import argparse
import warnings

from ..constants import SYNTH_DATASET


def _synth(args: argparse.Namespace) -> int:
    from .synth import generate_archive

    out = generate_archive(args.out, n=args.n, seed=args.seed, progress=not args.quiet, workers=args.workers)
    print(f"wrote synthetic archive ({args.n} images, seed {args.seed}) to {out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from .archive import import_archive

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = import_archive(
            args.archive, args.out, n_folds=args.folds, seed=args.seed, expect=args.expect,
            progress=not args.quiet, strict=args.strict, workers=args.workers,
        )
    for w in caught:
        print(f"hfus-bench: warning: {w.message}")
    print(f"wrote dataset to {out} (see {out / 'manifest.json'} and {out / 'README.md'})")
    return 0


def _info(args: argparse.Namespace) -> int:
    from .dataset import dataset_provenance, describe, load_dataset

    ds = load_dataset(args.dataset, revision=args.revision)
    prov = dataset_provenance(ds)
    n_classes = len(ds.features["label"].names)
    print(f"id:       {prov['id']}")
    print(f"revision: {prov['revision']}")
    print(f"sha256:   {prov['sha256']}")
    print(f"images:   {prov['n_images']} ({n_classes} classes: {', '.join(ds.features['label'].names)})")
    print(describe(ds))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data synth|import|info`` to ``hfus-bench``."""
    data = sub.add_parser("data", help="build, import and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    p = dsub.add_parser("synth", help="write the synthetic archive (hfus-synth layout)")
    p.add_argument("--out", required=True, help="output folder for the archive")
    p.add_argument("--n", type=int, default=631, help="number of images (default 631)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    p = dsub.add_parser("import", help="import an extracted archive into a Hub-style dataset folder")
    p.add_argument("archive", metavar="ARCHIVE_DIR")
    p.add_argument("--out", required=True, metavar="DATASET_DIR")
    p.add_argument("--expect", type=int, default=None, help="expected image count (default 631 for a real archive)")
    p.add_argument("--strict", action="store_true", help="fail on images without masks / masks without images")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="fold seed (default 0)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores, at most 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_import)

    p = dsub.add_parser("info", help="id, revision and counts per class × fold of a dataset")
    p.add_argument("dataset", nargs="?", default=SYNTH_DATASET,
                   help=f"{SYNTH_DATASET} (default), a dataset or archive folder, or a Hub id owner/name")
    p.add_argument("--revision", default=None, help="Hub revision (commit sha, tag or branch)")
    p.set_defaults(func=_info)
