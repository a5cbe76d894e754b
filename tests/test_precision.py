"""``--precision bf16``: model passes under autocast, everything after the model in float32
(``calls.set_precision``); the record says bf16; the leaderboard, submissions and verify are fp32 and refuse a
bf16 record."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from hfus_xai_bench.calls import PassCounter, fingerprint, set_precision
from hfus_xai_bench.cli import main
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.attribution import Saliency
from hfus_xai_bench.explainers.attribution_ecosystem import InputXGradient
from hfus_xai_bench.explainers.cam import AblationCAM, GradCAM
from hfus_xai_bench.explainers.cam_ecosystem import FullGrad, LayerCAM
from hfus_xai_bench.explainers.contract import ExplainContext, run_method, to_m255
from hfus_xai_bench.models.zoo import get_arch

#: Pearson r of a Grad-CAM m255 map in bf16 against fp32 must exceed this. Measured on CPU (MobileNetV2
#: fold 0, test images 0-1): 0.99990 and 0.99994; bf16 keeps 8 mantissa bits (relative error 2⁻⁸ per
#: rounding) and a 7×7 CAM upsampled to 224×224 is smooth, so 1 − r stays near 1e-4; 0.999 leaves a
#: tenfold margin and still fails a map that moved (r of two unrelated CAMs is far below 0.9).
CAM_MIN_R = 0.999
REFUSAL = "was run with --precision bf16; the leaderboard is fp32: rerun without --precision"


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )


def test_fp32_leaves_the_model_alone_and_bf16_returns_float32_logits() -> None:
    model = _tiny().eval()
    before = fingerprint(model)
    assert set_precision(model, "fp32", "cpu") is model and "forward" not in model.__dict__
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
    set_precision(model, "bf16", "cpu")
    passes = PassCounter()
    passes.watch(model)
    with passes.stage("predict"), torch.no_grad():
        out = model(x)
    passes.close()
    assert out.dtype == torch.float32 and out.shape == ref.shape
    # the conv and the linear ran in bf16: not bitwise the fp32 logits, within bf16's rounding
    assert not torch.equal(out, ref)
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.02)
    assert passes.forward["predict"] == 3  # the root's hooks still see the pass
    assert before.first_change(fingerprint(model)) is None  # parameters stay float32, unchanged
    with pytest.raises(HfusError, match="set twice"):
        set_precision(model, "bf16", "cpu")
    with pytest.raises(HfusError, match="--precision must be one of fp32, bf16"):
        set_precision(_tiny(), "fp16", "cpu")


@pytest.fixture(scope="module")
def mobilenet():
    """The shipped MobileNetV2 fold-0 model in fp32 and in bf16, test images 0-1, their fp32 predictions."""
    from hfus_xai_bench.batches import model_input
    from hfus_xai_bench.data.dataset import fold_arrays, load_dataset
    from hfus_xai_bench.models.checkpoints import load_model

    x = model_input(fold_arrays(load_dataset(), 0, "test", rows=[0, 1]).images, torch.device("cpu"))
    models = {p: set_precision(load_model("mobilenet_v2")[0], p, "cpu") for p in ("fp32", "bf16")}
    with torch.no_grad():
        targets = models["fp32"](x).argmax(1)
    return models, x, targets


def _explain(cls: type, model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    spec = get_arch("mobilenet_v2")
    context = ExplainContext.for_model(spec, model, "cpu", seed=0, batch_size=2)
    return cls(model, context)(x.clone(), targets.clone())


@pytest.mark.parametrize("cls", [GradCAM, AblationCAM, Saliency, LayerCAM, FullGrad, InputXGradient])
def test_builtins_return_float32_maps_from_bf16_passes(mobilenet, cls) -> None:
    """The built-ins' code paths (shared gradient pass, ablation head, input gradients, FullGrad's tensor
    hooks) give finite float32 maps from bf16 activations and gradients."""
    models, x, targets = mobilenet
    x, targets = x[:1], targets[:1]
    ours = _explain(cls, models["bf16"], x, targets)
    assert ours.dtype == torch.float32 and bool(torch.isfinite(ours).all())
    reference = _explain(cls, models["fp32"], x, targets)
    assert ours.shape == reference.shape and not torch.equal(ours, reference)  # bf16 did run
    if cls in (GradCAM, AblationCAM):  # 7×7 CAMs: smooth maps, tight agreement (CAM_MIN_R's reason)
        assert _pearson(ours.numpy(), reference.numpy()).min() > CAM_MIN_R


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    """``hfus-bench evaluate gradcam --limit 1 --precision bf16 --save-maps``: (folder, record)."""
    out = tmp_path_factory.mktemp("bf16")
    argv = ["evaluate", "gradcam", "--limit", "1", "--precision", "bf16", "--out", str(out)]
    assert main([*argv, "--save-maps", "--no-figure", "--quiet"]) == 0
    return out, json.loads((out / "gradcam.json").read_text())


def test_bf16_evaluate_records_bf16_and_agrees_with_fp32(bf16_run, mobilenet, synth_ds) -> None:
    from hfus_xai_bench.data.dataset import dataset_provenance
    from hfus_xai_bench.models.checkpoints import load_model

    out, record = bf16_run
    assert record["options"]["precision"] == "bf16" and record["cost"]["mobilenet_v2"]["precision"] == "bf16"
    # the weights and the data are the fp32 run's: same checkpoint sha256, same dataset hash
    sha = load_model("mobilenet_v2")[1].checkpoint.sha256
    assert record["checkpoints"]["mobilenet_v2"]["0"]["sha256"] == sha
    assert record["dataset"] == dataset_provenance(synth_ds)
    models, x, targets = mobilenet
    assert record["per_image"][0]["target"] == int(targets[0])  # bf16 predicts the same class here
    with np.load(out / "gradcam.maps.npz") as npz:
        ours = npz["mobilenet_v2__fold0__maps"]
    spec = get_arch("mobilenet_v2")
    model = models["fp32"]
    context = ExplainContext.for_model(spec, model, "cpu")
    outputs = run_method(GradCAM(model, context), x[:1].clone(), targets[:1].clone())
    reference, _ = to_m255(outputs, 1, "map", "pos", torch.device("cpu"))
    assert _pearson(ours, reference.numpy()).min() > CAM_MIN_R


def test_leaderboard_submit_and_verify_refuse_bf16(bf16_run, tmp_path, capsys) -> None:
    out, record = bf16_run
    entries = tmp_path / "entries"
    assert main(["leaderboard", "add", str(out / "gradcam.json"), "--entries", str(entries)]) == 2
    err = capsys.readouterr().err.strip()
    assert REFUSAL in err and len(err.splitlines()) == 1 and not entries.exists()
    from hfus_xai_bench.submission import submit

    with pytest.raises(HfusError, match=REFUSAL):
        submit(tmp_path / "method.py", precision="bf16", out=tmp_path / "sub")
    assert not (tmp_path / "sub").exists()
    from hfus_xai_bench.verify import verify_submission

    folder = tmp_path / "submission"
    folder.mkdir()
    shutil.copyfile(out / "gradcam.json", folder / "result.json")
    shutil.copyfile(out / "gradcam.maps.npz", folder / "maps.npz")
    for name in ("method.py", "README.md"):
        (folder / name).write_text("")
    with pytest.raises(HfusError, match=REFUSAL):
        verify_submission(folder)
