"""Same inputs, same bytes: the synthetic track does not depend on SIMD kernels, threads or workers.

Each case generates and imports the same 24-image subset of the default revision (6 per class) in a
fresh interpreter under other ``NPY_DISABLE_CPU_FEATURES`` / thread / worker settings and compares
the generated pixels and the imported images with the golden hashes shipped in the package — so a
machine-dependent operation in the generator or the import fails here on any single machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hfus_xai_bench.data.golden import load_golden, mismatches
from hfus_xai_bench.data.synth import SYNTH_VERSION, plan_archive

REVISION = f"synth-v{SYNTH_VERSION}-seed0"


def _dispatch_features() -> list[str]:
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as umath  # type: ignore[no-redef]
    return list(umath.__cpu_dispatch__)


def _subset() -> list[int]:
    plan = plan_archive(631, 0)
    picks: list[int] = []
    for label in ("AD", "CG", "PS", "ST"):
        idx = [it.index for it in plan if it.label == label]
        picks += [idx[int(j)] for j in np.linspace(0, len(idx) - 1, 6)]
    return picks


_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from hfus_xai_bench.data.archive import import_archive
    from hfus_xai_bench.data.dataset import image_sha256s, load_dataset
    from hfus_xai_bench.data.synth_ops import INFO_NAME
    from hfus_xai_bench.data.synth_archive import generate_archive
    out, only, workers = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
    arch = generate_archive(out / "archive", n=631, seed=0, progress=False, workers=workers, only=only)
    raw = {f["path"]: f["pixels_sha256"] for f in json.loads((arch / INFO_NAME).read_text())["files"]}
    folder = import_archive(arch, out / "dataset", expect=len(only), progress=False, workers=workers)
    print(json.dumps({"raw": raw, "images": image_sha256s(load_dataset(str(folder)))}))
    """
)


def _cases() -> list[tuple[str, int, int]]:
    feats = _dispatch_features()
    wide = [f for f in feats if "512" in f or f in ("X86_V4", "AVX512F")]
    cases = [("", 2, 2)]
    if wide:
        cases.append((" ".join(wide), 1, 1))
    if feats:
        cases += [(" ".join(feats), 2, 1), (" ".join(feats), 1, 2)]  # baseline kernels only
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(("disabled", "threads", "workers"), _cases())
def test_subset_matches_golden_under_other_kernels_threads_workers(tmp_path, disabled, threads, workers):
    golden = load_golden(REVISION)
    assert golden is not None, f"the package ships no golden hashes for {REVISION}"
    only = _subset()
    env = {
        **os.environ,
        "NPY_DISABLE_CPU_FEATURES": disabled,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path), json.dumps(only), str(workers)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(got["images"]) == 24 and len(got["raw"]) >= 24
    raw_expected = {k: v for k, v in golden["raw_pixels"].items() if k in got["raw"]}
    assert len(raw_expected) == len(got["raw"]), "generated files that the golden build does not have"
    assert mismatches(raw_expected, got["raw"]) == [], (
        f"generator bytes differ with NPY_DISABLE_CPU_FEATURES={disabled!r}"
    )
    img_expected = {k: golden["images"][k] for k in got["images"]}
    assert mismatches(img_expected, got["images"]) == [], (
        f"imported bytes differ with NPY_DISABLE_CPU_FEATURES={disabled!r}"
    )


def test_subset_covers_all_classes_and_structures():
    plan = plan_archive(631, 0)
    labels = {plan[i].label for i in _subset()}
    assert labels == {"AD", "CG", "PS", "ST"} and len(set(_subset())) == 24


def test_golden_file_is_complete():
    golden = load_golden(REVISION)
    assert golden is not None and len(golden["images"]) == 631 and len(golden["dataset_sha256"]) == 64
    frames = [p for p in golden["raw_pixels"] if "/masks/" not in p and "/twins/" not in p]
    assert len(frames) == 631  # one RGB frame per image
    if SYNTH_VERSION == "3":  # and one twin and one evidence mask per image
        assert sum("/twins/" in p for p in golden["raw_pixels"]) == 631
        assert sum(p.endswith("_evidence.png") for p in golden["raw_pixels"]) == 631
