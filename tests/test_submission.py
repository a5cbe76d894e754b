"""`submit` and `verify`: a tiny in-memory dataset + a seeded MobileNetV2 stand in for the data and checkpoints.

The real runner (`evaluate`), metrics, aggregation and `fold_arrays` are used; only `load_dataset`
and the checkpoint lookup are patched. Every folder under `submissions/` is verified too (CI).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hfus_xai_bench import submission
from hfus_xai_bench.data import dataset as hub
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.models import checkpoints
from hfus_xai_bench.submission import sha256_file, submit, verify_submission

REPO = Path(__file__).resolve().parent.parent
REVISION = "fake-rev-1"
SHA = "c" * 64
#: CI re-checks confidence on this many images per (arch, fold) of each committed submission
CI_CONFIDENCE_LIMIT = 8

METHOD = '''"""Grey level of the image as a map (a test method)."""
METADATA = {"name": "greymap", "authors": ["Test"], "licence": "MIT", "tuning_split": "none", "kind": "map"}


def explain(model, images, targets, *, context):
    return images.mean(1) + 1e-3
'''


def _png(arr: np.ndarray) -> dict:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def fake_dataset(per_fold: int = 3, seed: int = 0):
    """15 images (5 folds × 3), layered SLMs, provenance attached like `load_dataset` does."""
    import datasets

    rng = np.random.default_rng(seed)
    rows = {"image_id": [], "image": [], "label": [], "slm": [], "fold": [], "group_id": []}
    for fold in range(5):
        for i in range(per_fold):
            top = int(rng.integers(40, 80))
            slm = np.zeros((224, 224), np.uint8)
            slm[top - 16 : top, 5:223] = 32
            for level, a, b in ((255, 0, 20), (128, 20, 56), (64, 56, 92), (32, 92, 128)):
                slm[top + a : top + b, 5:223] = level
            img = rng.integers(0, 80, (224, 224, 3), dtype=np.uint8)
            img[top : top + 20] = rng.integers(150, 255, (20, 224, 3), dtype=np.uint8)
            rows["image_id"].append(f"2020-01-{fold + 1:02d}_{i}_1")
            rows["image"].append(_png(img))
            rows["slm"].append(_png(slm))
            rows["label"].append((fold + i) % 4)
            rows["fold"].append(fold)
            rows["group_id"].append(f"2020-01-{fold + 1:02d}_{i}")
    features = datasets.Features({
        "image_id": datasets.Value("string"), "image": datasets.Image(),
        "label": datasets.ClassLabel(names=["AD", "CG", "PS", "ST"]), "slm": datasets.Image(),
        "fold": datasets.Value("int64"), "group_id": datasets.Value("string"),
    })
    ds = datasets.Dataset.from_dict(rows, features=features)
    prov = {"id": "fake-hfus", "revision": REVISION, "sha256": "d" * 64, "n_images": len(ds)}
    ds.info.description = hub._PROV_PREFIX + json.dumps(prov, sort_keys=True)
    return ds


class TinyNet(torch.nn.Module):
    """MobileNetV2's attribute layout (``features[-1]`` target layer, ``classifier[1]`` head), 1000× cheaper."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 8, stride=8), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, padding=1))
        self.classifier = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts = torch.nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(acts, 1))


@pytest.fixture(scope="module")
def fakes() -> dict:
    """Stand-ins for the dataset loader and the checkpoint lookup (a seeded TinyNet as "mobilenet_v2")."""
    ds = fake_dataset()
    torch.manual_seed(0)
    model = TinyNet().eval()
    card = SimpleNamespace(name="mobilenet_v2-fake-fold", sha256=SHA, dataset_revision=REVISION, meta={})

    def load_dataset(source: str = "fake-hfus", revision: str | None = None):
        if revision not in (None, REVISION):
            raise HfusError(f"fake-hfus has one revision, {REVISION}; drop --revision")
        return ds

    def load_model(arch, dataset="fake-hfus", fold=0, checkpoint=None, device="cpu"):
        return model, SimpleNamespace(checkpoint=card, sha256=SHA)

    def load_checkpoint_model(arch, fold, sha256, dataset, device):
        if sha256 != SHA:
            raise HfusError(f"no {arch} checkpoint with sha256 {sha256} is installed")
        return model

    return {(hub, "load_dataset"): load_dataset, (checkpoints, "load_model"): load_model,
            (submission, "load_checkpoint_model"): load_checkpoint_model}


def _patch(mp: pytest.MonkeyPatch, fakes: dict) -> None:
    for (module, name), fn in fakes.items():
        mp.setattr(module, name, fn)


