"""The private-seed audit (PROTOCOL §3): the statistic, the checkpoint rule, the private build, the CLI.

End to end on small builds: a 15-image fake public track and a seeded TinyNet stand in for the default
track and its checkpoint (tests/helpers.py), the private side is a real 5-image build of the generator; the
lookup method of tests/fixtures is flagged, one that fails where it cannot look up is not auditable, the
built-ins pass, only the passes the scores need are made, and the seed is nowhere in the output or cache.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import REPO, TinyNet, make_fakes, patch_fakes

from hfus_xai_bench import audit as A
from hfus_xai_bench.audit_report import format_report
from hfus_xai_bench.cli import main
from hfus_xai_bench.constants import AUDIT_ALPHA, AUDIT_REFERENCES, BOOTSTRAP_RESAMPLES, SYNTH_DATASET
from hfus_xai_bench.data import dataset as D
from hfus_xai_bench.data.dataset import synth_revision
from hfus_xai_bench.data.synth import SYNTH_VERSION
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.models.checkpoints import (
    AUDIT_BUILD_CARD,
    AUDIT_BUILD_FORMAT,
    REGISTRY,
    checkpoint_source,
    find_checkpoint,
)

LOOKUP = REPO / "tests" / "fixtures" / "lookup_method.py"
LOOKUP_OR_FAIL = REPO / "tests" / "fixtures" / "lookup_or_fail.py"
LOOKUP_GXI = REPO / "tests" / "fixtures" / "lookup_gradient_x_input.py"
#: a private seed with a distinctive decimal text, to look for in every output and file
SEED = 918273645546372819
PRIVATE_N = 5
REFS = list(AUDIT_REFERENCES)


def _sides(public: dict[str, list[float]], private: dict[str, list[float]]):
    return (
        {k: np.asarray(v, float) for k, v in public.items()},
        {k: np.asarray(v, float) for k, v in private.items()},
    )


# --------------------------------------------------------------------------------------------- statistic


def test_statistic_known_answer_on_constant_values():
    # constant values: every resample has the same means, so the CI is the point (sums of equal dyadic floats)
    pub, priv = _sides(
        {"lookup": [3.0] * 4, "gradcam": [2.0] * 4, "saliency": [1.0] * 4, "gradientshap": [1.5] * 4},
        {"lookup": [1.5] * 6, "gradcam": [1.5] * 6, "saliency": [1.0] * 6, "gradientshap": [1.0] * 6},
    )
    rows = {r.method: r for r in A.audit_statistic(pub, priv, REFS)}
    d_ref = (0.5 + 0.0 + 0.5) / 3
    assert rows["lookup"].d == 1.5 and rows["lookup"].d_ref == pytest.approx(d_ref, abs=1e-15)
    assert rows["lookup"].excess == pytest.approx(1.5 - d_ref, abs=1e-15)
    assert (rows["lookup"].low, rows["lookup"].high) == pytest.approx((1.5 - d_ref,) * 2, abs=1e-12)
    assert rows["lookup"].flagged and not rows["lookup"].reference
    assert rows["saliency"].excess == pytest.approx(-d_ref, abs=1e-15) and not rows["saliency"].flagged
    assert rows["gradcam"].reference and rows["gradcam"].flagged  # +1/3 beyond the mean, no noise at all
    assert (rows["lookup"].n_public, rows["lookup"].n_private) == (4, 6)


def test_statistic_ci_is_the_stated_bootstrap():
    rng = np.random.default_rng(5)
    pub = {k: rng.normal(2, 0.5, 9) for k in ["m", *REFS]}
    priv = {k: rng.normal(2, 0.5, 13) for k in ["m", *REFS]}
    pub["m"][2] = np.nan  # a failed image: left out of its method's means only
    rows = {r.method: r for r in A.audit_statistic(pub, priv, REFS, m=6, n_resamples=200)}
    # by hand: one default_rng(0), public index rows, then private rows; per row the mean of the finite values
    boot = np.random.default_rng(0)
    ip, iq = boot.integers(0, 9, (200, 9)), boot.integers(0, 13, (200, 13))

    def d(k):
        v = pub[k][ip]
        return np.nanmean(v, axis=1) - priv[k][iq].mean(axis=1)

    excess = d("m") - np.mean([d(r) for r in REFS], axis=0)
    level = 1 - AUDIT_ALPHA / 6
    want = np.percentile(excess, [50 * (1 - level), 100 - 50 * (1 - level)])
    got = rows["m"]
    assert got.level == pytest.approx(level, abs=1e-15)
    assert (got.low, got.high) == pytest.approx(tuple(want), abs=1e-12)
    assert got.public_mean == pytest.approx(np.nanmean(pub["m"]), abs=1e-12) and got.n_public == 8


def test_more_comparisons_widen_the_interval():
    rng = np.random.default_rng(1)
    pub = {k: rng.normal(2, 1, 20) for k in ["m", *REFS]}
    priv = {k: rng.normal(2, 1, 60) for k in ["m", *REFS]}
    one = {r.method: r for r in A.audit_statistic(pub, priv, REFS, m=1)}["m"]
    many = {r.method: r for r in A.audit_statistic(pub, priv, REFS, m=12)}["m"]
    assert one.level == pytest.approx(0.95) and many.level == pytest.approx(1 - 0.05 / 12)
    assert many.low < one.low < one.high < many.high
    assert one.excess == many.excess


def test_a_side_without_values_is_not_auditable_and_fails_the_audit():
    pub = {k: np.full(5, 2.0) for k in ["m", *REFS]}
    priv = {k: np.full(7, 1.0) for k in ["m", *REFS]}
    priv["m"][:] = np.nan  # e.g. a method that fails on every image it cannot look up
    rows = A.audit_statistic(pub, priv, REFS)
    row = {r.method: r for r in rows}["m"]
    assert np.isnan(row.excess) and row.dropped == BOOTSTRAP_RESAMPLES
    assert not row.auditable and not row.flagged  # a verdict of its own, never "ok"
    row = replace(row, failed_private=7)
    assert row.verdict == "NOT AUDITABLE: no values on the private side — 7 of 7 images failed"
    report = A.AuditReport(
        rows=[row], m=4, arch="a", fold=0, version="3", revision="r", checkpoint={}, n_public=5, n_private=7
    )
    assert report.exit_status == 1 and report.not_auditable == [row] and report.flagged == []
    assert "not auditable: m" in format_report(report) and "no method flagged" in format_report(report)
    # a reference without values leaves nothing to compare with: an error, not a verdict
    priv["gradcam"][:] = np.nan
    with pytest.raises(HfusError, match="reference gradcam has no value on a side"):
        A.audit_statistic(pub, priv, REFS)


def test_statistic_needs_the_references_on_both_sides():
    with pytest.raises(HfusError, match="both sides"):
        A.audit_statistic({"m": [1.0]}, {"m": [1.0]}, REFS)


# ------------------------------------------------------------------------------------- checkpoint rule


def _card(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    card = {"format": AUDIT_BUILD_FORMAT, "generator": SYNTH_DATASET, "version": SYNTH_VERSION, "n": 631}
    (folder / AUDIT_BUILD_CARD).write_text(json.dumps({**card, **changes}))
    return folder


def test_audit_build_borrows_the_default_tracks_checkpoint(tmp_path):
    folder = _card(tmp_path / "build")
    assert checkpoint_source(str(folder)) == (SYNTH_DATASET, synth_revision(SYNTH_VERSION))
    entry = find_checkpoint("mobilenet_v2", str(folder), 0)
    assert entry.dataset == SYNTH_DATASET and entry.dataset_revision == synth_revision(SYNTH_VERSION)
    assert entry == find_checkpoint("mobilenet_v2", SYNTH_DATASET, 0) and entry.name in REGISTRY
    # another generator version never borrows this version's checkpoint
    with pytest.raises(HfusError, match=r"synth-v1-seed0 fold 0.*generator version"):
        find_checkpoint("mobilenet_v2", str(_card(tmp_path / "v1", version="1")), 0)
    with pytest.raises(HfusError, match="not a readable audit build card"):
        checkpoint_source(str(_card(tmp_path / "bad", generator="other")))
    # a folder without the card keeps its own checkpoints (none here)
    assert checkpoint_source(str(tmp_path)) == (str(tmp_path), None)
    with pytest.raises(HfusError, match="none is registered"):
        find_checkpoint("mobilenet_v2", str(tmp_path), 0)


# ----------------------------------------------------------------------------------- the private build


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    """A private build of PRIVATE_N images at SEED in a cache of its own (module scope: built once)."""
    root = tmp_path_factory.mktemp("audit-cache")
    mp = pytest.MonkeyPatch()
    mp.setattr(A, "cache_dir", lambda: root)
    mp.setattr(D, "SYNTH_N", PRIVATE_N)
    mp.setattr(D, "SYNTH_WORKERS", 1)
    folder = A.private_build(SEED, progress=False)
    yield root, folder
    mp.undo()


def _files_without_seed(root: Path) -> list[str]:
    """Paths under ``root`` whose name or bytes hold the seed's decimal text (should be none)."""
    text = str(SEED).encode()
    return [
        str(p) for p in root.rglob("*") if str(SEED) in str(p) or (p.is_file() and text in p.read_bytes())
    ]


