"""scoring.py: the scoring core turns maps (+ the model) into per-image values, entry by registry entry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TinyNet

from hfus_xai_bench.constants import THRESHOLDS
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import confidence_change, hit_rate, mask_iou, quantize, slm_coverage
from hfus_xai_bench.metrics.randomisation import cross_image_rho, spearman_maps
from hfus_xai_bench.metrics.registry import Metric, Output, Value
from hfus_xai_bench.metrics.road import road_scores
from hfus_xai_bench.scoring import ScoringConfig, ScoringInputs, score_fold, select_metrics
from hfus_xai_bench.seeding import item_seed

N = 5


def _inputs(ok=None, **kw) -> ScoringInputs:
    """N random maps; the randomised model's maps (PROTOCOL §7.1) in ``extras`` unless ``extras`` is given."""
    rng = np.random.default_rng(0)
    m255 = quantize(rng.random((N, 224, 224)))
    slms = np.zeros((N, 224, 224), np.uint8)
    slms[:, 40:60], slms[:, 60:96], slms[:, 96:132] = 255, 128, 64
    images = torch.from_numpy(rng.random((N, 3, 224, 224)).astype(np.float32))
    kw.setdefault(
        "extras",
        {
            "m255_randomised": quantize(rng.random((3 * N, 224, 224))).reshape(N, 3, 224, 224),
            "randomised_ok": np.ones((N, 3), bool),
        },
    )
    return ScoringInputs(
        m255=m255,
        slms=slms,
        image_ids=[f"i{k}" for k in range(N)],
        labels=np.arange(N) % 4,
        targets=np.arange(N) % 4,
        ok=ok,
        images=images,
        **kw,
    )


def test_values_equal_the_metric_functions() -> None:
    torch.manual_seed(0)
    model = TinyNet().eval()
    inp = _inputs(model=model)
    values = score_fold(inp, select_metrics(extras=inp.extras), config=ScoringConfig(confidence="prob"))
    # exact: the scoring core makes the very calls below (same inputs, shapes, batch sizes and kernels)
    hr1, hr2 = hit_rate(inp.m255, inp.slms)
    top, bg = slm_coverage(inp.m255, inp.slms)
    np.testing.assert_array_equal(values["hit_rate@1/hr1"], hr1)
    np.testing.assert_array_equal(values["hit_rate_binary@1/hr2"], hr2)
    np.testing.assert_array_equal(values["slm_coverage@1/cov_top"], top)
    np.testing.assert_array_equal(values["slm_coverage@1/cov_bg"], bg)
    np.testing.assert_array_equal(values["mask_iou@1/iou"], mask_iou(inp.m255, inp.slms))
    conf = confidence_change(model, inp.images, inp.m255, inp.targets, unit="prob")
    np.testing.assert_array_equal(values["confidence@1/s_keep_t"], conf.s_keep_t)
    assert values["mask_iou@1/iou"].shape == (N, len(THRESHOLDS), 5)
    # PROTOCOL §7: randomisation@1 from the two map stacks, road@1 through road_scores with per-image seeds
    old = score_fold(inp, select_metrics(["randomisation@1"]), config=ScoringConfig())  # superseded: by name
    np.testing.assert_array_equal(
        old["randomisation@1/rho"], spearman_maps(inp.m255, inp.extras["m255_randomised"][:, 0])
    )
    np.testing.assert_array_equal(values["randomisation@2/rand2_cross"], cross_image_rho(inp.m255, seed=0))
    road = road_scores(
        model,
        inp.images.contiguous(memory_format=torch.channels_last),
        inp.m255,
        inp.targets,
        seeds=[item_seed(0, f"i{k}") for k in range(N)],
    )
    np.testing.assert_array_equal(values["road@1/road_s0"], road.s0)
    np.testing.assert_array_equal(values["road@1/road_morf_p"], road.morf)
    np.testing.assert_array_equal(values["road@1/road_lerf_p"], road.lerf)
    assert inp.cost["road_forward_images"] == N * 11 and inp.cost["road_seconds_impute"] > 0


