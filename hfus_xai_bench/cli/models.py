"""`hfus-bench models` (the checkpoint registry; `models export`: a Hub model-repo folder) and
`hfus-bench train` (the study recipe)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..constants import ARCH_NAMES, NUM_FOLDS, SYNTH_DATASET
from .common import add_device, add_quiet


def _fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _entry_json(e: Any) -> dict[str, Any]:
    from ..models.checkpoints import is_available

    return {
        "name": e.name,
        "arch": e.arch,
        "dataset": e.dataset,
        "dataset_revision": e.dataset_revision,
        "fold": e.fold,
        "accuracy": e.accuracy,
        "f1": e.f1,
        "sha256": e.sha256,
        "dtype": e.dtype,
        "origin": e.origin,
        "published": e.published,
        "local": e.local_path() is not None,
        "available": is_available(e),
    }


def _entry_row(e: Any) -> list[str]:
    local = e.local_path()
    size = local.stat().st_size if local else e.meta.get("size_bytes")
    return [
        e.name,
        e.arch,
        e.dataset,
        str(e.fold),
        _fmt_pct(e.accuracy),
        _fmt_pct(e.f1),
        "-" if size is None else f"{size / 1e6:.1f} MB",
        e.dtype,
        e.origin if e.origin != "package" else f"registry ({e.published})",
        "yes" if local else "no",
        e.sha256[:12],
    ]


_HEADERS = ["name", "arch", "dataset", "fold", "acc %", "F1 %", "size", "dtype", "source", "local", "sha256"]


def _reference_lines() -> list[str]:
    """The reference set (every architecture × fold of the default track): how many are here, and how to
    get or make each missing one."""
    from ..data.dataset import synth_revision
    from ..models.reference import missing_reference, reference_set

    slots = reference_set()
    here = sum(s.here for s in slots)
    head = (
        f"reference checkpoints ({SYNTH_DATASET} {synth_revision()}, {len(ARCH_NAMES)} architectures × "
        f"{NUM_FOLDS} folds, PROTOCOL §2): {here} of {len(slots)} here"
    )
    missing = [f"  {line}" for line in missing_reference(slots)]
    if missing:
        missing.append(
            "  (a stopped `hfus-bench train` goes on from its last saved epoch, keeping the checkpoints it "
            "finished: the same command with --resume)"
        )
    return [head, *missing]


def _cmd_models(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..models.checkpoints import list_checkpoints

    entries = list_checkpoints(include_cache=not args.registry_only)
    if args.json:
        print(json.dumps([_entry_json(e) for e in entries], indent=2))
        return 0
    if entries:
        print(tabulate([_entry_row(e) for e in entries], headers=_HEADERS, disable_numparse=True))
        print()
    else:
        print("no checkpoints registered or cached")
    print("\n".join(_reference_lines()))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ..config import parse_list
    from ..constants import arch_name
    from ..errors import HfusError
    from ..models.training_run import train

    archs = [arch_name(a) for a in parse_list(args.models, ARCH_NAMES)]
    try:
        folds = [int(f) for f in parse_list(args.folds, range(NUM_FOLDS))]
    except ValueError as err:
        raise HfusError(
            f"--folds must be fold numbers 0..{NUM_FOLDS - 1} or 'all', got {args.folds!r}"
        ) from err
    if not archs or not folds:
        raise HfusError("nothing to train: give --models and --folds")
    for arch in archs:
        for fold in folds:
            card = train(
                arch,
                dataset=args.dataset,
                fold=fold,
                epochs=args.epochs,
                init=args.init,
                device=args.device,
                out_dir=args.out,
                seed=args.seed,
                revision=args.revision,
                dtype=args.dtype,
                lr=args.lr,
                momentum=args.momentum,
                step_size=args.step_size,
                gamma=args.gamma,
                batch_size=args.batch_size,
                progress=not args.quiet,
                command=args.command_line,
                resume=args.resume,
            )
            _print_trained(card)
    return 0


def _print_trained(card: Path) -> None:
    """The lines `hfus-bench train` prints for one trained checkpoint (from its card)."""
    from ..jsonio import load_json

    meta = load_json(card, "model card")
    test = meta["metrics"]["test"]
    print(
        f"{meta['arch']} test fold {meta['fold']}: accuracy {100 * test['accuracy']:.2f} %, "
        "weighted P/R/F1 "
        f"{100 * test['precision']:.2f} / {100 * test['recall']:.2f} / {100 * test['f1']:.2f} % "
        f"(best epoch {meta['best_epoch']}/{meta['epochs']})"
    )
    flips = meta.get("counterfactual")
    if flips:
        flipped = sum(c["flipped"] for c in flips["per_class"].values())
        print(f"twins of correctly classified AD/PS/ST test images predicted CG: {flipped}/{flips['n']}")
    print(f"wrote {card.with_suffix('.safetensors')} (sha256 {meta['sha256']}) and {card}")


def _cmd_export(args: argparse.Namespace) -> int:
    from ..config import parse_list
    from ..constants import arch_name
    from ..models.checkpoints import list_checkpoints
    from ..models.export import export_checkpoints

    archs = {arch_name(a) for a in parse_list(args.models, ARCH_NAMES)}
    folds = {int(f) for f in parse_list(args.folds, range(NUM_FOLDS))}
    chosen = [
        e
        for e in list_checkpoints(include_cache=True)
        if e.arch in archs
        and e.fold in folds
        and (args.dataset is None or e.dataset == args.dataset)
        and e.local_path() is not None
    ]
    out = export_checkpoints(chosen, args.out)
    for e in chosen:
        print(
            f"exported {e.name} ({e.arch}, fold {e.fold}, {e.dataset}@{e.dataset_revision}, "
            f"sha256 {e.sha256[:12]})"
        )
    print(
        f"wrote {out} (README.md model card + {len(chosen)} safetensors + cards); publish with "
        f"`hf upload OWNER/REPO {out} --repo-type model`, then register the Hub entry with the commit sha "
        "it gets"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``models`` (with ``models export``) and ``train``."""
    from ..models.recipe import DEFAULT_EPOCHS, STUDY_RECIPE

    p = sub.add_parser("models", help="list registered and locally trained checkpoints")
    p.add_argument(
        "--registry-only", action="store_true", help="hide checkpoints trained into the user cache"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_models)
    msub = p.add_subparsers(dest="models_command", metavar="MODELS_COMMAND")
    e = msub.add_parser(
        "export", help="write checkpoints as a Hugging Face model-repo folder (for `hf upload`)"
    )
    e.add_argument("out", metavar="DIR", help="output folder")
    e.add_argument(
        "--models", default="all", metavar="ARCHS", help="comma-separated architectures or 'all' (default)"
    )
    e.add_argument("--folds", default="all", metavar="FOLDS", help="comma-separated folds or 'all' (default)")
    e.add_argument("--dataset", default=None, help="only checkpoints trained on this dataset id")
    e.set_defaults(func=_cmd_export)

    t = sub.add_parser(
        "train",
        help="train reference models with the study recipe (PROTOCOL §2)",
        description="Train each architecture of --models on each fold K of --folds (test = K, "
        "val = K+1 mod 5, train = the rest) with the study recipe and write <name>.safetensors + "
        "<name>.json into the user cache (or --out).",
    )
    t.add_argument(
        "--models",
        required=True,
        metavar="ARCHS",
        help=f"comma-separated architectures or 'all' ({', '.join(ARCH_NAMES)})",
    )
    t.add_argument("--folds", required=True, metavar="FOLDS", help="comma-separated test folds 0-4 or 'all'")
    t.add_argument("--dataset", default=SYNTH_DATASET, help=f"dataset id (default {SYNTH_DATASET})")
    t.add_argument("--revision", default=None, help="dataset revision (default: the pinned one)")
    t.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"default {DEFAULT_EPOCHS} (study)")
    t.add_argument(
        "--init",
        default="imagenet",
        help="imagenet (torchvision weights from the local torch cache), scratch, or a .safetensors PATH",
    )
    add_device(t)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--out", default=None, help="output folder (default: the user cache, where load_model looks)"
    )
    t.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float16"),
        help="storage precision of the weights (float16 is upcast on load)",
    )
    t.add_argument("--lr", type=float, default=STUDY_RECIPE["lr"])
    t.add_argument("--momentum", type=float, default=STUDY_RECIPE["momentum"])
    t.add_argument("--step-size", type=int, default=STUDY_RECIPE["step_size"])
    t.add_argument("--gamma", type=float, default=STUDY_RECIPE["gamma"])
    t.add_argument("--batch-size", type=int, default=STUDY_RECIPE["batch_size"])
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from the state it keeps next to the checkpoint "
        "(<name>.resume.pt, written at most every 10 minutes; on the same machine the weights equal an "
        "uninterrupted run's) and keep the checkpoints the same command finished before",
    )
    add_quiet(t)
    t.set_defaults(func=_cmd_train)
