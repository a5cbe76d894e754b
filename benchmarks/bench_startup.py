"""Start-up cost of one process (issue 14): what every torchrun rank and shard pays before its first image.

Measured on this machine, each in a fresh process:

- the floor: ``python -c "import torch"`` (wall, peak RSS): no benchmark process can start below it;
- ``hfus-bench evaluate random --limit 1 --no-figure`` (wall, peak RSS) and, from its record's ``cost``
  block, the work spent on that one image (method + metrics + randomised model); the **fixed cost** is
  the wall time minus that work;
- the phases in one process (``--phases``): import torch, import the runner, open the dataset, prepare
  the fold (checkpoint, decode the evaluated images only, depth prior from its cache, randomised copy);
- ``hfus-bench check random`` (wall).

Targets (issue 14): fixed cost ≤ 2 s and ≤ 500 MB. The torch build of this environment (CUDA wheel)
alone takes about 1.5–2.2 s and 540–680 MB to import on 2 shared cores, so the script also prints the
fixed cost above that floor. On a shared machine every number moves with the load: compare ratios.

    .venv/bin/python benchmarks/bench_startup.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S, TARGET_MB = 2.0, 500.0
REPO = Path(__file__).resolve().parent.parent

PHASES = r"""
import resource, time
t0 = time.perf_counter()
out = []
def mark(what):
    out.append((what, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
import torch; mark("import torch")
from hfus_xai_bench import runner; mark("import the runner")
from hfus_xai_bench.data.dataset import load_dataset
ds = load_dataset(); mark("open the dataset")
from hfus_xai_bench.config import RunConfig
from hfus_xai_bench.explainers.loader import load_method
cfg = RunConfig(limit=1, device="cpu")
method = load_method("random")
dev = torch.device("cpu")
plan = runner.plan_run(ds, cfg, dev)
from hfus_xai_bench.batches import needed_extras, prepare_fold
from hfus_xai_bench.calls import PassCounter
n = plan[0].stop
job = prepare_fold(method, "mobilenet_v2", 0, ds, cfg, dev, range(n), n,
                   passes=PassCounter(dev), needs=needed_extras()); mark("prepare the fold")
print(repr(out))
"""


def timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS MB of the child, the finished process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    tic = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"}
    )
    wall = time.perf_counter() - tic
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return wall, max(after, before) / 1024, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each command (the fastest is shown)")
    parser.add_argument("--no-phases", action="store_true", help="skip the in-process phase breakdown")
    args = parser.parse_args()
    py = sys.executable
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"python {sys.version.split()[0]}"
    )
    # RUSAGE_CHILDREN's maxrss is the largest child so far: measure the small command first
    floor = min(timed([py, "-c", "import torch"])[:2] for _ in range(args.repeat))
    print(f"floor (import torch):                     {floor[0]:6.2f} s  {floor[1]:6.0f} MB")
    wall, rss, work = _evaluate_one_image(py, args.repeat)
    fixed = wall - work
    print(f"evaluate random --limit 1 (total):        {wall:6.2f} s  {rss:6.0f} MB")
    print(
        f"  work on the one image (record's cost):  {work:6.2f} s  "
        "(the stages: method, §4 confidence, §7 randomisation and ROAD, §9, prediction)"
    )
    print(
        f"  fixed cost:                             {fixed:6.2f} s  "
        f"-> {fixed / TARGET_S:.2f} x the {TARGET_S:g} s target; "
        f"peak {rss / TARGET_MB:.2f} x the {TARGET_MB:g} MB target"
    )
    print(
        f"  fixed cost above the import-torch floor: {fixed - floor[0]:6.2f} s  {rss - floor[1]:6.0f} MB "
        f"-> {(fixed - floor[0]) / TARGET_S:.2f} x / {(rss - floor[1]) / TARGET_MB:.2f} x the targets"
    )
    check = min(
        timed([py, "-m", "hfus_xai_bench", "check", "random", "--device", "cpu"])[0]
        for _ in range(args.repeat)
    )
    print(f"check random:                             {check:6.2f} s")
    if not args.no_phases:
        _print_phases(py)


def _evaluate_one_image(py: str, repeat: int) -> tuple[float, float, float]:
    """The fastest of ``repeat`` runs of ``evaluate random --limit 1``: (wall s, peak RSS MB, the seconds
    of the record's stages on the image, ``cost``'s ``seconds/<stage>``)."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [py, "-m", "hfus_xai_bench", "evaluate", "random", "--limit", "1", "--no-figure", "--quiet"]
        for _ in range(repeat):
            wall, rss, _ = timed([*cmd, "--device", "cpu", "--out", tmp])
            cost = json.loads((Path(tmp) / "random.json").read_text())["cost"]["mobilenet_v2"]
            work = sum(v for k, v in cost.items() if k.startswith("seconds/"))  # the stages' seconds
            runs.append((wall, rss, work))
    return min(runs)


def _print_phases(py: str) -> None:
    """The in-process phases (:data:`PHASES`), cumulative wall and peak RSS."""
    proc = subprocess.run([py, "-c", PHASES], cwd=REPO, capture_output=True, text=True, check=True)
    print("phases in one process (cumulative wall, peak RSS):")
    for what, t, mb in eval(proc.stdout.strip().splitlines()[-1]):  # noqa: S307 (our own repr)
        print(f"  {what:38s} {t:6.2f} s  {mb:6.0f} MB")


if __name__ == "__main__":
    main()