def test_unscored_images_are_nan_and_the_rest_unchanged() -> None:
    """Image-scope metrics: an image's values do not depend on which other images are scored with it;
    fold-scope ones (ρ_cross) are computed over the scored images only."""
    ok = np.array([True, False, True, True, False])
    maps_only = select_metrics(model=False, extras=_inputs().extras)  # §9 ids need evidence-track extras
    full = score_fold(_inputs(), maps_only)
    part = score_fold(_inputs(ok=ok), maps_only)
    fold_scope = {
        m.key(v)
        for m in select_metrics(model=False)
        if m.scope == "fold"
        for v in m.values
        if v.name == "rand2_cross"
    }
    assert fold_scope == {"randomisation@2/rand2_cross"}
    for key, values in part.items():
        assert np.isnan(values[~ok]).all(), key
        if key in fold_scope:
            np.testing.assert_array_equal(values[ok], cross_image_rho(_inputs().m255[ok], seed=0))
        else:
            np.testing.assert_array_equal(values[ok], full[key][ok])  # maps-only: numpy on uint8, per image


def test_model_metrics_need_the_model() -> None:
    with pytest.raises(HfusError, match="confidence@1 needs the model"):
        score_fold(_inputs())
    with pytest.raises(
        HfusError, match=r"randomisation@2 needs extras \['m255_randomised', 'randomised_ok'\]"
    ):
        score_fold(_inputs(extras={}), select_metrics(model=False))
    assert "randomisation@2" not in [m.id for m in select_metrics(model=False, extras=())]
    assert all(m.needs == "maps" for m in select_metrics(model=False))
    assert "confidence@1/s0" not in score_fold(
        _inputs(), select_metrics(model=False, extras=_inputs().extras)
    )


def test_a_model_based_metric_reads_model_images_and_extras() -> None:
    """A new model-based metric = one entry + its function; per-image extras are selected with the images."""
    seen = {}

    def fn(inputs: ScoringInputs, config: ScoringConfig) -> dict:
        inputs.require("toy@1", "model", "images", "other_maps")
        seen["ids"] = list(inputs.image_ids)
        seen["copy"] = inputs.extras["other_model"]
        with torch.inference_mode():
            s = inputs.model(inputs.images).softmax(1)[np.arange(len(inputs)), inputs.targets]
        same = (inputs.m255 == inputs.extras["other_maps"]).reshape(len(inputs), -1).mean(1)
        return {"p": s.numpy(), "same": same}

    toy = Metric(
        id="toy@1",
        category="faithfulness",
        needs="model",
        function=fn,
        values=(Value("p"), Value("same")),
        outputs=(Output("", "none", (0.0, 1.0), "target probability", "p"),),
        description="toy",
    )
    torch.manual_seed(0)
    model = TinyNet().eval()
    ok = np.array([True, True, False, True, True])
    base = _inputs()
    inp = _inputs(
        ok=ok, model=model, extras={"other_maps": base.m255.copy(), "other_model": "a fold-level object"}
    )
    values = score_fold(inp, [toy])
    assert seen == {"ids": ["i0", "i1", "i3", "i4"], "copy": "a fold-level object"}
    assert np.isnan(values["toy@1/p"][2]) and (values["toy@1/same"][ok] == 1.0).all()
    with pytest.raises(HfusError, match="needs other_maps"):
        score_fold(_inputs(model=model), [toy])
    declared = Metric(**{**toy.__dict__, "extras": ("other_maps",)})
    with pytest.raises(HfusError, match=r"needs extras \['other_maps'\]"):
        score_fold(_inputs(model=model), [declared])
    assert select_metrics([declared], extras=()) == [] and select_metrics(
        [declared], extras=["other_maps"]
    ) == [declared]


def test_a_malformed_metric_function_is_caught() -> None:
    bad = Metric(
        id="bad@1",
        category="sanity",
        needs="maps",
        function=lambda i, c: {"x": np.zeros(3)},
        values=(Value("x"),),
        outputs=(Output("", "none", (0.0, 1.0), "x", "x"),),
        description="bad",
    )
    with pytest.raises(HfusError, match=r"value 'x' has shape \(3,\), expected \(5,\)"):
        score_fold(_inputs(), [bad])
    wrong = Metric(**{**bad.__dict__, "function": lambda i, c: {"y": np.zeros(5)}})
    with pytest.raises(HfusError, match="returned"):
        score_fold(_inputs(), [wrong])
    with pytest.raises(HfusError, match="extras\\['z'\\] has 2 entries for 5 images"):
        _inputs(extras={"z": np.zeros(2)})
