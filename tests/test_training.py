"""Trainer: batched seeded augmentation, deterministic training, best-validation selection, cards, CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from hfus_xai_bench import cli
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.models import checkpoints as C
from hfus_xai_bench.models import pooling as P
from hfus_xai_bench.models import training as T
from hfus_xai_bench.models import training_run as R

SIZE = 48  # tiny images: MobileNetV2 is fully convolutional + GAP, so the logic is the same as at 224


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = rng.integers(0, 60, (n, SIZE, SIZE, 3), dtype=np.uint8)
    for i, c in enumerate(labels):  # a class-dependent bright band, so there is something to learn
        images[i, 8 + 8 * c : 16 + 8 * c, :, 1] = 220
    return images, labels.astype(np.int64)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HFUS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # tiny tensors: one thread avoids OpenMP spin-waiting when the 2 cores are shared (20x less CPU)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_augmentation_identity_flip_and_rotation():
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(T.augment_batch(x, g, max_degrees=0.0, flip_p=0.0), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        T.augment_batch(x, g, max_degrees=0.0, flip_p=1.0), x.flip(-1), atol=1e-5, rtol=0
    )
    # rotation: same angle draw as the augmentation, compared with torchvision's rotate (interior)
    angles = (torch.rand(3, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2 - 1) * 15
    y = T.augment_batch(x, torch.Generator().manual_seed(5), flip_p=0.0)
    for i, a in enumerate(angles.tolist()):
        assert abs(a) <= 15
        ref = TF.rotate(x[i], a, interpolation=InterpolationMode.BILINEAR)
        torch.testing.assert_close(y[i, :, 8:24, 8:24], ref[:, 8:24, 8:24], atol=1e-5, rtol=0)
    # seeded: same generator seed, same output; each image draws its own transform
    same = x[:1].expand(8, -1, -1, -1)
    a = T.augment_batch(same, torch.Generator().manual_seed(3))
    b = T.augment_batch(same, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == same.shape and a.dtype == same.dtype
    assert len({round(float(v), 5) for v in a.sum((1, 2, 3))}) == 8
    assert a.min() >= 0 and a.max() <= 1 + 1e-6


def test_training_is_deterministic_and_keeps_best_validation():
    xtr, ytr = _toy(8, 0)
    xva, yva = _toy(4, 1)
    kw = dict(epochs=2, init="scratch", seed=0, device="cpu", batch_size=4, progress=False)
    m1, h1 = T.train_model("mobilenet_v2", xtr, ytr, xva, yva, **kw)
    m2, h2 = T.train_model("mobilenet_v2", xtr, ytr, xva, yva, **kw)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert [r["train_loss"] for r in h1["epochs"]] == [r["train_loss"] for r in h2["epochs"]]
    assert not m1.training and h1["init"] == "scratch" and len(h1["epochs"]) == 2
    assert [r["lr"] for r in h1["epochs"]] == [1e-3, 1e-3]
    best = h1["epochs"][h1["best_epoch"] - 1]
    assert best["val_acc"] == max(r["val_acc"] for r in h1["epochs"]) == h1["best_val_acc"]
    val_pred = T.predict_logits(m1, xva).argmax(1).numpy()
    assert float(np.mean(val_pred == yva)) == pytest.approx(h1["best_val_acc"])
    assert not torch.are_deterministic_algorithms_enabled()  # global switch restored
    # a different seed gives different weights
    m3, _ = T.train_model("mobilenet_v2", xtr, ytr, xva, yva, **{**kw, "seed": 1, "epochs": 1})
    assert not torch.equal(m3.state_dict()["classifier.1.weight"], s1["classifier.1.weight"])


def _backward_ops(out: torch.Tensor) -> set[str]:
    """Names of the autograd nodes behind ``out``."""
    seen, todo, names = set(), [out.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo.extend(n for n, _ in node.next_functions)
    return names


def test_spatial_mean_equals_global_adaptive_pooling_in_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 5, 7, 7), (3, 4, 6, 9), (1, 8, 1, 1)]:
        x = torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last).requires_grad_()
        w = torch.randn(shape[:2] + (1, 1), generator=g)
        ref = torch.nn.functional.adaptive_avg_pool2d(x, (1, 1))
        (gx_ref,) = torch.autograd.grad((ref * w).sum(), x)
        with P.GlobalPoolAsMean():
            out = torch.nn.AdaptiveAvgPool2d((1, 1))(x)
            same = torch.nn.functional.adaptive_avg_pool2d(x, 1)
            other = torch.nn.functional.adaptive_avg_pool2d(x, (2, 2))  # not global: passed through
        (gx,) = torch.autograd.grad((out * w).sum(), x)
        # float32 sums of ≤ 54 values in a different order: a few ulps
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(same, ref, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(gx, gx_ref, atol=1e-7, rtol=1e-6)
        assert "AdaptiveAvgPool2DBackward0" not in _backward_ops(out) | _backward_ops(same)
        assert torch.equal(other, torch.nn.functional.adaptive_avg_pool2d(x, (2, 2)))
        assert "AdaptiveAvgPool2DBackward0" in _backward_ops(other)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "googlenet"])  # F.adaptive_avg_pool2d / the module
def test_training_step_with_pooling_as_mean_matches_the_standard_one(arch):
    """The CUDA training path (pooling as a spatial mean) on the CPU: no adaptive-pooling backward left,
    the same loss and the same updated weights as the standard step to float tolerance, model unchanged."""
    torch.manual_seed(0)
    model = T.build_model(arch).train()
    twin = T.build_model(arch).train()
    twin.load_state_dict(model.state_dict())
    keys = list(model.state_dict())
    x = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])
    results = []
    for m, as_mean in ((model, True), (twin, False)):
        torch.manual_seed(2)  # the same dropout draw in both
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        step = T._Step(m, opt, torch.Generator().manual_seed(3), augment=True, pool_as_mean=as_mean)
        results.append(step(x, y))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, twin.state_dict()[k], atol=1e-5, rtol=1e-4, msg=k)
    assert list(model.state_dict()) == keys and type(model) is type(twin)
    with P.GlobalPoolAsMean():
        assert "AdaptiveAvgPool2DBackward0" not in _backward_ops(model(x))


# ATen ops without a deterministic CUDA kernel: under use_deterministic_algorithms(True) they raise on CUDA
# (torch.use_deterministic_algorithms' docs, the "will throw a RuntimeError" list, as ATen op names; the
# forward of grid_sample / adaptive pooling is deterministic, only these backward passes are not)
CUDA_NONDETERMINISTIC = {
    "_adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d_backward",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool3d_backward",
    "avg_pool3d_backward",
    "fractional_max_pool2d_backward",
    "fractional_max_pool3d_backward",
    "max_unpool2d",
    "max_unpool3d",
    "upsample_linear1d_backward",
    "upsample_bilinear2d_backward",
    "_upsample_bilinear2d_aa_backward",
    "upsample_bicubic2d_backward",
    "_upsample_bicubic2d_aa_backward",
    "upsample_trilinear3d_backward",
    "reflection_pad1d_backward",
    "reflection_pad2d_backward",
    "reflection_pad3d_backward",
    "nll_loss2d_forward",
    "_ctc_loss_backward",
    "_embedding_bag_backward",
    "put_",
    "histc",
    "bincount",
    "median",
    "nanmedian",
    "grid_sampler_2d_backward",
    "grid_sampler_3d_backward",
    "scatter_reduce",
}


class _AtenOps(TorchDispatchMode):
    """Records the name of every ATen op run inside it (forward and autograd's backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _training_step_ops(arch: str) -> set[str]:
    """The ATen ops of one augmented training step of ``arch`` as the CUDA path runs it, then a prediction."""
    torch.manual_seed(0)
    model = T.build_model(arch).train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    step = T._Step(model, opt, torch.Generator().manual_seed(1), augment=True, pool_as_mean=True)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with _AtenOps() as ops:
        step(x, torch.tensor([0, 3]))
        T.predict_logits(model.eval(), x, torch.device("cpu"), 2)
    return ops.names


@pytest.mark.parametrize("arch", ["mobilenet_v2", "googlenet", "resnet101", "densenet201"])
def test_the_cuda_training_step_uses_no_op_without_a_deterministic_cuda_kernel(arch):
    """GPU-free guard for deterministic CUDA training (issue 20): every op of the CUDA path's training step,
    traced on the CPU, has a deterministic CUDA kernel, so strict use_deterministic_algorithms does not raise
    for these ops. On CUDA batch norm and convolutions run through cuDNN instead, deterministic under the
    training's cudnn.deterministic switch; only the device itself can show the two runs' sha256 agree."""
    ops = _training_step_ops(arch)
    assert {"convolution_backward", "nll_loss_backward", "mean"} <= ops  # the backward pass was traced
    assert ops & CUDA_NONDETERMINISTIC == set()
    # the tracer names backward ops as the list does: pooling that is not global runs the one that raises
    x = torch.rand(1, 2, 6, 6, requires_grad=True)
    with _AtenOps() as ops:
        torch.nn.functional.adaptive_avg_pool2d(x, (2, 3)).sum().backward()
    assert ops.names & CUDA_NONDETERMINISTIC == {"_adaptive_avg_pool2d_backward"}


def test_init_from_path_and_errors(tmp_path, monkeypatch):
    torch.manual_seed(0)
    src = T.build_model("mobilenet_v2")
    C.save_checkpoint(
        src, tmp_path / "src", {"arch": "mobilenet_v2", "dataset": "toy", "fold": 0, "dtype": "float16"}
    )
    model, desc = T.init_model("mobilenet_v2", tmp_path / "src.safetensors")
    assert desc.startswith("path:src.safetensors@sha256:")
    w = src.state_dict()["features.1.conv.0.0.weight"]
    assert torch.equal(model.state_dict()["features.1.conv.0.0.weight"], w.half().float())
    from safetensors.torch import save_file

    save_file({"nothing.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(HfusError, match="no tensor fits"):
        T.init_model("mobilenet_v2", tmp_path / "other.safetensors")
    with pytest.raises(HfusError, match="not 'imagenet', 'scratch'"):
        T.init_model("mobilenet_v2", tmp_path / "nope.safetensors")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(HfusError, match="--init scratch"):
        T.init_model("mobilenet_v2", "imagenet")
    with pytest.raises(HfusError, match="float32 or float16"):
        R.train("mobilenet_v2", dtype="bfloat16")


@pytest.fixture
def fake_data(monkeypatch):
    """Replace the data layer by a tiny in-memory dataset (folds: train 8, val 4, test 4 images)."""
    from hfus_xai_bench.data import dataset as hub

    calls = {}

    def load_dataset(source="hfus-synth", revision=None):
        calls["load"] = (source, revision)
        return "DS"

    def fold_arrays(ds, fold, split="test"):
        images, labels = _toy(
            {"train": 8, "val": 4, "test": 4}[split], {"train": 0, "val": 1, "test": 2}[split]
        )
        n = len(labels)
        return hub.FoldArrays(
            [f"{split}{i}" for i in range(n)],
            images,
            labels,
            np.zeros((n, SIZE, SIZE), np.uint8),
            [split] * n,
            twins=images[::-1].copy() if calls.get("twins") else None,  # a track with twins
        )

    def dataset_provenance(ds):
        return {"id": "hfus-synth", "revision": "synth-test", "sha256": "ab" * 32, "n_images": 16}

    monkeypatch.setattr(hub, "load_dataset", load_dataset)
    monkeypatch.setattr(hub, "fold_arrays", fold_arrays)
    monkeypatch.setattr(hub, "dataset_provenance", dataset_provenance)
    return calls


def test_train_writes_verified_card_and_cli(tmp_path, fake_data, capsys, monkeypatch):
    kw = dict(fold=2, epochs=1, init="scratch", device="cpu", seed=0, dtype="float16", batch_size=4, lr=0.01)
    card_path = R.train("mobilenet_v2", out_dir=tmp_path, progress=False, **kw)
    assert card_path == tmp_path / "mobilenet_v2_hfus-synth_fold2.json"
    card = json.loads(card_path.read_text())
    weights = card_path.with_suffix(".safetensors")
    assert card["sha256"] == C.sha256_file(weights) and card["dtype"] == "float16"
    assert card["dataset"]["revision"] == "synth-test" and card["fold"] == 2
    assert card["split"] == {"test": 2, "val": 3, "train": [0, 1, 4], "n_train": 8, "n_val": 4, "n_test": 4}
    assert (
        card["recipe"]["lr"] == 0.01
        and card["recipe"]["batch_size"] == 4
        and card["recipe"]["momentum"] == 0.9
    )
    assert card["recipe"]["step_size"] == 7 and card["recipe"]["gamma"] == 0.1 and card["epochs"] == 1
    assert (
        card["init"] == "scratch" and card["seed"] == 0 and card["environment"]["torch"] == torch.__version__
    )
    assert card["environment"]["seconds_per_epoch"] > 0 and len(card["history"]) == 1
    assert card["environment"]["deterministic"] == T.DETERMINISM_OTHER
    # the same seed, data, device kind and torch: bitwise the same weights, so the same checkpoint sha256
    again = json.loads(R.train("mobilenet_v2", out_dir=tmp_path / "again", progress=False, **kw).read_text())
    assert again["sha256"] == card["sha256"] and not torch.are_deterministic_algorithms_enabled()
    assert set(card["metrics"]["test"]) >= {"accuracy", "precision", "recall", "f1"}
    # the recorded test accuracy is that of the stored (float16, upcast) weights
    model, info = C.load_model("mobilenet_v2", checkpoint=weights)
    images, labels = _toy(4, 2)
    acc = float(np.mean(T.predict_logits(model, images).argmax(1).numpy() == labels))
    assert acc == card["metrics"]["test"]["accuracy"] and info.checkpoint.dataset == "hfus-synth"

    # CLI: into the user cache, where load_model finds it by (arch, dataset, fold); a track with twins
    fake_data["twins"] = True
    rc = cli.main(
        [
            "train",
            "--models",
            "mobilenet",
            "--folds",
            "1",
            "--epochs",
            "1",
            "--init",
            "scratch",
            "--device",
            "cpu",
            "--batch-size",
            "4",
            "--quiet",
            "--seed",
            "3",
        ]
    )
    assert rc == 0 and fake_data["load"] == ("hfus-synth", None)
    out = capsys.readouterr().out
    assert "test fold 1: accuracy" in out and "mobilenet_v2_hfus-synth_fold1_seed3.safetensors" in out
    assert re.search(r"twins of correctly classified AD/PS/ST test images predicted CG: \d+/\d+\n", out)
    monkeypatch.setattr(C, "REGISTRY", {})  # else the registered fold 1 comes first (find_checkpoint)
    _, info = C.load_model("mobilenet_v2", fold=1, revision="synth-test")  # the fake data's revision
    assert info.checkpoint.origin == "cache" and info.checkpoint.meta["seed"] == 3
    # the card records the command as typed (the library call above recorded none) and, with twins, the
    # flip block (the library call's data had none)
    assert info.checkpoint.meta["command"].startswith(
        "hfus-bench train --models mobilenet --folds 1 --epochs 1"
    )
    assert "command" not in card and "counterfactual" not in card
    assert set(info.checkpoint.meta["counterfactual"]["per_class"]) == {"AD", "PS", "ST"}
    # ImageNet init without the torchvision weights in the local cache: one-line error, exit code 2
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert cli.main(["train", "--models", "mobilenet", "--folds", "0", "--init", "imagenet", "--quiet"]) == 2
    assert "--init scratch" in capsys.readouterr().err


def test_twin_flip_block_counts_correct_non_cg_images_whose_twin_is_cg():
    """A stand-in model whose logits are read off the image: the block counts by hand."""
    from hfus_xai_bench.data.dataset import FoldArrays

    class ByPixel(torch.nn.Module):  # logits: one-hot of the class coded in the red channel of pixel (0, 0)
        def forward(self, x):
            return torch.nn.functional.one_hot((x[:, 0, 0, 0] * 255).round().long(), 4).float()

    def images(classes):
        out = np.zeros((len(classes), 8, 8, 3), np.uint8)
        out[:, 0, 0, 0] = classes
        return out

    labels = np.array([0, 0, 2, 3, 3, 1])  # AD AD PS ST ST CG
    preds = [0, 2, 2, 3, 3, 1]  # the second AD is misclassified
    twins = [1, 1, 0, 1, 3, 1]  # PS's twin is not CG; the second ST's twin neither
    test = FoldArrays(list("abcdef"), images(preds), labels, np.zeros((6, 8, 8), np.uint8), ["g"] * 6)
    assert (
        R.twin_flip_block(ByPixel(), test, 3, T.predict_logits(ByPixel(), test.images)) is None
    )  # no twins: real data
    test.twins = images(twins)
    block = R.twin_flip_block(ByPixel(), test, 3, T.predict_logits(ByPixel(), test.images))
    assert block["per_class"] == {
        "AD": {"flipped": 1, "n": 1},
        "PS": {"flipped": 0, "n": 1},
        "ST": {"flipped": 1, "n": 2},
    }
    assert block["n"] == 4 and block["twin_flip_rate"] == 0.5 and "(fold 3)" in block["definition"]


def test_twin_flip_block_reproduces_the_shipped_card(synth_ds):
    """The shipped fold-0 card's block was computed before the card recorded it itself: the same counts."""
    from hfus_xai_bench.data.dataset import fold_arrays

    model, info = C.load_model("mobilenet_v2", fold=0)
    test = fold_arrays(synth_ds, 0, split="test")
    block = R.twin_flip_block(model, test, 0, T.predict_logits(model, test.images))
    assert block == info.checkpoint.meta["counterfactual"]


def _interrupt_at_epoch(monkeypatch, n: int) -> list[int]:
    """Make the n-th training epoch raise KeyboardInterrupt (a killed run); return the epoch call log."""
    calls: list[int] = []
    real = T._epoch

    def epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "_epoch", epoch)
    return calls


def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    # exact claim: same process, threads and shapes, so the resumed epochs run the same operations on the
    # same (restored, bit-exact) tensors as the uninterrupted run's. MobileNetV2's dropout draws from the
    # global generator and the scheduler's step after epoch 3 (resumed) lowers the learning rate only if
    # its restored epoch count says so: all of the state is covered.
    xtr, ytr = _toy(8, 0)
    xva, yva = _toy(4, 1)
    kw = dict(epochs=4, init="scratch", seed=0, device="cpu", batch_size=4, step_size=3, progress=False)
    full, h_full = T.train_model("mobilenet_v2", xtr, ytr, xva, yva, **kw)
    state, real_epoch = tmp_path / "m.resume.pt", T._epoch
    _interrupt_at_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        T.train_model("mobilenet_v2", xtr, ytr, xva, yva, state_path=state, state_every=0, **kw)
    saved = torch.load(state, weights_only=True)
    assert len(saved["records"]) == 2 and saved["fingerprint"]["arch"] == "mobilenet_v2"
    monkeypatch.setattr(T, "_epoch", real_epoch)
    calls = _interrupt_at_epoch(monkeypatch, 99)  # only counts
    resumed, h_res = T.train_model("mobilenet_v2", xtr, ytr, xva, yva, state_path=state, **kw)
    assert len(calls) == 2  # it continued after epoch 2 rather than starting over
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in h_full["epochs"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in h_res["epochs"]]
    assert [r["lr"] for r in h_res["epochs"]] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4])
    assert h_res["best_epoch"] == h_full["best_epoch"]


