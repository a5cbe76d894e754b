"""benchmarks/gpu_plan.py: the device session's evaluate runs, in the order the issue asks for (the default
table's missing rows first, then the other architectures cheapest first), without the rows entries or an
earlier call's records hold."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from gpu_plan import ENTRIES, PRICED_AS, default_table_cost, main, plan
from leaderboard_fixtures import s7_record

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.registry import BUILTINS
from hfus_xai_bench.leaderboard import load_entries


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


def test_another_architecture_s_entry_leaves_the_default_table_s_cost(tmp_path: Path) -> None:
    """GoogLeNet's gradcam entry (read after MobileNetV2's) has no MobileNetV2 cost: gradcam stays cheap."""
    for name in ("gradcam.json", "gradcam.models-googlenet.json", "ig.json"):  # committed entries
        shutil.copy(ENTRIES / name, tmp_path / name)
    runs = plan(["ig", "gradcam"], ("resnet101",), (0,), tmp_path)
    assert runs == [("gradcam", "resnet101"), ("ig", "resnet101")]


def test_other_architectures_cheap_runs_come_one_architecture_after_the_other(tmp_path: Path) -> None:
    """ResNet101's cheap rows all before DenseNet201's (whose checkpoint may still be training), then the
    costly rows of both, cheapest first; Guided Backprop (n/a on MobileNetV2) is priced as Saliency, whose
    passes it makes; a method without a default-table cost is not taken for cheap."""
    for name in (
        "gradcam.json",
        "saliency.json",
        "ig.json",
        "occlusion45.json",
    ):  # MobileNetV2 fold-0 entries
        shutil.copy(ENTRIES / name, tmp_path / name)
    runs = plan(
        ["occlusion45", "ig", "smoothgrad", "guidedbackprop", "saliency", "gradcam"],
        ("resnet101", "densenet201"),
        (0,),
        tmp_path,
    )
    assert runs == [
        ("guidedbackprop", "resnet101"),  # 50.7 FE/img each: in the order given
        ("saliency", "resnet101"),
        ("gradcam", "resnet101"),
        ("guidedbackprop", "densenet201"),
        ("saliency", "densenet201"),
        ("gradcam", "densenet201"),
        ("ig", "resnet101"),
        ("ig", "densenet201"),
        ("occlusion45", "resnet101"),
        ("occlusion45", "densenet201"),
        ("smoothgrad", "resnet101"),  # no cost known (its entry is not in this folder): last
        ("smoothgrad", "densenet201"),
    ]


def test_main_names_unknown_methods_and_architectures(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["gpu_plan.py", "--methods", "gradcam nope"])
    with pytest.raises(HfusError, match="unknown method: nope"):
        main()
    monkeypatch.setattr(sys, "argv", ["gpu_plan.py", "--methods", "gradcam", "--models", "vgg16"])
    with pytest.raises(HfusError, match="vgg16"):
        main()


def test_plan_leaves_out_rows_whose_records_an_earlier_call_made(tmp_path: Path, capsys) -> None:
    entries, records = tmp_path / "entries", tmp_path / "lb"
    entries.mkdir()
    records.mkdir()
    record = s7_record("gradcam", 0.5, 1, archs=("googlenet",), folds=(0,))
    (records / "gradcam.googlenet.json").write_text(json.dumps(record))
    runs = plan(["gradcam", "random"], ("mobilenet_v2", "googlenet"), (0,), entries, records)
    assert runs == [("gradcam", "mobilenet_v2"), ("random", "mobilenet_v2"), ("random", "googlenet")]
    err = capsys.readouterr().err
    assert "skip gradcam on googlenet: the record gradcam.googlenet.json of an earlier call holds it" in err
    # a record of other folds holds nothing, and a folder not made yet (a first call) holds nothing
    assert plan(["gradcam"], ("googlenet",), (0, 1), entries, records) == [("gradcam", "googlenet")]
    assert plan(["gradcam"], ("googlenet",), (0,), entries, tmp_path / "none") == [("gradcam", "googlenet")]


def test_plan_refuses_a_file_that_is_no_result_record(tmp_path: Path) -> None:
    (tmp_path / "lb").mkdir()
    (tmp_path / "lb" / "gradcam.googlenet.json").write_text('{"method": "gradcam"}')
    with pytest.raises(HfusError):
        plan(["gradcam"], ("googlenet",), (0,), tmp_path, tmp_path / "lb")


def test_priced_as_names_built_ins_and_the_committed_table_prices_them() -> None:
    """Every built-in gets a cost from the committed entries (DeepLift and Guided Backprop through
    PRICED_AS), so none of the cheap ones is left for after Score-CAM."""
    assert set(PRICED_AS) | set(PRICED_AS.values()) <= set(BUILTINS)
    assert set(BUILTINS) <= set(default_table_cost(load_entries(ENTRIES)))
