"""`hfus-bench data import` with the layout flags: --dry-run, --preview, --write-index, --index,
--mask-values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hfus_xai_bench.cli import main


def _archive(root):
    """Two images per class, label PNGs (0 background, 1 epidermis, 2 SLEB, 3 tumour) in a labels/ folder."""
    rng = np.random.default_rng(0)
    for k, c in enumerate(("AD", "CG", "PS", "ST")):
        for j in range(2):
            stem = f"2019-02-{10 + k:02d}_{k}_{j + 1}"
            (root / c / "labels").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / c / f"{stem}.png")
            lab = np.zeros((48, 64), np.uint8)
            lab[10:14] = 1
            if c in ("AD", "PS"):
                lab[14:20] = 2
            if c == "ST":
                lab[14:30, 20:40] = 3
            Image.fromarray(lab).save(root / c / "labels" / f"{stem}.png")
    return root


def test_dry_run_preview_write_index_then_import(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = _archive(tmp_path / "a")
    sheet, index = tmp_path / "sheet.png", tmp_path / "index.csv"
    rc = main(
        [
            "data",
            "import",
            str(root),
            "--dry-run",
            "--preview",
            str(sheet),
            "--write-index",
            str(index),
            "--expect",
            "8",
            "--workers",
            "1",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "images: 8 (AD 2, CG 2, PS 2, ST 2)" in out and "count check: ok" in out
    assert "label codes: 0=background,1=epidermis,2=sleb,3=tumor (inferred from the classes present)" in out
    assert "dry run: no dataset written" in out and f"wrote preview sheet to {sheet}" in out
    assert Image.open(sheet).size[0] == 6 * 228 + 4
    assert (
        index.read_text()
        .splitlines()[1]
        .startswith("AD/2019-02-10_0_1.png,AD,,,,AD/labels/2019-02-10_0_1.png,")
    )
    rc = main(
        [
            "data",
            "import",
            str(root),
            "--out",
            str(tmp_path / "ds"),
            "--index",
            str(index),
            "--mask-values",
            "1=epidermis,2=sleb,3=tumor",
            "--expect",
            "8",
            "--workers",
            "1",
            "--quiet",
        ]
    )
    assert rc == 0 and "wrote dataset to" in capsys.readouterr().out
    rules = json.loads((tmp_path / "ds" / "manifest.json").read_text())["import"]
    assert rules["discovery"] == "index file" and rules["label_encoding"]["given_by"] == "--mask-values"
    assert rules["options"]["given_by"] == {"index": "--index", "mask_values": "--mask-values"}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dry-run", "--mask-values", "1=epidermis", "--mask-colors", "#f00=epidermis"], "are both given"),
        (["--dry-run", "--mask-values", "1=epidermis,2=sleb"], "label value(s) that map to no structure"),
        ([], "give --out DATASET_DIR"),
        (["--dry-run", "--class-map", "AD"], "has no '='"),
    ],
)
def test_import_flag_errors_are_one_line(tmp_path, capsys, flags, message):
    root = _archive(tmp_path / "a")
    assert main(["data", "import", str(root), "--quiet", "--workers", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfus-bench: error: ") and message in err and err.count("\n") == 1


def test_a_mask_of_another_size_is_imported_with_a_warning(tmp_path, capsys, monkeypatch):
    """PROTOCOL §1: the importer never guesses silently; a binary mask scaled to its image is named on stderr
    (a label-coded mask of another size is an error)."""
    from test_archive import make_archive

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = make_archive(tmp_path / "a", per_class=2)
    flags = ["--quiet", "--workers", "1", "--expect", "8"]
    assert main(["data", "import", str(root), "--out", str(tmp_path / "ok"), *flags]) == 0
    assert "warning" not in capsys.readouterr().err
    mask = sorted((root / "AD" / "masks").glob("*_epidermis.png"))[0]
    small = Image.open(mask)
    small.resize((small.width // 2, small.height // 2), Image.NEAREST).save(mask)
    assert main(["data", "import", str(root), "--out", str(tmp_path / "ds"), *flags]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: 1 masks differ in size from their image and were scaled to it (")
    assert mask.name in err and err.count("\n") == 1
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["mask_size_mismatch"]
