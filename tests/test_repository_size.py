"""The repository's tracked files travel to the device machine with every call of the GPU session
(benchmarks/gpu_session.sh), together with the wheels it carries: 64 MiB in all (the device tool's limit).
They must leave room for the wheels and for what a device session adds (entries, cards), so that a large file
(a checkpoint's weights: GoogLeNet 10.8 MiB in float16) goes to the Hub or is registered by sha256 only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
DEVICE_TREE_LIMIT = 64 * MIB
#: benchmarks/fetch_gpu_wheels.sh's wheels (2.2 MB on 2026-12-06), with room to grow
WHEELS_ALLOWANCE = 4 * MIB
#: what one device session adds before the next call (leaderboard entries of ~50 KB per fold-0 row, cards)
SESSION_ALLOWANCE = 4 * MIB


def _tracked_bytes() -> int:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = [ROOT / name.decode() for name in listed.split(b"\0") if name]
    return sum(p.stat().st_size for p in paths if p.is_file())


def test_tracked_files_leave_room_for_the_device_session() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    budget = DEVICE_TREE_LIMIT - WHEELS_ALLOWANCE - SESSION_ALLOWANCE
    total = _tracked_bytes()
    assert total > 10 * MIB  # the checkout's weights and entries are counted
    assert total <= budget, (
        f"tracked files take {total / MIB:.1f} MiB, over the {budget / MIB:.0f} MiB that leave room for the "
        "device session's wheels and returns: publish large weights on the Hub or register them by sha256"
    )
