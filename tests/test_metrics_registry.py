"""metrics/registry.py: the entries, their checks, and a toy metric added in one place showing up
everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import FAKE_DATASET, make_fakes, patch_fakes

from hfus_xai_bench.calls import stage_of
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.leaderboard import entry_from_result, render_html, render_markdown
from hfus_xai_bench.metrics import registry
from hfus_xai_bench.metrics.registry import METRICS, Metric, Output, Value, check_metric, get_metric, resolve
from hfus_xai_bench.results import Result, validate
from hfus_xai_bench.submission import submit
from hfus_xai_bench.verify import verify_submission


def test_builtin_entries() -> None:
    assert list(METRICS) == [
        "hit_rate@1",
        "hit_rate_binary@1",
        "slm_coverage@1",
        "mask_iou@1",
        "confidence@1",
        "randomisation@1",
        "road@1",
        "randomisation@2",
        "evidence@1",
        "class_sensitivity@1",
        "counterfactual@1",
    ]
    cov = METRICS["slm_coverage@1"]
    assert [(o.name, o.direction) for o in cov.outputs] == [("top", "higher"), ("bg", "lower")]
    assert [cov.key(o) for o in cov.outputs] == ["slm_coverage@1/top", "slm_coverage@1/bg"]
    conf = METRICS["confidence@1"]
    assert conf.needs == "model" and [(o.name, o.direction) for o in conf.outputs] == [
        ("dic", "higher"),
        ("iic", "higher"),
    ]
    assert (
        METRICS["hit_rate@1"].primary.range == (-1.0, 3.0)
        and METRICS["hit_rate@1"].key(METRICS["hit_rate@1"].primary) == "hit_rate@1"
    )
    assert get_metric("hit_rate") is METRICS["hit_rate@1"]
    assert [key for key, _, _ in registry.columns()] == [
        "hit_rate@1",
        "hit_rate_binary@1",
        "slm_coverage@1/top",
        "slm_coverage@1/bg",
        "confidence@1/dic",
        "confidence@1/iic",
        "randomisation@1/rho",
        "randomisation@1/cross_image",
        "road@1/morf",
        "road@1/lerf",
        "road@1/combined",
        "randomisation@2/rho",
        "randomisation@2/pearson",
        "randomisation@2/cross_image",
        "evidence@1/hit",
        "evidence@1/mass",
        "evidence@1/hit_gain",
        "evidence@1/mass_gain",
        "class_sensitivity@1/rho",
        "counterfactual@1/effect",
        "counterfactual@1/flip",
        "counterfactual@1/flip_hit",
        "counterfactual@1/flip_mass",
    ]
    for m in METRICS.values():
        assert m.id == f"{m.name}@{m.version}" and len(m.description) > 80
        assert callable(resolve(m.function))
        for out in m.outputs:
            assert out.definition and out.direction in ("higher", "lower", "none")
            assert isinstance(out.per_image, str) and (
                out.per_image in {v.name for v in m.values} or callable(resolve(out.per_image))
            )
        for table in m.tables:
            assert callable(resolve(table.summarise)) and table.schema["type"] == "object"
    with pytest.raises(HfusError):
        get_metric("pointing_game@1")


def test_section7_entries() -> None:
    """PROTOCOL §7.1 / §7.2: ids, categories, what they read, scope, record keys, directions, ranges,
    labels."""
    rand, road = METRICS["randomisation@1"], METRICS["road@1"]
    assert (rand.category, rand.needs, rand.scope) == ("sanity", "maps", "fold")
    assert (road.category, road.needs, road.scope) == ("faithfulness", "model", "image")
    fold_scope = {"randomisation@1", "randomisation@2"}
    assert all(m.scope == "image" for m in METRICS.values() if m.id not in fold_scope)
    assert rand.superseded_by == "randomisation@2" and rand not in registry.metrics()
    rand2 = METRICS["randomisation@2"]
    assert (rand2.scope, rand2.needs, rand2.empty_maps, rand2.extras) == (
        "fold",
        "maps",
        True,
        ("m255_randomised", "randomised_ok"),
    )
    assert [rand2.key(t) for t in rand2.tables] == [
        "randomisation@2/verdict",
        "randomisation@2/pairs",
        "randomisation@2/per_copy",
    ]
    assert [v.dims(copies=5) for v in rand2.values] == [(5,), (5,), (5,), ()]
    assert set(rand.extras) == {"m255_randomised", "randomised_ok"} and road.extras == ()
    assert [v.name for v in rand.values] == ["rho", "cross_image"]
    assert [(v.name, v.dims()) for v in road.values] == [
        ("road_s0", ()),
        ("road_morf_p", (5,)),
        ("road_lerf_p", (5,)),
    ]
    got = {rand.key(o): (o.direction, o.label, o.range) for o in rand.outputs}
    got |= {road.key(o): (o.direction, o.label, o.range) for o in road.outputs}
    assert got == {
        "randomisation@1/rho": ("lower", "ρ rand.", (-1.0, 1.0)),
        "randomisation@1/cross_image": ("none", "ρ cross", (-1.0, 1.0)),
        "road@1/morf": ("lower", "MoRF", (-1.0, 1.0)),
        "road@1/lerf": ("higher", "LeRF", (-1.0, 1.0)),
        "road@1/combined": ("higher", "ROAD", (-0.5, 0.5)),
    }
    assert [rand.key(t) for t in rand.tables] == ["randomisation@1/pass"]
    assert set(registry.metrics_schema()["properties"]) >= {"randomisation@1/pass", "road@1/combined"}
    # the per-image outputs of ROAD
    vals = {
        "road_s0": np.array([0.9, 0.5]),
        "road_morf_p": np.array([[0.1] * 5, [0.5] * 5]),
        "road_lerf_p": np.array([[0.9] * 5, [0.6] * 5]),
    }
    np.testing.assert_allclose(resolve(road.outputs[0].per_image)(vals), [-0.8, 0.0])
    np.testing.assert_allclose(resolve(road.outputs[1].per_image)(vals), [0.0, 0.1])
    np.testing.assert_allclose(resolve(road.outputs[2].per_image)(vals), [0.4, 0.05])
    # a model-based metric cannot be fold-scope (it is scored per run batch)
    with pytest.raises(HfusError, match="must be image-scope"):
        check_metric(Metric(**{**road.__dict__, "id": "road@9", "scope": "fold"}))


def test_pass_table_matches_the_rho_summary() -> None:
    """randomisation@1/pass uses the same mean and CI as randomisation@1/rho; the rule is the CI's upper
    bound."""
    from helpers import fake_scores

    from hfus_xai_bench.results import aggregate

    for rho, expected in ((0.1, True), (0.6, False), (1.0, False)):
        runs = [fake_scores("mobilenet_v2", f, 1.0, 3 + f, n=30, rho=rho) for f in (0, 1)]
        agg = aggregate(runs)
        table = agg["metrics"]["randomisation@1/pass"]["mobilenet_v2"]
        summary = agg["metrics"]["randomisation@1/rho"]["mobilenet_v2"]
        assert table["rho_mean"] == pytest.approx(summary["mean"], abs=1e-15)
        assert table["rho_ci95_high"] == summary["ci95"][1]
        assert table["pass"] is expected is (summary["ci95"][1] < 0.5)
        assert table["threshold"] == 0.5 and table["rule"] == "upper bound of the 95 % CI of mean ρ < 0.5"


def _toy(values: tuple[str, ...] = ("mean_map",), id: str = "mean_map@1") -> Metric:
    return Metric(
        id=id,
        category="sanity",
        needs="maps",
        function=lambda inputs, config: {"mean_map": inputs.m255.reshape(len(inputs), -1).mean(1) / 255.0},
        values=tuple(Value(v) for v in values),
        outputs=(
            Output("", "higher", (0.0, 1.0), "mean of m255/255 over the image", "mean_map", label="mean map"),
        ),
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
    with pytest.raises(HfusError, match=r"value name\(s\) \['runner_up'\]"):  # a per_image row column (§9)
        check_metric(Metric(**{**_toy().__dict__, "values": (Value("runner_up"),)}))
    with pytest.raises(HfusError, match="no cost stage of PROTOCOL §6 .*added to constants.COST_STAGES"):
        stage_of(Metric(**{**_toy().__dict__, "needs": "model"}))
    assert stage_of(METRICS["road@1"]) == "road"


def test_a_toy_metric_in_one_place_reaches_record_table_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Register one entry: the record, the schema, the rendered tables and verify all pick it up."""
    patch_fakes(monkeypatch, make_fakes())
    monkeypatch.setitem(METRICS, "mean_map@1", _toy())
    method = tmp_path / "greymap.py"
    method.write_text("def explain(model, images, targets, *, context):\n    return images.mean(1) + 1e-3\n")
    folder, result = submit(
        method, out=tmp_path / "sub", dataset=FAKE_DATASET, folds="0", device="cpu", progress=False
    )
    rec = result.record
    validate(rec)  # the schema's metrics section comes from the registry
    assert rec["metrics"]["mean_map@1"]["mobilenet_v2"]["mean"] == pytest.approx(
        np.mean([row["mean_map"] for row in rec["per_image"]])
    )
    assert entry_from_result(rec)["metrics"]["mean_map@1"] == rec["metrics"]["mean_map@1"]
    (
        render_markdown([entry_from_result(rec)]),
        render_html([entry_from_result(rec)]),
    )  # the leaderboard renders it
    assert "mean map" in Result(rec).summary_table().splitlines()[0]

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
    folder, result = submit(
        method, out=tmp_path / "sub", dataset=FAKE_DATASET, folds="0", device="cpu", progress=False
    )
    monkeypatch.setitem(METRICS, "mean_map@1", Metric(**{**_toy().__dict__, "required": False}))
    report = verify_submission(folder, check_model=False, progress=False)
    assert report.ok, report.render()
    assert any(name == "mean_map@1: not in the record" for name, _, _ in report.checks)
    render_markdown([entry_from_result(result.record)])
    assert "mean map" not in Result(result.record).summary_table()  # only what the record carries
