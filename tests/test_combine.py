"""`hfus-bench merge` of result records: folds run apart combine into the record of the run over all of them.

On the 15-image fake dataset with a seeded TinyNet (tests/helpers.py). The combined record is compared with
the record of one run over both folds: every section but the run's provenance, command, timestamp and
measured seconds identical, per-image values bitwise (JSON keeps float64 exactly). Bitwise holds because
each fold's images go through the same batches (same shapes, kernels and threads: one process, one
machine) in the parts as in the whole run, and combining only aggregates the per-image values again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import FAKE_DATASET, make_fakes, patch_fakes, write_method

from hfus_xai_bench.cli import main
from hfus_xai_bench.combine import combine_records
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.results import aggregate, fold_scores_from_record, validate
from hfus_xai_bench.runner import evaluate
from hfus_xai_bench.verify import verify_submission

#: measured or about how the record was made; everything else must be the same
MAY_DIFFER = {"environment", "command", "timestamp", "cost", "maps_file"}


#: gradient × input that fails (a NaN map) on the first image of every batch: failures in the parts
FAILING = """
import torch

METADATA = {"name": "failing-gxi", "authors": "tests", "url": "", "licence": "MIT", "hyperparameters": {},
            "tuning_split": "none", "kind": "attribution"}


def explain(model, images, targets, *, context):
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        score = model(x).gather(1, targets.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, x)
    maps = (grad * x).detach()
    maps[0] = float("nan")
    return maps
