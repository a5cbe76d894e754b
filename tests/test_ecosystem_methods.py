"""Ecosystem baselines (PROTOCOL §5 v1.2): conformance with unmodified grad-cam 1.5.7 / captum 0.9.0 at
224×224.

MobileNetV2 is the packaged trained checkpoint (realistic logits, non-degenerate maps); DenseNet201
(random weights, BatchNorm statistics calibrated on random images, head scaled so logits are O(1))
is the second architecture, for the two methods defined on it and not on MobileNetV2 (DeepLift, Guided
Backprop); the CAM maths is architecture-independent and checked on MobileNetV2. Per map Pearson
r >= 0.999 and a small max abs difference, as tests/test_cam.py and tests/test_attribution.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import pytorch_grad_cam as gc  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from captum.attr import DeepLift as CaptumDeepLift  # noqa: E402
from captum.attr import GradientShap as CaptumGradientShap  # noqa: E402
from captum.attr import GuidedBackprop as CaptumGuidedBackprop  # noqa: E402
from captum.attr import InputXGradient as CaptumInputXGradient  # noqa: E402
from captum.attr import NoiseTunnel, Saliency  # noqa: E402
from helpers import pearson  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from torch import nn  # noqa: E402

from hfus_xai_bench.errors import HfusError  # noqa: E402
from hfus_xai_bench.explainers import attribution_ecosystem as AE  # noqa: E402
from hfus_xai_bench.explainers.baselines import image_seeds  # noqa: E402
from hfus_xai_bench.explainers.cam_ecosystem import FullGrad, fullgrad_layers  # noqa: E402
from hfus_xai_bench.explainers.contract import ExplainContext  # noqa: E402
from hfus_xai_bench.explainers.loader import load_builtin  # noqa: E402
from hfus_xai_bench.models.checkpoints import load_model  # noqa: E402
from hfus_xai_bench.models.zoo import get_arch  # noqa: E402

SIZE = 224
MIN_R = 0.999
LIBRARY_CAMS = {"layercam": gc.LayerCAM, "xgradcam": gc.XGradCAM, "fullgrad": gc.FullGrad}


def _images(n: int, seed: int) -> torch.Tensor:
    """Smooth random images with a bright band (like the epidermis), (n, 3, 224, 224) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(SIZE, SIZE), mode="bilinear").clamp(0, 1)
    x[:, :, 60:80] = 0.9
    return x


def _context(arch: str, model: nn.Module, sample: torch.Tensor | None = None) -> ExplainContext:
    return ExplainContext.for_model(
        get_arch(arch),
        model,
        "cpu",
        seed=7,
        batch_size=16,
        training_sample=sample,
    )


@pytest.fixture(scope="module")
def mobilenet() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model, _ = load_model("mobilenet_v2")  # the packaged checkpoint (offline)
    x = _images(2, seed=0)
    with torch.no_grad():
        t = model(x).argmax(1)
    return model.eval(), x, t


@pytest.fixture(scope="module")
def densenet() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = get_arch("densenet201").build()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    x = _images(1, seed=1)
    with torch.no_grad():  # BatchNorm statistics from small random images (cheap; any sane statistics do)
        model.train()(F.interpolate(_images(2, seed=2), size=(64, 64), mode="bilinear"))
        model.eval()
        head = model.classifier
        scale = 5.0 / model(x).abs().max()
        head.weight.mul_(scale)
        head.bias.mul_(scale)
        t = model(x).argmax(1)
    return model, x, t


def _assert_maps(
    ours: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray, label: str, rel: float
) -> None:
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, label
    for i in range(len(ref)):
        assert ref[i].std() > 1e-3 * np.abs(ref[i]).max() > 0, f"{label}: degenerate reference map {i}"
        r = pearson(ours[i], ref[i])
        assert r >= MIN_R, f"{label}: image {i} Pearson r = {r}"
    diff = float(np.abs(ours - ref).max() / np.abs(ref).max())
    assert diff < rel, f"{label}: relative max abs diff {diff}"


def _library_cam(
    name: str, model: nn.Module, layer: nn.Module, x: torch.Tensor, t: torch.Tensor
) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cam = LIBRARY_CAMS[name](model, [layer])
    try:
        return cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(int(i)) for i in t])
    finally:
        cam.activations_and_grads.release()


# --------------------------------------------------------------------------------------------- CAMs


@pytest.mark.parametrize("name", ["layercam", "xgradcam", "fullgrad"])
def test_cams_match_gradcam_library_mobilenet(mobilenet, name: str) -> None:
    model, x, t = mobilenet
    if name == "fullgrad":  # the library resizes every channel of every layer: ~4 s per image
        x, t = x[:1], t[:1]
    ctx = _context("mobilenet_v2", model)
    ours = load_builtin(name).build(model, ctx)(x, t)
    assert ours.shape == (len(x), SIZE, SIZE) and ours.dtype == torch.float32
    _assert_maps(ours, _library_cam(name, model, ctx.target_layer, x, t), f"mobilenet_v2/{name}", 1e-4)


