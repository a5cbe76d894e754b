"""CAM family (explainers/cam.py): conformance with the unmodified pytorch-grad-cam 1.5.7.

Real architectures with random weights (seeded) at small inputs (96×96 -> 3×3 target activations,
64×64 -> 2×2 for Score-CAM), so the library's own runs fit the CPU test budget. The heads are
re-initialised with a seeded scale so the logits are O(1) (random-init logits are ~1e-9 for
MobileNetV2 and ~1e3 for ResNet101), and every compared map is checked to be non-degenerate.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

from dataclasses import dataclass  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from cam_reference import (  # noqa: E402
    library_ablation_maps,
    library_maps,
    library_scorecam_weights,
)
from helpers import pearson  # noqa: E402
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from torch import nn  # noqa: E402

from hfus_xai_bench.errors import HfusError  # noqa: E402
from hfus_xai_bench.explainers import cam  # noqa: E402
from hfus_xai_bench.explainers.contract import ExplainContext  # noqa: E402
from hfus_xai_bench.explainers.registry import BUILTIN_METHODS, CAM_METHODS  # noqa: E402
from hfus_xai_bench.models.zoo import get_arch  # noqa: E402

ARCHS = ("mobilenet_v2", "googlenet", "resnet101", "densenet201")
GRADIENT = ("gradcam", "gradcampp", "hirescam", "eigengradcam")
CLASSES = {name: getattr(cam, BUILTIN_METHODS[name].split(":")[1]) for name in CAM_METHODS}
MIN_R = 0.999


@dataclass
class Setup:
    arch: str
    model: nn.Module
    context: ExplainContext
    images: torch.Tensor  # (2, 3, 96, 96)
    targets: torch.Tensor  # (2,), different classes
    runner_up: int = -1  # a second positive-logit class of image 0


def _smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 6, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def _build(arch: str, seed: int = 0) -> tuple[nn.Module, ExplainContext]:
    torch.manual_seed(seed)
    spec = get_arch(arch)
    model = spec.build()
    if arch == "googlenet":  # torchvision's random init (trunc-normal 0.01) makes it ~input-independent
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    layer = spec.resolve_target_layer(model)
    head = spec.head(model)
    linear = {
        "densenet201": "classifier",
        "googlenet": "fc",
        "mobilenet_v2": "classifier.1",
        "resnet101": "fc",
    }
    fc = model.get_submodule(linear[arch])
    # rescale the head so logits are O(1) on typical inputs: W ~ N(1, 1) * 2 / (std(pooled) * sqrt(C))
    probe = _smooth_images(4, 96, seed=99)
    captured = []
    with torch.no_grad():
        h = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        model(probe)
        h.remove()
    pooled = captured[0].mean(dim=(2, 3))
    g = torch.Generator().manual_seed(seed + 1)
    scale = 2.0 / (float(pooled.std()) * pooled.shape[1] ** 0.5)
    with torch.no_grad():
        # mean-shifted so that (pooled activations being >= 0 after the ReLUs) every class can have a
        # positive logit: random DenseNet201 is nearly input-independent and had only one otherwise
        fc.weight.copy_((torch.randn(fc.weight.shape, generator=g) + 1.0) * scale)
        fc.bias.zero_()
    ctx = ExplainContext(arch=arch, target_layer=layer, device=torch.device("cpu"), head=head, batch_size=256)
    return model, ctx


def _pick(model: nn.Module, size: int, n: int = 2) -> tuple[torch.Tensor, torch.Tensor, int]:
    """First seeded images whose targets (distinct classes) have positive logits.

    Image 0 gets its top class, image 1 its top class other than that; the returned extra class is
    image 0's runner-up (also positive). With GAP + linear heads and zero bias a Grad-CAM map sums to
    the target logit, so these targets give maps with positive mass (non-degenerate).
    """
    for seed in range(1, 40):
        images = _smooth_images(n, size, seed=seed)
        with torch.no_grad():
            logits = model(images)
        first = logits[0].argsort(descending=True)
        second = [int(c) for c in logits[1].argsort(descending=True) if int(c) != int(first[0])][0]
        if logits[0, first[0]] > 0 and logits[0, first[1]] > 0 and logits[1, second] > 0:
            return images, torch.tensor([int(first[0]), second][:n]), int(first[1])
    raise AssertionError("no seed gave positive target logits")


@pytest.fixture(scope="module", params=ARCHS)
def setup(request) -> Setup:
    model, ctx = _build(request.param)
    images, targets, runner_up = _pick(model, 96)
    s = Setup(request.param, model, ctx, images, targets)
    s.runner_up = runner_up
    return s


def _assert_conform(ours: torch.Tensor, ref: np.ndarray, label: str, max_abs: float = 1e-3) -> None:
    ours_np = ours.detach().cpu().numpy()
    assert ours_np.shape == ref.shape, label
    assert ours.dtype == torch.float32
    for i in range(len(ref)):
        # non-degenerate: a real spread of values in both maps, each scaled to [0, 1] as the library does
        assert ref[i].std() > 0.05 and ours_np[i].std() > 0.05, f"{label}: degenerate map {i}"
        # max is 1 up to the library's 1e-7 in the min-max scaling (MobileNetV2's random-init
        # activations are ~1e-10, so there it shows)
        assert ref[i].max() > 0.99 and ours_np[i].max() > 0.99, label
        r = pearson(ours_np[i], ref[i])
        assert r >= MIN_R, f"{label}: image {i} Pearson r = {r}"
    diff = float(np.abs(ours_np - ref).max())
    assert diff < max_abs, f"{label}: max abs diff {diff}"


# --------------------------------------------------------------------------------------------
# conformance on the four reference architectures


@pytest.mark.slow
@pytest.mark.parametrize("method", GRADIENT)
def test_gradient_cams_match_library(setup: Setup, method: str) -> None:
    ours = CLASSES[method](setup.model, setup.context)(setup.images, setup.targets)
    ref = library_maps(method, setup.model, setup.context.target_layer, setup.images, setup.targets)
    _assert_conform(ours, ref, f"{setup.arch}/{method}")


@pytest.mark.slow
def test_shared_gradient_pass_equals_single_methods(setup: Setup) -> None:
    maps = cam.gradient_cams(setup.model, setup.context, setup.images, setup.targets)
    assert set(maps) == {*GRADIENT, "layercam", "xgradcam"}  # + the ecosystem CAMs of cam_ecosystem.py
    for method in GRADIENT:
        single = CLASSES[method](setup.model, setup.context)(setup.images, setup.targets)
        assert torch.equal(maps[method], single), method


@pytest.mark.slow
def test_ablationcam_matches_library(setup: Setup) -> None:
    ours = cam.AblationCAM(setup.model, setup.context)(setup.images, setup.targets)
    ref = library_ablation_maps(
        setup.model,
        setup.context.target_layer,
        setup.context.head,
        setup.images,
        setup.targets,
        arch=setup.arch,
    )
    _assert_conform(ours, ref, f"{setup.arch}/ablationcam")


@pytest.mark.slow
def test_ablation_closed_form_equals_head_on_every_copy(setup: Setup) -> None:
    """The closed form is taken for all four archs and equals running the head on all ablated copies."""
    logits, acts = cam._activations(setup.model, setup.context.target_layer, setup.images)
    values = cam._ablation_values(acts)
    closed = cam._affine_head_ablation(setup.context.head, acts, setup.targets, values, logits)
    assert closed is not None
    head = setup.context.head
    direct = cam._ablated_scores(acts, setup.targets, values, lambda _i, a: head(a), per_call=1500)
    scale = float(direct.abs().max())
    torch.testing.assert_close(closed, direct, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.slow
def test_scorecam_matches_library(setup: Setup) -> None:
    """Full Score-CAM on MobileNetV2 (one 64×64 image: 1280 masked forwards on each side).

    The others need 1024-2048 masked forwards per image per side (minutes on 2 cores), so there the
    library's own ``ScoreCAM.get_cam_weights`` runs on a seeded subset of 24 channels and our
    weights and map on the same subset must match it. Image mixing across a batch is checked
    end to end against the library on the tiny CNN below.
    """
    images, targets, _ = _pick(setup.model, 64)
    if setup.arch == "mobilenet_v2":
        ours = cam.ScoreCAM(setup.model, setup.context)(images[:1], targets[:1])
        ref = library_maps("scorecam", setup.model, setup.context.target_layer, images[:1], targets[:1])
        _assert_conform(ours, ref, f"{setup.arch}/scorecam")
        return
    _, acts = cam._activations(setup.model, setup.context.target_layer, images)
    g = torch.Generator().manual_seed(3)
    # channels that vary over h×w in both images (a constant channel's library mask is rounding noise)
    varying = ((acts.amax(dim=(2, 3)) - acts.amin(dim=(2, 3))) > 1e-3 * acts.abs().amax()).all(dim=0)
    candidates = torch.nonzero(varying)[:, 0]
    subset = candidates[torch.randperm(len(candidates), generator=g)[:24]]
    sub = acts[:, subset].contiguous()
    ref_w = library_scorecam_weights(setup.model, setup.context.target_layer, images, targets, sub)
    ours_w = cam._score_cam_weights(setup.model, images, targets, sub, chunk=37).numpy()
    np.testing.assert_allclose(ours_w, ref_w, rtol=1e-4, atol=1e-7)
    assert ours_w.std(axis=1).min() > 1e-4  # the softmax is not flat
    ours_map = cam.library_postprocess(cam._weighted_sum(torch.from_numpy(ours_w), sub), (64, 64))
    ref_map = scale_cam_image(np.maximum((ref_w[:, :, None, None] * sub.numpy()).sum(1), 0), (64, 64))
    _assert_conform(ours_map, scale_cam_image(ref_map), f"{setup.arch}/scorecam-subset")


def test_masked_forward_chunks_follow_memory_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Score-CAM's masked images per forward: the images per call on the CPU; on CUDA as many as half
    the free memory holds at a quarter of the architecture's forward+backward bytes (8…1024), whatever
    the images per call. CUDA's free memory is faked, so this runs on any machine."""
    layer = nn.Identity()
    cpu = ExplainContext(arch="mobilenet_v2", target_layer=layer, device=torch.device("cpu"), batch_size=16)
    assert cam._chunk_size(cpu, cpu.device, 224, 224) == 16
    gpu = ExplainContext(arch="mobilenet_v2", target_layer=layer, device=torch.device("cuda"), batch_size=64)
    gib = 1 << 30
    for free, expected in ((2 * gib, 71), (16 * gib, 572), (80 * gib, 1024), (gib // 64, 8)):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _device, free=free: (free, 80 * gib))
        # MobileNetV2: 60e6 bytes per 224×224 image with gradients, a quarter without
        assert cam._chunk_size(gpu, gpu.device, 224, 224) == expected
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _device: (2 * gib, 80 * gib))
    assert cam._chunk_size(gpu, gpu.device, 112, 112) == 286  # a quarter of the pixels: 4× the images


@pytest.mark.slow
def test_hirescam_equals_gradcam_only_without_relu_before_pooling(setup: Setup) -> None:
    """HiRes-CAM == Grad-CAM when only GAP + linear follows the target (PROTOCOL §5.1).

    With the zoo's pinned targets that holds for all four archs, DenseNet201 included (its pinned
    target is the post-ReLU ``features_relu``). On DenseNet201's pre-ReLU ``features`` (norm5, the
    library's usual handle) the ReLU sits between target and pooling and the maps differ.
    """
    maps = cam.gradient_cams(setup.model, setup.context, setup.images, setup.targets, ("gradcam", "hirescam"))
    assert float((maps["gradcam"] - maps["hirescam"]).abs().max()) < 1e-5
    if setup.arch == "densenet201":
        pre_relu = ExplainContext(
            arch="densenet201", target_layer=setup.model.features, device=torch.device("cpu")
        )
        maps = cam.gradient_cams(setup.model, pre_relu, setup.images, setup.targets, ("gradcam", "hirescam"))
        assert float((maps["gradcam"] - maps["hirescam"]).abs().max()) > 0.01


@pytest.mark.slow
def test_one_target_per_image_batches(setup: Setup) -> None:
    """Each image of a batch gets its own target; the batch result equals the one-image results."""
    images = torch.cat([setup.images, setup.images[:1]])
    targets = torch.tensor([*setup.targets.tolist(), setup.runner_up])
    for method in ("gradcam", "ablationcam"):
        explainer = CLASSES[method](setup.model, setup.context)
        batch = explainer(images, targets)
        assert batch.shape == (3, 96, 96)
        assert bool((batch.amax(dim=(1, 2)) > 0.99).all()), method  # every map non-zero (max 1)
        assert not torch.allclose(batch[0], batch[2], atol=1e-3)  # same image, other target, other map
        for i in range(3):
            alone = explainer(images[i : i + 1], targets[i : i + 1])
            torch.testing.assert_close(batch[i : i + 1], alone, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------------------------
# behaviour: grad modes, determinism, parameters, errors


@pytest.fixture(scope="module")
def mobilenet() -> Setup:
    model, ctx = _build("mobilenet_v2")
    return Setup("mobilenet_v2", model, ctx, _smooth_images(2, 96, seed=1), torch.tensor([0, 2]))


def test_gradient_cams_under_no_grad_and_inference_mode(mobilenet: Setup) -> None:
    s = mobilenet
    flags = [p.requires_grad for p in s.model.parameters()]
    ref = cam.gradient_cams(s.model, s.context, s.images, s.targets)
    with torch.no_grad():
        under_no_grad = cam.gradient_cams(s.model, s.context, s.images, s.targets)
    with torch.inference_mode():
        images = s.images.clone()
        under_inference = cam.gradient_cams(s.model, s.context, images, s.targets)
    for method in GRADIENT:
        assert torch.equal(ref[method], under_no_grad[method]), method
        torch.testing.assert_close(ref[method], under_inference[method], atol=1e-6, rtol=0)
    assert [p.requires_grad for p in s.model.parameters()] == flags  # restored
    assert all(p.grad is None for p in s.model.parameters())  # no weight gradients


def test_deterministic_on_cpu(mobilenet: Setup) -> None:
    s = mobilenet
    for method in ("gradcam", "gradcampp", "eigengradcam", "ablationcam"):
        explainer = CLASSES[method](s.model, s.context)
        assert torch.equal(explainer(s.images, s.targets), explainer(s.images, s.targets)), method


def test_eigengradcam_sign_rule(mobilenet: Setup) -> None:
    """The projection correlates positively with the channel sum of grads * acts."""
    s = mobilenet
    acts, grads = cam._activations_and_grads(s.model, s.context.target_layer, s.images, s.targets)
    proj = cam._eigengradcam_raw(acts, grads)
    ref = (grads * acts).sum(1)
    for p, r in zip(proj, ref, strict=True):
        assert pearson(p.numpy(), r.numpy()) > 0
        # flipping the input's sign flips nothing: the rule pins the sign, not the data
    torch.testing.assert_close(cam._eigengradcam_raw(acts, -grads), -proj, atol=1e-5, rtol=1e-4)


def test_errors(mobilenet: Setup) -> None:
    s = mobilenet
    with pytest.raises(HfusError, match="one target class per image"):
        cam.GradCAM(s.model, s.context)(s.images, torch.tensor([1]))
    with pytest.raises(HfusError, match=r"\(B, 3, H, W\)"):
        cam.ScoreCAM(s.model, s.context)(s.images[0], torch.tensor([1]))
    with pytest.raises(HfusError, match="unknown gradient CAM"):
        cam.gradient_cams(s.model, s.context, s.images, s.targets, ("scorecam",))
    relu = nn.ReLU()
    twice = nn.Sequential(
        nn.Conv2d(3, 4, 3), relu, relu, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    ctx = ExplainContext(arch="x", target_layer=relu, device=torch.device("cpu"))
    with pytest.raises(HfusError, match="ran 2 times"):
        cam.GradCAM(twice, ctx)(torch.rand(1, 3, 8, 8), torch.tensor([0]))


def test_registry_names_resolve() -> None:
    for name in CAM_METHODS:
        cls = CLASSES[name]
        assert cls.kind == "map"
        assert cls.name == name


@pytest.mark.parametrize(("src", "dst"), [((7, 7), (224, 224)), ((3, 3), (96, 96)), ((5, 4), (37, 50))])
def test_postprocess_matches_library_scaling(src, dst) -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, *src)).astype(np.float32)
    expected = scale_cam_image(scale_cam_image(np.maximum(raw, 0), (dst[1], dst[0])))
    ours = cam.library_postprocess(torch.from_numpy(raw), dst).numpy()
    assert ours.shape == (3, *dst)
    np.testing.assert_allclose(ours, expected, atol=2e-6)
    # cv2 bilinear == torch bilinear with half-pixel centres (what the post-processing relies on)
    one = cv2.resize(raw[0], (dst[1], dst[0]))
    torch_one = F.interpolate(torch.from_numpy(raw[:1, None]), size=dst, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(torch_one[0, 0].numpy(), one, atol=2e-6)


# --------------------------------------------------------------------------------------------
# a tiny CNN: exact library paths that the reference archs do not reach


class _Tiny(nn.Module):
    """conv -> conv (target, no ReLU: activations can be negative) -> GAP -> linear."""

    def __init__(self, channels: int = 40, relu: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, channels, 3, 2, 1)
        )
        self.target = nn.ReLU() if relu else nn.Identity()
        self.fc = nn.Linear(channels, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.target(self.body(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))

    def head(self, a: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))


@pytest.fixture(scope="module", params=[False, True], ids=["signed", "relu"])
def tiny(request) -> Setup:
    torch.manual_seed(4)  # a seed whose maps are all non-degenerate (checked in _assert_conform)
    model = _Tiny(relu=request.param).eval()
    with torch.no_grad():
        model.fc.weight.mul_(20)
    ctx = ExplainContext(
        arch="tiny", target_layer=model.target, device=torch.device("cpu"), head=model.head, batch_size=7
    )
    return Setup("tiny", model, ctx, _smooth_images(3, 32, seed=4), torch.tensor([0, 3, 1]))


@pytest.mark.parametrize("method", CAM_METHODS)
def test_tiny_model_matches_library(tiny: Setup, method: str) -> None:
    """All six methods on the real handle; Ablation-CAM also without a head (full-model fallback)."""
    ref = library_maps(
        method, tiny.model, tiny.context.target_layer, tiny.images, tiny.targets, score_batch=16
    )
    ours = CLASSES[method](tiny.model, tiny.context)(tiny.images, tiny.targets)
    _assert_conform(ours, ref, f"tiny/{method}")
    if method == "ablationcam":
        no_head = ExplainContext(
            arch="tiny", target_layer=tiny.model.target, device=torch.device("cpu"), batch_size=7
        )
        fallback = cam.AblationCAM(tiny.model, no_head)(tiny.images, tiny.targets)
        _assert_conform(fallback, ref, "tiny/ablationcam-fallback")
    if method == "scorecam":
        other_chunk = ExplainContext(
            arch="tiny", target_layer=tiny.model.target, device=torch.device("cpu"), batch_size=1000
        )
        torch.testing.assert_close(
            CLASSES[method](tiny.model, other_chunk)(tiny.images, tiny.targets), ours, atol=1e-5, rtol=0
        )
        assert torch.equal(CLASSES[method](tiny.model, tiny.context)(tiny.images, tiny.targets), ours)


def test_ablation_non_affine_head_runs_every_copy(tiny: Setup) -> None:
    """A head that is not GAP + affine is detected; Ablation-CAM then runs it on every ablated copy."""
    model = tiny.model

    def head(a: torch.Tensor) -> torch.Tensor:
        return model.fc(torch.flatten(F.adaptive_avg_pool2d(a * a, 1), 1))

    logits, acts = cam._activations(model, model.target, tiny.images)
    logits = head(acts)
    values = cam._ablation_values(acts)
    assert cam._affine_head_ablation(head, acts, tiny.targets, values, logits) is None
    direct = cam._ablated_scores(acts, tiny.targets, values, lambda _i, a: head(a), per_call=11)
    one_call = cam._ablated_scores(acts, tiny.targets, values, lambda _i, a: head(a), per_call=10_000)
    torch.testing.assert_close(direct, one_call)


def test_ablation_values_follow_library_quirk() -> None:
    acts = torch.stack([torch.zeros(70, 2, 2), torch.full((70, 2, 2), -3.0)])
    acts[0, 5] = 1.0
    values = cam._ablation_values(acts)
    assert torch.equal(values[0], torch.zeros(70))
    expected = torch.tensor([-3.0], dtype=torch.float32)
    steps = []
    for _ in range(32):
        expected = expected - 1e7
        steps.append(expected)
    steps = torch.cat(steps)
    assert torch.equal(values[1, :32], steps) and torch.equal(values[1, 32:64], steps)
    assert torch.equal(values[1, 64:], steps[:6])