"""


def _evaluate(method: Path, folds: str, out: Path) -> Path:
    command = f"hfus-bench evaluate {method} --dataset {FAKE_DATASET} --folds {folds} --save-maps"
    evaluate(
        method,
        dataset=FAKE_DATASET,
        folds=folds,
        device="cpu",
        out=out,
        save_maps=True,
        figure=False,
        progress=False,
        command=command,
    )
    return out / "failing-gxi.json"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """FAILING over folds 0 and 1 in one run, and each fold apart."""
    mp = pytest.MonkeyPatch()
    patch_fakes(mp, make_fakes())
    base = tmp_path_factory.mktemp("combine")
    method = write_method(base, FAILING)
    try:
        return {
            folds: _evaluate(method, folds, base / folds.replace(",", "_")) for folds in ("0,1", "0", "1")
        }
    finally:
        mp.undo()


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_folds_run_apart_combine_into_the_record_of_one_run(runs, tmp_path) -> None:
    whole = json.loads(runs["0,1"].read_text())
    combined = combine_records([runs["1"], runs["0"]], out=tmp_path, command="hfus-bench merge ...").record
    validate(combined)
    assert set(combined) == set(whole)
    for key in set(whole) - MAY_DIFFER:
        assert combined[key] == whole[key], key
    assert len(combined["per_image"]) == 6 and combined["options"]["folds"] == [0, 1]
    assert combined["counts"]["total"]["n_failed"] == 2  # the first image of each fold's one batch
    counted = [k for k in whole["cost"]["mobilenet_v2"] if "rows" in k or k == "fe_per_image"]
    assert counted and all(
        combined["cost"]["mobilenet_v2"][k] == whole["cost"]["mobilenet_v2"][k] for k in counted
    )
    method = runs["0"].parent.parent / "method.py"
    assert (
        combined["command"]
        == f"hfus-bench evaluate {method} --dataset {FAKE_DATASET} --folds 0,1 --save-maps"
    )
    parts = combined["environment"]["run"]["parts"]
    assert combined["environment"]["run"]["launcher"] == "combined"
    assert [p["pairs"] for p in parts] == [[["mobilenet_v2", 1]], [["mobilenet_v2", 0]]]
    assert [p["command"] for p in parts] == [json.loads(runs[f].read_text())["command"] for f in ("1", "0")]
    maps = _arrays(tmp_path / "failing-gxi.maps.npz")
    reference = _arrays(runs["0,1"].parent / "failing-gxi.maps.npz")
    assert list(maps) == list(reference)  # grid order, whatever order the parts were given in
    assert all(np.array_equal(maps[k], reference[k]) for k in reference)
    assert json.loads((tmp_path / "failing-gxi.json").read_text()) == combined


def test_parts_are_named_by_path_and_a_method_file_by_its_sha256(runs, tmp_path) -> None:
    """Parts in several folders share a file name: refusals and provenance name their paths. The same method
    file given by another path (another folder or machine) is the same method; other bytes are not."""
    moved = _edited(runs["1"], tmp_path / "elsewhere", lambda r: r["method"].update(source="file:../m.py"))
    combined = combine_records([runs["0"], moved], out=tmp_path / "out").record
    assert [p["file"] for p in combined["environment"]["run"]["parts"]] == [str(runs["0"]), str(moved)]
    other = _edited(runs["1"], tmp_path / "other", lambda r: r["method"].update(sha256="0" * 64))
    with pytest.raises(HfusError, match=f"{other} and {runs['0']} differ in the method .*: sha256"):
        combine_records([runs["0"], other], out=tmp_path / "out2")


def _edited(src: Path, dst: Path, edit) -> Path:
    """A copy of record ``src`` (and its maps file) in ``dst``, changed by ``edit(record)``."""
    dst.mkdir(parents=True, exist_ok=True)
    record = json.loads(src.read_text())
    edit(record)
    if record["maps_file"] is not None:
        maps = src.parent / record["maps_file"]["path"]
        (dst / maps.name).write_bytes(maps.read_bytes())
    (dst / src.name).write_text(json.dumps(record))
    return dst / src.name


def _rename_arch(record: dict) -> None:
    record["checkpoints"] = {"googlenet": record["checkpoints"]["mobilenet_v2"]}
    for row in record["per_image"]:
        row["arch"] = "googlenet"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["options"].update(seed=1), "differ in the options: seed"),
        # a CPU fold and a GPU fold are not parts of one run (their model outputs differ in the last bits)
        (lambda r: r["options"].update(device="cuda"), "differ in the options: device"),
        (lambda r: r["method"].update(hyperparameters={"k": 1}), "differ in the method"),
        (lambda r: r["dataset"].update(sha256="0" * 64), "differ in the dataset"),
        (lambda r: r.update(maps_file=None), "carries a maps file and the other does not"),
        (lambda r: [row.pop("hr1") for row in r["per_image"]], "differ in the per-image columns"),
        (lambda r: r.update(protocol_version="0.0"), "scored under protocol 0.0"),
        (
            _rename_arch,
            "googlenet, mobilenet_v2 × folds 0, 1: googlenet fold 0, mobilenet_v2 fold 1 missing",
        ),
    ],
)
def test_records_of_other_runs_are_refused(runs, tmp_path, edit, message) -> None:
    other = _edited(runs["1"], tmp_path / "other", edit)
    with pytest.raises(HfusError, match=message):
        combine_records([runs["0"], other], out=tmp_path / "out")
    assert not (tmp_path / "out" / "failing-gxi.json").exists()


def test_overlap_a_missing_maps_file_and_a_shard_record_are_refused(runs, tmp_path) -> None:
    with pytest.raises(HfusError, match="mobilenet_v2 fold 0 is in both"):
        combine_records([runs["0"], runs["0,1"]], out=tmp_path)
    with pytest.raises(HfusError, match="two or more"):
        combine_records([runs["0"]], out=tmp_path)
    lost = _edited(runs["1"], tmp_path / "lost", lambda r: None)
    (lost.parent / "failing-gxi.maps.npz").unlink()
    with pytest.raises(HfusError, match="its maps file failing-gxi.maps.npz is missing"):
        combine_records([runs["0"], lost], out=tmp_path / "out")
    tampered = _edited(runs["1"], tmp_path / "tampered", lambda r: None)
    (tampered.parent / "failing-gxi.maps.npz").write_bytes(b"not the maps")
    with pytest.raises(HfusError, match="does not match the sha256 it records"):
        combine_records([runs["0"], tampered], out=tmp_path / "out")
    shard = tmp_path / "shard.json"
    shard.write_text(json.dumps({"kind": "hfus-xai-bench shard"}))
    with pytest.raises(HfusError, match="is not a result record"):
        combine_records([runs["0"], shard], out=tmp_path)


def test_cli_merge_takes_result_records(runs, tmp_path, capsys) -> None:
    out = tmp_path / "merged"
    assert main(["merge", str(runs["0"]), str(runs["1"]), "--out", str(out)]) == 0
    assert f"result: {out / 'failing-gxi.json'}" in capsys.readouterr().out
    assert json.loads((out / "failing-gxi.json").read_text())["options"]["folds"] == [0, 1]
    assert main(["merge", str(runs["0"]), str(runs["0"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mobilenet_v2 fold 0 is in both" in err


def test_a_record_gives_its_scores_back(runs) -> None:
    """fold_scores_from_record inverts the record: aggregated again, a two-fold record's sections come back
    (its cost block is a sum over folds: the first fold carries it, so the rows add up again)."""
    record = json.loads(runs["0,1"].read_text())
    runs_back = fold_scores_from_record(record)
    assert [(r.arch, r.fold, len(r.image_ids)) for r in runs_back] == [
        ("mobilenet_v2", 0, 3),
        ("mobilenet_v2", 1, 3),
    ]
    again = json.loads(json.dumps(aggregate(runs_back), default=float))
    for key in ("metrics", "classification", "counts"):
        assert again[key] == record[key], key
    cost, cost_back = record["cost"]["mobilenet_v2"], again["cost"]["mobilenet_v2"]
    assert {k: v for k, v in cost_back.items() if "rows" in k} == {
        k: v for k, v in cost.items() if "rows" in k
    }
    assert cost_back["seconds_per_image"] == pytest.approx(cost["seconds_per_image"], rel=1e-12)


PARTS = Path(__file__).resolve().parents[1] / "leaderboard" / "parts"


def test_committed_parts_are_named_records_that_combine(tmp_path) -> None:
    """leaderboard/parts/METHOD.ARCH.foldK.json: each a valid record of that method, architecture and fold;
    the parts of a row are parts of one run (they combine), so the last session's merge cannot fail."""
    parts = sorted(PARTS.glob("*.json"))
    if not parts:
        pytest.skip("no row is in progress (leaderboard/parts/ holds no record)")
    rows: dict[tuple[str, str], list[Path]] = {}
    for path in parts:
        method, arch, fold = path.name.removesuffix(".json").rsplit(".", 2)
        record = json.loads(path.read_text())
        validate(record, source=str(path))
        assert record["method"]["name"] == method, path.name
        assert (record["options"]["models"], record["options"]["folds"]) == (
            [arch],
            [int(fold.removeprefix("fold"))],
        )
        assert record["options"]["limit"] is None, f"{path.name}: a --limit run is not a leaderboard part"
        rows.setdefault((method, arch), []).append(path)
    for (method, _), paths in rows.items():
        if len(paths) > 1:
            combined = combine_records(paths, out=tmp_path / method).record
            assert len(combined["per_image"]) == sum(
                len(json.loads(p.read_text())["per_image"]) for p in paths
            )


def test_a_combined_record_verifies_as_a_submission(runs, tmp_path, monkeypatch) -> None:
    """The combined record and the union of the parts' maps files pass `verify`: every maps-only metric
    re-scored from the maps, the model-based ones re-run through the (fake) checkpoint."""
    patch_fakes(monkeypatch, make_fakes())
    combine_records([runs["0"], runs["1"]], out=tmp_path / "combined")
    folder = tmp_path / "submission"
    folder.mkdir()
    record = json.loads((tmp_path / "combined" / "failing-gxi.json").read_text())
    shutil.copy(tmp_path / "combined" / record["maps_file"]["path"], folder / "maps.npz")
    record["maps_file"]["path"] = "maps.npz"
    (folder / "result.json").write_text(json.dumps(record))
    shutil.copy(runs["0"].parent.parent / "method.py", folder / "method.py")
    (folder / "README.md").write_text("# failing-gxi\n")
    report = verify_submission(folder, progress=False)
    assert report.ok, report.failures
