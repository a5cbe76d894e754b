"""`hfus-bench evaluate` (score a method; under torchrun or as one ``--shard I/N`` of a job array),
`hfus-bench merge` (shards → one record), `hfus-bench check` (a method's contract in seconds),
`hfus-bench methods`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import RANDOMISATION_COPIES
from .common import add_run_options, add_scope, run_config, warn

if TYPE_CHECKING:
    from ..config import RunConfig


def _evaluate(args: argparse.Namespace) -> int:
    from ..distributed import process_rank
    from ..errors import HfusError
    from ..runner import evaluate

    rank = process_rank()
    try:
        config = run_config(args, randomisations=args.randomisations)
        if args.shard is not None:
            return _evaluate_shard(args, config)
        tic = time.perf_counter()
        result = evaluate(
            args.method,
            config,
            out=args.out,
            save_maps=args.save_maps,
            figure=not args.no_figure,
            progress=not args.quiet,
            command=args.command_line,
        )
    except HfusError as err:
        if rank != 0:  # rank 0 prints the one message for the whole job
            return err.exit_code
        raise
    if rank != 0:
        return 0
    _print_result(result, Path(args.out) / (result.record["method"]["name"] + ".json"))
    if args.profile:
        _profile(result.record, time.perf_counter() - tic, Path(args.out))
    return 0


def _evaluate_shard(args: argparse.Namespace, config: RunConfig) -> int:
    """``evaluate --shard I/N``: one shard's record (never under torchrun)."""
    from ..distributed import Shard, detect
    from ..errors import HfusError
    from ..merge import evaluate_shard

    if detect() is not None:
        raise HfusError(
            "--shard splits a run into independent jobs; under torchrun the ranks already split it: "
            "use one or the other"
        )
    path = evaluate_shard(
        args.method,
        config,
        Shard.parse(args.shard),
        out=args.out,
        save_maps=args.save_maps,
        progress=not args.quiet,
        command=args.command_line,
    )
    print(
        f"shard record: {path} (merge all shards with "
        f"`hfus-bench merge {Path(args.out) / '*.shard-*.json'} --out DIR`)"
    )
    return 0


def _profile(record: dict, wall_seconds: float, out: Path) -> None:
    """--profile: the per-stage table against the bound (row times measured now), also as JSON."""
    from ..profiling import profile_record, profile_summary, record_row_times

    times = record_row_times(record)
    print(profile_record(record, times))
    path = out / (record["method"]["name"] + ".profile.json")
    path.write_text(json.dumps(profile_summary(record, times, wall_seconds), indent=1) + "\n")
    print(f"profile: {path} (wall {wall_seconds:.1f} s)")


def _print_result(result, path: Path) -> None:  # noqa: ANN001
    print(result.summary_table())
    counts = result.record["counts"]["total"]
    if counts["n_failed"]:
        warn(f"{counts['n_failed']} of {counts['n_images']} images failed: {counts['failures']}")
    if counts.get("randomised_failed"):
        warn(
            f"a randomised copy's map failed for {counts['randomised_failed']} (image, copy) pair(s): "
            f"{counts['randomised_failures']} (counted apart, PROTOCOL §7.1.1)"
        )
    print(f"result: {path}")


def _merge(args: argparse.Namespace) -> int:
    from ..combine import combine_records, is_result_record
    from ..jsonio import load_json
    from ..merge import merge_shards

    if is_result_record(load_json(args.shards[0], "record")):
        result = combine_records(args.shards, out=args.out, command=args.command_line)
    else:
        result = merge_shards(args.shards, out=args.out, figure=not args.no_figure, command=args.command_line)
    _print_result(result, Path(args.out) / (result.record["method"]["name"] + ".json"))
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
    """Add ``evaluate``, ``merge``, ``check`` and ``methods``."""
    ev = sub.add_parser("evaluate", help="score a method with the benchmark protocol")
    ev.add_argument(
        "method", help="a method file (my_method.py), a built-in name (gradcam, ...) or an entry point"
    )
    add_run_options(ev)
    ev.add_argument(
        "--out", default="results", help="folder for the result JSON, figure and maps (default: results)"
    )
    ev.add_argument(
        "--save-maps", action="store_true", help="also write the uint8 maps (npz) and record their sha256"
    )
    ev.add_argument("--no-figure", action="store_true", help="skip the best/worst PNG figure")
    ev.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="run only job I of N (0-based) of a job array and write a shard record; "
        "`hfus-bench merge` turns the N shards into the record of one run",
    )
    ev.add_argument(
        "--randomisations",
        type=int,
        default=RANDOMISATION_COPIES,
        metavar="K",
        help=f"randomised copies of the model (PROTOCOL §7.1.1; default {RANDOMISATION_COPIES}, "
        "the only K ranked)",
    )
    ev.add_argument(
        "--profile",
        action="store_true",
        help="after the run, print per stage its seconds, counted passes and their bound from row times "
        "measured here; also written to <out>/<method>.profile.json with the run's wall time",
    )
    ev.set_defaults(func=_evaluate)

    mg = sub.add_parser(
        "merge",
        help="merge the shard records of `evaluate --shard I/N` jobs, or the result records of disjoint "
        "folds or architectures of one configuration, into one result record",
    )
    mg.add_argument(
        "shards",
        nargs="+",
        metavar="records",
        help="the N shard records (<method>.shard-I-of-N.json), or result records (<method>.json) whose "
        "(architecture, fold) pairs together form models × folds",
    )
    mg.add_argument(
        "--out", default="results", help="folder for the result JSON, figure and maps (default: results)"
    )
    mg.add_argument(
        "--no-figure", action="store_true", help="skip the best/worst PNG figure (combined records draw none)"
    )
    mg.set_defaults(func=_merge)

    ck = sub.add_parser("check", help="validate a method file in seconds on phantom images")
    ck.add_argument("method", help="a method file, a built-in name or an entry point")
    add_scope(
        ck,
        limit="phantom images per architecture (synthetic: no dataset needed)",
        default=4,
        folds=None,
        quiet=False,
    )
    ck.set_defaults(func=_check)

    ls = sub.add_parser("methods", help="list the built-in and installed methods")
    ls.set_defaults(func=_methods)
