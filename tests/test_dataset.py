"""data/dataset.py: load_dataset / provenance / fold_arrays / describe, including the Hub path without
network."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from test_archive import make_archive

from hfus_xai_bench.data import dataset as D
from hfus_xai_bench.data.archive import import_archive
from hfus_xai_bench.data.golden import load_golden
from hfus_xai_bench.errors import HfusError

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A 20-image dataset folder (5 per class), built once per session."""
    tmp = tmp_path_factory.mktemp("hubds")
    root = make_archive(tmp / "archive", per_class=5)
    return import_archive(root, tmp / "dataset", progress=False)


def test_local_folder_provenance_and_folds(small_dataset, cache):
    ds = D.load_dataset(str(small_dataset))
    assert len(ds) == 20
    prov = D.dataset_provenance(ds)
    shard = small_dataset / "data" / "train-00000-of-00001.parquet"
    digest = hashlib.sha256(shard.read_bytes()).hexdigest()
    assert prov["revision"] == "local" and prov["n_images"] == 20
    assert prov["id"] == str(small_dataset.resolve())
    assert prov["shards"] == {"data/train-00000-of-00001.parquet": digest}
    assert prov["files_sha256"] == hashlib.sha256(digest.encode()).hexdigest()
    # the portable content hash: decoded pixels + ids/labels/folds, not the encoded bytes
    assert prov["sha256"] == D.content_sha256(ds) != prov["files_sha256"]
    assert D.dataset_provenance(ds.select([0, 1]))["n_images"] == 2  # survives select

    folds = np.asarray(ds["fold"])
    seen = []
    for k in range(5):
        te, va, tr = (D.fold_arrays(ds, k, s) for s in ("test", "val", "train"))
        assert te.images.dtype == np.uint8 and te.images.shape == (len(te.image_ids), 224, 224, 3)
        assert te.slms.shape == (len(te.image_ids), 224, 224) and te.labels.dtype == np.int64
        assert len(te.image_ids) == np.sum(folds == k) and len(va.image_ids) == np.sum(folds == (k + 1) % 5)
        assert len(te.image_ids) + len(va.image_ids) + len(tr.image_ids) == 20
        assert not set(te.image_ids) & set(tr.image_ids) and not set(va.image_ids) & set(tr.image_ids)
        seen += te.image_ids
    assert sorted(seen) == sorted(ds["image_id"])
    # arrays equal the dataset's decoded rows
    te = D.fold_arrays(ds, 2, "test")
    row = ds[int(np.flatnonzero(folds == 2)[0])]
    assert te.image_ids[0] == row["image_id"] and te.groups[0] == row["group_id"]
    np.testing.assert_array_equal(te.images[0], np.asarray(row["image"]))
    np.testing.assert_array_equal(te.slms[0], np.asarray(row["slm"]))
    assert te.labels[0] == row["label"]
    with pytest.raises(HfusError, match="split must be"):
        D.fold_arrays(ds, 0, "dev")
    with pytest.raises(HfusError, match="fold must be"):
        D.fold_arrays(ds, 5)


def test_describe(small_dataset, cache):
    text = D.describe(D.load_dataset(str(small_dataset)))
    lines = text.splitlines()
    assert "fold 4" in lines[0] and "total" in lines[0]
    assert lines[2].split("|")[1].strip() == "AD" and lines[2].split("|")[-2].strip() == "5"
    assert lines[-1].split("|")[-2].strip() == "20"


def test_raw_archive_imported_into_cache(tmp_path, cache):
    root = make_archive(tmp_path / "raw", per_class=2)
    ds = D.load_dataset(str(root))
    assert len(ds) == 8
    built = [p for p in (cache / "datasets").iterdir() if p.name.startswith("archive-")]
    assert len(built) == 1 and (built[0] / "manifest.json").is_file()
    key = D.archive_content_hash(root)[:16]
    assert built[0].name == f"archive-{key}"
    D.load_dataset(str(root))  # second time: from the cache, nothing new
    assert [p for p in (cache / "datasets").iterdir() if p.name.startswith("archive-")] == built


