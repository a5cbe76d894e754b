"""Sanity baselines (PROTOCOL §5) and the §9 rows (input, oracle, oracle@grid): shapes, known answers, the
runner path."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers import baselines as B
from hfus_xai_bench.explainers.contract import ExplainContext


class _NoModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - must not run
        raise AssertionError("a sanity baseline called the model")


def _ctx(seed: int = 0, prior: torch.Tensor | None = None) -> ExplainContext:
    return ExplainContext(
        arch="x", target_layer=nn.Identity(), device=torch.device("cpu"), seed=seed, depth_prior=prior
    )


def _images(n: int = 3, size: int = 224, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


ALL = (B.RandomMap, B.CenterGaussian, B.DepthPrior, B.SobelEdges)


@pytest.mark.parametrize("cls", ALL)
def test_shape_kind_nonneg_no_model(cls: type) -> None:
    x = _images()
    out = cls(_NoModel(), _ctx(prior=torch.rand(224, 224)))(x, torch.zeros(3, dtype=torch.long))
    assert cls.kind == "map"
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and (out >= 0).all() and out.max() > 0


def test_image_seeds_rule() -> None:
    x = _images(2, 8)
    q = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    expected = int.from_bytes(hashlib.sha256(b"hfus-xai-bench:3:" + q[1].tobytes()).digest()[:4], "little")
    assert B.image_seeds(x, 3)[1] == expected
    # float noise below the uint8 quantum does not change the seed; another seed does
    assert B.image_seeds(x + 1e-5, 3) == B.image_seeds(x, 3)
    assert B.image_seeds(x, 4) != B.image_seeds(x, 3)


def test_random_map_seeded_per_image() -> None:
    x = _images(3)
    rnd = B.RandomMap(None, _ctx(seed=1))
    a = rnd(x, None)
    assert torch.equal(a, rnd(x, None))  # reproducible
    assert torch.equal(rnd(x.flip(0), None).flip(0), a)  # independent of batch order
    assert torch.equal(rnd(x[1:2], None)[0], a[1])  # and of batch composition
    s = B.image_seeds(x, 1)[2]
    assert torch.equal(
        a[2], torch.rand((224, 224), generator=torch.Generator().manual_seed(s))
    )  # documented rule
    assert not torch.equal(B.RandomMap(None, _ctx(seed=2))(x, None), a)
    assert a.min() >= 0 and a.max() < 1 and abs(a.mean().item() - 0.5) < 0.01  # uniform


def test_center_gaussian_known_values() -> None:
    g = B.CenterGaussian(None, _ctx())(_images(2), None)
    assert torch.equal(g[0], g[1])
    assert g[0, 111:113, 111:113].min() == g[0].max()  # peak at the 4 centre pixels (even size)
    torch.testing.assert_close(g[0], g[0].flip(0).flip(1))  # symmetric about the centre
    sigma = 0.25 * 224
    dy = 111.5  # row 0 from the centre row
    torch.testing.assert_close(
        g[0, 0, 111].item(), torch.exp(torch.tensor(-(dy**2) / (2 * sigma**2) - 0.25 / (2 * sigma**2))).item()
    )
    # non-square images: centred on each axis
    h = B.CenterGaussian(None, _ctx())(torch.zeros(1, 3, 5, 9), None)[0]
    assert h.argmax().item() == 2 * 9 + 4 and h[2, 4] == 1.0


def test_depth_prior_returns_prior() -> None:
    prior = torch.linspace(0, 1, 224)[:, None].expand(224, 224).contiguous()
    out = B.DepthPrior(None, _ctx(prior=prior))(_images(2), None)
    assert torch.equal(out[0], prior) and torch.equal(out[1], prior)
    # (1, H, W) priors are accepted; another image size gets a bilinear resize
    small = B.DepthPrior(None, _ctx(prior=prior[None]))(torch.zeros(1, 3, 112, 112), None)
    assert small.shape == (1, 112, 112)
    assert small[0, 0, 0] < small[0, -1, 0]


def test_depth_prior_errors() -> None:
    with pytest.raises(HfusError, match="depth_prior"):
        B.DepthPrior(None, _ctx(prior=None))
    with pytest.raises(HfusError, match="finite"):
        B.DepthPrior(None, _ctx(prior=torch.full((4, 4), float("nan"))))
    with pytest.raises(HfusError, match=r"\(H, W\)"):
        B.DepthPrior(None, _ctx(prior=torch.zeros(2, 4, 4)))


def test_sobel_vertical_step_edge() -> None:
    x = torch.zeros(2, 3, 224, 224)
    x[:, :, :, 100:] = 1.0  # vertical step between columns 99 and 100
    x[1] *= 0.5
    s = B.SobelEdges(None, _ctx())(x, None)
    # the two columns next to the step carry the whole response: (1 + 2 + 1) · step height
    torch.testing.assert_close(s[0, :, 99:101], torch.full((224, 2), 4.0))
    assert s[0, :, :99].abs().max() == 0 and s[0, :, 101:].abs().max() == 0  # flat regions, no border edge
    torch.testing.assert_close(s[1], 0.5 * s[0])  # linear in the contrast
    assert set(s[0].argmax(1).tolist()) <= {99, 100}


def test_sobel_grey_level_and_rotation() -> None:
    x = torch.zeros(1, 3, 32, 32)
    x[:, 1, 16:, :] = 1.0  # horizontal edge in the green channel only
    s = B.SobelEdges(None, _ctx())(x, None)[0]
    torch.testing.assert_close(s[15:17, :], torch.full((2, 32), 4 * B.GREY_WEIGHTS[1]))
    # Sobel is symmetric under transposition of the image
    y = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    sob = B.SobelEdges(None, _ctx())
    torch.testing.assert_close(sob(y.transpose(2, 3), None)[0], sob(y, None)[0].t())
    grey = sob(y.mean(1, keepdim=True), None)  # 1-channel images are used as they are
    assert grey.shape == (1, 20, 20)


def test_bad_images() -> None:
    with pytest.raises(HfusError, match=r"\(B, C, H, W\)"):
        B.SobelEdges(None, _ctx())(torch.zeros(3, 8, 8), None)
    with pytest.raises(HfusError, match="C = 3 or 1"):
        B.SobelEdges(None, _ctx())(torch.zeros(1, 2, 8, 8), None)


# ------------------------------------------------------------------ PROTOCOL §9: input, oracle, oracle@grid


def _ev_ctx(evidence: torch.Tensor | None) -> ExplainContext:
    ctx = _ctx()
    if evidence is not None:
        ctx.extra["evidence"] = evidence
    return ctx


def test_input_is_the_channel_mean() -> None:
    x = _images(2, 16)
    out = B.InputIntensity(_NoModel(), _ctx())(x, None)
    assert out.shape == (2, 16, 16) and B.InputIntensity.kind == "map"
    torch.testing.assert_close(out, (x[:, 0] + x[:, 1] + x[:, 2]) / 3, rtol=0, atol=1e-7)


def test_oracle_is_the_evidence_mask() -> None:
    from hfus_xai_bench.explainers.contract import FAIL_EMPTY, to_m255
    from hfus_xai_bench.metrics.evidence import evidence_scores

    e = torch.zeros(2, 224, 224, dtype=torch.bool)
    e[0, 60:80, 10:150] = True  # image 1: a CG image, empty mask
    out = B.Oracle(_NoModel(), _ev_ctx(e))(_images(2), None)
    assert torch.equal(out, e.float())
    m255, reasons = to_m255([(out, None)], 2, "map", "pos", torch.device("cpu"))
    assert torch.equal(m255[0], e[0].to(torch.uint8) * 255) and reasons == [None, FAIL_EMPTY]
    hit, mass, peak = evidence_scores(m255[:1], e[:1])
    assert hit[0] == 1.0 and mass[0] == 1.0 and peak[0] == 20 * 140  # the ceiling of evidence@1


def test_oracle_grid_known_values_and_harness_upsampling() -> None:
    from hfus_xai_bench.explainers.contract import to_m255
    from hfus_xai_bench.metrics import quantize

    e = torch.zeros(1, 224, 224, dtype=torch.bool)
    e[0, 0:32, 0:32] = True  # block (0, 0) full
    e[0, 32:48, 64:80] = True  # block (1, 2): a 16×16 quarter
    e[0, 200:206, :] = True  # a 6-px band in block row 6: 6/32 of every block
    grid = B.OracleGrid(_NoModel(), _ev_ctx(e))(_images(1), None)
    assert grid.shape == (1, 7, 7)
    want = torch.zeros(7, 7)
    want[0, 0], want[1, 2] = 1.0, 0.25
    want[6, :] = 6 / 32
    assert torch.equal(grid[0], want)  # exact: counts over a power of two
    # the harness upsamples it like any low-resolution map: bilinear, align_corners=False, no min subtraction
    m255, reasons = to_m255([(grid, None)], 1, "map", "pos", torch.device("cpu"))
    up = F.interpolate(grid[:, None], size=(224, 224), mode="bilinear", align_corners=False)[:, 0]
    assert reasons == [None] and torch.equal(m255, quantize(up))
    assert m255[0, :16, :16].eq(255).all() and m255[0, 120, 150] == 0
    # pixel (16, 16) is 1/64 of a block past the centre of block (0, 0) on both axes: (63/64)² of the peak
    assert m255[0, 16, 16] == 247  # floor(255 · 3969 / 4096), exact in float32
    flat = torch.full((1, 224, 224), True)
    flat[0, :32, :32] = False  # every block full but one: the map's minimum stays above 0 away from it
    m = to_m255(
        [(B.OracleGrid(None, _ev_ctx(flat))(_images(1), None), None)], 1, "map", "pos", torch.device("cpu")
    )[0]
    assert m[0, 200, 200] == 255 and m[0, 0, 0] == 0


def test_oracle_errors_and_metadata() -> None:
    from hfus_xai_bench.explainers.loader import load_builtin, load_method
    from hfus_xai_bench.explainers.registry import BUILTIN_METHODS, REFERENCE_METHODS, SANITY_METHODS

    with pytest.raises(HfusError, match=r"context.extra\['evidence'\]"):
        B.Oracle(None, _ev_ctx(None))(_images(1), None)
    with pytest.raises(HfusError, match="expected the batch"):
        B.Oracle(None, _ev_ctx(torch.zeros(2, 224, 224, dtype=torch.bool)))(_images(1), None)
    with pytest.raises(HfusError, match="divisible by 32"):
        B.OracleGrid(None, _ev_ctx(torch.zeros(1, 40, 40, dtype=torch.bool)))(_images(1, 40), None)
    assert "input" in SANITY_METHODS and set(REFERENCE_METHODS) <= set(BUILTIN_METHODS)
    for name in REFERENCE_METHODS:
        meta = load_method(name).metadata
        assert meta["reference"] == "oracle" and tuple(meta["reads"]) == ("evidence",), name
    assert "reads" not in load_builtin("input").metadata and "reference" not in load_builtin("input").metadata
    # the record's method block carries the declaration (the leaderboard never ranks a reference row)
    import jsonschema

    from hfus_xai_bench.results import method_record, schema

    block = json.loads(json.dumps(method_record(load_builtin("oracle@grid"))))
    assert block["reference"] == "oracle" and block["reads"] == ["evidence"]
    for name in ("result", "entry"):
        jsonschema.validate(block, schema(name)["properties"]["method"])


def test_a_user_method_may_not_read_the_evidence(tmp_path) -> None:
    from hfus_xai_bench.explainers.loader import load_file

    for key, value in (("reads", '("evidence",)'), ("reference", '"oracle"')):
        path = tmp_path / f"m_{key}.py"
        path.write_text(
            f"METADATA = {{'{key}': {value}}}\n"
            "def explain(model, images, targets, *, context):\n    return images.mean(1)\n"
        )
        with pytest.raises(HfusError, match=r"reserved for the benchmark's reference rows") as err:
            load_file(path)
        assert "\n" not in str(err.value)


@pytest.fixture
def evidence_track(monkeypatch):
    """The fake dataset and TinyNet of tests/helpers.py, with an evidence column (the SLM's 255 band of the
    non-CG images) and twins (that band darkened; a CG image's twin is itself), as fold_arrays gives them."""
    from types import SimpleNamespace

    from helpers import make_fakes, patch_fakes

    from hfus_xai_bench.data import dataset as D

    patch_fakes(monkeypatch, make_fakes())
    plain = D.fold_arrays

    def with_evidence(*args, **kwargs):
        arrays = plain(*args, **kwargs)
        e = np.where((arrays.slms == 255) & (arrays.labels != 1)[:, None, None], 255, 0).astype(np.uint8)
        twins = None
        if len(arrays.images):
            twins = np.where(e[..., None] > 0, arrays.images // 4, arrays.images).astype(np.uint8)
        return SimpleNamespace(**{**vars(arrays), "evidence": e, "twins": twins})

    monkeypatch.setattr(D, "fold_arrays", with_evidence)
    return with_evidence


def test_reference_rows_and_input_through_the_runner(evidence_track) -> None:
    """oracle: hit = mass = 1, gains 0, ρ_class 1, CG images empty_map; input: model-blind, so gains are
    exactly 0; counterfactual@1 is the function called on the same images and twins."""
    from helpers import FAKE_DATASET

    from hfus_xai_bench.data import dataset as D
    from hfus_xai_bench.metrics.counterfactual import counterfactual_scores
    from hfus_xai_bench.models import checkpoints
    from hfus_xai_bench.runner import evaluate, model_input

    oracle = evaluate("oracle", dataset=FAKE_DATASET, folds="0", device="cpu", progress=False, figure=False)
    rec = oracle.record
    assert rec["method"]["reference"] == "oracle" and rec["method"]["reads"] == ["evidence"]
    rows = rec["per_image"]
    assert [r["label"] for r in rows] == [0, 1, 2] and [r["failed"] for r in rows] == [
        None,
        "empty_map",
        None,
    ]
    for r in (rows[0], rows[2]):
        assert (r["ev_hit"], r["ev_mass"], r["ev_hit_gain"], r["ev_mass_gain"], r["cs_rho"]) == (
            1,
            1,
            0,
            0,
            1,
        )
    assert rec["metrics"]["evidence@1/hit"]["mobilenet_v2"]["mean"] == 1.0
    assert rec["metrics"]["class_sensitivity@1/counts"]["mobilenet_v2"]["n_scored"] == 2

    result = evaluate("input", dataset=FAKE_DATASET, folds="0", device="cpu", progress=False, figure=False)
    rows = result.record["per_image"]
    assert all(r["failed"] is None for r in rows) and rows[1]["ev_hit"] is None  # CG: not applicable
    assert [rows[i]["ev_hit_gain"] for i in (0, 2)] == [0.0, 0.0] and rows[0]["ev_copies"] == 3
    assert [rows[i]["cs_rho"] for i in (0, 2)] == [1.0, 1.0]  # the same map whatever the class
    data = evidence_track(D.load_dataset(), 0, "test")
    model, _ = checkpoints.load_model("mobilenet_v2")
    targets = np.array([r["target"] for r in rows])
    cf = counterfactual_scores(
        model, model_input(data.images, torch.device("cpu")), data.twins, data.labels, targets
    )
    got = np.array([np.nan if r["cf_effect"] is None else r["cf_effect"] for r in rows])
    np.testing.assert_allclose(
        got, cf.effect, rtol=0, atol=1e-6, equal_nan=True
    )  # CPU, other batch: float noise
    assert [r["cf_case"] for r in rows] == cf.case.tolist()
