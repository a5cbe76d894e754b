"""Test helpers shared by several test files (import as ``from helpers import ...``).

- :func:`write_method`: a method file from source text;
- :func:`fake_dataset` + :class:`TinyNet` + :func:`patch_fakes`: a 15-image in-memory dataset and a
  seeded MobileNetV2-shaped stand-in, patched in for the dataset loader and the checkpoint lookup;
- :func:`fake_scores`: plausible per-(arch, fold) scores without running anything;
- :func:`pearson`.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hfus_xai_bench.constants import THRESHOLDS
from hfus_xai_bench.data import dataset as D
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.models import checkpoints
from hfus_xai_bench.models.checkpoints import Checkpoint
from hfus_xai_bench.results import FoldScores

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
FAKE_DATASET = "fake-hfus"
FAKE_REVISION = "fake-rev-1"
FAKE_SHA = "c" * 64
FAKE_ACCURACY = 0.875


def write_method(folder: Path, body: str, name: str = "method.py") -> Path:
    path = Path(folder) / name
    path.write_text(textwrap.dedent(body))
    return path


def pearson(a, b) -> float:
    a = a.detach().double().cpu().numpy() if hasattr(a, "detach") else np.asarray(a, np.float64)
    b = b.detach().double().cpu().numpy() if hasattr(b, "detach") else np.asarray(b, np.float64)
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


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
    features = datasets.Features(
        {
            "image_id": datasets.Value("string"),
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["AD", "CG", "PS", "ST"]),
            "slm": datasets.Image(),
            "fold": datasets.Value("int64"),
            "group_id": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(rows, features=features)
    return D.attach_provenance(
        ds, {"id": FAKE_DATASET, "revision": FAKE_REVISION, "sha256": "d" * 64, "n_images": len(ds)}
    )


class TinyNet(torch.nn.Module):
    """MobileNetV2's attribute layout (``features[-1]`` target layer, ``classifier[1]`` head), far cheaper."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 8, stride=8), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, padding=1)
        )
        self.classifier = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts = torch.nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(acts, 1))


def fake_checkpoint() -> Checkpoint:
    """A card like the shipped ones (test accuracy under ``metrics.test.accuracy``)."""
    return Checkpoint(
        name="mobilenet_v2-fake-fold",
        arch="mobilenet_v2",
        dataset=FAKE_DATASET,
        dataset_revision=FAKE_REVISION,
        fold=0,
        filename="fake.safetensors",
        sha256=FAKE_SHA,
        meta={"metrics": {"test": {"accuracy": FAKE_ACCURACY}}},
    )


def make_fakes() -> dict:
    """Stand-ins for the dataset loader and the checkpoint lookup (a seeded TinyNet as "mobilenet_v2")."""
    from hfus_xai_bench.verify import scores

    ds = fake_dataset()
    torch.manual_seed(0)
    model = TinyNet().eval()
    card = fake_checkpoint()

    def load_dataset(source: str = FAKE_DATASET, revision: str | None = None):
        if revision not in (None, FAKE_REVISION):
            raise HfusError(f"{FAKE_DATASET} has one revision, {FAKE_REVISION}; drop --revision")
        return ds

    def load_model(arch, dataset=FAKE_DATASET, fold=0, checkpoint=None, device="cpu", revision=None):
        return model, SimpleNamespace(checkpoint=card, sha256=FAKE_SHA)

    def load_checkpoint_model(arch, fold, sha256, dataset, device):
        if sha256 != FAKE_SHA:
            raise HfusError(f"no {arch} checkpoint with sha256 {sha256} is installed")
        return model

    def find_checkpoint(arch, dataset=FAKE_DATASET, fold=0, revision=None):
        return card

    return {
        (D, "load_dataset"): load_dataset,
        (checkpoints, "load_model"): load_model,
        (checkpoints, "find_checkpoint"): find_checkpoint,
        (scores, "load_checkpoint_model"): load_checkpoint_model,
    }


def patch_fakes(mp: pytest.MonkeyPatch, fakes: dict) -> None:
    for (module, name), fn in fakes.items():
        mp.setattr(module, name, fn)


def fake_scores(
    arch: str,
    fold: int,
    level: float,
    seed: int,
    n: int = 12,
    *,
    failed_last: bool = True,
    rho: float = 0.1,
    evidence: bool = False,
) -> FoldScores:
    """Per-image values centred on ``level`` (HR1), randomisation ρ around ``rho``, everything else plausible;
    the last image failed. ``evidence``: also the PROTOCOL §9 values (uniform in [0, 1), as an evidence
    track)."""
    rng = np.random.default_rng(seed)
    nt = len(THRESHOLDS)
    labels = rng.integers(0, 4, n)
    preds = np.where(rng.random(n) < 0.8, labels, (labels + 1) % 4)
    s0 = rng.normal(3, 1, n)
    ok = np.ones(n, bool)
    if failed_last:
        ok[-1] = False

    def col(x: np.ndarray) -> np.ndarray:
        x = np.array(x, float)
        x[~ok] = np.nan
        return x

    values = {
        "hit_rate@1/hr1": col(np.clip(rng.normal(level, 0.3, n), -1, 3)),
        "hit_rate_binary@1/hr2": col(np.clip(rng.normal(level / 3, 0.2, n), -1, 1)),
        "slm_coverage@1/cov_top": col(rng.random(n)),
        "slm_coverage@1/cov_bg": col(rng.random(n) * 0.3),
        "mask_iou@1/iou": col(rng.random((n, nt, 5))),
        "confidence@1/s0": col(s0),
        "confidence@1/s_keep": col(s0 + rng.normal(0, 1, n)),
        "confidence@1/s_remove": col(s0 - level * rng.random(n)),
        "confidence@1/s_keep_t": col(rng.normal(3, 1, (n, nt))),
        "confidence@1/s_remove_t": col(rng.normal(2, 1, (n, nt))),
        "randomisation@1/rho": col(np.clip(rng.normal(rho, 0.1, n), -1, 1)),
        "randomisation@1/cross_image": col(np.clip(rng.normal(0.5, 0.1, n), -1, 1)),
        "randomisation@2/rand2_rho": col(np.clip(rng.normal(rho, 0.1, (n, 3)), -1, 1)),
        "randomisation@2/rand2_pearson": col(np.clip(rng.normal(rho, 0.1, (n, 3)), -1, 1)),
        "randomisation@2/rand2_pair": col(np.zeros((n, 3))),
        "randomisation@2/rand2_cross": col(np.clip(rng.normal(0.5, 0.1, n), -1, 1)),
        "road@1/road_s0": col(rng.uniform(0.6, 1.0, n)),
        "road@1/road_morf_p": col(rng.uniform(0.0, 0.6, (n, 5))),
        "road@1/road_lerf_p": col(rng.uniform(0.4, 1.0, (n, 5))),
    }
    if evidence:
        from hfus_xai_bench.metrics.section9 import SECTION9

        values |= {m.key(v): col(rng.random((n, *v.dims()))) for m in SECTION9 for v in m.values}
    return FoldScores(
        arch=arch,
        fold=fold,
        checkpoint={"name": f"{arch}-f{fold}", "sha256": "0" * 64},
        image_ids=[f"2020-01-0{fold + 1}_{i}_1" for i in range(n)],
        labels=labels,
        preds=preds,
        targets=preds,
        failed=[None if k else "empty_map" for k in ok],
        values=values,
        seconds=0.01 * n,
        forward_images=3 * n,
        randomised_failed=[None] * n,
    )
