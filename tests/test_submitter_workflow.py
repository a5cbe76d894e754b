"""A submitter's workflow with a third-party library (torchcam): method file, check, evaluate, submit, verify,
then the row ranked with intervals next to a built-in (PROTOCOL §7.4 per-criterion mean ranks).

torchcam is not a dependency of the package, only of its test extra (``make install`` installs it, so CI
runs this test); elsewhere the test is skipped when torchcam is not importable. As in
tests/test_submission.py, the dataset and the checkpoint are the in-memory fakes of helpers.py (real
runner, scoring, submit and verify); ``check`` runs on the packaged MobileNetV2 checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import FAKE_DATASET, make_fakes, patch_fakes

pytest.importorskip(
    "torchcam",
    reason="torchcam is not installed (the submitter's own library; pip install torchcam to run this)",
)

from hfus_xai_bench.cli import main  # noqa: E402
from hfus_xai_bench.leaderboard import entry_from_result  # noqa: E402
from hfus_xai_bench.leaderboard.ranks import entry_criterion_ranks  # noqa: E402
from hfus_xai_bench.runner import evaluate  # noqa: E402
from hfus_xai_bench.submission import submit  # noqa: E402
from hfus_xai_bench.verify import verify_submission  # noqa: E402

METHOD = '''"""LayerCAM from torchcam at the benchmark's pinned target layer (a third-party library)."""
import torch
from torchcam.methods import LayerCAM

METADATA = {
    "name": "torchcam-layercam",
    "authors": ["Jiang et al.; torchcam"],
    "url": "https://github.com/frgfm/torch-cam",
    "licence": "Apache-2.0",
    "tuning_split": "none",
    "kind": "map",
    "hyperparameters": {"library": "torchcam", "target_layer": "context.target_layer"},
}


def explain(model, images, targets, *, context):
    with torch.inference_mode(False), torch.enable_grad():
        x = images.detach().clone()
        extractor = LayerCAM(model, target_layer=context.target_layer, input_shape=tuple(x.shape[1:]))
        try:
            scores = model(x)
            (maps,) = extractor(targets.tolist(), scores)
        finally:
            extractor.remove_hooks()
    return maps.detach()
'''


@pytest.mark.slow
def test_third_party_method_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    method = tmp_path / "torchcam_layercam.py"
    method.write_text(METHOD)
    # 1. check (contract, determinism, parameters untouched) on the packaged MobileNetV2 checkpoint
    assert main(["check", str(method), "--device", "cpu"]) == 0
    patch_fakes(monkeypatch, make_fakes())
    options = {
        "dataset": FAKE_DATASET,
        "models": "mobilenet_v2",
        "folds": "0,1",
        "device": "cpu",
        "progress": False,
    }
    # 2. evaluate, 3. submit (evaluate --save-maps + the folder), 4. verify
    result = evaluate(method, **{k: v for k, v in options.items() if k != "progress"}, progress=False)
    assert result.record["counts"]["total"]["n_failed"] == 0
    folder, _ = submit(method, out=tmp_path / "sub", **options)
    report = verify_submission(folder, progress=False)
    assert report.ok, report.render()
    # 5. ranked with intervals next to a built-in evaluated on the same images
    ours = entry_from_result(json.loads((folder / "result.json").read_text()))
    builtin = entry_from_result(
        evaluate("gradcam", **{k: v for k, v in options.items() if k != "progress"}, progress=False).record
    )
    rows, ranks = entry_criterion_ranks([ours, builtin], "mobilenet_v2", n_resamples=200)
    assert [r["method"]["name"] for r in rows] == ["torchcam-layercam", "gradcam"]
    loc = ranks["localisation"]
    assert loc.metrics[0] == "hit_rate@1" and loc.n_images["hit_rate@1"] == 6
    assert np.isin(loc.ranks["hit_rate@1"], [1.0, 1.5, 2.0]).all()
    assert ((loc.low >= 1) & (loc.low <= loc.high) & (loc.high <= 2)).all()