def test_interrupted_build_is_not_a_dataset(tmp_path):
    final = tmp_path / "datasets" / "x"
    final.parent.mkdir()

    def boom(tmp: Path) -> Path:
        (tmp / "dataset" / "data").mkdir(parents=True)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        D._build_atomic(final, boom)
    assert not final.exists()
    assert [p.name for p in final.parent.iterdir() if ".tmp-" in p.name] == []


def test_synth_built_once_small(cache, monkeypatch):
    monkeypatch.setattr(D, "SYNTH_N", 12)
    monkeypatch.setattr(D, "SYNTH_WORKERS", 1)
    ds = D.load_dataset("hfus-synth")
    assert len(ds) == 12
    prov = D.dataset_provenance(ds)
    assert prov["id"] == "hfus-synth" and prov["revision"] == D.synth_revision()
    assert D.synth_dataset_dir() == cache / "datasets" / f"hfus-{D.synth_revision()}"

    import hfus_xai_bench.data.synth_archive as synth_archive

    def no_rebuild(*a, **k):
        raise AssertionError("rebuilt")

    monkeypatch.setattr(synth_archive, "generate_archive", no_rebuild)
    again = D.load_dataset("hfus-synth", revision=D.synth_revision())
    assert D.dataset_provenance(again)["sha256"] == prov["sha256"]
    with pytest.raises(HfusError, match=f"has no revision 'main'.*{D.synth_revision()}"):
        D.load_dataset("hfus-synth", revision="main")


def test_synth_build_refuses_data_that_differ_from_golden(cache, monkeypatch):
    """A machine whose arithmetic differs never caches a silently different dataset."""
    monkeypatch.setattr(D, "SYNTH_N", 8)
    monkeypatch.setattr(D, "SYNTH_WORKERS", 1)
    import hfus_xai_bench.data.golden as G

    def fake_golden(revision):
        return {
            "generator": {"n": 8},
            "raw_pixels": {"AD/x.png": "0" * 64},
            "images": {},
            "dataset_sha256": "",
        }

    monkeypatch.setattr(G, "load_golden", fake_golden)
    with pytest.raises(
        HfusError,
        match=D.synth_revision() + r" data generated on this machine differ from the golden hashes.*"
        r"[0-9]+ of [0-9]+ generated files \(before import\) differ \(AD/.*report this",
    ):
        D.load_dataset("hfus-synth")
    assert not D.is_dataset_folder(D.synth_dataset_dir())  # nothing cached


def test_a_cached_synth_copy_that_differs_from_golden_is_refused_on_load(cache, monkeypatch):
    """PROTOCOL §1: never a silent other dataset, also for a copy changed after its build was checked."""
    monkeypatch.setattr(D, "SYNTH_N", 8)
    monkeypatch.setattr(D, "SYNTH_WORKERS", 1)
    import hfus_xai_bench.data.golden as G

    monkeypatch.setattr(G, "load_golden", lambda revision: None)  # build the small copy unchecked
    ds = D.load_dataset("hfus-synth")
    images, sha = D.image_sha256s(ds), D.dataset_provenance(ds)["sha256"]
    golden = {"generator": {"n": 8}, "images": dict(images), "dataset_sha256": sha}
    monkeypatch.setattr(G, "load_golden", lambda revision: golden)
    assert len(D.load_dataset("hfus-synth")) == 8  # the golden copy loads
    folder, first = D.synth_dataset_dir(), sorted(images)[0]
    golden.update(images={**images, first: "0" * 64}, dataset_sha256="f" * 64)
    with pytest.raises(
        HfusError, match=rf"cached {D.synth_revision()} at {folder} differs .* in 1 images \({first}\)"
    ):
        D.load_dataset("hfus-synth")
    golden.update(images=dict(images))  # every image matches, the content hash does not (e.g. swapped folds)
    with pytest.raises(HfusError, match="labels, groups or folds .*delete that folder and run again"):
        D.load_dataset("hfus-synth")
    golden.update(generator={"n": 631})
    monkeypatch.setattr(D, "SYNTH_N", 631)  # a full-size session meets a smaller build left in the cache
    with pytest.raises(HfusError, match="holds 8 images, not 631; delete that folder"):
        D.load_dataset("hfus-synth")