@pytest.fixture
def env(fakes: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes, patched in for one test only (committed submissions are verified against the real code)."""
    _patch(monkeypatch, fakes)


@pytest.fixture(scope="module")
def sub(fakes: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("subs")
    method = root / "greymap.py"
    method.write_text(METHOD)
    with pytest.MonkeyPatch.context() as mp:
        _patch(mp, fakes)
        return submit(method, out=root / "greymap", dataset="fake-hfus", models="mobilenet_v2", folds="0,1",
                      device="cpu", progress=False)


def _copy(sub: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "sub"
    shutil.copytree(sub, dst)
    return dst


def _edit(folder: Path, fn) -> None:
    path = folder / "result.json"
    record = json.loads(path.read_text())
    fn(record)
    path.write_text(json.dumps(record))


def test_submit_writes_the_folder(env: None, sub: Path) -> None:
    assert sorted(p.name for p in sub.iterdir()) == ["README.md", "maps.npz", "method.py", "result.json"]
    record = json.loads((sub / "result.json").read_text())
    assert record["maps_file"] == {"path": "maps.npz", "sha256": sha256_file(sub / "maps.npz")}
    assert len(record["per_image"]) == 6 and record["options"]["folds"] == [0, 1]
    assert record["command"].startswith("hfus-bench submit ")
    readme = (sub / "README.md").read_text()
    assert "# greymap" in readme and "| licence of method.py | MIT |" in readme and "No tuning on test folds" in readme
    assert (sub / "method.py").read_text() == METHOD
    with pytest.raises(HfusError, match="already exists"):
        submit(sub / "method.py", out=sub)


def test_verify_passes_on_an_untouched_submission(env: None, sub: Path) -> None:
    report = verify_submission(sub, progress=False)
    assert report.ok, report.render()
    names = [name for name, _, _ in report.checks]
    assert "maps_file.sha256" in names and "dataset.revision" in names and "metrics (re-aggregated)" in names
    assert any(n.startswith("mobilenet_v2 fold 1: confidence (3 images)") for n in names)
    subset = verify_submission(sub, confidence_limit=1, progress=False)
    assert subset.ok and any("confidence (1 images)" in n for n, _, _ in subset.checks)


def test_verify_fails_on_a_tampered_aggregate(env: None, sub: Path, tmp_path: Path) -> None:
    folder = _copy(sub, tmp_path)

    def bump(r: dict) -> None:
        r["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"] += 1e-3

    _edit(folder, bump)
    report = verify_submission(folder, check_model=False, progress=False)
    assert not report.ok
    assert any("metrics/hit_rate@1/mobilenet_v2/mean" in f for f in report.failures), report.render()


def test_verify_fails_on_a_tampered_per_image_value(env: None, sub: Path, tmp_path: Path) -> None:
    folder = _copy(sub, tmp_path)

    def bump(r: dict) -> None:
        r["per_image"][2]["hr1"] += 1e-5
        r["per_image"][4]["s0"] += 0.5

    _edit(folder, bump)
    failures = verify_submission(folder, progress=False).failures
    assert any("per_image[2]/hr1" in f for f in failures), failures
    assert any("per_image[4].s0" in f for f in failures), failures


def test_verify_fails_on_a_tampered_maps_file(env: None, sub: Path, tmp_path: Path) -> None:
    folder = _copy(sub, tmp_path)
    with np.load(folder / "maps.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["mobilenet_v2__fold0__maps"][0, :50] = 255  # move the peak
    np.savez_compressed(folder / "maps.npz", **arrays)
    report = verify_submission(folder, check_model=False, progress=False)
    assert [f.split(":")[0] for f in report.failures] == ["maps_file.sha256"]
    # and with the hash updated too, the re-scored numbers give it away
    _edit(folder, lambda r: r["maps_file"].update(sha256=sha256_file(folder / "maps.npz")))
    failures = verify_submission(folder, check_model=False, progress=False).failures
    assert any("per_image[0]/hr1" in f for f in failures), failures


def test_verify_fails_on_a_wrong_dataset_revision_or_checkpoint(env: None, sub: Path, tmp_path: Path) -> None:
    folder = _copy(sub, tmp_path)
    _edit(folder, lambda r: r["dataset"].update(revision="fake-rev-2"))
    assert [f.split(":")[0] for f in verify_submission(folder, progress=False).failures] == ["dataset.revision"]
    _edit(folder, lambda r: r["dataset"].update(revision=REVISION, sha256="e" * 64))
    assert [f.split(":")[0] for f in verify_submission(folder, progress=False).failures] == ["dataset.sha256"]
    _edit(folder, lambda r: (r["dataset"].update(sha256="d" * 64), r["checkpoints"]["mobilenet_v2"]["0"].update(sha256="f" * 64)))
    failures = verify_submission(folder, progress=False).failures
    assert [f.split(":")[0] for f in failures] == ["checkpoints/mobilenet_v2/0/sha256"], failures


def test_verify_rerun_compares_fresh_maps(env: None, sub: Path) -> None:
    report = verify_submission(sub, check_model=False, rerun=True, rerun_limit=2, progress=False)
    assert report.ok, report.render()
    assert any(n.startswith("rerun mobilenet_v2__fold1 (2 maps)") for n, _, _ in report.checks)


def test_verify_errors_and_cli(env: None, sub: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from hfus_xai_bench.leaderboard import register

    with pytest.raises(HfusError, match="lacks method.py, README.md, maps.npz"):
        folder = tmp_path / "x"
        folder.mkdir()
        (folder / "result.json").write_text("{}")
        verify_submission(folder)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["verify", str(sub), "--no-model", "--quiet"])
    assert args.func(args) == 0
    assert "PASSED" in capsys.readouterr().out


SUBMISSIONS = sorted(p for p in (REPO / "submissions").glob("*") if (p / "result.json").is_file())


@pytest.mark.parametrize("folder", SUBMISSIONS, ids=[p.name for p in SUBMISSIONS])
def test_committed_submission_verifies(folder: Path) -> None:
    assert hub.load_dataset.__module__ == "hfus_xai_bench.data.dataset"  # the real loader, not a fake
    """CI: every committed submission re-scores to its recorded numbers (confidence on a subset, CPU)."""
    report = verify_submission(folder, confidence_limit=CI_CONFIDENCE_LIMIT, progress=False)
    assert report.ok, report.render()