def test_layercam_is_7x7_at_the_pinned_layer(mobilenet) -> None:
    """PROTOCOL §5: LayerCAM at §2's target layer is a 7×7 map, upsampled (constant along 32-pixel cells'
    centres)."""
    from hfus_xai_bench.explainers import cam

    model, x, t = mobilenet
    ctx = _context("mobilenet_v2", model)
    acts, grads = cam._activations_and_grads(model, ctx.target_layer, x, t)
    assert acts.shape[-2:] == (7, 7)
    raw = cam._layercam_raw(acts, grads)
    expected = cam.library_postprocess(raw, (SIZE, SIZE))
    assert torch.equal(load_builtin("layercam").build(model, ctx)(x, t), expected)  # same ops, same order


def test_fullgrad_sum_then_resize_equals_resize_then_sum() -> None:
    """Bilinear resizing is linear: summing a layer's channels before resizing (ours) equals the library's
    order."""
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 9, 5, 7, generator=g)
    one = F.interpolate(maps.sum(1, keepdim=True), size=(37, 50), mode="bilinear", align_corners=False)
    each = F.interpolate(maps, size=(37, 50), mode="bilinear", align_corners=False).sum(1, keepdim=True)
    torch.testing.assert_close(one, each, rtol=1e-5, atol=1e-5)


def test_fullgrad_rejects_a_reused_layer() -> None:
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(conv, conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).eval()
    assert fullgrad_layers(model) == [conv, conv]  # module order, as the library's recursive search
    ctx = ExplainContext(arch="x", target_layer=conv, device=torch.device("cpu"))
    with pytest.raises(HfusError, match="exactly once"):
        FullGrad(model, ctx)(torch.rand(1, 3, 8, 8), torch.tensor([0]))


# ------------------------------------------------------------------------------------- attributions


def _eg_reference(model, x, t, sample, seed) -> torch.Tensor:
    outs = []
    for i, s in enumerate(image_seeds(x, seed)):  # the documented per-image seeding contract
        np.random.seed(s)
        torch.manual_seed(s)
        outs.append(
            CaptumGradientShap(model).attribute(
                x[i : i + 1], baselines=sample, target=t[i : i + 1], n_samples=40, stdevs=0.001
            )
        )
    return torch.cat(outs)


def _smoothgrad_reference(model, x, t, seed) -> torch.Tensor:
    outs = []
    for i, s in enumerate(image_seeds(x, seed)):
        torch.manual_seed(s)
        outs.append(
            NoiseTunnel(Saliency(model)).attribute(
                x[i : i + 1], nt_type="smoothgrad", nt_samples=5, stdevs=1.0, target=t[i : i + 1]
            )
        )
    return torch.cat(outs)


def test_attributions_match_captum_mobilenet(mobilenet) -> None:
    model, x, t = mobilenet
    x, t = x[:1], t[:1]  # Expected Gradients: 40 gradient passes per image on each side
    sample = _images(4, seed=5)
    ctx = _context("mobilenet_v2", model, sample)
    refs = {
        "expectedgradients": _eg_reference(model, x, t, sample, seed=7),
        "smoothgrad": _smoothgrad_reference(model, x, t, seed=7),
        "inputxgradient": CaptumInputXGradient(model).attribute(x.clone(), target=t),
    }
    for name, ref in refs.items():
        ours = load_builtin(name).build(model, ctx)(x, t)
        assert ours.shape == x.shape and torch.isfinite(ours).all(), name
        _assert_maps(ours.detach(), ref.detach(), f"mobilenet_v2/{name}", 1e-3)


@pytest.mark.slow
def test_attributions_match_captum_densenet(densenet) -> None:
    model, x, t = densenet
    ctx = _context("densenet201", model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refs = {
            "deeplift": CaptumDeepLift(model, eps=1e-9).attribute(x.clone(), target=t, baselines=0.0),
            "guidedbackprop": CaptumGuidedBackprop(model).attribute(x.clone(), target=t),
        }
    ours = {}
    for name, ref in refs.items():
        method = load_builtin(name)
        assert method.applicable("densenet201"), name
        ours[name] = method.build(model, ctx)(x, t)
        _assert_maps(ours[name], ref.detach(), f"densenet201/{name}", 1e-3)
    # DeepLift's completeness where it is defined: attributions sum to f(x) - f(0) (known answer)
    with torch.no_grad():
        gap = model(x)[0, t[0]] - model(torch.zeros_like(x))[0, t[0]]
    assert abs(float(ours["deeplift"].sum()) - float(gap)) < 1e-3 * max(1.0, abs(float(gap)))


def test_not_applicable_where_captum_would_silently_give_a_gradient(mobilenet) -> None:
    """On MobileNetV2 (ReLU6) captum's Guided Backprop is exactly the plain gradient: declared n/a there."""
    model, x, t = mobilenet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guided = CaptumGuidedBackprop(model).attribute(x[:1].clone(), target=t[:1])
    plain = Saliency(model).attribute(x[:1].clone(), target=t[:1], abs=False)
    assert torch.equal(guided, plain)  # same autograd graph, no hook fired: identical kernels
    for name, archs in {
        "deeplift": {"mobilenet_v2", "googlenet", "resnet101"},
        "guidedbackprop": {"mobilenet_v2", "googlenet"},
    }.items():
        method = load_builtin(name)
        assert set(method.metadata["not_applicable"]) == archs, name
        assert all(method.applicable(a) != (a in archs) for a in get_arch_names()), name
    for name in ("layercam", "xgradcam", "fullgrad", "expectedgradients", "smoothgrad", "inputxgradient"):
        assert all(load_builtin(name).applicable(a) for a in get_arch_names()), name


def get_arch_names() -> tuple[str, ...]:
    from hfus_xai_bench.models.zoo import ARCHS

    return tuple(ARCHS)


# ---------------------------------------------------------------------------------- behaviour, tiny


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))


