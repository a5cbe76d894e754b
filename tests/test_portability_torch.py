"""The exact claims of the torch side hold under other CPUs' kernels (the torch half of test_portability).

In a fresh interpreter per emulated CPU (:data:`cpu_settings.CPU_SETTINGS`: ATen default and avx2 kernels,
oneDNN and MKL capped at AVX2), each claim the benchmark keeps exact is checked bitwise:

- maps-only scores recomputed from the fixed m255 maps of the reference submission
  (``submissions/example-gradient-x-input``) equal the values it records (numpy on uint8 maps and
  integer masks; ``verify`` relies on it);
- a run split into shards at equal batches merges into the single-process record (per batch the same
  kernels on the same shapes; the merge only reorders whole batches);
- the cached default dataset matches its golden status and per-image golden hashes (PNG decoding,
  no float arithmetic);
- the ROAD imputation of an image is the same alone, in a batch and in chunks (by design: see the
  road module docstring).

Values compared across CPUs are not claimed exact (model forwards use other kernels); see
docs/REPRODUCIBILITY.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cpu_settings import CPU_SETTINGS, REPO, run_under

SUBMISSION = REPO / "submissions" / "example-gradient-x-input"
#: images of the merge check: 2 images in batches of 1, split into 2 shards
MERGE_LIMIT, MERGE_BATCH, MERGE_SHARDS = 2, 1, 2


def maps_only_mismatches(ds: Any) -> list[str]:
    """Maps-only values of the reference submission recomputed from its maps, vs recorded (exact)."""
    from hfus_xai_bench.data.dataset import fold_arrays
    from hfus_xai_bench.metrics.inputs import ScoringConfig, ScoringInputs
    from hfus_xai_bench.scoring import score_fold, select_metrics

    record = json.loads((SUBMISSION / "result.json").read_text())
    with np.load(SUBMISSION / "maps.npz", allow_pickle=False) as npz:
        maps = {k: npz[k] for k in npz.files}
    rows = record["per_image"]
    arch, fold = rows[0]["arch"], int(rows[0]["fold"])
    assert all((r["arch"], int(r["fold"])) == (arch, fold) for r in rows)
    key = f"{arch}__fold{fold}"
    test = fold_arrays(ds, fold, "test")
    index = {image_id: i for i, image_id in enumerate(test.image_ids)}
    idx = np.array([index[r["image_id"]] for r in rows])
    extras = {  # PROTOCOL §7.1.1: every copy's maps, a failure reason per image and copy
        "m255_randomised": maps[f"{key}__maps_randomised"],
        "randomised_ok": np.array([[f is None for f in r["randomised_failed"]] for r in rows], bool),
    }
    if f"{key}__maps_runner_up" in maps:  # PROTOCOL §9: the runner-up class's maps
        extras["m255_runner_up"] = maps[f"{key}__maps_runner_up"]
        extras["runner_up_ok"] = np.array([r.get("runner_up_failed") is None for r in rows], bool)
        extras["runner_up"] = np.array([r["runner_up"] for r in rows], np.int64)
    if test.evidence is not None:
        extras["evidence"] = test.evidence[idx]
    inputs = ScoringInputs(
        m255=maps[f"{key}__maps"],
        slms=test.slms[idx],
        image_ids=[r["image_id"] for r in rows],
        labels=np.array([r["label"] for r in rows], np.int64),
        targets=np.array([r["target"] for r in rows], np.int64),
        ok=np.array([r["failed"] is None for r in rows]),
        empty=np.array([r["failed"] == "empty_map" for r in rows]),
        extras=extras,
    )
    chosen = [
        m for m in select_metrics(model=False, extras=extras) if all(v.name in rows[0] for v in m.values)
    ]
    assert chosen, "the reference submission records no maps-only metric"
    values = score_fold(inputs, chosen, config=ScoringConfig.from_options(record["options"]))
    out = []
    for m in chosen:
        for v in m.values:
            recorded = np.array([r[v.name] for r in rows], dtype=float)  # None -> NaN
            if not np.array_equal(recorded, values[m.key(v)], equal_nan=True):
                out.append(m.key(v))
    return out


def merge_equal(tmp: Path) -> dict[str, bool]:
    """A 2-shard run merged vs the single-process run at the same batches (one thread per process)."""
    import torch

    from hfus_xai_bench.config import RunConfig
    from hfus_xai_bench.distributed import Shard
    from hfus_xai_bench.merge import evaluate_shard, merge_shards
    from hfus_xai_bench.runner import evaluate

    torch.set_num_threads(1)
    config = RunConfig(limit=MERGE_LIMIT, batch_size=MERGE_BATCH, device="cpu")
    single = evaluate("center", config, progress=False, figure=False).record
    files = [
        evaluate_shard("center", config, Shard(i, MERGE_SHARDS), out=tmp / "shards", progress=False)
        for i in range(MERGE_SHARDS)
    ]
    merged = merge_shards(files, out=tmp / "merged", figure=False).record
    return {key: merged[key] == single[key] for key in ("per_image", "metrics", "classification")}


def dataset_checks(ds: Any) -> dict[str, bool]:
    """Golden status of the cached dataset and the golden hashes of every 40th image."""
    from hfus_xai_bench.data.dataset import dataset_provenance, image_sha256s
    from hfus_xai_bench.data.golden import golden_status, load_golden

    provenance = dataset_provenance(ds)
    status, _line = golden_status(provenance)
    golden = load_golden(str(provenance["revision"]))["images"]
    hashes = image_sha256s(ds.select(range(0, len(ds), 40)))
    return {"golden_status": status is True, "image_hashes": all(golden[k] == v for k, v in hashes.items())}


def portability_report(tmp: str) -> dict[str, Any]:
    """Every exact claim, checked in this interpreter (run by the test under each CPU setting)."""
    import torch
    from test_metrics_road import batch_independence_report

    from hfus_xai_bench.data.dataset import load_dataset

    ds = load_dataset()
    road = batch_independence_report()
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "maps_only_mismatches": maps_only_mismatches(ds),
        "merge": merge_equal(Path(tmp)),
        "dataset": dataset_checks(ds),
        "road_batch": road["equal"],
    }


_CHILD = "import json, sys, test_portability_torch as t; print(json.dumps(t.portability_report(sys.argv[1])))"


@pytest.mark.slow
@pytest.mark.parametrize("setting", sorted(CPU_SETTINGS))
def test_exact_claims_hold_under_other_cpu_kernels(setting: str, synth_ds, tmp_path) -> None:
    report = run_under(setting, _CHILD, str(tmp_path), threads=1)
    wanted = CPU_SETTINGS[setting].get("ATEN_CPU_CAPABILITY")
    if wanted:
        assert report["capability"] == wanted.upper(), report
    assert report["maps_only_mismatches"] == [], report
    assert all(report["merge"].values()), report
    assert all(report["dataset"].values()), report
    assert all(report["road_batch"].values()), report
