"""submission.py and verify/: `submit` and `verify` on a tiny in-memory dataset + a seeded MobileNetV2
stand-in (helpers.py).

The real runner (`evaluate`), scoring core, aggregation and `fold_arrays` are used; only `load_dataset`
and the checkpoint lookup are patched. Every folder under `submissions/` is verified too (CI).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import FAKE_ACCURACY, FAKE_DATASET, FAKE_REVISION, make_fakes, patch_fakes

from hfus_xai_bench.cli import main
from hfus_xai_bench.data import dataset as D
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.hashing import sha256_file
from hfus_xai_bench.submission import submit
from hfus_xai_bench.verify import VerifyReport, verify_submission

REPO = Path(__file__).resolve().parent.parent
REVISION = FAKE_REVISION
#: CI re-checks the model-based metrics on this many images per (arch, fold) of each committed submission
CI_MODEL_LIMIT = 8

METHOD = '''"""Grey level of the image as a map (a test method)."""
METADATA = {"name": "greymap", "authors": ["Test"], "licence": "MIT", "tuning_split": "none", "kind": "map"}


def explain(model, images, targets, *, context):
    return images.mean(1) + 1e-3
'''


@pytest.fixture(scope="module")
def fakes() -> dict:
    return make_fakes()


def _patch(mp: pytest.MonkeyPatch, fakes: dict) -> None:
    patch_fakes(mp, fakes)


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
        folder, _ = submit(
            method,
            out=root / "greymap",
            dataset=FAKE_DATASET,
            models="mobilenet_v2",
            folds="0,1",
            device="cpu",
            progress=False,
        )
        return folder


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
    assert record["command"].startswith("hfus-bench submit ") and "--folds 0,1" in record["command"]
    assert record["checkpoints"]["mobilenet_v2"]["0"]["test_accuracy"] == FAKE_ACCURACY  # from the card
    assert record["method"]["sha256"] == sha256_file(sub / "method.py")
    readme = (sub / "README.md").read_text()
    assert (
        "# greymap" in readme
        and "| licence of method.py | MIT |" in readme
        and "No tuning on test folds" in readme
    )
    assert (sub / "method.py").read_text() == METHOD
    with pytest.raises(HfusError, match="already exists"):
        submit(sub / "method.py", out=sub)


def test_verify_passes_on_an_untouched_submission(env: None, sub: Path) -> None:
    report = verify_submission(sub, progress=False)
    assert report.ok, report.render()
    names = [name for name, _, _ in report.checks]
    assert "maps_file.sha256" in names and "dataset.revision" in names and "metrics (re-aggregated)" in names
    assert any(
        n.startswith(
            "mobilenet_v2 fold 1: confidence@1, road@1 (3 images, within 0.0001 relative; road@1 0.01)"
        )
        for n in names
    )
    subset = verify_submission(sub, limit=1, progress=False)
    assert subset.ok and any("confidence@1, road@1 (1 images" in n for n, _, _ in subset.checks)


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


def test_verify_fails_on_a_method_file_that_did_not_make_the_record(
    env: None, sub: Path, tmp_path: Path
) -> None:
    """The maps and numbers may all be the recorded ones: method.py must still be the file that made them."""
    folder = _copy(sub, tmp_path)
    (folder / "method.py").write_text((folder / "method.py").read_text() + "\n# edited after the run\n")
    report = verify_submission(folder, check_model=False, progress=False)
    assert [f.split(":")[0] for f in report.failures] == ["method.py sha256 (the file that made the record)"]
    assert sha256_file(folder / "method.py") in report.render()


def test_verify_fails_on_a_wrong_dataset_revision_or_checkpoint(env: None, sub: Path, tmp_path: Path) -> None:
    folder = _copy(sub, tmp_path)
    _edit(folder, lambda r: r["dataset"].update(revision="fake-rev-2"))
    assert [f.split(":")[0] for f in verify_submission(folder, progress=False).failures] == [
        "dataset.revision"
    ]
    _edit(folder, lambda r: r["dataset"].update(revision=REVISION, sha256="e" * 64))
    assert [f.split(":")[0] for f in verify_submission(folder, progress=False).failures] == ["dataset.sha256"]
    _edit(
        folder,
        lambda r: (
            r["dataset"].update(sha256="d" * 64),
            r["checkpoints"]["mobilenet_v2"]["0"].update(sha256="f" * 64),
        ),
    )
    failures = verify_submission(folder, progress=False).failures
    assert [f.split(":")[0] for f in failures] == ["checkpoints/mobilenet_v2/0/sha256"], failures


def test_verify_rerun_compares_fresh_maps(env: None, sub: Path) -> None:
    report = verify_submission(sub, check_model=False, rerun=True, limit=2, progress=False)
    assert report.ok, report.render()
    assert any(n.startswith("rerun mobilenet_v2__fold1 (2 maps)") for n, _, _ in report.checks)
    assert any(
        n.startswith("rerun mobilenet_v2__fold1 (2 randomised-copy maps)") for n, _, _ in report.checks
    )


def test_verify_rescores_randomisation_exactly_from_the_saved_maps(
    env: None, sub: Path, tmp_path: Path
) -> None:
    """PROTOCOL §7.1.1: every copy's ρ and ρ_cross are re-scored from the saved maps exactly; tampering
    shows."""
    from hfus_xai_bench.metrics.randomisation import cross_image_rho, spearman_maps
    from hfus_xai_bench.results import Result
    from hfus_xai_bench.verify import rescore

    record = Result.load(sub / "result.json").record
    with np.load(sub / "maps.npz") as npz:
        maps = {k: npz[k] for k in npz.files}
    fold1 = [r for r in record["per_image"] if r["fold"] == 1]
    rand = maps["mobilenet_v2__fold1__maps_randomised"]
    for k in range(rand.shape[1]):  # exact: the same integer ranks of the same saved maps
        assert [r["rand2_rho"][k] for r in fold1] == spearman_maps(
            maps["mobilenet_v2__fold1__maps"], rand[:, k]
        ).tolist()
    assert [r["rand2_cross"] for r in fold1] == cross_image_rho(maps["mobilenet_v2__fold1__maps"]).tolist()
    report = VerifyReport(sub)
    runs = rescore(record, maps, D.load_dataset(FAKE_DATASET, revision=REVISION), report, check_model=False)
    assert report.ok, report.render()
    recomputed = np.concatenate([run.values["randomisation@2/rand2_rho"] for run in runs])
    assert recomputed.tolist() == [r["rand2_rho"] for r in record["per_image"]]  # bitwise
    assert (
        record["metrics"]["randomisation@2/verdict"]["mobilenet_v2"]["verdict"] == "fail"
    )  # a grey-level map

    folder = _copy(sub, tmp_path)
    _edit(
        folder,
        lambda r: r["per_image"][1]["rand2_rho"].__setitem__(0, r["per_image"][1]["rand2_rho"][0] - 1e-4),
    )
    failures = verify_submission(folder, check_model=False, progress=False).failures
    assert any("per_image[1]/rand2_rho" in f for f in failures), failures

    folder = _copy(sub, tmp_path / "b")
    _edit(
        folder, lambda r: r["metrics"]["randomisation@2/verdict"]["mobilenet_v2"].update({"verdict": "pass"})
    )
    failures = verify_submission(folder, check_model=False, progress=False).failures
    assert any("randomisation@2/verdict/mobilenet_v2/verdict" in f for f in failures), failures

    # tampered randomised maps (hash updated): the re-scored ρ gives it away; missing ones are named
    folder = _copy(sub, tmp_path / "c")
    arrays = dict(maps)
    arrays["mobilenet_v2__fold0__maps_randomised"] = np.repeat(
        (255 - arrays["mobilenet_v2__fold0__maps"])[:, None], 3, axis=1
    )  # ρ = −1
    np.savez_compressed(folder / "maps.npz", **arrays)
    _edit(folder, lambda r: r["maps_file"].update(sha256=sha256_file(folder / "maps.npz")))
    failures = verify_submission(folder, check_model=False, progress=False).failures
    assert any("per_image[0]/rand2_" in f for f in failures), failures
    del arrays["mobilenet_v2__fold0__maps_randomised"]
    np.savez_compressed(folder / "maps.npz", **arrays)
    _edit(folder, lambda r: r["maps_file"].update(sha256=sha256_file(folder / "maps.npz")))
    failures = verify_submission(folder, check_model=False, progress=False).failures
    assert [f.split(":")[0] for f in failures] == ["maps.npz/mobilenet_v2__fold0__maps_randomised"], failures


def test_verify_rechecks_road_through_the_model(env: None, sub: Path, tmp_path: Path) -> None:
    folder = _copy(sub, tmp_path)
    _edit(
        folder,
        lambda r: r["per_image"][3]["road_morf_p"].__setitem__(2, r["per_image"][3]["road_morf_p"][2] + 0.05),
    )
    failures = verify_submission(folder, progress=False).failures
    # ROAD's own tolerance (registry verify_rtol: its imputation is not bit-identical across CPU kinds)
    assert any("per_image[3].road_morf_p" in f and "tolerance 0.01 relative" in f for f in failures), failures
    folder = _copy(sub, tmp_path / "small")
    _edit(
        folder,
        lambda r: r["per_image"][3]["road_morf_p"].__setitem__(2, r["per_image"][3]["road_morf_p"][2] + 1e-3),
    )
    report = verify_submission(folder, progress=False)
    rescored = [ok for name, ok, _ in report.checks if "confidence@1, road@1" in name]
    assert rescored and all(rescored), report.render()  # within ROAD's tolerance (the mean is still exact)


def test_verify_scores_the_runners_batches(
    env: None, sub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify re-scores the model-based metrics per batch of the runner's plan (runner.plan_run of the
    record's config, here with batch size 2 so a fold has several), through the runner's batch scoring
    (batches.score_model_metrics) with the predict's logits."""
    from hfus_xai_bench import batches
    from hfus_xai_bench.config import RunConfig
    from hfus_xai_bench.runner import plan_run
    from hfus_xai_bench.runtime import resolve_device
    from hfus_xai_bench.verify import recorded_metrics

    folder = _copy(sub, tmp_path)
    _edit(folder, lambda r: r["options"].update(batch_size=2))
    seen = []
    score = batches.score_model_metrics

    def spy(inputs, metrics, config, passes):  # noqa: ANN001, ANN202
        seen.append((tuple(inputs.image_ids), "logits" in inputs.extras, [m.id for m in metrics]))
        return score(inputs, metrics, config, passes)

    monkeypatch.setattr(batches, "score_model_metrics", spy)
    record = json.loads((folder / "result.json").read_text())
    plan = plan_run(D.load_dataset(FAKE_DATASET), RunConfig.from_record(record), resolve_device("cpu"))
    assert len(plan) > len(record["options"]["folds"])  # several batches per fold
    report = verify_submission(folder, device="cpu", progress=False)
    assert report.ok, report.render()
    rows = {fold: [r["image_id"] for r in record["per_image"] if r["fold"] == fold] for fold in (0, 1)}
    assert [s[0] for s in seen] == [tuple(rows[b.fold][b.start : b.stop]) for b in plan]
    model_metrics = [m.id for m in recorded_metrics(record)[0] if m.needs == "model"]
    assert model_metrics and all(logits and ids == model_metrics for _, logits, ids in seen)


