"""Every supported archive layout imports to the same dataset content as the canonical (synthetic) layout.

One small synthetic archive (12 images, 96×72) is re-arranged and re-encoded the ways the real
archive might be (full class names, parallel trees, BMP/TIFF, label images, grey levels, colour
masks, MATLAB .mat v5, an index file); each import must give the same ``content_sha256`` (pixels,
masks, SLMs, ids, labels, folds, groups) as the canonical import. Then one clear error per misuse.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from hfus_xai_bench.constants import CLASSES
from hfus_xai_bench.data.archive import dry_run, import_archive
from hfus_xai_bench.data.dataset import dataset_provenance, load_dataset
from hfus_xai_bench.data.discover import discover_archive
from hfus_xai_bench.data.layouts import (
    check_import_paths,
    import_options,
    parse_class_map,
    parse_mask_colors,
    parse_mask_values,
)
from hfus_xai_bench.data.preview import write_preview
from hfus_xai_bench.data.synth_archive import generate_archive
from hfus_xai_bench.errors import HfusError

sio = pytest.importorskip("scipy.io")

N = 12
STRUCTURES = ("epidermis", "sleb", "tumor")
NAMES = {"AD": "Atopic dermatitis", "CG": "Healthy controls", "PS": "Psoriasis", "ST": "Skin tumours"}
CODES = {"epidermis": 1, "sleb": 2, "tumor": 3}
RGB = {"epidermis": (255, 0, 0), "sleb": (0, 255, 0), "tumor": (0, 0, 255)}


def content_hash(folder: Path) -> str:
    return dataset_provenance(load_dataset(str(folder)))["sha256"]


def save(path: Path, arr: np.ndarray, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)


def run_import(root: Path, out: Path, **flags) -> Path:
    layout_kw = {
        k: flags.pop(k)
        for k in list(flags)
        if k in ("class_map", "mask_values", "mask_colors", "layout", "index")
    }
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error", UserWarning
        )  # the layouts below are complete: no "without masks" warning
        return import_archive(
            root, out, progress=False, workers=1, expect=N, options=import_options(**layout_kw), **flags
        )


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    root = generate_archive(base / "canonical", n=N, size=(96, 72), workers=1, progress=False)
    # As a real archive: no generator info, twins or evidence files (every layout below then derives the
    # same evidence column from the masks).
    for p in [*root.glob("*/twins/*.png"), *root.glob("*/masks/*_evidence.png"), root / "SYNTH_INFO.json"]:
        p.unlink()
    items = []
    for c in CLASSES:
        for p in sorted((root / c).glob("*.png")):
            masks = {}
            for s in STRUCTURES:
                m = root / c / "masks" / f"{p.stem}_{s}.png"
                if m.is_file():
                    masks[s] = np.asarray(Image.open(m)) > 0
            items.append((c, p.stem, np.asarray(Image.open(p).convert("RGB")), masks))
    assert len(items) == N and {c for c, *_ in items} == set(CLASSES)
    out = import_archive(root, base / "canonical-ds", progress=False, workers=1, expect=N)
    return SimpleNamespace(root=root, items=items, hash=content_hash(out), out=out)


def label_image(masks: dict[str, np.ndarray], codes: dict[str, int]) -> np.ndarray:
    shape = next(iter(masks.values())).shape
    lab = np.zeros(shape, np.uint8)
    for s, m in masks.items():
        assert not (lab[m] != 0).any(), "synthetic structures are disjoint"
        lab[m] = codes[s]
    return lab


# ------------------------------------------------------------------------------------- layouts


def test_full_names_parallel_tree_bmp(synth, tmp_path):
    root = tmp_path / "a"
    folder = {"epidermis": "Epidermis", "sleb": "SLEB", "tumor": "Tumour"}  # "Tumour" inside "Skin tumours"
    for c, stem, rgb, masks in synth.items:
        save(root / "images" / NAMES[c] / f"{stem}.bmp", rgb)
        for s, m in masks.items():
            save(root / "segmentations" / NAMES[c] / folder[s] / f"{stem}.bmp", m.astype(np.uint8) * 255)
    out = run_import(root, tmp_path / "ds")
    assert content_hash(out) == synth.hash
    rules = json.loads((out / "manifest.json").read_text())["import"]
    assert rules["class_folders"]["Atopic dermatitis"] == {"class": "AD", "rule": "class name", "files": 9}
    assert rules["class_folders"]["Skin tumours"]["class"] == "ST"
    assert set(rules["mask_kinds"]) == {"binary file per structure"}
    assert "`Healthy controls` → CG (class name)" in (out / "README.md").read_text()


def test_plural_names_tiff_suffix_masks(synth, tmp_path):
    # "Tumors" is the ST class folder among images and a structure-free folder inside the mask tree
    names = {"AD": "atopic_dermatitis", "CG": "Controls", "PS": "PSORIASIS", "ST": "Tumors"}
    root = tmp_path / "a"
    for c, stem, rgb, masks in synth.items:
        save(root / "Images" / names[c] / f"{stem}.tiff", rgb)
        for s, m in masks.items():
            save(root / "Annotations" / names[c] / f"{stem}_{s}.tif", m.astype(np.uint8) * 255)
    assert content_hash(run_import(root, tmp_path / "ds")) == synth.hash


def test_label_png_inferred(synth, tmp_path):
    root = tmp_path / "a"
    for c, stem, rgb, masks in synth.items:
        save(root / c / f"{stem}.tif", rgb)
        save(root / c / "labels" / f"{stem}.png", label_image(masks, CODES))
    out = run_import(root, tmp_path / "ds")
    assert content_hash(out) == synth.hash
    enc = json.loads((out / "manifest.json").read_text())["import"]["label_encoding"]
    assert enc["mapping"] == {"0": "background", "1": "epidermis", "2": "sleb", "3": "tumor"}
    assert enc["given_by"] == "inferred from the classes present" and enc["n_masks"] == N
    assert "label codes 0=background,1=epidermis,2=sleb,3=tumor (inferred" in (out / "README.md").read_text()


def test_grey_level_labels_flag_and_inferred(synth, tmp_path):
    root = tmp_path / "a"
    grey = {s: 85 * v for s, v in CODES.items()}
    for c, stem, rgb, masks in synth.items:
        save(root / NAMES[c] / f"{stem}.png", rgb)
        save(root / NAMES[c] / f"{stem}_label.png", label_image(masks, grey))
    assert content_hash(run_import(root, tmp_path / "ds1")) == synth.hash
    out = run_import(root, tmp_path / "ds2", mask_values="85=epidermis,170=SLEB,255=tumour")
    assert content_hash(out) == synth.hash
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["import"]["label_encoding"]["given_by"] == "--mask-values"
    assert manifest["import"]["options"]["mask_values"] == {
        "0": "background",
        "85": "epidermis",
        "170": "sleb",
        "255": "tumor",
    }
    assert '--mask-values "0=background,85=epidermis,170=sleb,255=tumor"' in (out / "README.md").read_text()


def test_colour_masks(synth, tmp_path):
    root = tmp_path / "a"
    for c, stem, rgb, masks in synth.items:
        save(root / c / f"{stem}.png", rgb)
        col = np.zeros((*rgb.shape[:2], 3), np.uint8)
        for s, m in masks.items():
            col[m] = RGB[s]
        save(root / c / "masks" / f"{stem}_mask.png", col)
    out = run_import(root, tmp_path / "ds1", mask_colors="#ff0000=epidermis,0/255/0=sleb,blue=tumor")
    assert content_hash(out) == synth.hash
    assert json.loads((out / "manifest.json").read_text())["import"]["mask_kinds"] == {"colour mask": N}
    assert content_hash(run_import(root, tmp_path / "ds2")) == synth.hash  # unambiguous from the classes too


def test_mat_v5_structure_variables(synth, tmp_path):
    root = tmp_path / "a"
    for k, (c, stem, rgb, masks) in enumerate(synth.items):
        save(root / c / f"{stem}.bmp", rgb)
        (root / "mat" / c).mkdir(parents=True, exist_ok=True)
        variables = {"image": rgb, "scale": np.array([[5.0]])}  # a 3-D array and a scalar are not masks
        if k % 2:  # half as a MATLAB struct: seg.epidermis, seg.sleb …
            variables["seg"] = {s: m for s, m in masks.items()}
        else:
            variables.update({f"BW_{s}": m.astype(np.double) for s, m in masks.items()})
        sio.savemat(root / "mat" / c / f"{stem}.mat", variables)
    out = run_import(root, tmp_path / "ds")
    assert content_hash(out) == synth.hash
    assert set(json.loads((out / "manifest.json").read_text())["import"]["mask_kinds"]) == {
        "binary .mat variable per structure"
    }


def test_mat_v5_label_array(synth, tmp_path):
    root = tmp_path / "a"
    for c, stem, rgb, masks in synth.items:
        save(root / c / f"{stem}.png", rgb)
        sio.savemat(root / c / f"{stem}.mat", {"L": label_image(masks, CODES)})
    out = run_import(root, tmp_path / "ds")
    assert content_hash(out) == synth.hash
    assert json.loads((out / "manifest.json").read_text())["import"]["mask_kinds"] == {
        "label image (.mat array)": N
    }


def test_index_file_renamed_files(synth, tmp_path):
    root = tmp_path / "a"
    lines = ["path,Class,epidermis,sleb,tumour,id"]
    for k, (c, stem, rgb, masks) in enumerate(synth.items):
        save(root / "files" / f"scan{k:03d}.png", rgb)
        cells = []
        for s in STRUCTURES:
            if s in masks:
                save(root / "files" / f"seg{k:03d}-{CODES[s]}.png", masks[s].astype(np.uint8) * 255)
                cells.append(f"files/seg{k:03d}-{CODES[s]}.png")
            else:
                cells.append("")
        lines.append(",".join([f"files/scan{k:03d}.png", f'"{NAMES[c]}"', *cells, stem]))
    (root / "index.csv").write_text("\n".join(lines) + "\n")
    out = run_import(root, tmp_path / "ds", index=root / "index.csv")
    assert content_hash(out) == synth.hash
    rules = json.loads((out / "manifest.json").read_text())["import"]
    assert rules["discovery"] == "index file" and rules["index"]["rows"] == N


def test_index_json_label_masks(synth, tmp_path):
    root = tmp_path / "a"
    rows = []
    for k, (c, stem, rgb, masks) in enumerate(synth.items):
        save(root / f"{k}.png", rgb)
        save(root / f"{k}_L.png", label_image(masks, CODES))
        rows.append(
            {
                "image": f"{k}.png",
                "class": c,
                "mask": [f"{k}_L.png"],
                "mask_values": "1=epidermis,2=sleb,3=tumor",
                "image_id": stem,
            }
        )
    (tmp_path / "index.json").write_text(json.dumps({"images": rows}))
    out = run_import(root, tmp_path / "ds", index=tmp_path / "index.json")
    assert content_hash(out) == synth.hash
    enc = json.loads((out / "manifest.json").read_text())["import"]["label_encoding"]
    assert enc["given_by"] == "the index's mask_values column"


def test_write_index_roundtrip(synth, tmp_path):
    root = tmp_path / "a"
    for c, stem, rgb, masks in synth.items:
        save(root / NAMES[c] / f"{stem}.png", rgb)
        sio.savemat(root / NAMES[c] / f"{stem}_seg.mat", {"L": label_image(masks, CODES)})
    for ext in ("csv", "tsv", "json"):
        found, _ = dry_run(root, write_index=tmp_path / f"inferred.{ext}", expect=N, workers=1)
        assert len(found.images) == N
    text = (tmp_path / "inferred.csv").read_text().splitlines()
    assert text[0] == "image,class,epidermis,sleb,tumor,mask,mask_values,image_id,group_id"
    assert any("_seg.mat#L" in line and "0=background,1=epidermis,2=sleb,3=tumor" in line for line in text)
    for ext in ("csv", "tsv", "json"):
        assert (
            content_hash(run_import(root, tmp_path / f"ds-{ext}", index=tmp_path / f"inferred.{ext}"))
            == synth.hash
        )


def test_class_map_and_layout_file(synth, tmp_path):
    polish = {"AD": "AZS", "CG": "Kontrola", "PS": "Łuszczyca", "ST": "Nowotwory skóry"}
    root = tmp_path / "a"
    for c, stem, rgb, masks in synth.items:
        save(root / polish[c] / f"{stem}.png", rgb)
        for s, m in masks.items():
            save(root / polish[c] / "maski" / f"{stem}_{s}.png", m.astype(np.uint8) * 255)
    save(root / "Inne" / "x.png", synth.items[0][2])  # another folder, left out by the class map
    with pytest.raises(HfusError, match=r"no class-labelled images.*--class-map"):
        discover_archive(root)
    cmap = "AZS=AD,Kontrola=CG,łuszczyca=PS,Nowotwory_skóry=ST,Inne=ignore"
    out = run_import(root, tmp_path / "ds1", class_map=cmap)
    assert content_hash(out) == synth.hash
    rules = json.loads((out / "manifest.json").read_text())["import"]
    assert rules["class_folders"]["Kontrola"]["rule"] == "class-map" and rules["ignored"] == ["Inne/x.png"]
    layout = tmp_path / "layout.json"
    layout.write_text(
        json.dumps(
            {
                "class_map": {
                    "AZS": "AD",
                    "Kontrola": "healthy",
                    "Łuszczyca": "PS",
                    "Nowotwory skóry": "ST",
                    "Inne": "ignore",
                }
            }
        )
    )
    out = run_import(root, tmp_path / "ds2", layout=layout)
    assert content_hash(out) == synth.hash
    assert (
        json.loads((out / "manifest.json").read_text())["import"]["options"]["layout_file"]["path"]
        == "layout.json"
    )
    yaml = pytest.importorskip("yaml")
    ly = tmp_path / "layout.yaml"
    ly.write_text(yaml.safe_dump({"class_map": cmap}))
    assert content_hash(run_import(root, tmp_path / "ds3", layout=ly)) == synth.hash


def test_jpeg_images_same_labels_masks_slms(synth, tmp_path):
    root = tmp_path / "a"
    for c, stem, rgb, masks in synth.items:
        save(root / c / f"{stem}.jpg", rgb, quality=95)
        for s, m in masks.items():
            save(root / c / "masks" / f"{stem}_{s}.png", m.astype(np.uint8) * 255)
    a, b = load_dataset(str(synth.out)), load_dataset(str(run_import(root, tmp_path / "ds")))
    for col in ("image_id", "label", "fold", "group_id"):
        assert a[col] == b[col]
    for i in range(N):
        for col in ("epidermis", "sleb", "tumor", "slm"):
            np.testing.assert_array_equal(np.asarray(a[i][col]), np.asarray(b[i][col]))
        diff = np.abs(np.asarray(a[i]["image"], np.int16) - np.asarray(b[i]["image"], np.int16))
        assert diff.mean() < 4


# --------------------------------------------------------------------------- dry run, preview


def test_dry_run_reports_without_writing(synth, tmp_path):
    root = tmp_path / "a"
    for c, stem, rgb, masks in synth.items:
        save(root / c / f"{stem}.png", rgb)
        save(root / c / "labels" / f"{stem}.png", label_image(masks, CODES))
    save(root / "AD" / "labels" / "nobody.png", np.zeros((72, 96), np.uint8))
    with pytest.warns(UserWarning, match="1 masks without images: AD/labels/nobody.png"):
        found, text = dry_run(root, workers=1, preview=tmp_path / "sheet.png")
    lines = text.splitlines()
    assert "images: 12 (AD 3, CG 3, PS 3, ST 3)" in lines
    assert any(line.startswith("count check: found 12 images, the real archive has 631") for line in lines)
    assert "masks: 12 label image" in lines
    assert "label codes: 0=background,1=epidermis,2=sleb,3=tumor (inferred from the classes present)" in lines
    assert "codes per class: AD {0, 1, 2}; CG {0, 1}; PS {0, 1, 2}; ST {0, 1, 3}" in lines
    assert "masks without images: 1 (AD/labels/nobody.png)" in lines
    assert not (tmp_path / "ds").exists()
    sheet = np.asarray(Image.open(tmp_path / "sheet.png").convert("RGB"))
    assert sheet.shape[1] == 6 * (224 + 4) + 4
    # every epidermis pixel of the 12 previewed images (224-scale) is drawn once in its colour
    epi = sum(int((np.asarray(r["epidermis"]) > 127).sum()) for r in load_dataset(str(synth.out)))
    assert int(np.all(sheet == (255, 60, 60), axis=2).sum()) == epi


def test_preview_after_import(synth, tmp_path):
    out = tmp_path / "sheet.png"
    import_archive(synth.root, tmp_path / "ds", progress=False, workers=1, expect=N, preview=out)
    found = discover_archive(synth.root)
    a = np.asarray(Image.open(out))
    b = tmp_path / "again.png"
    write_preview(found, b)
    np.testing.assert_array_equal(
        a, np.asarray(Image.open(b))
    )  # same rows from the import results and afresh


# ------------------------------------------------------------------------------------- errors


def test_flag_parsers_and_conflicts(tmp_path):
    assert parse_class_map("Atopic dermatitis=AD, healthy=cg,Other=ignore") == {
        "atopic dermatitis": 0,
        "healthy": 1,
        "other": -1,
    }
    assert parse_mask_values("1=epidermis,2=SLEB,3=tumour,4=background") == {
        1: "epidermis",
        2: "sleb",
        3: "tumor",
        4: None,
        0: None,
    }
    assert parse_mask_colors("rgb(255,0,0)=epidermis;#0f0=sleb") == {
        (255, 0, 0): "epidermis",
        (0, 255, 0): "sleb",
        (0, 0, 0): None,
    }
    with pytest.raises(HfusError, match="has no '='.*--class-map \"Atopic dermatitis=AD"):
        parse_class_map("Atopic dermatitis")
    with pytest.raises(HfusError, match="'XX' is not a class"):
        parse_class_map("A=XX")
    with pytest.raises(HfusError, match="maps 'A' to two classes"):
        parse_class_map("a=AD,A=PS")
    with pytest.raises(HfusError, match="'dermis' is not a structure"):
        parse_mask_values("1=dermis")
    with pytest.raises(HfusError, match="not a colour"):
        parse_mask_colors("#12=epidermis")
    with pytest.raises(HfusError, match="--mask-values .* and --mask-colors .* are both given"):
        import_options(mask_values="1=epidermis", mask_colors="#ff0000=epidermis")
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps({"mask_values": {"1": "epidermis"}, "class_map": {"Healthy": "CG"}}))
    with pytest.raises(
        HfusError, match="--mask-values and the layout file layout.json give different mask_values"
    ):
        import_options(mask_values="1=sleb", layout=layout)
    with pytest.raises(
        HfusError, match="--class-map and the layout file layout.json map 'healthy' to different classes"
    ):
        import_options(class_map="healthy=AD", layout=layout)
    opts = import_options(class_map="Ekzema=AD", layout=layout)  # maps merge when they agree
    assert (
        opts.class_map == {"ekzema": 0, "healthy": 1}
        and opts.sources["class_map"] == "--class-map + layout file layout.json"
    )
    layout.write_text(json.dumps({"mask_value": {"1": "epidermis"}}))
    with pytest.raises(HfusError, match="unknown key.*mask_value; known"):
        import_options(layout=layout)
    with pytest.raises(HfusError, match="--index and --write-index name the same file"):
        check_import_paths(
            out=tmp_path / "o", dry_run=False, index=tmp_path / "i.csv", write_index=tmp_path / "i.csv"
        )
    with pytest.raises(HfusError, match="give --out DATASET_DIR.*or --dry-run"):
        check_import_paths(out=None, dry_run=False)
    with pytest.raises(HfusError, match="ending in .png"):
        check_import_paths(out=None, dry_run=True, preview=tmp_path / "p.jpg")


def _label_archive(synth, root: Path, classes=CLASSES) -> Path:
    for c, stem, rgb, masks in synth.items:
        if c in classes:
            save(root / c / f"{stem}.png", rgb)
            save(root / c / "labels" / f"{stem}.png", label_image(masks, CODES))
    return root


def test_label_value_that_maps_to_nothing(synth, tmp_path):
    root = _label_archive(synth, tmp_path / "a")
    with pytest.raises(
        HfusError,
        match=r"label value\(s\) that map to no structure with --mask-values "
        r"0=background,1=epidermis,2=sleb: 3 in ST/labels/.*add them to --mask-values",
    ):
        discover_archive(root, options=import_options(mask_values="1=epidermis,2=sleb"))


def test_ambiguous_label_codes_ask_for_the_map(synth, tmp_path):
    root = _label_archive(synth, tmp_path / "a", classes=("AD", "PS"))  # no CG: which code is the epidermis?
    with pytest.raises(
        HfusError,
        match=r"codes \[AD: 1, 2; CG: -; PS: 1, 2; ST: -\].*2 assignments fit.*"
        r"--mask-values \"1=epidermis,2=sleb\"",
    ):
        discover_archive(root)
    found = discover_archive(root, options=import_options(mask_values="1=epidermis,2=sleb"))
    assert found.encoding["given_by"] == "--mask-values"
    with pytest.raises(HfusError, match="--mask-values is given but no image has an untyped mask"):
        discover_archive(synth.root, options=import_options(mask_values="1=epidermis"))


def test_mat_without_usable_variable(synth, tmp_path):
    c, stem, rgb, masks = next(it for it in synth.items if it[0] == "AD")
    root = tmp_path / "a"
    save(root / "AD" / f"{stem}.png", rgb)
    sio.savemat(root / "AD" / f"{stem}.mat", {"A": masks["epidermis"], "B": masks["sleb"], "img": rgb})
    with pytest.raises(
        HfusError,
        match=rf"AD/{stem}.mat: no usable mask variable \(A \(72x96\), B \(72x96\)\).*"
        r'"mat_variables": \{',
    ):
        discover_archive(root)
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps({"mat_variables": {"A": "epidermis", "B": "sleb"}}))
    found = discover_archive(root, options=import_options(layout=layout))
    assert {s: [m.var for m in v] for s, v in found.images[0].masks.items()} == {
        "epidermis": ["A"],
        "sleb": ["B"],
    }
    sio.savemat(root / "AD" / f"{stem}.mat", {"img": rgb})
    with pytest.raises(HfusError, match="no usable mask variable \\(no 2-D numeric or logical array\\)"):
        discover_archive(root)


def test_mat_v73_needs_h5py(tmp_path):
    try:
        import h5py  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("h5py is installed: the v7.3 path reads the file instead")
    root = tmp_path / "a"
    save(root / "CG" / "x.png", np.zeros((48, 64, 3), np.uint8))
    hdr = (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116, b" ")
        + bytes(8)
        + b"\x00\x02IM"
    )
    (root / "CG" / "x.mat").write_bytes(hdr + b"\x89HDF\r\n\x1a\n" + bytes(512))
    with pytest.raises(
        HfusError, match=r"CG/x.mat is a MATLAB v7.3 \(HDF5\) file, which needs h5py: pip install h5py"
    ):
        discover_archive(root)


def test_index_errors(synth, tmp_path):
    root = tmp_path / "a"
    c, stem, rgb, masks = synth.items[0]
    save(root / "x.png", rgb)
    idx = tmp_path / "index.csv"
    idx.write_text("image,class,epidermis\nx.png,AD,\nnope.png,PS,\nx.png,AD,gone_mask.png\n")
    with pytest.raises(
        HfusError,
        match=r"index index.csv: 2 file\(s\) listed do not exist under .*row 3: nope.png, "
        r"row 4 epidermis: gone_mask.png",
    ):
        discover_archive(root, options=import_options(index=idx))
    idx.write_text("image,class\nx.png,Eczema herpeticum or psoriasis\n")
    with pytest.raises(HfusError, match=r"unknown class in row 2: .*--class-map"):
        discover_archive(root, options=import_options(index=idx))
    idx.write_text("image,klass\nx.png,AD\n")
    with pytest.raises(HfusError, match="unknown column.*klass"):
        discover_archive(root, options=import_options(index=idx))


def test_importer_keeps_the_golden_image_bytes(tmp_path):
    """A few frames of the default hfus-synth revision imported here hash as the golden imported images."""
    from hfus_xai_bench.data.dataset import image_sha256s
    from hfus_xai_bench.data.golden import load_golden
    from hfus_xai_bench.data.synth import SYNTH_VERSION, plan_archive, render_item, render_item_v3

    golden = load_golden(f"synth-v{SYNTH_VERSION}-seed0")
    if golden is None:
        pytest.skip(f"no golden hashes shipped for synth v{SYNTH_VERSION}")
    plan = plan_archive(631, 0)
    picks = [next(it for it in plan if it.label == c) for c in CLASSES]
    root = tmp_path / "a"
    for it in picks:
        if SYNTH_VERSION == "3":  # + the evidence mask and the twin, as the generator writes them
            frame = render_item_v3(it, 0)
            rgb, masks = frame.rgb, {**frame.masks, "evidence": frame.evidence}
            save(root / it.label / "twins" / f"{it.stem}.png", frame.twin)
        else:
            rgb, masks = render_item(it, 0)
        save(root / it.label / f"{it.stem}.png", rgb)
        for s, m in masks.items():
            save(root / it.label / "masks" / f"{it.stem}_{s}.png", m)
    out = import_archive(root, tmp_path / "ds", expect=len(picks), progress=False, workers=1)
    got = image_sha256s(load_dataset(str(out)))
    assert got == {it.stem: golden["images"][it.stem] for it in picks}
