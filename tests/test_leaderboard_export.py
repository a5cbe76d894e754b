"""`hfus-bench leaderboard export`: the committed entries as a Hugging Face dataset folder that
round-trips."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
from eco_fixtures import leaderboard_entries
from huggingface_hub.repocard import metadata_load

import hfus_xai_bench as hb
from hfus_xai_bench.cli import main
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.leaderboard import load_entries
from hfus_xai_bench.leaderboard.entries import entry_filename
from hfus_xai_bench.leaderboard.export import export_leaderboard


@pytest.fixture(scope="module")
def entries_dir(tmp_path_factory) -> Path:
    return leaderboard_entries(tmp_path_factory.mktemp("entries"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, entries_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("lb") / "hf"
    assert main(["leaderboard", "export", str(out), "--entries", str(entries_dir)]) == 0
    return out


def test_reload_with_datasets_reproduces_the_table_means(
    exported: Path, entries_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = str(tmp_path / "cache")  # a fresh cache: datasets reads HF_DATASETS_CACHE only at import
    scores = datasets.load_dataset(
        str(exported), split="train", cache_dir=cache
    ).to_pandas()  # default config
    entries = load_entries(entries_dir)
    n_rows = sum(
        len(p["image_ids"]) for e in entries for f in e["per_image_scores"].values() for p in f.values()
    )
    assert len(scores) == n_rows
    checked = 0
    for e in entries:
        stem = entry_filename(e).removesuffix(".json")
        for arch, folds in e["per_image_scores"].items():
            rows = scores[(scores.entry == stem) & (scores.arch == arch)]
            for key in folds[next(iter(folds))]["scores"]:
                summary = e["metrics"].get(key, {}).get(arch)
                if summary is None or summary.get("mean") is None:
                    continue
                # the table's mean: per fold the mean over images with a value, then the mean over folds
                per_fold = rows.groupby("fold")[key].apply(lambda s: np.nanmean(s.to_numpy(dtype=float)))
                np.testing.assert_allclose(
                    per_fold.mean(), summary["mean"], rtol=1e-8, atol=1e-12, err_msg=key
                )
                checked += 1
    assert checked >= 10 * len(entries)  # every entry, most of its columns
    summary = datasets.load_dataset(str(exported), "summary", split="train", cache_dir=cache).to_pandas()
    gradcam = summary[(summary.method == "gradcam") & (summary.arch == "mobilenet_v2")].iloc[0]
    ref = next(e for e in entries if e["method"]["name"] == "gradcam")["metrics"]["hit_rate@1"][
        "mobilenet_v2"
    ]
    assert gradcam["hit_rate@1"] == ref["mean"]  # copied, not recomputed: the same float64
    assert [gradcam["hit_rate@1/ci_low"], gradcam["hit_rate@1/ci_high"]] == ref["ci95"]


def test_load_results_from_the_folder_and_from_the_entries(exported: Path, entries_dir: Path) -> None:
    from_folder = hb.load_results(exported)
    from_entries = hb.load_results(entries_dir)
    assert list(from_folder.columns) == list(from_entries.columns)
    assert from_folder.shape == from_entries.shape
    np.testing.assert_array_equal(from_folder["image_id"].to_numpy(), from_entries["image_id"].to_numpy())
    np.testing.assert_array_equal(
        from_folder["hit_rate@1"].to_numpy(dtype=float), from_entries["hit_rate@1"].to_numpy(dtype=float)
    )
    summary = hb.load_results(exported, table="summary")
    assert set(summary["status"]) <= {
        "ranked",
        "model_independent",
        "no_s7",
        "fail",
        "undetermined",
        "pass",
        "other_k",
        "reference",
    }
    with pytest.raises(HfusError, match="table must be"):
        hb.load_results(exported, table="maps")


def test_card_states_revisions_and_content_hashes(exported: Path, entries_dir: Path, tmp_path: Path) -> None:
    card = (exported / "README.md").read_text()
    meta = metadata_load(exported / "README.md")
    assert [c["config_name"] for c in meta["configs"]] == ["scores", "summary"]
    entries = load_entries(entries_dir)
    for e in entries:
        assert e["dataset"]["revision"] in card and e["dataset"]["sha256"] in card
        assert f"`{entry_filename(e)}`" in card
    for name in ("data/scores.parquet", "data/summary.parquet"):
        sha = hashlib.sha256((exported / name).read_bytes()).hexdigest()
        assert re.search(rf"\| `{re.escape(name)}` \| `{sha}` \|", card), name
    # deterministic: a second export writes the same bytes
    again = export_leaderboard(tmp_path / "again", entries_dir)
    for name in ("README.md", "data/scores.parquet", "data/summary.parquet"):
        assert (again / name).read_bytes() == (exported / name).read_bytes(), name


def test_export_errors(tmp_path: Path, entries_dir: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(HfusError, match="is a file"):
        export_leaderboard(tmp_path / "file", entries_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HfusError, match="no entries"):
        export_leaderboard(tmp_path / "out", tmp_path / "empty")
