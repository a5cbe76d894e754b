"""Archive discovery and import (DATASET.md, PROTOCOL §1) on tiny hand-made archives."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hfus_xai_bench.data.archive import import_archive
from hfus_xai_bench.data.columns import features
from hfus_xai_bench.data.discover import discover_archive
from hfus_xai_bench.data.slm import skin_layer_map
from hfus_xai_bench.errors import HfusError

W, H = 52, 39  # tiny "full resolution" frames

STRUCTS = {
    "AD": ("epidermis", "sleb"),
    "CG": ("epidermis",),
    "PS": ("epidermis", "sleb"),
    "ST": ("epidermis", "tumor"),
}


def write_image(path: Path, seed: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (H, W, 3) if mode == "RGB" else (H, W)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


def mask_array(structure: str, seed: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    top = 8 + seed % 4
    if structure == "epidermis":
        m[top : top + 4, :] = 255
    elif structure == "sleb":
        m[top + 4 : top + 9, :] = 255
    else:
        m[top + 4 : top + 20, 10:40] = 255
    return m


def make_archive(root: Path, per_class: int = 3, *, synth: bool = True, layout: str = "synth") -> Path:
    """Archive in the synth layout (ARCHIVE/<CLS>/<stem>.png + <CLS>/masks/<stem>_<s>.png)."""
    i = 0
    for c in ("AD", "CG", "PS", "ST"):
        for j in range(per_class):
            stem = f"2019-01-{10 + j // 2:02d}_{i}_{j % 2}"
            write_image(root / c / f"{stem}.png", i)
            for s in STRUCTS[c]:
                mpath = root / c / "masks" / f"{stem}_{s}.png"
                mpath.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask_array(s, i), mode="L").save(mpath)
            i += 1
    if synth:
        (root / "SYNTH_INFO.json").write_text(json.dumps({"version": "1", "seed": 0, "n": i}))
    return root


def test_discover_synth_layout(tmp_path):
    root = make_archive(tmp_path / "a")
    (root / "_ignored").mkdir()
    write_image(root / "_ignored" / "AD" / "x.png", 0)
    (root / ".hidden").mkdir()
    write_image(root / ".hidden" / "CG" / "y.png", 0)
    found = discover_archive(root)
    assert found.counts() == {"AD": 3, "CG": 3, "PS": 3, "ST": 3}
    assert found.images_without_masks == [] and found.orphan_masks == []
    assert found.generator == {"version": "1", "seed": 0, "n": 12}
    st = [e for e in found.images if e.label == 3][0]
    assert set(st.masks) == {"epidermis", "tumor"}
    assert found.extensions[".png"] == 12 + 2 * 3 + 3 + 2 * 3 + 2 * 3


def test_discover_mendeley_like_layouts(tmp_path):
    # class token in the file name, masks in a parallel folder with structure suffixes, mixed case, jpg
    root = tmp_path / "m"
    write_image(root / "images" / "33PS.bmp", 1)
    write_image(root / "images" / "ad" / "2018-10-15_11_1.jpg", 2)
    write_image(root / "images" / "Cg" / "7.tif", 3)
    Image.fromarray(mask_array("epidermis", 0)).save(root / "images" / "33PS_Epidermis.png")
    (root / "Segmentation").mkdir()
    Image.fromarray(mask_array("sleb", 0)).save(root / "Segmentation" / "33PS-sleb.png")
    Image.fromarray(mask_array("epidermis", 0)).save(root / "Segmentation" / "2018-10-15_11_1_epi.png")
    (root / "masks" / "CG").mkdir(parents=True)
    Image.fromarray(mask_array("epidermis", 0)).save(root / "masks" / "CG" / "7_mask.png")  # untyped, CG
    (root / "notes.txt").write_text("x")
    (root / "annotations" / "SLEB").mkdir(parents=True)  # structure from a folder name
    Image.fromarray(mask_array("sleb", 0)).save(root / "annotations" / "SLEB" / "2018-10-15_11_1.png")
    write_image(root / "images" / "ST" / "t1.png", 4)
    for k in (1, 2):  # two lesions of one image are united
        Image.fromarray(mask_array("tumor", k)).save(root / "images" / "ST" / f"t1_lesion{k}.png")
    Image.fromarray(mask_array("epidermis", 0)).save(root / "images" / "ST" / "t1 epidermis.png")
    found = discover_archive(root)
    by_stem = {e.stem: e for e in found.images}
    assert {k: v.label for k, v in by_stem.items()} == {"33PS": 2, "2018-10-15_11_1": 0, "7": 1, "t1": 3}
    assert set(by_stem["33PS"].masks) == {"epidermis", "sleb"}
    assert set(by_stem["7"].masks) == {"epidermis"}
    assert set(by_stem["2018-10-15_11_1"].masks) == {"epidermis", "sleb"}
    assert set(by_stem["t1"].masks) == {"epidermis", "tumor"} and len(by_stem["t1"].masks["tumor"]) == 2
    assert found.orphan_masks == [] and found.images_without_masks == []
    out = import_archive(root, tmp_path / "ds", progress=False, expect=4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"AD": 1, "CG": 1, "PS": 1, "ST": 1}
    assert manifest["structures_per_class"]["ST"] == {"epidermis": 1, "sleb": 0, "tumor": 1}
    assert manifest["mask_values"]["tumor"] == {"n_masks": 2, "values": [0, 255]}
    assert found.extensions[".txt"] == 1


def test_missing_and_orphan_masks_warn_or_fail(tmp_path):
    root = make_archive(tmp_path / "a")
    (root / "AD" / "masks" / "2019-01-10_0_0_sleb.png").unlink()
    (root / "AD" / "masks" / "2019-01-10_0_0_epidermis.png").unlink()
    Image.fromarray(mask_array("sleb", 0)).save(root / "AD" / "masks" / "nobody_sleb.png")
    with pytest.warns(
        UserWarning, match=r"1 images without masks: AD/2019-01-10_0_0.png.*AD/masks/nobody_sleb.png"
    ):
        found = discover_archive(root)
    assert found.images_without_masks == ["AD/2019-01-10_0_0.png"]
    assert found.orphan_masks == ["AD/masks/nobody_sleb.png"]
    with pytest.raises(HfusError, match="strict"):
        discover_archive(root, strict=True)


def test_ambiguous_pairings_refused(tmp_path):
    root = tmp_path / "a"
    write_image(root / "AD" / "x.png", 0)
    write_image(root / "AD" / "sub" / "x.png", 1)
    with pytest.raises(HfusError, match=r"same stem and class: AD/x.png, AD/sub/x.png"):
        discover_archive(root)
    root = tmp_path / "b"
    write_image(root / "AD" / "x.png", 0)
    write_image(root / "PS" / "x.png", 1)
    (root / "masks").mkdir()
    Image.fromarray(mask_array("epidermis", 0)).save(root / "masks" / "x_epidermis.png")
    with pytest.raises(HfusError, match=r"masks/x_epidermis.png matches several images"):
        discover_archive(root)
    # untyped masks of a class with several structures
    root = tmp_path / "c"
    write_image(root / "ST" / "y.png", 0)
    Image.fromarray(mask_array("tumor", 0)).save(root / "ST" / "y_mask.png")
    with pytest.raises(HfusError, match="untyped masks.*ST/y.png"):
        discover_archive(root)


def test_no_images_lists_tree(tmp_path):
    root = tmp_path / "empty"
    (root / "stuff").mkdir(parents=True)
    (root / "stuff" / "a.mat").write_bytes(b"0")
    with pytest.raises(HfusError, match=r"no class-labelled images.*\.mat: 1.*stuff: \.mat 1"):
        discover_archive(root)
    with pytest.raises(HfusError, match="does not exist"):
        discover_archive(tmp_path / "nope")


def test_import_roundtrip(tmp_path):
    import datasets

    root = make_archive(tmp_path / "a", per_class=3)
    out = import_archive(root, tmp_path / "ds", progress=False)
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    card = (out / "README.md").read_text()
    assert "license: cc-by-4.0" in card and "configs:" in card and "| AD |" in card
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"AD": 3, "CG": 3, "PS": 3, "ST": 3}
    assert manifest["mask_values"]["epidermis"] == {"n_masks": 12, "values": [0, 255]}
    assert manifest["generator"]["n"] == 12
    assert (
        "SYNTH_INFO.json" in manifest["sha256"] and "AD/masks/2019-01-10_0_0_sleb.png" in manifest["sha256"]
    )
    assert manifest["structures_per_class"]["CG"] == {"epidermis": 3, "sleb": 0, "tumor": 0}

    ds = datasets.load_dataset(str(out), split="train")  # the card's YAML makes this work
    assert len(ds) == 12
    assert ds.features == features()
    row = ds[0]
    assert row["image"].mode == "RGB" and row["image"].size == (224, 224)
    assert row["slm"].mode == "L" and row["epidermis"].mode == "L"
    # the image is exactly PIL bilinear of the source
    src = Image.open(root / "AD" / f"{row['image_id']}.png").convert("RGB").resize((224, 224), Image.BILINEAR)
    np.testing.assert_array_equal(np.asarray(row["image"]), np.asarray(src))
    # masks are 0/255, SLM = skin_layer_map of the stored masks, absent structure all-zero
    epi, sleb, tum = (np.asarray(row[k]) for k in ("epidermis", "sleb", "tumor"))
    assert set(np.unique(epi)) == {0, 255} and tum.max() == 0 and sleb.max() == 255
    np.testing.assert_array_equal(np.asarray(row["slm"]), skin_layer_map(epi, sleb, tum))
    # expected mask: bilinear resize then > 127
    m = Image.fromarray(mask_array("epidermis", 0)).resize((224, 224), Image.BILINEAR)
    np.testing.assert_array_equal(epi, np.where(np.asarray(m) > 127, 255, 0))
    assert sorted(ds["label"]) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert set(ds["fold"]) <= set(range(5))
    assert row["group_id"] == row["image_id"].rsplit("_", 1)[0]


def test_import_deterministic_and_parallel(tmp_path):
    root = make_archive(tmp_path / "a", per_class=9)  # 36 images: goes through the process pool
    a = import_archive(root, tmp_path / "ds1", progress=False, workers=2)
    b = import_archive(root, tmp_path / "ds2", progress=False, workers=1)
    pa = (a / "data" / "train-00000-of-00001.parquet").read_bytes()
    pb = (b / "data" / "train-00000-of-00001.parquet").read_bytes()
    assert pa == pb
    assert (a / "manifest.json").read_text() == (b / "manifest.json").read_text()


def test_import_count_checks(tmp_path):
    root = make_archive(tmp_path / "a", per_class=2, synth=False)
    with pytest.raises(HfusError, match=r"found 8 images, the real archive has 631.*--expect 8"):
        import_archive(root, tmp_path / "x", progress=False)
    with pytest.raises(HfusError, match="found 8 images but --expect 9"):
        import_archive(root, tmp_path / "x", progress=False, expect=9)
    out = import_archive(root, tmp_path / "ok", progress=False, expect=8)
    card = (out / "README.md").read_text()
    assert "verify on the landing page" in card
    assert json.loads((out / "manifest.json").read_text())["generator"] is None
    with pytest.raises(HfusError, match="not empty"):
        import_archive(root, out, progress=False, expect=8)
    (root / "SYNTH_INFO.json").write_text(json.dumps({"n": 9}))
    with pytest.raises(HfusError, match="declares n=9"):
        import_archive(root, tmp_path / "y", progress=False)


def test_jpeg_mask_threshold(tmp_path):
    root = tmp_path / "j"
    write_image(root / "CG" / "a.png", 0)
    m = mask_array("epidermis", 0)
    m[m == 0] = 20  # JPEG-like noise below 128 must stay background
    (root / "CG" / "masks").mkdir()
    Image.fromarray(m).save(root / "CG" / "masks" / "a.jpg", quality=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = import_archive(root, tmp_path / "o", progress=False, expect=1)
    import datasets

    ds = datasets.load_dataset(str(out), split="train")
    epi = np.asarray(ds[0]["epidermis"])
    assert 0 < (epi == 255).mean() < 0.5
