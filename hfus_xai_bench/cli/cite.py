"""`hfus-bench cite [RESULT.json]`: BibTeX for the benchmark, its data and the study, or for one exact
result (a result record or a leaderboard entry)."""

from __future__ import annotations

import argparse


def _cite(args: argparse.Namespace) -> int:
    from ..citation import cite, cite_result

    if args.result:
        from ..compare import load_record

        print(cite_result(load_record(args.result)), end="")
        return 0
    if args.benchmark_only:
        print(cite(dataset=False, study=False, paper=False), end="")
    else:
        print(cite(dataset=not args.no_dataset, study=not args.no_study, paper=not args.no_paper), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cite``."""
    ct = sub.add_parser(
        "cite", help="print BibTeX for the benchmark, the dataset and the study (or one result)"
    )
    ct.add_argument(
        "result",
        nargs="?",
        default=None,
        metavar="RESULT.json",
        help="a result record or leaderboard entry: cite exactly that result (versions, dataset hash, "
        "checkpoints, method)",
    )
    ct.add_argument("--benchmark-only", action="store_true", help="only the benchmark (with its version)")
    ct.add_argument("--no-dataset", action="store_true")
    ct.add_argument("--no-study", action="store_true")
    ct.add_argument("--no-paper", action="store_true")
    ct.set_defaults(func=_cite)
