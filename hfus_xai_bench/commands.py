"""CLI sub-commands for the main job: `evaluate`, `check`, `methods`."""

from __future__ import annotations

import argparse
import shlex
import sys

from .constants import SYNTH_DATASET


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    command = "hfus-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["evaluate"] else None
    result = evaluate(
        args.method,
        dataset=args.dataset,
        revision=args.revision,
        models=args.models,
        folds=args.folds,
        limit=args.limit,
        target=args.target,
        sign=args.sign,
        confidence=args.confidence,
        device=args.device,
        batch_size=args.batch_size,
        seed=args.seed,
        out=args.out,
        save_maps_file=args.save_maps,
        figure=not args.no_figure,
        progress=not args.quiet,
        command=command,
    )
    print(result.summary_table())
    counts = result.record["counts"]["total"]
    if counts["n_failed"]:
        print(f"{counts['n_failed']} of {counts['n_images']} images failed: {counts['failures']}")
    print(f"result: {args.out}/{result.record['method']['name']}.json")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import check_method

    report = check_method(args.method, arch=args.arch, n_images=args.n, device=args.device)
    print(report.render())
    return 0 if report.ok else 1


def _methods(args: argparse.Namespace) -> int:
    from .explainers.loader import available_methods

    for name, where in available_methods().items():
        print(f"{name:14s} {where}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `evaluate`, `check` and `methods`."""
    ev = sub.add_parser("evaluate", help="score a method with the benchmark protocol")
    ev.add_argument("method", help="a method file (my_method.py), a built-in name (gradcam, ...) or an entry point")
    ev.add_argument("--dataset", default=SYNTH_DATASET, help="hfus-synth (default), a dataset folder, an archive, or a Hub id")
    ev.add_argument("--revision", default=None, help="dataset revision (Hub datasets)")
    ev.add_argument("--models", default="mobilenet_v2", help="comma-separated architectures or 'all' (default: mobilenet_v2)")
    ev.add_argument("--folds", default="0", help="comma-separated folds or 'all' (default: 0)")
    ev.add_argument("--limit", type=int, default=None, help="only the first N test images of each fold")
    ev.add_argument("--target", choices=("pred", "label"), default="pred", help="explain the predicted class or the label")
    ev.add_argument("--sign", choices=("pos", "abs", "neg"), default="pos", help="sign policy for signed attributions")
    ev.add_argument("--confidence", choices=("logit", "prob"), default="logit", help="confidence unit for DiC/IiC")
    ev.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ev.add_argument("--batch-size", type=int, default=None, help="images per explainer call (default 16 CPU / 64 GPU)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", default="results", help="folder for the result JSON, figure and maps (default: results)")
    ev.add_argument("--save-maps", action="store_true", help="also write the uint8 maps (npz) and record their sha256")
    ev.add_argument("--no-figure", action="store_true", help="skip the best/worst PNG figure")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=_evaluate)

    ck = sub.add_parser("check", help="validate a method file in seconds on phantom images")
    ck.add_argument("method")
    ck.add_argument("--arch", default="mobilenet_v2")
    ck.add_argument("--n", type=int, default=4, help="number of phantom images")
    ck.add_argument("--device", default="cpu")
    ck.set_defaults(func=_check)

    ls = sub.add_parser("methods", help="list the built-in and installed methods")
    ls.set_defaults(func=_methods)
