"""PROTOCOL §3's call rules and §6's pass counts through the runner (15-image fake dataset, TinyNet)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import FAKE_DATASET, TinyNet, make_fakes, patch_fakes, write_method

from hfus_xai_bench.calls import PassCounter, fingerprint, harness_passes, set_call_state
from hfus_xai_bench.constants import COST_STAGES, RANDOMISATION_COPIES, ROAD_FRACTIONS, THRESHOLDS
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import registry
from hfus_xai_bench.metrics.registry import Metric, Output, Value
from hfus_xai_bench.runner import evaluate

RUN = {"dataset": FAKE_DATASET, "device": "cpu", "progress": False, "figure": False}

NOISY_BAND = """
import torch

def explain(model, images, targets, *, context):
    # model-blind: a bright band where skin usually is, plus unseeded noise
    maps = 0.5 * torch.rand(len(images), 224, 224)
    maps[:, 60:90] += 1.0
    return maps
"""


@pytest.fixture
def fakes(monkeypatch):
    patch_fakes(monkeypatch, make_fakes())


def test_model_blind_noise_gets_the_same_map_from_the_model_and_every_copy(fakes, tmp_path):
    """Every call of a batch starts from one state, so unseeded noise is the same noise: ρ = 1 (fail)."""
    path = write_method(tmp_path, NOISY_BAND)
    result = evaluate(path, folds="0,1", out=tmp_path / "out", save_maps=True, **RUN)
    with np.load(tmp_path / "out" / result.record["maps_file"]["path"]) as npz:
        maps, copies = npz["mobilenet_v2__fold0__maps"], npz["mobilenet_v2__fold0__maps_randomised"]
    assert copies.shape == (3, RANDOMISATION_COPIES, 224, 224)
    # bitwise: the same CPU generator state and the same ops on the same shapes give the same draws
    for k in range(RANDOMISATION_COPIES):
        assert np.array_equal(copies[:, k], maps)
    assert [row["rand2_rho"] for row in result.record["per_image"]] == [[1.0] * RANDOMISATION_COPIES] * 6
    assert result.record["metrics"]["randomisation@2/verdict"]["mobilenet_v2"]["verdict"] == "fail"


def test_call_state_sets_every_generator_and_the_context_seed():
    from hfus_xai_bench.explainers.contract import ExplainContext

    context = ExplainContext("mobilenet_v2", torch.nn.Identity(), torch.device("cpu"))
    draws = []
    for _ in range(2):
        set_call_state(2**63 - 5, context)
        draws.append((torch.rand(3).tolist(), np.random.rand(3).tolist(), __import__("random").random()))
    assert draws[0] == draws[1] and context.seed == 2**63 - 5


RESCALE = """
import torch

SEEN = set()

def explain(model, images, targets, *, context):
    if id(model) not in SEEN:  # once per model: the first call rescales the weights
        SEEN.add(id(model))
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.5)
    return images.mean(1)
