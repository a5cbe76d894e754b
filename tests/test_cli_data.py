"""cli/data.py: `hfus-bench data synth|import|info` through ``cli.main``."""

from __future__ import annotations

import json

import pytest
from test_archive import make_archive

from hfus_xai_bench import data
from hfus_xai_bench.cli import main


def test_synth_import_info(tmp_path, cache, capsys):
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path / "arch"),
                "--n",
                "8",
                "--seed",
                "3",
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    info = json.loads((tmp_path / "arch" / "SYNTH_INFO.json").read_text())
    assert info["n"] == 8 and info["seed"] == 3
    assert main(["data", "import", str(tmp_path / "arch"), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "wrote dataset to" in out
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["n_images"] == 8 and sum(manifest["counts"].values()) == 8
    assert main(["data", "info", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert "revision: local" in out and "images:   8 (4 classes: AD, CG, PS, ST)" in out
    assert "| AD " in out and "fold 4" in out


def test_import_errors_and_warnings(tmp_path, cache, capsys):
    root = make_archive(tmp_path / "a", per_class=2, synth=False)
    assert main(["data", "import", str(root), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfus-bench: error: found 8 images") and err.count("\n") == 1
    (root / "AD" / "masks" / "2019-01-10_0_0_sleb.png").rename(root / "AD" / "masks" / "orphan_sleb.png")
    assert (
        main(
            [
                "data",
                "import",
                str(root),
                "--out",
                str(tmp_path / "y"),
                "--expect",
                "8",
                "--strict",
                "--quiet",
            ]
        )
        == 2
    )
    assert "masks without images: AD/masks/orphan_sleb.png" in capsys.readouterr().err
    assert main(["data", "import", str(root), "--out", str(tmp_path / "z"), "--expect", "8", "--quiet"]) == 0
    err = capsys.readouterr().err  # warnings go to stderr, one line each
    assert "hfus-bench: warning: 1 masks without images: AD/masks/orphan_sleb.png" in err


def test_info_offline_hub_error(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    assert main(["data", "info", "someone/hfus"]) == 2
    assert "hf download --repo-type dataset someone/hfus" in capsys.readouterr().err


def test_lazy_package_exports():
    assert data.SLM_VERSION == "slm@1"
    assert callable(data.load_dataset) and callable(data.fold_arrays)
    with pytest.raises(AttributeError):
        data.nope  # noqa: B018


def test_missing_data_command_prints_help_and_exits_2(capsys):
    assert main(["data"]) == 2
    err = capsys.readouterr().err
    assert "usage: hfus-bench data" in err and "import" in err
