"""benchmarks/bench_methods.py --markdown: the device session's per-architecture speed files as the one table
issue 20 asks for (library, ours and bound seconds per image, ratio, speed-up, map agreement)."""

from __future__ import annotations

import pytest
from bench_methods import markdown_table


def _record(arch: str, rows: list[tuple], device: str = "NVIDIA H100 80GB HBM3") -> dict:
    keys = ("method", "library_s", "ours_s", "bound_s", "min_r")
    return {
        "device": device,
        "torch": "2.11.0+cu128",
        "precision": "fp32",
        "commit": "abc1234",
        "date": "2026-12-06",
        "n": 8,
        "warmup": 1,
        "rows": [{"arch": arch, **dict(zip(keys, row, strict=True))} for row in rows],
    }


def test_markdown_table_merges_architectures_method_by_method() -> None:
    mob = _record("mobilenet_v2", [("scorecam", 0.5, 0.1, 0.08, 0.99998), ("ig", None, 0.02, 0.02, None)])
    res = _record("resnet101", [("scorecam", 2.0, 0.4, 0.32, 1.0)])
    lines = markdown_table([mob, res]).splitlines()
    assert (
        lines[0]
        == "NVIDIA H100 80GB HBM3, fp32, torch 2.11.0+cu128, commit abc1234, 2026-12-06; 8 images per call, "
        "warm-up 1"
    )
    assert lines[2].startswith("| method | arch | library s/img | ours s/img | bound s/img | ours / bound |")
    assert lines[4:] == [
        "| scorecam | mobilenet_v2 | 0.5 | 0.1 | 0.08 | 1.25 | 5.0x | 0.99998 |",
        "| scorecam | resnet101 | 2 | 0.4 | 0.32 | 1.25 | 5.0x | 1.00000 |",
        "| ig | mobilenet_v2 | skipped | 0.02 | 0.02 | 1.00 | - | n/a |",
    ]


def test_markdown_table_refuses_files_of_two_devices() -> None:
    with pytest.raises(SystemExit, match="one device, precision, commit and torch"):
        markdown_table([_record("mobilenet_v2", []), _record("googlenet", [], device="CPU")])