"""


def test_a_method_that_rescales_the_weights_stops_the_run(fakes, tmp_path):
    path = write_method(tmp_path, RESCALE)
    out = tmp_path / "out"
    with pytest.raises(HfusError) as err:
        evaluate(path, out=out, **RUN)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "method 'method' changed the trained model during its call: parameter features.0.weight"
    )
    assert not out.exists() or not any(out.iterdir())  # nothing recorded


def test_hooks_a_method_leaves_are_not_a_change():
    model = TinyNet().eval()
    before = fingerprint(model)
    model.features[-1].register_forward_hook(lambda *_: None)
    model(torch.rand(1, 3, 224, 224))
    assert before.first_change(fingerprint(model)) is None
    model.train()
    assert before.first_change(fingerprint(model)) == "module '(root)' was switched to training mode"


def test_a_forward_a_method_sets_on_a_module_is_a_change():
    model = TinyNet().eval()
    before = fingerprint(model)
    model.features[0].forward = lambda x: torch.zeros(len(x), 8, 28, 28)
    assert before.first_change(fingerprint(model)) == "module 'features.0' had its forward replaced"


def test_harness_passes_suspend_the_hooks_a_method_left_and_keep_the_counters():
    model = TinyNet().eval()
    x = torch.rand(2, 3, 224, 224)
    clean = model(x)
    passes = PassCounter()
    passes.watch(model)
    seen = []
    zero = model.features[-1].register_forward_hook(lambda m, i, o: o * 0)
    first = model.register_forward_pre_hook(lambda m, a: seen.append("first"), prepend=True)
    hooked = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(type(m)))
    try:
        with passes.stage("predict"), torch.no_grad():
            with harness_passes(model):
                inside = model(x)
            outside = model(x)
        assert torch.equal(inside, clean) and not torch.equal(outside, clean)  # the zeroing hook is back
        assert seen[0] == "first" and len(seen) > 1  # only the pass outside saw the method's hooks, in order
        assert passes.forward["predict"] == 4  # the counter saw both passes
        assert list(model._forward_pre_hooks)[0] == first.id
    finally:
        for handle in (zero, first, hooked):
            handle.remove()
        passes.close()
    assert torch.equal(model(x), clean)  # the method's handles still remove their hooks


LEAKY_HOOK = """
def explain(model, images, targets, *, context):
    if not context.target_layer._forward_hooks:  # once per model: a hook that zeroes the target layer
        context.target_layer.register_forward_hook(lambda module, inputs, output: output * 0)
    return images.mean(1)
"""


def test_a_hook_a_method_leaves_does_not_change_the_metrics(monkeypatch, tmp_path):
    """The same maps with and without a leaked hook that zeroes the target layer: the same record."""
    records = []
    for name, source in (("leaky", LEAKY_HOOK), ("plain", LEAKY_HOOK.replace("if not", "if False and"))):
        patch_fakes(monkeypatch, make_fakes())  # a fresh model: the fakes hand one model to every load
        path = write_method(tmp_path, source, f"{name}.py")
        records.append(evaluate(path, out=tmp_path / name, **RUN).record)
    leaky, plain = records

    def scores(record):
        return [{k: v for k, v in row.items() if not k.startswith("seconds")} for row in record["per_image"]]

    assert leaky["metrics"] == plain["metrics"]
    assert scores(leaky) == scores(plain)


REPEAT = """
import torch

SEEN = set()

def explain(model, images, targets, *, context):
    key = (id(model), float(images.sum()), tuple(targets.tolist()))
    again = key in SEEN
    SEEN.add(key)
    maps = images.mean(1)
    return 1 - maps if again else maps  # another map when the same call comes again
