"""PROTOCOL §9: counterfactual@1 with a toy model whose logits are the image's first pixels (known
answers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hfus_xai_bench.constants import CLASSES
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import registry
from hfus_xai_bench.metrics.counterfactual import (
    CASE_APPLICABLE,
    CASE_LABEL_CG,
    CASE_TARGET_CG,
    CG,
    case_count_table,
    counterfactual_scores,
    predict_lowest,
)
from hfus_xai_bench.metrics.evidence import evidence_scores
from hfus_xai_bench.metrics.inputs import ScoringConfig, ScoringInputs
from hfus_xai_bench.scoring import score_fold, select_metrics

AD, PS, ST = CLASSES.index("AD"), CLASSES.index("PS"), CLASSES.index("ST")
SIZE = 8


class PixelLogits(nn.Module):
    """logits = 10 · (the first 4 pixels of row 0, channel 0); counts the image rows it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.scale * x[:, 0, 0, :4]


def _pixels(rows: list[list[int]]) -> np.ndarray:
    """uint8 (N, SIZE, SIZE, 3) images whose first 4 pixels of row 0, channel 0 are the given values."""
    out = np.zeros((len(rows), SIZE, SIZE, 3), np.uint8)
    out[:, 0, :4, 0] = np.asarray(rows, np.uint8)
    return out


def _float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)


def _softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


# image rows: (label, target, image logits pixels, twin logits pixels)
CASES = [
    (AD, AD, [200, 10, 0, 0], [10, 200, 0, 0]),  # AD → twin CG: flip
    (PS, PS, [0, 0, 200, 0], [0, 0, 150, 0]),  # the twin stays PS: no flip, effect > 0
    (ST, ST, [0, 0, 0, 90], [90, 90, 0, 0]),  # twin tie AD = CG → lowest index AD: no flip
    (ST, ST, [0, 0, 0, 90], [0, 90, 90, 0]),  # twin tie CG = PS → CG: flip
    (CG, CG, [0, 200, 0, 0], [0, 200, 0, 0]),  # CG label: not applicable
    (CG, AD, [200, 0, 0, 0], [0, 0, 0, 0]),  # CG label, target AD: still not applicable
    (PS, CG, [0, 200, 0, 0], [0, 200, 0, 0]),  # target CG: counted apart
]


def _case_arrays() -> tuple[np.ndarray, ...]:
    labels = np.array([c[0] for c in CASES])
    targets = np.array([c[1] for c in CASES])
    return labels, targets, _pixels([c[2] for c in CASES]), _pixels([c[3] for c in CASES])


def test_known_answers_with_controlled_logits() -> None:
    labels, targets, images, twins = _case_arrays()
    model = PixelLogits().eval()
    res = counterfactual_scores(model, _float(images), twins, labels, targets, batch_size=3)
    np.testing.assert_array_equal(
        res.case, [CASE_APPLICABLE] * 4 + [CASE_LABEL_CG, CASE_LABEL_CG, CASE_TARGET_CG]
    )
    np.testing.assert_array_equal(res.flip[:4], [1.0, 0.0, 0.0, 1.0])
    assert np.isnan(res.flip[4:]).all() and np.isnan(res.effect[4:]).all()  # never 0
    np.testing.assert_array_equal(res.pred_twin[:4], [CG, PS, AD, CG])
    for i, (_, c, img, twin) in enumerate(CASES[:4]):
        want = _softmax(10 * np.array(img) / 255.0)[c] - _softmax(10 * np.array(twin) / 255.0)[c]
        assert res.effect[i] == pytest.approx(want, abs=1e-6)  # float32 pixels / 255, float64 softmax
    assert res.effect[1] > 0
    # only the applicable images are forwarded: image and twin, one row each
    assert model.rows == 2 * 4 == res.n_forward


def test_logits_from_the_runner_save_the_image_forward() -> None:
    labels, targets, images, twins = _case_arrays()
    model = PixelLogits().eval()
    with torch.inference_mode():
        logits = model(_float(images))
    model.rows = 0
    res = counterfactual_scores(model, None, twins, labels, targets, logits=logits, batch_size=2)
    ref = counterfactual_scores(PixelLogits().eval(), _float(images), twins, labels, targets)
    assert model.rows == 4 == res.n_forward  # one forward per applicable image: its twin
    np.testing.assert_array_equal(res.flip, ref.flip)
    np.testing.assert_allclose(res.effect, ref.effect, rtol=0, atol=1e-12, equal_nan=True)
    with pytest.raises(HfusError, match="logits"):
        counterfactual_scores(model, None, twins, labels, targets, logits=logits[:3])