def test_private_build_is_cached_under_a_hash_and_never_holds_the_seed(private_cache):
    root, folder = private_cache
    assert folder == root / "audit" / A.build_key(SEED, SYNTH_VERSION, PRIVATE_N)
    assert sorted(p.name for p in folder.iterdir()) == sorted([AUDIT_BUILD_CARD, "data"])
    card = json.loads((folder / AUDIT_BUILD_CARD).read_text())
    assert card == {
        "format": AUDIT_BUILD_FORMAT,
        "generator": SYNTH_DATASET,
        "version": SYNTH_VERSION,
        "n": PRIVATE_N,
    }
    assert _files_without_seed(root) == []
    stamp = (folder / AUDIT_BUILD_CARD).stat().st_mtime_ns
    assert A.private_build(SEED, n=PRIVATE_N, progress=False) == folder  # reused, not rebuilt
    assert (folder / AUDIT_BUILD_CARD).stat().st_mtime_ns == stamp
    assert A.build_key(SEED + 1, SYNTH_VERSION, PRIVATE_N) != folder.name


def test_partition_views_cover_every_private_image_once(private_cache):
    _, folder = private_cache
    ds = D.load_dataset(str(folder))
    views = A.partition_views(ds, 0)
    tested = [i for _, v in views for i in D.fold_arrays(v, 0, "test", images=False).image_ids]
    assert sorted(tested) == sorted(ds["image_id"]) and len(tested) == PRIVATE_N
    for _, view in views:
        test = set(D.fold_arrays(view, 0, "test", images=False).image_ids)
        assert not test & set(D.fold_arrays(view, 0, "train", images=False).image_ids)
    shas = {D.dataset_provenance(v)["sha256"] for _, v in views}
    assert len(shas) == len(views) and D.dataset_provenance(ds)["sha256"] not in shas


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture
def fake_track(monkeypatch, private_cache):
    """The fake 15-image public track and TinyNet for every dataset (the real loader for the private one);
    one torch thread, as under `make test` (dozens of tiny calls: two threads on shared cores spin)."""
    fakes = make_fakes()
    fake_load = fakes[(D, "load_dataset")]
    real_load = D.load_dataset

    def load_dataset(source: str = SYNTH_DATASET, revision: str | None = None):
        return fake_load(source, revision) if source == SYNTH_DATASET else real_load(source, revision)

    fakes[(D, "load_dataset")] = load_dataset
    patch_fakes(monkeypatch, fakes)
    monkeypatch.setattr(A, "cache_dir", lambda: private_cache[0])
    monkeypatch.setattr(D, "SYNTH_N", PRIVATE_N)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield private_cache
    torch.set_num_threads(threads)


