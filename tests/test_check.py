"""`hfus-bench check`: contract checks on phantom images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hfus_xai_bench.check import CheckReport, check_method, phantom_batch
from hfus_xai_bench.cli import main
from hfus_xai_bench.explainers.contract import NEGATIVE_MAP

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_phantoms_cover_the_classes():
    images, labels, slms = phantom_batch(4)
    assert images.shape == (4, 224, 224, 3) and list(labels) == [0, 1, 2, 3]
    assert set(np.unique(slms)) <= {0, 32, 64, 128, 255} and (slms == 255).any()


def test_examples_pass(capsys):
    for example in ("gradcam_wrapper.py", "gradient_x_input.py"):
        report = check_method(EXAMPLES / example)
        assert report.ok, report.render()
        assert report.seconds_per_image > 0
    assert main(["check", str(EXAMPLES / "gradient_x_input.py")]) == 0
    assert "[ok] deterministic" in capsys.readouterr().out


NOISY = """
import torch
def explain(model, images, targets, *, context):
    noise = torch.Generator().manual_seed(torch.seed())
    return torch.rand(len(images), 224, 224, generator=noise)
"""

EMPTY_ON_REPEAT = """
import torch
CALLS = []
def explain(model, images, targets, *, context):
    CALLS.append(1)
    maps = torch.ones(len(images), 224, 224)
    if len(CALLS) == 2:
        maps[1] = 0  # the repeat call returns an empty map for image 1
    return maps
"""


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        (NOISY, "4 of 4 maps; image 0: "),  # two uniform draws: nearly every pixel of every map differs
        (EMPTY_ON_REPEAT, "image 1: a map on the first run, empty_map on the second"),
    ],
)
def test_a_nondeterministic_method_fails_naming_where_its_runs_differ(tmp_path, source, detail):
    path = tmp_path / "method.py"
    path.write_text(source)
    failed = [text for ok, text in check_method(path).lines if not ok]
    assert any("maps differ between two runs" in t and detail in t for t in failed), failed
    if source is NOISY:
        assert main(["check", str(path)]) == 1


HOOKED = """
import torch

class Explainer:
    kind = "map"

    def __init__(self, model, context):
        self.model = model
        # the torchcam pattern: a forward hook kept on the target layer, the activations kept on it
        context.target_layer.register_forward_hook(self._keep)
        self.layer = context.target_layer

    def _keep(self, module, inputs, output):
        module.kept = output  # a non-leaf tensor: a model holding it cannot be deep-copied

    def __call__(self, images, targets):
        with torch.enable_grad():
            self.model(images.requires_grad_(True))
        return self.layer.kept.detach().clamp(min=0).sum(1) + 1e-6
