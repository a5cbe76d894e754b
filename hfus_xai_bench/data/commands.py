"""CLI sub-commands of this area (registered by ``hfus_xai_bench.cli``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands to ``hfus-bench``."""
