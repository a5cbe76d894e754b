"""`hfus-bench submit` (prepare submissions/<name>/) and `hfus-bench verify` (re-score a submission
folder)."""

from __future__ import annotations

import argparse

from ..constants import RERUN_DEFAULT_LIMIT
from .common import add_run_options, add_scope, run_config


def _submit(args: argparse.Namespace) -> int:
    from ..submission import CHECKLIST, submit

    folder, result = submit(
        args.method, run_config(args), out=args.out, progress=not args.quiet, command=args.command_line
    )
    print(result.summary_table())
    print(CHECKLIST.format(readme=folder / "README.md", folder=folder))
    print(f"submission folder: {folder}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..verify import verify_submission

    report = verify_submission(
        args.folder,
        check_model=not args.no_model,
        limit=args.limit,
        rerun=args.rerun,
        device=args.device,
        progress=not args.quiet,
    )
    print(report.render())
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``submit`` and ``verify``."""
    sm = sub.add_parser(
        "submit", help="prepare submissions/<name>/ for a method file (check + evaluate + maps + README)"
    )
    sm.add_argument("method", help="your method file (my_method.py)")
    sm.add_argument("--out", default=None, help="submission folder (default: submissions/<method name>)")
    add_run_options(sm)
    sm.set_defaults(func=_submit)

    vf = sub.add_parser(
        "verify", help="re-score a submission folder's maps and compare every number and hash"
    )
    vf.add_argument("folder", help="submissions/<method>")
    add_scope(
        vf,
        limit="evaluated images per architecture and fold through the model (model-based metrics; "
        f"--rerun: re-run images, default {RERUN_DEFAULT_LIMIT})",
        models=False,
    )
    vf.add_argument(
        "--rerun", action="store_true", help="also re-run the method (on --limit images) and compare the maps"
    )
    vf.add_argument(
        "--no-model",
        action="store_true",
        help="skip the checkpoint checks (predictions, model-based metrics)",
    )
    vf.set_defaults(func=_verify)
