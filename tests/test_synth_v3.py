"""Generator version 3 (data/synth_v3.py): moving anatomy, evidence masks, counterfactual twins, import."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from hfus_xai_bench.constants import CLASSES, IMAGE_SIZE
from hfus_xai_bench.data import synth as S
from hfus_xai_bench.data import synth_ops
from hfus_xai_bench.data import synth_v3 as V
from hfus_xai_bench.data.archive import import_archive
from hfus_xai_bench.data.dataset import fold_arrays, load_dataset
from hfus_xai_bench.data.discover import discover_archive
from hfus_xai_bench.data.evidence import TWIN_BOUND_224
from hfus_xai_bench.data.report import report
from hfus_xai_bench.data.synth_archive import generate_archive
from hfus_xai_bench.errors import HfusError

SIZE = (200, 150)  # (W, H): small frames keep the tests fast


def _frame(label: str, seed: int, size: tuple[int, int] = SIZE) -> V.Frame:
    gp = V.sample_group_params(np.random.default_rng([seed, 1]), label)
    return V.generate(np.random.default_rng([seed, 2]), label, size, gp)


def _psf_box(frame: V.Frame) -> np.ndarray:
    ra, rl = frame.psf
    return np.ones((2 * ra + 1, 2 * rl + 1), dtype=bool)


@pytest.mark.parametrize("label", CLASSES)
def test_frame_evidence_and_twin(label):
    for seed in range(3):
        fr = _frame(label, seed)
        assert fr.rgb.shape == fr.twin.shape == (SIZE[1], SIZE[0], 3)
        assert fr.evidence.shape == fr.rgb.shape[:2] and fr.evidence.dtype == np.uint8
        assert set(np.unique(fr.evidence).tolist()) <= {0, 255}
        if label == "CG":  # no evidence: the twin is the image itself
            assert fr.evidence.max() == 0 and np.array_equal(fr.twin, fr.rgb)
            continue
        assert fr.evidence.max() == 255 and not np.array_equal(fr.twin, fr.rgb)
        # Bit-equal outside the evidence dilated by the PSF support: the same float64 operations in the
        # same order on the same inputs there (the twin's field is recomputed only around the mask).
        outside = ~binary_dilation(fr.evidence > 0, _psf_box(fr))
        assert np.array_equal(fr.twin[outside], fr.rgb[outside])
        assert outside.mean() > 0.5  # the evidence is local
        bw = int(round(synth_ops.SCALE_BAR_FRAC * SIZE[0]))
        assert not fr.evidence[:, :bw].any()


@pytest.mark.parametrize("label", ["AD", "PS", "ST"])
def test_twin_is_the_cg_frame_of_the_same_draws(label):
    """Every shared draw comes before the class evidence's, so the twin is exactly the CG frame of the same
    seeds."""
    for seed in range(2):
        assert np.array_equal(_frame(label, seed).twin, _frame("CG", seed).rgb)


def test_structure_masks_follow_the_evidence():
    ad, ps, st = _frame("AD", 4), _frame("PS", 4), _frame("ST", 4)
    assert set(ad.masks) == set(ps.masks) == {"epidermis", "sleb"}
    assert set(st.masks) == {"epidermis", "tumor"} and set(_frame("CG", 4).masks) == {"epidermis"}
    for fr in (ad, ps):  # the SLEB lies inside the evidence
        assert ((fr.masks["sleb"] > 0) <= (fr.evidence > 0)).all()
    assert ((st.masks["tumor"] > 0) <= (st.evidence > 0)).all()


def test_geometry_ranges():
    """Skin surface within ≈ 12–50 % of the height in every column; tilt up to tan 8°; tumours at 15–85 %."""
    W, H = S.DEFAULT_SIZE
    u = (np.arange(W) + 0.5) / W
    tops, bottoms, tilts, tx = [], [], [], []
    for seed in range(150):
        rng = np.random.default_rng([seed, 9])
        gp = V.sample_group_params(rng, "ST")
        fp = V.frame_params(rng, gp)
        ys = V._shared_geometry(fp, W, H, u, u + fp["shift"])["ys"] / H
        tops.append(ys.min())
        bottoms.append(ys.max())
        tilts.append(gp["tilt"])
        tx.append(gp["tumor_x"])
    lo, hi = V.SURFACE_RANGE
    assert min(tops) > lo - 0.01 and max(bottoms) < hi + 0.01
    assert min(tops) < lo + 0.06 and max(bottoms) > hi - 0.06  # the range is used
    assert max(np.abs(tilts)) <= V.MAX_TILT_SLOPE and max(np.abs(tilts)) > 0.8 * V.MAX_TILT_SLOPE
    assert min(tx) >= 0.15 and max(tx) <= 0.85 and max(tx) - min(tx) > 0.5


def _stats(rgb: np.ndarray) -> np.ndarray:
    g = rgb[..., 1].astype(np.float64)
    prof = g.mean(1)  # row profile, 8 bins
    return np.concatenate(
        [[g.mean(), g.std()], np.percentile(g, [10, 25, 50, 75, 90, 99]), prof.reshape(8, -1).mean(1)]
    )


def test_global_statistics_outside_the_evidence_do_not_tell_the_class():
    """Outside its (dilated) evidence an image *is* its twin, so we test the twins: logistic regression on
    global intensity statistics (mean, std, percentiles, row profile) is near chance (4 classes: 0.25),
    while on the images themselves the same classifier finds the evidence (positive control)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    size = (128, 96)
    X_twin, X_img, y = [], [], []
    for seed in range(30):
        for k, label in enumerate(CLASSES):
            fr = _frame(label, 1000 + 4 * seed + k, size)
            X_twin.append(_stats(fr.twin))
            X_img.append(_stats(fr.rgb))
            y.append(k)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    acc_twin = cross_val_score(clf, np.array(X_twin), y, cv=5).mean()
    acc_img = cross_val_score(clf, np.array(X_img), y, cv=5).mean()
    assert acc_twin < 0.4, acc_twin  # chance 0.25; 120 frames: a few points of noise
    assert acc_img > acc_twin + 0.15, (acc_img, acc_twin)


