"""models/export.py: a Hugging Face model-repo folder that loads back through the real Hub code path."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from hfus_xai_bench.cli import main
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.models import checkpoints as C
from hfus_xai_bench.models.export import export_checkpoints
from hfus_xai_bench.models.zoo import build_model

SHA = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HFUS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(C, "PACKAGE_DIR", tmp_path / "package")
    monkeypatch.setattr(C, "REGISTRY", {})


def _trained(tmp_path):
    torch.manual_seed(0)
    model = build_model("mobilenet_v2")
    card = {
        "arch": "mobilenet_v2",
        "dataset": {"id": "hfus-synth", "revision": "synth-v2-seed0", "sha256": "ab" * 32},
        "fold": 2,
        "init": "scratch",
        "epochs": 3,
        "metrics": {"test": {"accuracy": 0.9, "f1": 0.89}},
    }
    C.save_checkpoint(model, C.user_checkpoint_dir() / "mobilenet_v2_hfus-synth_fold2", card)
    return model


def test_export_folder_uploads_and_loads_back_from_the_hub_cache(tmp_path, capsys):
    model = _trained(tmp_path)
    assert main(["models", "export", str(tmp_path / "repo"), "--models", "mobilenet_v2", "--folds", "2"]) == 0
    assert "hf upload OWNER/REPO" in capsys.readouterr().out
    repo = tmp_path / "repo"
    assert sorted(p.name for p in repo.iterdir()) == [
        "README.md",
        "mobilenet_v2_hfus-synth_fold2.json",
        "mobilenet_v2_hfus-synth_fold2.safetensors",
    ]
    readme = (repo / "README.md").read_text()
    assert (
        readme.startswith("---\nlicense: mit\n")
        and "hfus-synth@synth-v2-seed0 (`abababababababab`)" in readme
    )
    card = json.loads((repo / "mobilenet_v2_hfus-synth_fold2.json").read_text())
    assert card["sha256"] == C.sha256_file(repo / "mobilenet_v2_hfus-synth_fold2.safetensors")
    # what `hf upload` would publish, as the Hub cache lays it out after a download at a pinned revision
    snap = tmp_path / "hf" / "models--owner--hfus-models" / "snapshots" / SHA
    shutil.copytree(repo, snap)
    shutil.rmtree(C.user_checkpoint_dir())  # a fresh machine: only the Hub has it
    hub_card = {**card, "hub": {"repo_id": "owner/hfus-models", "revision": SHA}}
    entry = C.Checkpoint.from_card(hub_card, "hub")
    loaded, info = C.load_model("mobilenet_v2", checkpoint=entry)
    assert info.path == snap / "mobilenet_v2_hfus-synth_fold2.safetensors"
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def test_export_errors(tmp_path):
    with pytest.raises(HfusError, match="no checkpoints to export"):
        export_checkpoints([], tmp_path / "x")
    _trained(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(HfusError, match="is a file"):
        export_checkpoints(C.list_checkpoints(), tmp_path / "file")
    assert main(["models", "export", str(tmp_path / "none"), "--models", "resnet101"]) == 2
