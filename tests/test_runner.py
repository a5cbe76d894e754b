"""runner.py end to end on the default track: real dataset, shipped checkpoint, real methods."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from helpers import EXAMPLES, write_method

from hfus_xai_bench.cli import main
from hfus_xai_bench.config import RunConfig
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.metrics import registry
from hfus_xai_bench.models.checkpoints import find_checkpoint
from hfus_xai_bench.results import Result, validate
from hfus_xai_bench.runner import Batch, evaluate, plan_batches

LIMIT = 6


@pytest.fixture(scope="module")
def gradcam_result(synth_ds, tmp_path_factory):
    out = tmp_path_factory.mktemp("gradcam")
    return evaluate("gradcam", limit=LIMIT, out=out, save_maps=True, progress=False), out


def test_record_is_complete_and_valid(gradcam_result):
    result, out = gradcam_result
    rec = result.record
    validate(rec)
    assert rec["method"]["name"] == "gradcam" and rec["method"]["source"] == "builtin"
    assert rec["dataset"]["id"] == "hfus-synth" and rec["dataset"]["n_images"] == 631
    assert len(rec["per_image"]) == LIMIT
    assert rec["counts"]["total"] == {
        "n_images": LIMIT,
        "n_evaluated": LIMIT,
        "n_failed": 0,
        "failures": {},
        "failure_examples": {},
        "randomised_failed": 0,
        "randomised_failures": {},
    }
    # PROTOCOL §7 on the default: per-image values, the pass rule, the cost split
    row = rec["per_image"][0]
    assert len(row["rand2_rho"]) == 3 and all(r is None or -1 <= r <= 1 for r in row["rand2_rho"])
    assert -1 <= row["rand2_cross"] <= 1 and 0 <= row["road_s0"] <= 1
    assert len(row["road_morf_p"]) == len(row["road_lerf_p"]) == 5 and row["randomised_failed"] == [None] * 3
    assert rec["metrics"]["randomisation@2/verdict"]["mobilenet_v2"]["verdict"] in (
        "pass",
        "fail",
        "undetermined",
    )
    assert "randomisation@1/rho" not in rec["metrics"]  # PROTOCOL §7.1.1: new records carry @2 only
    assert -0.5 <= rec["metrics"]["road@1/combined"]["mobilenet_v2"]["mean"] <= 0.5
    cost = rec["cost"]["mobilenet_v2"]
    assert {"road_seconds_impute_per_image", "seconds/randomisation", "forward_rows/randomisation"} <= set(
        cost
    )
    assert cost["backward_rows/method"] == LIMIT and rec["options"]["randomisations"] == 3
    # every table column, the §9 ids included (the default track has evidence and twins; none of the first
    # LIMIT test images of fold 0 is CG, so each column scores all of them)
    for key, metric, _ in registry.columns():
        if metric.superseded_by is not None:
            continue  # randomisation@1: read for old records only
        summary = rec["metrics"][key]["mobilenet_v2"]
        assert summary["n"] == LIMIT and summary["per_fold"]["0"] == pytest.approx(summary["mean"])
        low, high = summary["ci95"]
        assert low <= summary["mean"] <= high
    hr1 = [row["hr1"] for row in rec["per_image"]]
    assert all(-1 <= v <= 3 for v in hr1)
    assert rec["metrics"]["hit_rate@1"]["mobilenet_v2"]["mean"] == pytest.approx(np.mean(hr1))
    ckpt = rec["checkpoints"]["mobilenet_v2"]["0"]
    assert ckpt["sha256"] == find_checkpoint("mobilenet_v2").sha256
    assert (
        ckpt["test_accuracy"] == pytest.approx(find_checkpoint("mobilenet_v2").accuracy)
        and ckpt["test_accuracy"] > 0.9
    )
    assert rec["cost"]["mobilenet_v2"]["forward_images_per_image"] >= 1
    # built-in methods carry their METADATA: hyper-parameters and references
    assert rec["method"]["url"] == "https://arxiv.org/abs/1610.02391"
    assert rec["method"]["citation"].startswith("@inproceedings{selvaraju2017gradcam")
    assert rec["method"]["hyperparameters"]["target_layer"].startswith("pinned")
    # the run configuration is serialised in the record and can be rebuilt from it
    assert RunConfig.from_record(rec) == RunConfig(
        limit=LIMIT, batch_size=rec["options"]["batch_size"], revision=rec["dataset"]["revision"]
    )


def test_outputs_on_disk_round_trip(gradcam_result):
    result, out = gradcam_result
    saved = Result.load(out / "gradcam.json")
    assert saved.record == result.record
    maps_file = out / result.record["maps_file"]["path"]
    assert hashlib.sha256(maps_file.read_bytes()).hexdigest() == result.record["maps_file"]["sha256"]
    with np.load(maps_file) as npz:
        maps = npz["mobilenet_v2__fold0__maps"]
    assert maps.shape == (LIMIT, 224, 224) and maps.dtype == np.uint8
    assert (maps.reshape(LIMIT, -1).max(1) == 255).all()
    assert (out / "gradcam.png").stat().st_size > 10_000


def test_example_methods_run(synth_ds):
    for example, kind in (("gradcam_wrapper.py", "map"), ("gradient_x_input.py", "attribution")):
        result = evaluate(EXAMPLES / example, limit=2, progress=False, figure=False)
        assert result.record["method"]["kind"] == kind
        assert result.record["counts"]["total"]["n_failed"] == 0
        assert (
            result.record["method"]["sha256"] == hashlib.sha256((EXAMPLES / example).read_bytes()).hexdigest()
        )


def test_batches_are_whole_and_in_order():
    assert plan_batches({("mobilenet_v2", 0): 5, ("resnet101", 1): 3}, 2) == [
        Batch("mobilenet_v2", 0, 0, 2),
        Batch("mobilenet_v2", 0, 2, 4),
        Batch("mobilenet_v2", 0, 4, 5),
        Batch("resnet101", 1, 0, 2),
        Batch("resnet101", 1, 2, 3),
    ]


def test_batch_size_does_not_change_map_metrics(synth_ds):
    """Batches are independent units: another batch size gives the same maps-only values (a split run's
    seam)."""
    a = evaluate("center", limit=3, batch_size=2, progress=False, figure=False)
    b = evaluate("center", limit=3, batch_size=3, progress=False, figure=False)
    assert [r["hr1"] for r in a.record["per_image"]] == [r["hr1"] for r in b.record["per_image"]]
    assert a.record["options"]["batch_size"] == 2


def test_wrapper_matches_builtin_gradcam(synth_ds, gradcam_result):
    result, _ = gradcam_result
    wrapped = evaluate(EXAMPLES / "gradcam_wrapper.py", limit=LIMIT, progress=False, figure=False)
    ours = [row["hr1"] for row in result.record["per_image"]]
    theirs = [row["hr1"] for row in wrapped.record["per_image"]]
    assert np.allclose(ours, theirs, atol=0.5)  # same maps up to float noise at the peak


def test_failures_are_counted_with_reasons(synth_ds, tmp_path):
    path = write_method(
        tmp_path,
        """
        import torch

        def explain(model, images, targets, *, context):
            maps = images.mean(1)
            if len(images) > 1:
                raise RuntimeError("batch refused")
            if float(images.sum()) % 3 < 1:
                maps = maps * float("nan")
            return maps
    """,
    )
    result = evaluate(path, limit=LIMIT, progress=False, figure=False)
    counts = result.record["counts"]["total"]
    assert counts["n_images"] == LIMIT
    assert counts["n_evaluated"] + counts["n_failed"] == LIMIT
    assert set(counts["failures"]) <= {"non_finite"}
    rows = result.record["per_image"]
    assert all((row["failed"] is None) == (row["hr1"] is not None) for row in rows)


def test_exception_reason_names_the_line(synth_ds, tmp_path):
    path = write_method(
        tmp_path,
        """
        def explain(model, images, targets, *, context):
            if int(targets[0]) == -1:
                return images.mean(1)
            if images[0, 0, 100, 100] > 2:
                return images.mean(1)
            return images.mean(1) if len(images) > 99 else boom()

        def boom():
            raise ValueError("nope")
    """,
    )
    with pytest.raises(HfusError, match=r"failed on every image.*ValueError: nope \(at method.py:"):
        evaluate(path, limit=2, progress=False, figure=False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def explain(model, images, targets, *, context):\n    return images\n", "wrong map shape"),
        (
            "def explain(model, images, targets, *, context):\n    return 'map'\n",
            "torch.Tensor or numpy.ndarray",
        ),
        ("def explain(model, images, targets, *, context):\n    return images.mean(1) * 0\n", "empty_map"),
        (
            "def explain(model, images, targets, *, context):\n    return images.mean(1) * float('inf')\n",
            "non_finite",
        ),
    ],
)
def test_all_failing_is_an_error(synth_ds, tmp_path, body, message):
    path = write_method(tmp_path, body)
    with pytest.raises(HfusError, match=message):
        evaluate(path, limit=2, progress=False, figure=False)


def test_low_resolution_maps_are_upsampled(synth_ds, tmp_path):
    path = write_method(
        tmp_path,
        """
        import torch

        def explain(model, images, targets, *, context):
            maps = torch.zeros(len(images), 7, 7)
            maps[:, 1, 3] = 1.0  # one cell just below the top: bilinear upsampling spreads it
            return maps
    """,
    )
    result = evaluate(path, limit=2, progress=False, figure=False)
    assert result.record["counts"]["total"]["n_failed"] == 0


def test_target_label_and_determinism(synth_ds):
    a = evaluate("random", limit=4, target="label", progress=False, figure=False)
    b = evaluate("random", limit=4, target="label", progress=False, figure=False)
    assert a.record["options"]["target"] == "label"
    assert [r["target"] for r in a.record["per_image"]] == [r["label"] for r in a.record["per_image"]]
    assert a.record["per_image"] == b.record["per_image"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "def explain(model, images, targets, *, context)\n    return images\n",
            "syntax error in method.py:1",
        ),
        ("import not_a_module_anywhere\n", "ModuleNotFoundError"),
        ("X = 1\n", "neither a function `explain"),
        (
            "METADATA = {'nmae': 'x'}\ndef explain(model, images, targets, *, context):\n    return images\n",
            "unknown METADATA",
        ),
    ],
)
def test_cli_bad_method_file_one_line_exit_2(tmp_path, capsys, source, message):
    path = write_method(tmp_path, source)
    assert main(["evaluate", str(path), "--limit", "1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("hfus-bench: error:")


def test_cli_unknown_method_and_missing_file(tmp_path, capsys):
    assert main(["evaluate", "nosuchmethod"]) == 2
    assert "unknown method 'nosuchmethod'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.py")]) == 2
    assert "method file not found" in capsys.readouterr().err


def test_cli_out_that_is_a_file_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    import hfus_xai_bench.runner as runner

    monkeypatch.setattr(runner, "_load", lambda *a, **k: pytest.fail("the run started"))
    existing = tmp_path / "good.py"
    existing.write_text("x = 1\n")
    assert main(["evaluate", "center", "--limit", "1", "--out", str(existing)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"hfus-bench: error: --out {existing} is not a folder: give a folder")
        and err.count("\n") == 1
    )
    assert existing.read_text() == "x = 1\n"


def test_cli_evaluate_writes_result(synth_ds, tmp_path, capsys):
    argv = ["evaluate", "center", "--limit", "3", "--out", str(tmp_path), "--quiet", "--no-figure"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v2" in out and "HR1" in out
    record = json.loads((tmp_path / "center.json").read_text())
    assert record["options"]["limit"] == 3
    # the recorded command is the argv main() received, whatever sys.argv says
    assert record["command"] == "hfus-bench " + " ".join(argv)


def test_run_options_are_checked(synth_ds):
    with pytest.raises(HfusError, match="unknown run option"):
        evaluate("center", limits=3)
    with pytest.raises(HfusError, match="--precision must be one of fp32"):
        evaluate("center", precision="fp16")


# ------------------------------------------------------------------ PROTOCOL §7 through the runner (tiny
# setup)


@pytest.fixture
def fakes_env(monkeypatch):
    """The 15-image fake dataset and a seeded TinyNet as "mobilenet_v2" (tests/helpers.py)."""
    from helpers import make_fakes, patch_fakes

    patch_fakes(monkeypatch, make_fakes())


@pytest.mark.parametrize("name", ["random", "center", "depth_prior", "sobel"])
def test_sanity_baselines_have_rho_one_and_fail_the_check(fakes_env, name):
    """Model-independent maps: ρ = 1 for every image and copy by construction, so the verdict is fail."""
    from helpers import FAKE_DATASET

    result = evaluate(name, dataset=FAKE_DATASET, folds="0,1", device="cpu", progress=False, figure=False)
    rows = result.record["per_image"]
    assert len(rows) == 6 and all(r["failed"] is None and r["randomised_failed"] == [None] * 3 for r in rows)
    assert [r["rand2_rho"] for r in rows] == [[1.0] * 3] * 6
    summary = result.record["metrics"]["randomisation@2/rho"]["mobilenet_v2"]
    assert summary["mean"] == 1.0 and summary["ci95"] == [1.0, 1.0]
    assert result.record["metrics"]["randomisation@2/verdict"]["mobilenet_v2"]["verdict"] == "fail"
    if name in ("center", "depth_prior"):  # the same map for every image of a fold
        assert [r["rand2_cross"] for r in rows] == [1.0] * 6
    assert result.record["counts"]["mobilenet_v2"]["randomised_failed"] == 0


def test_road_and_rho_in_the_record_equal_the_functions_called_directly(fakes_env, tmp_path):
    """The record's per-image §7 values are road_scores / spearman_maps / cross_image_rho on the saved
    maps."""
    import torch
    from helpers import FAKE_DATASET

    from hfus_xai_bench.data import dataset as D
    from hfus_xai_bench.data.dataset import fold_arrays
    from hfus_xai_bench.metrics.randomisation import cross_image_rho, spearman_maps
    from hfus_xai_bench.metrics.road import road_scores
    from hfus_xai_bench.models import checkpoints
    from hfus_xai_bench.runner import model_input
    from hfus_xai_bench.seeding import item_seed

    result = evaluate(
        "gradcam",
        dataset=FAKE_DATASET,
        folds="0",
        device="cpu",
        seed=3,
        out=tmp_path,
        save_maps=True,
        progress=False,
        figure=False,
    )
    rec = result.record
    rows = rec["per_image"]
    with np.load(tmp_path / rec["maps_file"]["path"]) as npz:
        maps, rand = npz["mobilenet_v2__fold0__maps"], npz["mobilenet_v2__fold0__maps_randomised"]
    assert rand.shape == (len(maps), 3, *maps.shape[1:]) and rand.dtype == np.uint8
    assert not np.array_equal(rand[:, 0], maps)
    # exact: the record's ρ is spearman_maps on the saved maps (same arrays, same integer ranks)
    assert [r["rand2_rho"][0] for r in rows] == spearman_maps(maps, rand[:, 0]).tolist()
    assert [r["rand2_cross"] for r in rows] == cross_image_rho(maps, seed=0).tolist()
    test = fold_arrays(D.load_dataset(FAKE_DATASET), 0, "test")
    model, _ = checkpoints.load_model("mobilenet_v2")
    x = model_input(test.images, torch.device("cpu"))
    road = road_scores(
        model, x, maps, [r["target"] for r in rows], seeds=[item_seed(3, r["image_id"]) for r in rows]
    )
    assert [r["road_s0"] for r in rows] == road.s0.tolist()
    assert [r["road_morf_p"] for r in rows] == road.morf.tolist()
    assert [r["road_lerf_p"] for r in rows] == road.lerf.tolist()
    combined = rec["metrics"]["road@1/combined"]["mobilenet_v2"]["mean"]
    assert combined == pytest.approx(road.combined.mean(), abs=1e-12)
    cost = rec["cost"]["mobilenet_v2"]
    assert cost["road_forward_images_per_image"] == 11.0 and cost["forward_rows/road"] == 11 * len(rows)
    assert cost["forward_rows/randomisation"] >= 3 * len(rows)
    assert cost["road_seconds_impute_per_image"] > 0 and cost["seconds/randomisation"] > 0


def test_randomised_model_failures_are_counted_apart(fakes_env, tmp_path):
    """A map of the randomised model that is NaN or raises: counted per image with its reason, ρ NaN, the
    image stays evaluated in §4."""
    from helpers import FAKE_DATASET

    path = write_method(
        tmp_path,
        """
        import torch

        SEEN = []
        CALLS = [0]

        def explain(model, images, targets, *, context):
            if not SEEN:
                SEEN.append(id(model))
            maps = images.mean(1) + 1e-3
            if id(model) == SEEN[0]:
                return maps
            if len(images) > 1:
                raise RuntimeError("whole batch refused")
            CALLS[0] += 1
            if CALLS[0] == 1:
                return maps * float("nan")
            if CALLS[0] == 2:
                raise ValueError("no map for the randomised model")
            return maps
    """,
    )
    result = evaluate(path, dataset=FAKE_DATASET, folds="0", device="cpu", progress=False, figure=False)
    rec = result.record
    rows = rec["per_image"]
    assert [r["failed"] for r in rows] == [None, None, None]
    reasons = [r["randomised_failed"] for r in rows]  # per image, per copy (the first copy fails twice)
    assert reasons[0] == ["non_finite", None, None] and reasons[1][0].startswith(
        "exception: ValueError: no map for the randomised"
    )
    assert reasons[1][1:] == [None, None] and reasons[2] == [None] * 3
    assert (
        rows[0]["rand2_rho"][0] is None
        and rows[1]["rand2_rho"][0] is None
        and rows[2]["rand2_rho"][0] is not None
    )
    assert [r["rand2_pair"][0] for r in rows] == [2, 2, 0]  # 2 = failed pair (PROTOCOL §7.1.1), 0 = scored
    assert all(r["hr1"] is not None and r["road_s0"] is not None for r in rows)
    counts = rec["counts"]["mobilenet_v2"]
    assert counts["n_evaluated"] == 3 and counts["n_failed"] == 0
    assert counts["randomised_failed"] == 2 and counts["randomised_failures"] == {
        "exception": 1,
        "non_finite": 1,
    }
    assert rec["metrics"]["randomisation@2/pairs"]["mobilenet_v2"]["failed"] == 2


def test_an_empty_test_fold_is_one_clear_error(monkeypatch):
    """An imported dataset whose groups leave a fold empty: one line naming the fold, before any work."""
    from hfus_xai_bench.batches import fold_sizes
    from hfus_xai_bench.data import dataset as D

    monkeypatch.setattr(D, "split_size", lambda ds, fold, split: 0 if fold == 1 else 5)
    assert fold_sizes(None, RunConfig(folds=[0])) == {("mobilenet_v2", 0): 5}
    with pytest.raises(
        HfusError, match="^test fold 1 of this dataset holds no image: .*choose other --folds$"
    ):
        fold_sizes(None, RunConfig(folds=[0, 1]))


def test_an_out_folder_that_cannot_be_made_is_one_line_before_the_run(tmp_path, capsys):
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file where a folder is asked for")
    assert main(["evaluate", "gradcam", "--limit", "1", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"hfus-bench: error: --out {blocker / 'sub'} cannot be created: {blocker} is not a folder; "
        "give a folder you can write to\n"
    )


def test_a_missing_checkpoint_is_found_before_any_work(monkeypatch, capsys, tmp_path):
    """GoogLeNet fold 1 has no checkpoint here: the run stops before the first image, not after the folds
    before it (whose work would be lost)."""
    from hfus_xai_bench import runner

    def no_work(*args, **kwargs):
        raise AssertionError("a fold was prepared before the checkpoints were checked")

    monkeypatch.setattr(runner, "prepare_fold", no_work)
    argv = ["evaluate", "gradcam", "--models", "mobilenet_v2,googlenet", "--folds", "0,1", "--limit", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert "no checkpoint for googlenet on hfus-synth synth-v3-seed0 fold 1" in capsys.readouterr().err