"""


def test_a_method_that_keeps_a_hook_on_the_target_layer_ends_with_a_clear_result(tmp_path):
    path = tmp_path / "hooked.py"
    path.write_text(HOOKED)
    report = check_method(path)
    assert report.ok, report.render()
    assert any("randomised copies" in text for ok, text in report.lines if ok)


def test_wrong_type_and_every_map_failing(tmp_path):
    path = tmp_path / "text.py"
    path.write_text("def explain(model, images, targets, *, context):\n    return 'map'\n")
    report = check_method(path, n_images=2)
    assert not report.ok
    texts = [text for _, text in report.lines]
    assert any("wrong_type" in t for t in texts) and not any("wrong_shape" in t for t in texts)
    assert "[ok] deterministic" not in report.render()
    assert (False, "determinism not checked: no map was produced") in report.lines


def test_randomised_side_failure_is_one_line_naming_the_method(tmp_path):
    path = tmp_path / "picky.py"
    path.write_text(
        "SEEN = []\n"
        "def explain(model, images, targets, *, context):\n"
        "    SEEN.append(id(model)) if not SEEN else None\n"
        "    if id(model) != SEEN[0]:\n"
        "        raise RuntimeError('only the trained model, please')\n"
        "    return images.mean(1)\n"
    )
    report = check_method(path, n_images=2)
    bad = [text for ok, text in report.lines if not ok]
    assert len(bad) == 1 and "\n" not in bad[0]
    assert bad[0].startswith(
        "method 'picky' fails on randomised copy 0 for 2 image(s): exception: RuntimeError"
    )


def test_a_library_warning_is_named_as_the_methods(tmp_path, capsys):
    path = tmp_path / "noisy_lib.py"
    path.write_text(
        "import warnings\n"
        "def explain(model, images, targets, *, context):\n"
        "    warnings.warn('deprecated thing', DeprecationWarning)\n"
        "    return images.mean(1)\n"
    )
    assert main(["check", str(path), "--limit", "2"]) == 0
    err = capsys.readouterr().err
    assert "hfus-bench: warning: method 'noisy_lib' warned (DeprecationWarning at" in err
    assert err.count("deprecated thing") == 1  # once, though the method is called many times


def test_exit_in_explain_is_a_failed_image_not_a_silent_exit_0(tmp_path, capsys):
    path = tmp_path / "quits.py"
    path.write_text("import sys\ndef explain(model, images, targets, *, context):\n    sys.exit(0)\n")
    assert main(["check", str(path), "--limit", "1"]) == 1
    out = capsys.readouterr().out
    assert "1 failed, e.g. exception: SystemExit: the method called exit(0) (at quits.py:3)" in out


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_limit_below_one_is_one_line_as_in_evaluate(tmp_path, capsys, limit):
    path = EXAMPLES / "gradient_x_input.py"
    assert main(["check", str(path), "--limit", limit]) == 2
    check_err = capsys.readouterr().err
    assert check_err == f"hfus-bench: error: --limit must be at least 1, got {limit}\n"
    assert main(["evaluate", str(path), "--limit", limit, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == check_err


def test_all_negative_maps_of_kind_map_are_explained(tmp_path):
    path = tmp_path / "negative.py"
    path.write_text("def explain(model, images, targets, *, context):\n    return -images.mean(1)\n")
    lines = check_method(path, n_images=1).lines
    assert (False, f"all-zero maps ({NEGATIVE_MAP})") in lines
    assert not any("Hit Rate is undefined" in text for _, text in lines)
    path.write_text("def explain(model, images, targets, *, context):\n    return images.mean(1) * 0\n")
    zero = check_method(path, n_images=1).lines
    assert (False, "all-zero maps have no peak: Hit Rate is undefined for them") in zero


def test_a_file_with_both_forms_says_which_one_is_used(tmp_path):
    path = tmp_path / "both.py"
    path.write_text(
        "def explain(model, images, targets, *, context):\n    return images.mean(1)\n"
        "class Explainer:\n    def __init__(self, model, context):\n        pass\n"
        "    def __call__(self, images, targets):\n        return images.mean(1)\n"
    )
    report = check_method(path, n_images=1)
    assert report.lines[1] == (True, "defines both `explain` and `Explainer`: uses the class `Explainer`")


def test_time_line_says_what_it_times():
    """The estimate is the method's calls over one test fold (126 images), not what `evaluate` takes."""
    report = CheckReport("m")
    report.seconds_per_image = 0.5
    assert "0.500 s/image here, about 63 s for one test fold (126 images); `evaluate` adds" in report.render()
    report.seconds_per_image = 0.001
    assert "under 1 s for one test fold" in report.render()


def test_a_corrupt_checkpoint_is_an_error_and_a_missing_one_random_weights(monkeypatch, capsys):
    """`check` falls back to random weights only where no checkpoint is here, never over a corrupt one."""
    from hfus_xai_bench.errors import HfusError
    from hfus_xai_bench.models import checkpoints

    def corrupt(path, expected):
        raise HfusError(f"sha256 mismatch for {path}: the file is corrupt or was modified")

    monkeypatch.setattr(checkpoints, "verify_sha256", corrupt)
    assert main(["check", "random", "--limit", "1"]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err

    def none_here(*args, **kwargs):
        raise HfusError("no checkpoint for mobilenet_v2 on hfus-synth synth-v3-seed0 fold 0")

    monkeypatch.setattr(checkpoints, "find_checkpoint", none_here)
    report = check_method("random", n_images=1)
    assert report.ok and any("random weights (no checkpoint available)" in text for _, text in report.lines)


def test_maps_that_ignore_the_model_get_a_note_about_the_ranking_gate():
    """`check random` passes (a sanity baseline is a valid method) but says it would not be ranked."""
    note = "note: ρ rand. and r rand. ≥ 0.5 on these phantoms: maps this close to the randomised copies'"
    scored = [text for ok, text in check_method("random", n_images=2).lines if "registry metrics" in text]
    assert len(scored) == 1 and note in scored[0] and "(12 outputs)" in scored[0]
    scored = [text for ok, text in check_method("gradcam", n_images=2).lines if "registry metrics" in text]
    assert "note:" not in scored[0]