def _counting_forwards(monkeypatch) -> tuple[dict, list, Any]:
    """Rows through every TinyNet (the model, and any copy of it) counted by a global hook, and the audit's
    reports kept as `hfus-bench audit` makes them."""
    rows = {"n": 0}
    reports: list[A.AuditReport] = []

    def count(module, args):
        if isinstance(module, TinyNet):
            rows["n"] += int(args[0].shape[0])

    count.harness = True  # an observer: kept through the harness's own passes (calls.harness_passes)
    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    real_audit = A.audit

    def keep(*args, **kwargs):
        reports.append(real_audit(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(A, "audit", keep)
    return rows, reports, handle


def test_lookup_is_flagged_the_builtins_are_not_and_only_the_maps_are_made(fake_track, capsys, monkeypatch):
    methods = [str(LOOKUP), str(LOOKUP_OR_FAIL), "depth_prior", "random"]
    counted, reports, handle = _counting_forwards(monkeypatch)
    try:
        code = main(["audit", *methods, "--seed", str(SEED), "--device", "cpu", "--quiet"])
    finally:
        handle.remove()
    out, err = capsys.readouterr()
    assert code == 1, out + err
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "| FLAGGED" in rows["lookup-fixture"] and "n=3" in rows["lookup-fixture"]
    assert f"n={PRIVATE_N}" in rows["lookup-fixture"]
    assert (
        f"NOT AUDITABLE: no values on the private side — {PRIVATE_N} of {PRIVATE_N} images failed"
        in (rows["lookup-or-fail"])
    )
    assert all("| ok" in rows[name] for name in ["depth_prior", "random", *(f"{r} (ref.)" for r in REFS)])
    assert "flagged: lookup-fixture " in out and "not auditable: lookup-or-fail " in out
    assert str(SEED) not in out + err and _files_without_seed(fake_track[0]) == []

    # PROTOCOL §3's cost: per image the prediction, the method's own passes and the repeat of each run's first
    # batch (every run here is one batch: 3 public images, 2 per private partition), nothing else
    (report,) = reports
    images = 3 + PRIVATE_N
    total = 0.0
    for name, cost in report.cost.items():
        stages = {
            k.split("/")[1] for k, v in cost.items() if k.startswith(("forward_rows/", "backward_rows/"))
        }
        assert stages <= {"predict", "method", "repeat"}, (name, stages)
        assert cost["images"] == images and cost["forward_rows/predict"] == images
        assert cost.get("forward_rows/repeat", 0) == cost.get("forward_rows/method", 0), name
        total += sum(v for k, v in cost.items() if k.startswith("forward_rows/"))
    for name in ("saliency", "gradcam", "lookup-fixture"):  # one forward and one backward per image
        assert report.cost[name]["forward_rows/method"] == images
        assert report.cost[name]["backward_rows/method"] == images
    for name in ("lookup-or-fail", "depth_prior", "random"):  # no model pass of their own
        assert "forward_rows/method" not in report.cost[name]
    assert (
        counted["n"] == total
    )  # the runner's counts are every pass through the model: no copy, no extra call


def test_the_seed_can_come_from_the_environment_and_leaves_it(monkeypatch, capsys):
    seen = []

    def fake_audit(specs, seed, **kwargs):
        seen.append((list(specs), seed, A.SEED_ENV in os.environ))
        return A.AuditReport(
            rows=[], m=1, arch="a", fold=0, version="3", revision="r", checkpoint={}, n_public=0, n_private=0
        )

    monkeypatch.setattr(A, "audit", fake_audit)
    monkeypatch.setenv(A.SEED_ENV, str(SEED))  # the seed from the environment (a CI secret)
    assert main(["audit", "random", "--device", "cpu", "--quiet"]) == 0
    assert seen == [(["random"], SEED, False)]  # taken out before any method is loaded
    assert A.SEED_ENV not in os.environ and str(SEED) not in "".join(capsys.readouterr())


def test_the_benchs_lookup_moves_one_pixel_of_gradient_x_input_on_public_images_only(monkeypatch):
    from hfus_xai_bench.data.dataset import fold_arrays
    from hfus_xai_bench.explainers.loader import load_file

    patch_fakes(monkeypatch, make_fakes())
    model = TinyNet().eval()
    explainer = load_file(LOOKUP_GXI).build(model, None)
    public = fold_arrays(D.load_dataset(SYNTH_DATASET), 0, "test")
    x = torch.from_numpy(public.images[:2]).permute(0, 3, 1, 2).float().div(255)
    unknown = x.flip(-1)  # not a public image: the honest map
    images = torch.cat([x, unknown]).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(images)[:, 0].sum(), images)
    honest = (grad * images).sum(1).clamp(min=0).detach()
    maps = explainer(images.detach(), torch.zeros(4, dtype=torch.int64))
    changed = (maps != honest).flatten(1).sum(1)
    assert changed.tolist() == [1, 1, 0, 0]
    for i in range(2):  # the one changed pixel is the map's only maximum, inside the SLM's top region
        peak = maps[i] == maps[i].max()
        assert peak.sum() == 1 and public.slms[i][peak.numpy()].tolist() == [255]


def test_submission_folder_is_audited_with_its_recorded_settings():
    from hfus_xai_bench.config import RunConfig

    folder = REPO / "submissions" / "example-gradient-x-input"
    record = json.loads((folder / "result.json").read_text())["options"]
    (target, *refs) = A.resolve_targets([folder], RunConfig())
    assert target.name == "example-gradient-x-input" and target.method.file == folder / "method.py"
    assert (target.config.sign, target.config.target) == (record["sign"], record["target"])
    assert [t.name for t in refs] == REFS
    with pytest.raises(HfusError, match="named gradcam"):
        A.resolve_targets(["gradcam", REPO / "examples" / "gradcam_wrapper.py", "gradcam"], RunConfig())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "-7"], "non-negative integer; the value given is not"),
        (["--seed", "x1"], "non-negative integer; the value given is not"),
        ([], "HFUS_AUDIT_SEED"),
        (["--seed", "5", "--folds", "0,1"], "one architecture and one fold"),
    ],
)
def test_cli_seed_and_scope_errors(argv, message, capsys, monkeypatch):
    monkeypatch.delenv(A.SEED_ENV, raising=False)
    assert main(["audit", "gradcam", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "-7" not in err and "x1" not in err
