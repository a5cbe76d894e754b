"""`hfus-bench`: the command line. Each area registers its sub-commands from its own ``commands`` module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .constants import BENCHMARK_VERSION
from .errors import HfusError

#: Modules that define ``register(subparsers)``; each sub-command sets ``func(args) -> int | None``.
COMMAND_MODULES = (
    "hfus_xai_bench.data.commands",
    "hfus_xai_bench.models.commands",
    "hfus_xai_bench.commands",
    "hfus_xai_bench.leaderboard",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfus-bench",
        description="Benchmark saliency methods on CNNs for high-frequency ultrasound skin images.",
    )
    parser.add_argument("--version", action="version", version=f"hfus-xai-bench {BENCHMARK_VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HfusError as err:
        print(f"hfus-bench: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("hfus-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
