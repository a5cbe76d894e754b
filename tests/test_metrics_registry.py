"""metrics/registry.py: the entries, their checks, and a toy metric added in one place showing up everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import FAKE_DATASET, make_fakes, patch_fakes

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.leaderboard import entry_from_result, render_html, render_markdown
from hfus_xai_bench.metrics import registry
from hfus_xai_bench.metrics.registry import METRICS, Metric, Output, Value, check_metric, get_metric, resolve
from hfus_xai_bench.results import Result, validate
from hfus_xai_bench.submission import submit, verify_submission


def test_builtin_entries() -> None:
    assert list(METRICS) == ["hit_rate@1", "hit_rate_binary@1", "slm_coverage@1", "mask_iou@1", "confidence@1"]
    cov = METRICS["slm_coverage@1"]
    assert [(o.name, o.direction) for o in cov.outputs] == [("top", "higher"), ("bg", "lower")]
    assert [cov.key(o) for o in cov.outputs] == ["slm_coverage@1/top", "slm_coverage@1/bg"]
    conf = METRICS["confidence@1"]
    assert conf.needs == "model" and [(o.name, o.direction) for o in conf.outputs] == [("dic", "higher"), ("iic", "higher")]
    assert METRICS["hit_rate@1"].primary.range == (-1.0, 3.0) and METRICS["hit_rate@1"].key(METRICS["hit_rate@1"].primary) == "hit_rate@1"
    assert get_metric("hit_rate") is METRICS["hit_rate@1"]
    assert [key for key, _, _ in registry.columns()] == [
        "hit_rate@1", "hit_rate_binary@1", "slm_coverage@1/top", "slm_coverage@1/bg", "confidence@1/dic", "confidence@1/iic"]
    for m in METRICS.values():
        assert m.id == f"{m.name}@{m.version}" and len(m.description) > 80
        assert callable(resolve(m.function))
        for out in m.outputs:
            assert out.definition and out.direction in ("higher", "lower", "none")
            assert isinstance(out.per_image, str) and (out.per_image in {v.name for v in m.values} or callable(resolve(out.per_image)))
        for table in m.tables:
            assert callable(resolve(table.summarise)) and table.schema["type"] == "object"
    with pytest.raises(HfusError):
        get_metric("pointing_game@1")


def _toy(values: tuple[str, ...] = ("mean_map",), id: str = "mean_map@1") -> Metric:
    return Metric(
        id=id, category="sanity", needs="maps",
        function=lambda inputs, config: {"mean_map": inputs.m255.reshape(len(inputs), -1).mean(1) / 255.0},
        values=tuple(Value(v) for v in values),
        outputs=(Output("", "higher", (0.0, 1.0), "mean of m255/255 over the image", "mean_map", label="mean map"),),
        description="A toy metric: the mean map value (a test of the registry, not a protocol metric).",
    )


def test_entries_are_checked() -> None:
    with pytest.raises(HfusError, match="name@version"):
        check_metric(_toy(id="mean_map"))
    with pytest.raises(HfusError, match=r"value name\(s\) \['hr1'\] already used"):
        check_metric(Metric(**{**_toy().__dict__, "values": (Value("hr1"),)}), METRICS.values())
    with pytest.raises(HfusError, match="already registered"):
        registry.register(METRICS["hit_rate@1"])
    with pytest.raises(HfusError, match=r"value name\(s\) \['label'\]"):
        check_metric(Metric(**{**_toy().__dict__, "values": (Value("label"),)}))


def test_a_toy_metric_in_one_place_reaches_record_table_and_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Register one entry: the record, the schema, the rendered tables and verify all pick it up."""
    patch_fakes(monkeypatch, make_fakes())
    monkeypatch.setitem(METRICS, "mean_map@1", _toy())
    method = tmp_path / "greymap.py"
    method.write_text("def explain(model, images, targets, *, context):\n    return images.mean(1) + 1e-3\n")
    folder, result = submit(method, out=tmp_path / "sub", dataset=FAKE_DATASET, folds="0", device="cpu", progress=False)
    rec = result.record
    validate(rec)  # the schema's metrics section comes from the registry
    assert rec["metrics"]["mean_map@1"]["mobilenet_v2"]["mean"] == pytest.approx(
        np.mean([row["mean_map"] for row in rec["per_image"]]))
    md = render_markdown([entry_from_result(rec)])
    header = next(line for line in md.splitlines() if line.startswith("| rank"))
    assert header.split(" | ")[2:9] == ["HR1 ↑", "HR2 ↑", "cov top ↑", "cov bg ↓", "DiC ↑", "IiC % ↑", "mean map ↑"]
    assert "mean map ↑" in render_html([entry_from_result(rec)])
    assert "mean map" in Result(rec).summary_table()

    report = verify_submission(folder, check_model=False, progress=False)
    assert report.ok, report.render()
    record = json.loads((folder / "result.json").read_text())
    record["per_image"][1]["mean_map"] += 1e-3
    (folder / "result.json").write_text(json.dumps(record))
    failures = verify_submission(folder, check_model=False, progress=False).failures
    assert any("per_image[1]/mean_map" in f for f in failures), failures


def test_records_without_a_newer_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record made before an optional metric existed still verifies; the tables show n/a for it."""
    patch_fakes(monkeypatch, make_fakes())
    method = tmp_path / "greymap.py"
    method.write_text("def explain(model, images, targets, *, context):\n    return images.mean(1) + 1e-3\n")
    folder, result = submit(method, out=tmp_path / "sub", dataset=FAKE_DATASET, folds="0", device="cpu", progress=False)
    monkeypatch.setitem(METRICS, "mean_map@1", Metric(**{**_toy().__dict__, "required": False}))
    report = verify_submission(folder, check_model=False, progress=False)
    assert report.ok, report.render()
    assert any(name == "mean_map@1: not in the record" for name, _, _ in report.checks)
    row = next(line for line in render_markdown([entry_from_result(result.record)]).splitlines() if "greymap" in line)
    assert row.split(" | ")[8] == "n/a"
