"""The four reference architectures: target layers, heads, DenseNet's pinned post-ReLU activation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.contract import ExplainContext
from hfus_xai_bench.models.zoo import ARCHS, build_model, get_arch

EXPECTED_CHANNELS = {"densenet201": 1920, "googlenet": 1024, "mobilenet_v2": 1280, "resnet101": 2048}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Batch-2 forwards: one thread avoids OpenMP spin-waits when the 2 cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def x224() -> torch.Tensor:
    return torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def _forward_with_target(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor):
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    assert len(seen) == 1
    return logits, seen[0]


def test_registry_names_and_aliases():
    assert set(ARCHS) == set(EXPECTED_CHANNELS)
    assert get_arch("DenseNet").name == "densenet201"
    assert get_arch("MobileNet-V2").name == "mobilenet_v2"
    with pytest.raises(HfusError, match="unknown architecture"):
        get_arch("vgg16")


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(EXPECTED_CHANNELS))
def test_target_layer_shape_and_head_reproduces_logits(arch: str, x224: torch.Tensor):
    torch.manual_seed(0)
    spec = get_arch(arch)
    model = spec.build()
    assert not model.training
    assert spec.channels == EXPECTED_CHANNELS[arch]
    logits, acts = _forward_with_target(model, spec.resolve_target_layer(model), x224)
    assert logits.shape == (2, 4)
    assert acts.shape == (2, EXPECTED_CHANNELS[arch], 7, 7)
    with torch.no_grad():
        head_logits = spec.head(model)(acts)
    torch.testing.assert_close(head_logits, logits, rtol=1e-4, atol=1e-5)
    if arch == "densenet201":
        # pinned post-ReLU activation: non-negative, equal to relu(features(x)), and the features
        # output itself is left untouched (no inplace ReLU rewrites what a hook saw)
        assert (acts >= 0).all()
        _, pre = _forward_with_target(model, model.features, x224)
        assert (pre < 0).any(), "features output was modified in place"
        torch.testing.assert_close(acts, F.relu(pre), rtol=0, atol=0)


def test_googlenet_transform_input_is_recorded_on_the_model():
    assert build_model("googlenet").transform_input is False
    assert build_model("googlenet", transform_input=True).transform_input is True


def test_imagenet_weights_missing_from_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(HfusError, match="--init scratch"):
        build_model("mobilenet_v2", imagenet=True)


def test_mobilenet_v2_is_torchvisions_without_importing_it(x224: torch.Tensor) -> None:
    """models/mobilenet.py = torchvision's MobileNetV2: same state-dict keys and shapes, same modules in the
    same order (the §7.1 randomised copy draws the same numbers), the same seeded init, bitwise outputs."""
    from torchvision.models import mobilenet_v2

    from hfus_xai_bench.metrics.randomisation import randomised_model

    torch.manual_seed(3)
    ref = mobilenet_v2()
    ref.classifier[-1] = torch.nn.Linear(1280, 4)
    ref.eval()
    torch.manual_seed(3)
    ours = build_model("mobilenet_v2")
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in ref.state_dict().items()
    ]
    # the same seeded init and the same modules, shapes and kernels in one process: exact
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [(n, type(m).__name__) for n, m in ours.named_modules()] == [
        (n, type(m).__name__) for n, m in ref.named_modules()
    ]
    assert [(n, m.inplace) for n, m in ours.named_modules() if isinstance(m, torch.nn.ReLU6)] == [
        (n, m.inplace) for n, m in ref.named_modules() if isinstance(m, torch.nn.ReLU6)
    ]
    with torch.no_grad():
        assert torch.equal(ours(x224), ref(x224))
        for model in (ours, ref):
            model.to(memory_format=torch.channels_last)
        assert torch.equal(
            ours(x224.contiguous(memory_format=torch.channels_last)),
            ref(x224.contiguous(memory_format=torch.channels_last)),
        )
        assert torch.equal(randomised_model(ours, 0)(x224), randomised_model(ref, 0)(x224))


def test_the_default_architecture_does_not_import_torchvision() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from hfus_xai_bench.models.zoo import build_model; from hfus_xai_bench import runner; "
        "build_model('mobilenet_v2'); print('torchvision' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"


def test_a_context_for_a_model_carries_its_target_layer_and_head(x224: torch.Tensor) -> None:
    torch.manual_seed(0)
    spec = get_arch("mobilenet_v2")
    model = spec.build()
    context = ExplainContext.for_model(spec, model, "cpu", seed=3, batch_size=5)
    assert (context.arch, context.device, context.seed, context.batch_size) == (
        "mobilenet_v2",
        torch.device("cpu"),
        3,
        5,
    )
    assert context.target_layer is spec.resolve_target_layer(model)
    logits, acts = _forward_with_target(model, context.target_layer, x224)
    with torch.no_grad():
        torch.testing.assert_close(context.head(acts), logits, rtol=1e-4, atol=1e-5)
    assert context.depth_prior is None and context.training_sample is None and context.extra == {}
