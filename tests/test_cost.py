"""PROTOCOL §6's pass counts: merged shards add up to the single process's counts (fake dataset, TinyNet)."""

from __future__ import annotations

import pytest
from helpers import FAKE_DATASET, make_fakes, patch_fakes

from hfus_xai_bench.config import RunConfig
from hfus_xai_bench.distributed import Shard
from hfus_xai_bench.merge import evaluate_shard, merge_shards
from hfus_xai_bench.profiling import CALL_STAGES
from hfus_xai_bench.results import forward_equivalents
from hfus_xai_bench.runner import evaluate


@pytest.fixture
def fakes(monkeypatch):
    patch_fakes(monkeypatch, make_fakes())


def _rows(record: dict) -> dict:
    cost = record["cost"]["mobilenet_v2"]
    return {k: v for k, v in cost.items() if k.startswith(("forward_rows", "backward_rows"))}


def test_merged_shards_count_what_one_process_counts(fakes, tmp_path):
    """Two folds in batches of 2 (4 batches) split over 3 shards: every stage's rows equal the single run's,
    the build of the method and §3's repeat counted once per (arch, fold)."""
    config = RunConfig(dataset=FAKE_DATASET, folds=(0, 1), batch_size=2, device="cpu")
    single = evaluate("gradcam", config, progress=False, figure=False)
    paths = [
        evaluate_shard("gradcam", config, Shard(i, 3), out=tmp_path / "shards", progress=False)
        for i in range(3)
    ]
    merged = merge_shards(paths, out=tmp_path / "merged", figure=False)
    assert _rows(merged.record) == _rows(single.record)
    assert merged.record["per_image"] == single.record["per_image"]
    cost = single.record["cost"]["mobilenet_v2"]
    assert cost["backward_rows/repeat"] == 2 * 2  # one repeat of the first batch (2 images) per fold
    assert cost["fe_per_image"] == forward_equivalents(cost, 6)


def test_forward_equivalents_leave_out_the_repeat():
    cost = {"forward_rows": 100, "backward_rows": 10, "forward_rows/repeat": 4, "backward_rows/repeat": 2}
    assert forward_equivalents(cost, 8) == (96 + 2 * 8) / 8
    assert forward_equivalents({"seconds_per_image": 1.0}, 8) is None  # records made before §6's counts


def test_cli_profile_prints_the_stage_table(fakes, tmp_path, capsys):
    from hfus_xai_bench.cli import main

    argv = ["evaluate", "center", "--dataset", FAKE_DATASET, "--device", "cpu", "--randomisations", "1"]
    assert main([*argv, "--out", str(tmp_path), "--quiet", "--no-figure", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "all stages" in out and "bound s" in out and "FE/img" in out
    import json

    record = json.loads((tmp_path / "center.json").read_text())
    assert record["options"]["randomisations"] == 1
    assert record["cost"]["mobilenet_v2"]["forward_rows/randomisation"] == 0  # a map baseline makes no passes
    # the same numbers as JSON next to the record, with the run's wall time (bench_evaluate.py --profiles)
    profile = json.loads((tmp_path / "center.profile.json").read_text())
    assert profile["method"] == "center" and profile["precision"] == "fp32" and profile["wall_seconds"] > 0
    arch = profile["archs"]["mobilenet_v2"]
    total, cost, rt = arch["stages"][-1], record["cost"]["mobilenet_v2"], arch["row_times"]
    assert total["stage"] == "all stages" and total["forward_rows"] == cost["forward_rows"]
    kind = {True: "call", False: "score"}
    expected = sum(
        r["forward_rows"] * rt[f"forward_{kind[r['stage'] in CALL_STAGES]}"]
        + r["backward_rows"] * rt[f"backward_{kind[r['stage'] in CALL_STAGES]}"]
        for r in arch["stages"][:-1]
    )
    assert total["bound"] == pytest.approx(expected) and total["ratio"] == total["seconds"] / total["bound"]
