"""`hfus-bench evaluate` (score a method), `hfus-bench check` (a method's contract in seconds), `hfus-bench methods`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_device, add_limit, add_models_folds, add_run_options, run_config, warn


def _evaluate(args: argparse.Namespace) -> int:
    from ..runner import evaluate

    result = evaluate(args.method, run_config(args), out=args.out, save_maps=args.save_maps,
                      figure=not args.no_figure, progress=not args.quiet, command=args.command_line)
    print(result.summary_table())
    counts = result.record["counts"]["total"]
    if counts["n_failed"]:
        warn(f"{counts['n_failed']} of {counts['n_images']} images failed: {counts['failures']}")
    print(f"result: {Path(args.out) / (result.record['method']['name'] + '.json')}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..check import check_method
    from ..config import parse_list
    from ..constants import ARCH_NAMES

    ok = True
    for arch in parse_list(args.models, ARCH_NAMES):
        report = check_method(args.method, arch=arch, n_images=args.limit, device=args.device)
        print(report.render())
        ok = ok and report.ok
    return 0 if ok else 1


def _methods(args: argparse.Namespace) -> int:
    from ..explainers.loader import available_methods

    for name, where in available_methods().items():
        print(f"{name:14s} {where}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate``, ``check`` and ``methods``."""
    ev = sub.add_parser("evaluate", help="score a method with the benchmark protocol")
    ev.add_argument("method", help="a method file (my_method.py), a built-in name (gradcam, ...) or an entry point")
    add_run_options(ev)
    ev.add_argument("--out", default="results", help="folder for the result JSON, figure and maps (default: results)")
    ev.add_argument("--save-maps", action="store_true", help="also write the uint8 maps (npz) and record their sha256")
    ev.add_argument("--no-figure", action="store_true", help="skip the best/worst PNG figure")
    ev.set_defaults(func=_evaluate)

    ck = sub.add_parser("check", help="validate a method file in seconds on phantom images")
    ck.add_argument("method", help="a method file, a built-in name or an entry point")
    add_models_folds(ck, folds=None)
    add_limit(ck, what="phantom images per architecture (synthetic: no dataset needed)", default=4)
    add_device(ck)
    ck.set_defaults(func=_check)

    ls = sub.add_parser("methods", help="list the built-in and installed methods")
    ls.set_defaults(func=_methods)
