"""`hfus-bench audit`: the private-seed audit of PROTOCOL §3 (does a method's score rest on public ground
truth?)."""

from __future__ import annotations

import argparse
import os

from .common import add_scope


def _seed(args: argparse.Namespace) -> int:
    """The private seed from ``--seed`` or the environment; a message never repeats the value."""
    from ..audit import SEED_ENV
    from ..errors import HfusError

    # taken out of the environment, so the audited methods (Python run in this process) do not find it there
    env = os.environ.pop(SEED_ENV, None)
    text = args.seed if args.seed is not None else env
    if text is None:
        raise HfusError(f"give the private seed with --seed S or the environment variable {SEED_ENV}")
    try:
        seed = int(str(text).strip())
    except ValueError:
        raise HfusError("the audit seed must be a non-negative integer; the value given is not") from None
    if seed < 0:
        raise HfusError("the audit seed must be a non-negative integer; the value given is not")
    return seed


def _audit(args: argparse.Namespace) -> int:
    from ..audit import audit
    from ..audit_report import format_report
    from ..config import RunConfig
    from ..errors import HfusError

    config = RunConfig(models=args.models, folds=args.folds)
    if len(config.models) != 1 or len(config.folds) != 1:
        raise HfusError("audit one architecture and one fold per call (--models A --folds K)")
    report = audit(
        args.methods,
        _seed(args),
        arch=config.models[0],
        fold=config.folds[0],
        limit=args.limit,
        device=args.device,
        progress=not args.quiet,
    )
    print(format_report(report))
    return report.exit_status


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``audit``."""
    p = sub.add_parser(
        "audit",
        help="score methods on a private build of the synthetic track and flag public advantages "
        "beyond the references' (PROTOCOL §3); exit status 1 when any method is flagged or not auditable",
    )
    p.add_argument(
        "methods",
        nargs="+",
        metavar="METHOD_OR_SUBMISSION",
        help="method files, built-in names, entry points or submission folders (the reference methods "
        "are added)",
    )
    p.add_argument(
        "--seed",
        default=None,
        metavar="S",
        help="the private seed (never printed or written; default: the environment variable HFUS_AUDIT_SEED)",
    )
    add_scope(p, limit="images of the public test split and of each of the five private partitions")
    p.set_defaults(func=_audit)