def _digest() -> str:
    plan = S.plan_archive(12, 0)
    parts = []
    for i in (2, 5, 7, 11):  # AD, CG, PS, ST
        fr = S.render_item_v3(plan[i], 0, (128, 96))
        parts += [fr.rgb, fr.twin, fr.evidence, *(fr.masks[k] for k in sorted(fr.masks))]
    return hashlib.sha256(b"".join(p.tobytes() for p in parts)).hexdigest()[:16]


def test_golden_pixels_version_3():
    """Pins the bytes of version 3 (portable); if this changes, bump SYNTH_VERSION."""
    assert [S.plan_archive(12, 0)[i].label for i in (2, 5, 7, 11)] == list(CLASSES)
    assert _digest() == "8400bcb6ea6b28dc"


# ---------------------------------------------------------------- archive and import


@pytest.fixture(scope="module")
def v3_archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth3") / "arch"
    return generate_archive(out, n=8, seed=1, size=SIZE, progress=False, workers=1, version="3")


def test_archive_writes_evidence_and_twins(v3_archive):
    plan = S.plan_archive(8, 1)
    for it in plan:
        fr = S.render_item_v3(it, 1, SIZE)
        ev = np.asarray(Image.open(v3_archive / it.label / "masks" / f"{it.stem}_evidence.png"))
        twin = np.asarray(Image.open(v3_archive / it.label / "twins" / f"{it.stem}.png"))
        assert np.array_equal(ev, fr.evidence) and np.array_equal(twin, fr.twin)
    found = discover_archive(v3_archive)
    assert len(found.images) == 8 and not found.orphan_masks  # twins and evidence are not images
    assert found.evidence_mode == "file" and found.twins
    assert all(e.evidence and e.twin for e in found.images)
    assert "evidence column: from the archive's _evidence masks; twins: yes" in report(found)


def test_import_columns_and_fold_arrays(v3_archive, tmp_path):
    folder = import_archive(v3_archive, tmp_path / "ds", expect=8, progress=False, workers=1)
    ds = load_dataset(str(folder))
    assert {"evidence", "twin"} <= set(ds.column_names)
    fa = fold_arrays(ds, 0, "train")
    n = len(fa.image_ids)
    assert fa.evidence.shape == (n, IMAGE_SIZE, IMAGE_SIZE) and fa.twins.shape == (
        n,
        IMAGE_SIZE,
        IMAGE_SIZE,
        3,
    )
    assert set(np.unique(fa.evidence).tolist()) <= {0, 255}
    cg = fa.labels == CLASSES.index("CG")
    assert (fa.evidence[cg] == 0).all() and np.array_equal(fa.twins[cg], fa.images[cg])
    assert all(fa.evidence[i].any() for i in np.flatnonzero(~cg))
    box = np.ones((2 * TWIN_BOUND_224 + 1,) * 2, dtype=bool)
    for img, twin, ev in zip(fa.images, fa.twins, fa.evidence, strict=True):
        outside = ~binary_dilation(ev > 0, box)
        assert np.array_equal(img[outside], twin[outside])  # equal bytes: see TWIN_BOUND_224
    light = fold_arrays(ds, 0, "train", images=False)
    assert light.twins is None and light.evidence.shape == fa.evidence.shape


def test_real_archive_gets_derived_evidence_and_no_twins(v3_archive, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(
        v3_archive, real, ignore=shutil.ignore_patterns("twins", "*_evidence.png", synth_ops.INFO_NAME)
    )
    found = discover_archive(real)
    assert found.evidence_mode == "derived" and not found.twins
    folder = import_archive(real, tmp_path / "ds", expect=8, progress=False, workers=1)
    assert json.loads((folder / "manifest.json").read_text())["evidence"] == {
        "mode": "derived",
        "twins": False,
    }
    assert "derived from the archive's own masks as an approximation" in (folder / "README.md").read_text()
    ds = load_dataset(str(folder))
    assert "evidence" in ds.column_names and "twin" not in ds.column_names
    assert fold_arrays(ds, 0, "train").twins is None
    for row in ds:
        want = {"AD": "sleb", "PS": "sleb", "ST": "tumor"}.get(CLASSES[row["label"]])
        expect = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8) if want is None else np.asarray(row[want])
        assert np.array_equal(np.asarray(row["evidence"]), expect)
        assert want is None or expect.any()


def test_partial_twins_are_refused(v3_archive, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(v3_archive, bad)
    next((bad / "AD" / "twins").glob("*.png")).unlink()
    with pytest.raises(HfusError, match="twin"):
        discover_archive(bad)


def test_v2_archives_keep_their_columns(tmp_path):
    arch = generate_archive(tmp_path / "a2", n=4, seed=0, size=SIZE, progress=False, workers=1, version="2")
    found = discover_archive(arch)
    assert found.evidence_mode is None and not found.twins