def test_golden_status_lines():
    from hfus_xai_bench.data.golden import golden_status, load_golden

    golden = load_golden("synth-v2-seed0")["dataset_sha256"]
    assert golden_status({"id": "hfus-synth", "revision": "synth-v2-seed0", "sha256": golden})[0] is True
    ok, line = golden_status({"id": "hfus-synth", "revision": "synth-v2-seed0", "sha256": "f" * 64})
    assert ok is False and "generated differently" in line
    assert golden_status({"id": "/some/folder", "revision": "local", "sha256": golden})[0] is None


def _populate_hf_cache(hub_cache: Path, dataset_dir: Path, repo: str, sha: str) -> Path:
    owner, name = repo.split("/")
    repo_dir = hub_cache / f"datasets--{owner}--{name}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(sha)
    snap = repo_dir / "snapshots" / sha
    shutil.copytree(dataset_dir, snap)
    return snap


def test_hub_offline_from_cache(small_dataset, tmp_path, cache, monkeypatch):
    hub_cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _populate_hf_cache(hub_cache, small_dataset, "owner/hfus", SHA)
    for rev in (SHA, None, "main"):
        ds = D.load_dataset("owner/hfus", revision=rev)
        prov = D.dataset_provenance(ds)
        assert len(ds) == 20 and prov["id"] == "owner/hfus" and prov["revision"] == SHA
    local = D.dataset_provenance(D.load_dataset(str(small_dataset)))
    assert prov["sha256"] == local["sha256"]


def test_hub_offline_without_cache_errors(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        HfusError,
        match=r"owner/missing@abc is not in the Hugging Face cache.*"
        r"hf download --repo-type dataset owner/missing --revision abc.*hfus-bench data import",
    ):
        D.load_dataset("owner/missing", revision="abc")


def test_bad_sources(tmp_path, cache):
    with pytest.raises(HfusError, match="neither"):
        D.load_dataset("no such thing")
    with pytest.raises(HfusError, match="no revision"):
        D.load_dataset(str(tmp_path), revision="v2")
    (tmp_path / "d" / "data").mkdir(parents=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "d" / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(HfusError, match="missing columns"):
        D.load_dataset(str(tmp_path / "d"))
    import datasets

    with pytest.raises(HfusError, match="not loaded with"):
        D.dataset_provenance(datasets.Dataset.from_dict({"a": [1]}))


@pytest.mark.slow
def test_full_synth_631_offline(cache, monkeypatch):
    """Done-criterion: the default dataset builds offline, 631 images, folds of 126/127."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    t0 = time.perf_counter()
    ds = D.load_dataset()
    build_s = time.perf_counter() - t0
    assert len(ds) == 631
    assert sorted(np.bincount(np.asarray(ds["fold"]), minlength=5).tolist()) == [126, 126, 126, 126, 127]
    assert set(ds["label"]) == {0, 1, 2, 3}
    prov = D.dataset_provenance(ds)
    assert prov["revision"] == D.synth_revision() and prov["n_images"] == 631
    assert prov["sha256"] == load_golden(D.synth_revision())["dataset_sha256"]  # the golden data, built here
    te = D.fold_arrays(ds, 0, "test")
    assert te.images.shape[0] in (126, 127) and set(np.unique(te.slms)) <= {0, 32, 64, 128, 255}
    print(f"hfus-synth 631 build + load: {build_s:.1f} s")


def test_content_hash_ignores_encoding(small_dataset, tmp_path):
    """Re-encoding the parquet shard (other compression, other PNG bytes) keeps the content hash."""
    import io
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    shard = next((copy / "data").glob("*.parquet"))
    table = pq.read_table(shard)

    def reencode(cell: dict) -> dict:
        out = io.BytesIO()
        Image.open(io.BytesIO(cell["bytes"])).save(out, format="PNG", compress_level=9)
        return {"bytes": out.getvalue(), "path": cell["path"]}

    image = pa.array(
        [reencode(c) for c in table.column("image").to_pylist()], type=table.schema.field("image").type
    )
    table = table.set_column(table.schema.get_field_index("image"), "image", image)
    pq.write_table(table, shard, compression="zstd")
    a = D.dataset_provenance(D.load_dataset(str(small_dataset)))
    b = D.dataset_provenance(D.load_dataset(str(copy)))
    assert a["files_sha256"] != b["files_sha256"]
    assert a["sha256"] == b["sha256"]
