"""Emulated CPU kernel settings for the torch-side determinism tests (``from cpu_settings import ...``).

Each setting runs a snippet in a fresh interpreter, because torch reads these variables once, at import:
``ATEN_CPU_CAPABILITY`` picks ATen's SIMD kernels (default = no SIMD, avx2), ``ONEDNN_MAX_CPU_ISA`` caps
oneDNN's JIT kernels and ``MKL_ENABLE_INSTRUCTIONS`` MKL's dispatch (the paths another CPU vendor takes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

#: id → extra environment of one emulated CPU
CPU_SETTINGS: dict[str, dict[str, str]] = {
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn-mkl-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def run_under(setting: str, code: str, *args: str, threads: int | None = None, timeout: int = 300) -> Any:
    """Run ``code`` (which prints one JSON document last) under ``CPU_SETTINGS[setting]``; its JSON.

    The child imports this checkout first (``PYTHONPATH`` = repository and tests folder), runs offline
    (``threads``: its ``OMP_NUM_THREADS``) and fails the test with its stderr if it exits non-zero.
    """
    env = {**os.environ, **CPU_SETTINGS[setting], "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")])
    env["TQDM_DISABLE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{setting}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