def test_ties_go_to_the_lowest_index() -> None:
    logits = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 3.0]])
    assert predict_lowest(logits).tolist() == [0, 1, 3]


def test_errors() -> None:
    labels, targets, images, twins = _case_arrays()
    model = PixelLogits().eval()
    with pytest.raises(HfusError, match="twins"):
        counterfactual_scores(model, _float(images), twins[..., :2], labels, targets)
    with pytest.raises(HfusError, match="6 twins for 7"):
        counterfactual_scores(model, _float(images), twins[:6], labels, targets)
    with pytest.raises(HfusError, match="training mode"):
        counterfactual_scores(PixelLogits().train(), _float(images), twins, labels, targets)


def test_registry_entry_and_flip_stratum() -> None:
    cf = registry.METRICS["counterfactual@1"]
    assert (cf.needs, cf.required, cf.extras) == ("model", False, ("twins", "evidence"))
    assert [cf.key(o) for o in cf.outputs][:2] == ["counterfactual@1/effect", "counterfactual@1/flip"]
    labels, targets, images, twins = _case_arrays()
    n = len(labels)
    rng = np.random.default_rng(0)
    m255 = rng.integers(0, 256, (n, SIZE, SIZE)).astype(np.uint8)
    m255[:, 0, 0] = 255
    evidence = np.zeros((n, SIZE, SIZE), np.uint8)
    evidence[:4, :3, :] = 255
    model = PixelLogits().eval()
    inputs = ScoringInputs(
        m255,
        np.zeros_like(m255),
        [f"i{i}" for i in range(n)],
        labels,
        targets,
        model=model,
        images=_float(images),
        extras={"twins": twins, "evidence": evidence},
    )
    values = score_fold(inputs, [cf], config=ScoringConfig(batch_size=4))
    np.testing.assert_array_equal(values["counterfactual@1/cf_flip"][:4], [1.0, 0.0, 0.0, 1.0])
    hit, mass, _ = evidence_scores(m255, evidence)
    flip_hit = values["counterfactual@1/cf_flip_hit"]
    np.testing.assert_array_equal(flip_hit[[0, 3]], hit[[0, 3]])
    assert np.isnan(np.delete(flip_hit, [0, 3])).all()
    np.testing.assert_array_equal(values["counterfactual@1/cf_flip_mass"][[0, 3]], mass[[0, 3]])
    assert inputs.cost["counterfactual_forward_images"] == 8
    per_fold = [{v.name: values[cf.key(v)] for v in cf.values}]
    assert case_count_table(per_fold) == {"n_applicable": 4, "n_label_cg": 2, "n_target_cg": 1, "n_flip": 2}
    # it measures the model: an image whose map failed keeps its effect and flip, not its evidence values
    failed = ScoringInputs(
        m255,
        np.zeros_like(m255),
        inputs.image_ids,
        labels,
        targets,
        ok=np.arange(n) != 0,
        model=model,
        images=_float(images),
        extras={"twins": twins, "evidence": evidence},
    )
    again = score_fold(failed, [cf], config=ScoringConfig(batch_size=4))
    for name in ("cf_case", "cf_effect", "cf_flip", "cf_pred_twin"):
        key = f"counterfactual@1/{name}"
        np.testing.assert_array_equal(again[key], values[key])
    assert np.isnan(again["counterfactual@1/cf_flip_hit"][0]) and np.isnan(
        again["counterfactual@1/cf_flip_mass"][0]
    )
    np.testing.assert_array_equal(again["counterfactual@1/cf_flip_hit"][1:], flip_hit[1:])
    # no twins (real data): unavailable — not selected, and never scored as 0
    assert cf not in select_metrics(extras=("evidence",))
    bare = ScoringInputs(
        m255, np.zeros_like(m255), inputs.image_ids, labels, targets, model=model, images=_float(images)
    )
    with pytest.raises(HfusError, match=r"counterfactual@1 needs extras \['twins', 'evidence'\]"):
        score_fold(bare, [cf])