def test_train_refuses_a_stale_or_foreign_state_and_resumes_with_resume(tmp_path, fake_data, monkeypatch):
    from hfus_xai_bench.models import resume as RS

    monkeypatch.setattr(RS, "RESUME_INTERVAL_S", 0.0)
    kw = dict(fold=0, epochs=2, init="scratch", device="cpu", seed=0, batch_size=4, progress=False)
    card = json.loads(R.train("mobilenet_v2", out_dir=tmp_path / "full", **kw).read_text())
    out, real_epoch = tmp_path / "cut", T._epoch
    state = out / "mobilenet_v2_hfus-synth_fold0.resume.pt"
    _interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        R.train("mobilenet_v2", out_dir=out, **kw)
    assert state.is_file() and not (out / "mobilenet_v2_hfus-synth_fold0.json").exists()
    monkeypatch.setattr(T, "_epoch", real_epoch)
    with pytest.raises(HfusError, match="add --resume to continue it, or delete the file"):
        R.train("mobilenet_v2", out_dir=out, **kw)
    with pytest.raises(HfusError, match="written by a run with another recipe"):
        R.train("mobilenet_v2", out_dir=out, resume=True, **{**kw, "lr": 0.01})
    # the state is still there after both refusals; --resume finishes the run with the same checkpoint
    resumed = R.train("mobilenet_v2", out_dir=out, resume=True, **kw)
    assert json.loads(resumed.read_text())["sha256"] == card["sha256"] and not state.exists()
    # --resume again: the finished checkpoint is kept, nothing trains (an epoch would raise)
    _interrupt_at_epoch(monkeypatch, 1)
    assert R.train("mobilenet_v2", out_dir=out, resume=True, **kw) == resumed
    with pytest.raises(HfusError, match=r"a checkpoint of another run \(epochs differ\); delete it"):
        R.train("mobilenet_v2", out_dir=out, resume=True, **{**kw, "epochs": 3})
    weights = resumed.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:-1] + b"x")
    with pytest.raises(HfusError, match="not its card's sha256; delete mobilenet_v2_hfus-synth_fold0.json"):
        R.train("mobilenet_v2", out_dir=out, resume=True, **kw)
    monkeypatch.setattr(T, "_epoch", real_epoch)
    # a truncated state file: a one-line error, never a silent start from scratch
    state.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(HfusError, match=r"not a readable training state \(.*\); delete it") as err:
        R.train("mobilenet_v2", out_dir=out, resume=True, **kw)
    assert "\n" not in str(err.value)
