"""benchmarks/gpu_plan.py: the device session's evaluate runs, in the order the issue asks for (the default
table's missing rows first, then the other architectures cheapest first), without the rows entries hold."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_plan import ENTRIES, main, plan  # noqa: E402

from hfus_xai_bench.errors import HfusError  # noqa: E402


def test_plan_orders_default_arch_first_then_by_cost_and_skips_held_rows(tmp_path: Path, capsys) -> None:
    for name in ("gradcam.json", "ig.json", "occlusion45.json"):  # committed MobileNetV2 fold-0 entries
        shutil.copy(ENTRIES / name, tmp_path / name)
    methods = ["scorecam", "occlusion15", "deeplift", "random", "ig", "gradcam"]
    runs = plan(methods, ("mobilenet_v2", "googlenet"), (0,), tmp_path)
    # costs known from the entries first (gradcam 50.7 < ig 785.7 FE/img), then those without one in the
    # order given, the costliest study methods last; MobileNetV2's rows before GoogLeNet's
    assert runs == [
        ("random", "mobilenet_v2"),
        ("occlusion15", "mobilenet_v2"),
        ("scorecam", "mobilenet_v2"),
        ("gradcam", "googlenet"),
        ("ig", "googlenet"),
        ("random", "googlenet"),
        ("occlusion15", "googlenet"),
        ("scorecam", "googlenet"),
    ]
    err = capsys.readouterr().err
    assert "skip gradcam on mobilenet_v2: a leaderboard entry holds it" in err
    assert "skip ig on mobilenet_v2: a leaderboard entry holds it" in err
    assert "skip deeplift on mobilenet_v2: n/a" in err and "skip deeplift on googlenet: n/a" in err
    # another set of folds is another row: nothing is held
    assert ("gradcam", "mobilenet_v2") in plan(["gradcam"], ("mobilenet_v2",), (0, 1, 2, 3, 4), tmp_path)


def test_main_names_unknown_methods_and_architectures(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["gpu_plan.py", "--methods", "gradcam nope"])
    with pytest.raises(HfusError, match="unknown method: nope"):
        main()
    monkeypatch.setattr(sys, "argv", ["gpu_plan.py", "--methods", "gradcam", "--models", "vgg16"])
    with pytest.raises(HfusError, match="vgg16"):
        main()