def test_verify_errors_and_cli(env: None, sub: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(HfusError, match="lacks method.py, README.md, maps.npz"):
        folder = tmp_path / "x"
        folder.mkdir()
        (folder / "result.json").write_text("{}")
        verify_submission(folder)
    assert main(["verify", str(sub), "--no-model", "--quiet"]) == 0
    assert "PASSED" in capsys.readouterr().out


def test_cli_submit_records_its_argv(env: None, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    method = tmp_path / "greymap.py"
    method.write_text(METHOD)
    argv = [
        "submit",
        str(method),
        "--out",
        str(tmp_path / "s"),
        "--dataset",
        FAKE_DATASET,
        "--limit",
        "2",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(argv) == 0
    assert "submission folder:" in capsys.readouterr().out
    record = json.loads((tmp_path / "s" / "result.json").read_text())
    assert record["command"] == "hfus-bench " + " ".join(argv)


SUBMISSIONS = sorted(p for p in (REPO / "submissions").glob("*") if (p / "result.json").is_file())


@pytest.mark.parametrize("folder", SUBMISSIONS, ids=[p.name for p in SUBMISSIONS])
def test_committed_submission_verifies(folder: Path) -> None:
    """CI: every committed submission re-scores to its recorded numbers (model-based metrics on a subset)."""
    assert D.load_dataset.__module__ == "hfus_xai_bench.data.dataset"  # the real loader, not a fake
    report = verify_submission(folder, limit=CI_MODEL_LIMIT, device="cpu", progress=False)
    assert report.ok, report.render()