"""


def test_a_method_that_behaves_differently_on_the_repeat_is_reported(fakes, tmp_path):
    path = write_method(tmp_path, REPEAT)
    with pytest.raises(
        HfusError, match=r"method 'method' gave other maps when its first call on mobilenet_v2 fold 0"
    ):
        evaluate(path, **RUN)


# ---------------------------------------------------------------------------------------- pass counts


def _outside_forward_rows() -> tuple[list[int], object]:
    """Image rows through any TinyNet root (the model and its copies), counted by a global forward hook."""
    rows = [0]

    def hook(module, args):
        if isinstance(module, TinyNet):
            rows[0] += int(args[0].shape[0])

    hook.harness = True  # an observer: kept through the harness's own passes (calls.harness_passes)
    return rows, torch.nn.modules.module.register_module_forward_pre_hook(hook)


@pytest.mark.parametrize(("method", "backward_per_call"), [("gradcam", 1), ("occlusion30", 0)])
def test_counts_equal_an_outside_count(fakes, method, backward_per_call):
    """A gradient method and a perturbation method: the record's forward rows = a global forward hook's count;
    Grad-CAM makes one backward row per image and call (model, K copies, runner-up, the repeat of the first
    batch)."""
    rows, handle = _outside_forward_rows()
    try:
        result = evaluate(method, batch_size=2, **RUN)
    finally:
        handle.remove()
    cost = result.record["cost"]["mobilenet_v2"]
    assert cost["forward_rows"] == rows[0]
    for kind in ("forward_rows", "backward_rows"):
        assert cost[kind] == sum(cost[f"{kind}/{s}"] for s in COST_STAGES)
    n, first = 3, 2  # 3 images in 2 batches; the repeat explains the first batch (2 images)
    assert cost["forward_rows/predict"] == n
    # confidence: s0, keep, remove and keep/remove per threshold; ROAD: clean + 5 fractions × MoRF/LeRF
    assert cost["forward_rows/confidence"] == (3 + 2 * len(THRESHOLDS)) * n
    assert cost["forward_rows/road"] == (1 + 2 * len(ROAD_FRACTIONS)) * n
    calls = n * (1 + RANDOMISATION_COPIES + 1)  # the model, K copies, the runner-up class (§9)
    assert cost["backward_rows"] == backward_per_call * (calls + first)
    assert cost["backward_rows/runner_up"] == backward_per_call * n
    assert cost["backward_rows/repeat"] == backward_per_call * first
    fe = (cost["forward_rows"] - cost["forward_rows/repeat"]) + 2 * (
        cost["backward_rows"] - cost["backward_rows/repeat"]
    )
    assert cost["fe_per_image"] == pytest.approx(fe / n)
    assert cost["device"] == "cpu" and cost["precision"] == "fp32"
    assert all(cost[f"seconds/{s}"] > 0 for s in ("predict", "method", "randomisation", "repeat", "road"))


def test_pass_counter_counts_rows_per_stage_and_refuses_passes_outside_a_stage():
    model = TinyNet().eval()
    passes = PassCounter()
    passes.watch(model)
    x = torch.rand(3, 3, 224, 224, requires_grad=True)
    with passes.stage("method"):
        out = model(x)
        torch.autograd.grad(out[:, 0].sum(), x, retain_graph=True)
        out[:2].sum().backward()  # a second backward through the same 3-row output: 3 more rows
    with passes.stage("road"), torch.no_grad():
        model(x[:1])
    assert dict(passes.forward) == {"method": 3, "road": 1}
    assert dict(passes.backward) == {"method": 6}
    with pytest.raises(HfusError, match="outside any cost stage"):
        model(x)
    passes.close()
    model(x)  # no hooks left


def _runner_up_probe(inputs, config):
    ok = np.asarray(inputs.extras["runner_up_ok"], bool)
    return {"probe_runner_up": np.where(ok, inputs.extras["runner_up"], -1).astype(float)}


def test_runner_up_call_and_its_rows(fakes, monkeypatch):
    """A metric that declares the runner-up inputs makes the runner explain the runner-up class (§9)."""
    probe = Metric(
        id="runner_probe@1",
        category="sanity",
        needs="maps",
        function=_runner_up_probe,
        values=(Value("probe_runner_up"),),
        outputs=(Output("", "none", (-1.0, 3.0), "test probe", "probe_runner_up"),),
        description="test probe",
        required=False,
        extras=("m255_runner_up", "runner_up_ok", "runner_up"),
    )
    monkeypatch.setitem(registry.METRICS, probe.id, probe)
    result = evaluate("gradcam", **RUN)
    rows = result.record["per_image"]
    from hfus_xai_bench.data import dataset as D
    from hfus_xai_bench.models import checkpoints
    from hfus_xai_bench.runner import model_input

    model, _ = checkpoints.load_model("mobilenet_v2")
    images = D.fold_arrays(D.load_dataset(FAKE_DATASET), 0, "test").images
    with torch.no_grad():
        logits = model(model_input(images, torch.device("cpu")))
    for row, z in zip(rows, logits.tolist(), strict=True):
        others = [c for c in range(len(z)) if c != row["target"]]
        assert row["runner_up"] == max(others, key=lambda c: (z[c], -c)) and row["runner_up_failed"] is None
    assert [r["probe_runner_up"] for r in rows] == [float(r["runner_up"]) for r in rows]
    cost = result.record["cost"]["mobilenet_v2"]
    assert cost["backward_rows/runner_up"] == 3 and cost["forward_rows/runner_up"] == 3