def test_seeded_methods_do_not_depend_on_the_batch() -> None:
    model = _Tiny().eval()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 2, 1])
    ctx = ExplainContext(
        arch="tiny", target_layer=model.conv, device=torch.device("cpu"), seed=3, training_sample=x[:2] * 0.5
    )
    for cls in (AE.ExpectedGradients, AE.SmoothGrad):
        method = cls(model, ctx)
        batch = method(x, t)
        for i in range(3):
            torch.testing.assert_close(
                batch[i : i + 1], method(x[i : i + 1], t[i : i + 1]), rtol=1e-5, atol=1e-7
            )
        assert not torch.equal(batch, cls(model, ExplainContext(**{**ctx.__dict__, "seed": 4}))(x, t))


def test_expected_gradients_needs_the_training_sample() -> None:
    model = _Tiny().eval()
    ctx = ExplainContext(arch="tiny", target_layer=model.conv, device=torch.device("cpu"))
    with pytest.raises(HfusError, match="training_sample"):
        AE.ExpectedGradients(model, ctx)(torch.rand(1, 3, 16, 16), torch.tensor([0]))


def test_refuses_to_build_where_undefined(mobilenet) -> None:
    model, _, _ = mobilenet
    with pytest.raises(HfusError, match="undefined on mobilenet_v2.*n/a"):
        load_builtin("deeplift").build(model, _context("mobilenet_v2", model))


def test_registry_table_and_family_metadata() -> None:
    from hfus_xai_bench.explainers import registry

    assert registry.ECOSYSTEM_METHODS == (
        "layercam",
        "xgradcam",
        "fullgrad",
        "expectedgradients",
        "smoothgrad",
        "deeplift",
        "inputxgradient",
        "guidedbackprop",
    )
    assert set(registry.BUILTIN_METHODS) == set(registry.BUILTINS)
    for name in registry.ECOSYSTEM_METHODS:
        meta = load_builtin(name).metadata
        assert meta["url"].startswith("https://") and meta["citation"].count("{") == meta["citation"].count(
            "}"
        )
        assert meta["hyperparameters"] and meta["licence"] == "MIT (this implementation)", name
        assert meta["tuning_split"] == registry.FAMILY_METADATA["ecosystem"]["tuning_split"], name
    assert load_builtin("expectedgradients").metadata["hyperparameters"]["n_samples"] == 40  # LATEC
    assert load_builtin("gradcam").metadata["tuning_split"] == registry.FAMILY_METADATA["cam"]["tuning_split"]


def test_file_methods_declare_not_applicable(tmp_path) -> None:
    from hfus_xai_bench.explainers.loader import load_file

    ok = tmp_path / "ok.py"
    ok.write_text(
        "METADATA = {'not_applicable': {'googlenet': 'uses F.relu'}}\n"
        "def explain(model, images, targets, *, context):\n    return images.mean(1)\n"
    )
    method = load_file(ok)
    assert not method.applicable("googlenet") and method.applicable("mobilenet_v2")
    assert method.not_applicable("googlenet") == "uses F.relu"
    bad = tmp_path / "bad.py"
    bad.write_text(
        "METADATA = {'not_applicable': ['googlenet']}\n"
        "def explain(model, images, targets, *, context):\n    return images\n"
    )
    with pytest.raises(HfusError, match="not_applicable"):
        load_file(bad)


def test_applicable_archs_for_the_runner() -> None:
    from hfus_xai_bench.explainers.loader import applicable_archs

    method = load_builtin("guidedbackprop")
    assert applicable_archs(method, ("mobilenet_v2", "resnet101", "googlenet", "densenet201")) == (
        "resnet101",
        "densenet201",
    )
    assert applicable_archs(load_builtin("gradcam"), ("mobilenet_v2",)) == ("mobilenet_v2",)
    with pytest.raises(
        HfusError, match=r"undefined \(n/a\) on every architecture.*mobilenet_v2: MobileNetV2"
    ):
        applicable_archs(load_builtin("deeplift"), ("mobilenet_v2",))
