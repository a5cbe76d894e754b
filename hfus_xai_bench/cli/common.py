"""What every `hfus-bench` command shares: the run flags, help on a missing sub-command, warnings, the
recorded command.

Flags mean the same everywhere: ``--models`` / ``--folds`` (comma lists or ``all``), ``--limit N``
(only the first N images per architecture and fold), ``--device`` (``auto`` = CUDA when available,
else CPU), ``--quiet`` (no progress bars).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..config import PRECISIONS
from ..constants import SYNTH_DATASET

if TYPE_CHECKING:
    from ..config import RunConfig

PROG = "hfus-bench"


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def command_line(argv: Sequence[str]) -> str:
    """The command as a user would type it: ``hfus-bench`` + the argv that ``main`` received, shell-quoted."""
    return " ".join([PROG, *(shlex.quote(str(a)) for a in argv)])


def group(sub: argparse._SubParsersAction, name: str, help: str, dest: str) -> argparse._SubParsersAction:
    """A command with sub-commands; without one it prints its help on stderr and exits 2 (like
    ``hfus-bench``)."""
    parser = sub.add_parser(name, help=help, description=help)
    actions = parser.add_subparsers(dest=dest, metavar="COMMAND")

    def missing(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=missing)
    return actions


def add_models_folds(
    p: argparse.ArgumentParser, *, models: str = "mobilenet_v2", folds: str | None = "0"
) -> None:
    p.add_argument(
        "--models",
        default=models,
        metavar="ARCHS",
        help=f"comma-separated architectures or 'all' (default: {models})",
    )
    if folds is not None:
        p.add_argument(
            "--folds",
            default=folds,
            metavar="FOLDS",
            help=f"comma-separated folds 0-4 or 'all' (default: {folds})",
        )


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when available, else CPU), cpu or cuda[:N] (default: auto)",
    )


def add_limit(
    p: argparse.ArgumentParser,
    what: str = "test images per architecture and fold",
    default: int | None = None,
) -> None:
    """``--limit N``: everywhere "only the first N images" (of each architecture and fold where there are
    folds)."""
    shown = "all" if default is None else str(default)
    p.add_argument(
        "--limit", type=int, default=default, metavar="N", help=f"only the first N {what} (default: {shown})"
    )


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        default=SYNTH_DATASET,
        help=f"{SYNTH_DATASET} (default), a dataset folder, an archive folder, or a Hub id owner/name",
    )
    p.add_argument(
        "--revision", default=None, help="dataset revision (Hub datasets: commit sha, tag or branch)"
    )


def add_scope(
    p: argparse.ArgumentParser,
    *,
    limit: str = "test images per architecture and fold",
    default: int | None = None,
    models: bool = True,
    folds: str | None = "0",
    quiet: bool = True,
) -> None:
    """What a command runs on, where and how loudly: ``--models`` / ``--folds``, ``--limit N``, ``--device``,
    ``--quiet`` (evaluate, submit, verify, check, audit).

    Args:
        p: the command's parser.
        limit: what ``--limit N`` counts (its help reads "only the first N <limit>").
        default: ``--limit``'s default (None: all).
        models: add ``--models`` (and ``--folds`` unless ``folds`` is None, else its default).
        folds: ``--folds``' default; None: no ``--folds``.
        quiet: add ``--quiet``.
    """
    if models:
        add_models_folds(p, folds=folds)
    add_limit(p, what=limit, default=default)
    add_device(p)
    if quiet:
        add_quiet(p)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The flags of a :class:`~hfus_xai_bench.config.RunConfig` (evaluate, submit)."""
    add_dataset(p)
    add_scope(p)
    p.add_argument(
        "--target", choices=("pred", "label"), default="pred", help="explain the predicted class or the label"
    )
    p.add_argument(
        "--sign", choices=("pos", "abs", "neg"), default="pos", help="sign policy for signed attributions"
    )
    p.add_argument(
        "--confidence", choices=("logit", "prob"), default="logit", help="confidence unit for DiC/IiC"
    )
    p.add_argument(
        "--batch-size", type=int, default=None, help="images per explainer call (default 16 CPU / 64 GPU)"
    )
    p.add_argument("--seed", type=int, default=0, help="the run seed (default 0)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32 (default; the leaderboard's), or bf16: model passes under autocast, maps and metrics in "
        "fp32 (for GPU speed; not for the leaderboard or submissions)",
    )


def run_config(args: argparse.Namespace, **changes: Any) -> RunConfig:
    """The :class:`RunConfig` of the flags added by :func:`add_run_options`."""
    from ..config import RunConfig

    return RunConfig(
        models=args.models,
        folds=args.folds,
        limit=args.limit,
        target=args.target,
        sign=args.sign,
        confidence=args.confidence,
        device=args.device,
        batch_size=args.batch_size,
        seed=args.seed,
        precision=args.precision,
        dataset=args.dataset,
        revision=args.revision,
        **changes,
    )
