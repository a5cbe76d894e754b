"""`hfus-bench check`: contract checks on phantom images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hfus_xai_bench.check import check_method, phantom_batch
from hfus_xai_bench.cli import main

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


def test_nondeterministic_method_fails(tmp_path, capsys):
    path = tmp_path / "noisy.py"
    path.write_text(
        "import torch\n"
        "def explain(model, images, targets, *, context):\n"
        "    return torch.rand(len(images), 224, 224, generator=torch.Generator().manual_seed(torch.seed()))\n"
    )
    report = check_method(path)
    assert not report.ok and any("differ" in text for ok, text in report.lines if not ok)
    assert main(["check", str(path)]) == 1
