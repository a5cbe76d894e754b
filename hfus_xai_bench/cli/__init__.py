"""`hfus-bench`: every command of the package. argv in, an exit code out; the only place that parses or
prints.

One module per area registers its sub-commands (``register(subparsers)``; each sets
``func(args) -> int``): :mod:`.data` (``data synth|import|info``), :mod:`.models` (``models [export]``,
``train``), :mod:`.evaluate` (``evaluate``, ``merge``, ``check``, ``methods``), :mod:`.leaderboard`
(``leaderboard render|add|export``), :mod:`.compare` (``compare``), :mod:`.submission` (``submit``,
``verify``), :mod:`.audit` (``audit``), :mod:`.cite` (``cite``).
Library modules are imported inside the command functions, so ``--help`` stays fast.

Exit codes: 0 success; 1 a check failed (``check``, ``verify``, ``leaderboard render --check``, ``audit``
flags a method);
2 a usage or user error (one line on stderr, no traceback; a missing sub-command prints the help
on stderr); 130 interrupted; 141 the output pipe was closed (``| head``), quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Sequence

from ..constants import BENCHMARK_VERSION
from ..errors import HfusError
from . import audit, cite, compare, data, evaluate, leaderboard, models, submission
from .common import PROG, command_line, warn

COMMAND_MODULES = (data, models, evaluate, leaderboard, compare, submission, audit, cite)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Benchmark saliency methods on CNNs for high-frequency ultrasound skin images.",
    )
    parser.add_argument("--version", action="version", version=f"hfus-xai-bench {BENCHMARK_VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    warn(str(message))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` defaults to ``sys.argv[1:]`` and is what the result records as its
    command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    args.command_line = command_line(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except HfusError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other Unix tools do
        with contextlib.suppress(OSError, ValueError):  # no flush of the closed pipe at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
