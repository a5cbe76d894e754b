"""`hfus-bench evaluate METHOD` on the default track against the bound from its counted passes (PROTOCOL §6).

The run's record counts every forward and backward row per stage. Before and after the run, one forward row
and one backward row are timed on the same model, after a warm-up, at the run's batch sizes (the
explanation batch for the call stages, the scoring forward batch for the metrics) and memory format
(channels_last on CPU); the bound = Σ rows × the mean of the two row times (the speed of a shared machine
drifts over a run: the two are printed). Printed: per stage seconds, rows, bound and ratio, and for the
whole run (wall time of `evaluate` against the sum of the stage bounds) the ratio and the share that is not
model passes.
Target (issue 25): ≤ 1.2× on 2 CPU cores at full size (126 images). With ``--precision bf16`` the run and the
row times both run their model passes under the same autocast (``calls.set_precision``): the ratio is the bf16
run against its bf16 bound (issue 20: ≤ 1.5×).

With several methods or architectures (``--method gradcam,ig`` or ``all``: every built-in; ``--models
mobilenet_v2,googlenet`` or ``all``) each (method, architecture) is its own `evaluate` run against its own
bound (row times of that architecture, measured before its first and after its last run), one line each,
then the whole protocol: Σ wall / Σ bound (issue 20: ≤ 1.3× in fp32). A method undefined on an architecture
(PROTOCOL §5) is listed as n/a there, not run. ``--profiles F.profile.json …`` runs nothing: the same table
and line from the files `hfus-bench evaluate --profile` wrote (e.g. the leaderboard runs of a GPU session).

    .venv/bin/python benchmarks/bench_evaluate.py [--method gradcam|M1,M2|all]
        [--models mobilenet_v2|A1,A2|all] [--limit N] [--device cpu|cuda] [--precision fp32|bf16]
    .venv/bin/python benchmarks/bench_evaluate.py --profiles DIR/*.profile.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch
from tabulate import tabulate

from hfus_xai_bench.allocator import keep_freed_memory
from hfus_xai_bench.calls import set_precision
from hfus_xai_bench.config import DEFAULT_BATCH_SIZE, PRECISIONS, parse_known
from hfus_xai_bench.constants import ARCH_NAMES
from hfus_xai_bench.data.dataset import load_dataset
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.registry import BUILTINS
from hfus_xai_bench.metrics.inputs import ScoringConfig
from hfus_xai_bench.models.checkpoints import load_model
from hfus_xai_bench.profiling import RowTimes, measure_row_times, profile_table, stage_rows
from hfus_xai_bench.runner import evaluate
from hfus_xai_bench.runtime import resolve_device


def mean_row_times(a: RowTimes, b: RowTimes) -> RowTimes:
    """The mean of two measurements at the same batch sizes (before and after the run)."""
    fields = ("forward_call", "backward_call", "forward_score", "backward_score")
    return RowTimes(a.call_batch, a.score_batch, *((getattr(a, f) + getattr(b, f)) / 2 for f in fields))


def _arch_model(arch: str, device: torch.device, precision: str) -> torch.nn.Module:
    """The architecture's default checkpoint as the run loads it (memory format, precision)."""
    model, _ = load_model(arch, device=str(device))
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return set_precision(model, precision, device)  # the bound's passes as the run's


def _run(method: str, arch: str, args: argparse.Namespace) -> tuple[dict, float, float] | None:
    """(record, wall s, process CPU s) of one `evaluate`, or None when the method is n/a on ``arch``."""
    tic, cpu = time.perf_counter(), time.process_time()
    try:
        result = evaluate(
            method,
            models=arch,
            limit=args.limit,
            device=args.device,
            precision=args.precision,
            progress=False,
            figure=False,
        )
    except HfusError as err:
        if "undefined (n/a)" not in str(err):
            raise
        return None
    return result.record, time.perf_counter() - tic, time.process_time() - cpu


def _detail(
    record: dict,
    arch: str,
    times: RowTimes,
    timing: tuple[float, float],
    args: argparse.Namespace,
    model: torch.nn.Module,
    device: torch.device,
) -> None:
    """One run in full: the per-stage table, the CPU-time ratio (CPU), and what is not model passes."""
    wall, cpu = timing
    cost = record["cost"][arch]
    n = record["counts"]["total"]["n_images"]
    print(profile_table(cost, times, n))
    bound = stage_rows(cost, times)[-1]["bound"]
    staged = stage_rows(cost, times)[-1]["seconds"]
    impute = float(cost.get("road_seconds_impute_per_image") or 0.0) * n
    not_passes = (wall - staged) + impute
    if device.type == "cpu":  # CPU time of this process: the ratio without the other processes' load
        batches = (times.call_batch, times.score_batch)
        cpu_times = measure_row_times(model, device, *batches, clock=time.process_time)
        cpu_bound = stage_rows(cost, cpu_times)[-1]["bound"]
        print(
            f"CPU time of the process: evaluate {cpu:.1f} s, counted bound {cpu_bound:.1f} s, "
            f"ratio {cpu / cpu_bound:.2f}"
        )
    print(
        f"evaluate {record['method']['name']}: {n} images in {wall:.1f} s; counted bound {bound:.1f} s "
        f"(FE/img {cost['fe_per_image']:.1f}); ratio {wall / bound:.2f} "
        f"(target <= {1.5 if args.precision == 'bf16' else 1.2}); "
        f"not model passes: {not_passes:.1f} s = {not_passes / wall:.0%} of the wall time "
        f"(ROAD imputation {impute:.1f} s, outside the stages {wall - staged:.1f} s: "
        "data, prepare, maps-only metrics)"
    )


def _arch_runs(arch: str, methods: list[str], args: argparse.Namespace, device: torch.device) -> list[list]:
    """Every method on ``arch``, bracketed by the row-time measurements; one summary row per run."""
    model = _arch_model(arch, device, args.precision)
    batches = (DEFAULT_BATCH_SIZE[device.type], ScoringConfig().forward_batch(device))
    before = measure_row_times(model, device, *batches)
    runs = [(m, _run(m, arch, args)) for m in methods]
    after = measure_row_times(model, device, *batches)
    times = mean_row_times(before, after)  # the box's speed drifts: bracket the runs
    print(
        f"{arch}: forward row time at batch {times.score_batch}: {before.forward_score * 1e3:.2f} ms before, "
        f"{after.forward_score * 1e3:.2f} ms after; the bounds use their mean"
    )
    rows = []
    for method, run in runs:
        if run is None:
            rows.append([method, arch, "n/a", "", "", "", ""])
            continue
        record, wall, cpu = run
        if int(record["options"]["batch_size"]) != batches[0]:
            raise SystemExit(
                f"the run used batch size {record['options']['batch_size']}, measured {batches[0]}"
            )
        if len(methods) == 1:
            _detail(record, arch, times, (wall, cpu), args, model, device)
        cost = record["cost"][arch]
        bound = stage_rows(cost, times)[-1]["bound"]
        n = record["counts"]["total"]["n_images"]
        rows.append([method, arch, n, f"{cost['fe_per_image']:.1f}", wall, bound, wall / bound])
    return rows


def profile_rows(paths: list[Path]) -> tuple[list[list], str, str]:
    """One summary row per (profile file, architecture) of `hfus-bench evaluate --profile` runs (wall time of
    a single-architecture run; of a run over several, each architecture's stage seconds), their device and
    precision (one of each, else SystemExit)."""
    rows, devices, precisions = [], set(), set()
    for path in paths:
        profile = json.loads(path.read_text())
        devices.add(profile["device"])
        precisions.add(profile["precision"])
        for arch, p in profile["archs"].items():
            total = p["stages"][-1]
            wall = profile["wall_seconds"] if len(profile["archs"]) == 1 else total["seconds"]
            n = p["n_images"]
            rows.append([profile["method"], arch, n, f"{p['fe_per_image']:.1f}", wall, total["bound"]])
    if len(devices) != 1 or len(precisions) != 1:
        raise SystemExit(
            f"profiles of one device and precision, got {sorted(devices)} / {sorted(precisions)}"
        )
    return [[*r, r[4] / r[5]] for r in rows], devices.pop(), precisions.pop()


def whole_protocol(rows: list[list], precision: str, what: str) -> None:
    """The runs' table, then Σ wall / Σ bound over those that ran (issue 20: ≤ 1.3× in fp32)."""
    done = [r for r in rows if r[2] != "n/a"]
    wall, bound = sum(r[4] for r in done), sum(r[5] for r in done)
    print(
        tabulate(
            [[*r[:4], *(f"{x:.1f}" for x in r[4:6]), f"{r[6]:.2f}"] if r[2] != "n/a" else r for r in rows],
            headers=["method", "arch", "images", "FE/img", "wall s", "bound s", "ratio"],
        )
    )
    target = 1.5 if precision == "bf16" else 1.3
    print(
        f"whole protocol ({len(done)} runs: {what}, {precision}): {wall:.1f} s; counted bound {bound:.1f} s; "
        f"ratio {wall / bound:.2f} (target <= {target})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gradcam", help="a built-in, a comma list or 'all'")
    parser.add_argument("--models", default="mobilenet_v2", help="architectures: a comma list or 'all'")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument(
        "--profiles", nargs="+", type=Path, help="run nothing: sum these `evaluate --profile` JSON files"
    )
    args = parser.parse_args()
    if args.profiles:
        rows, device, precision = profile_rows(args.profiles)
        print(f"device: {device}; {len(args.profiles)} profile files")
        whole_protocol(rows, precision, "from evaluate --profile")
        return
    methods = parse_known(args.method, sorted(BUILTINS), "method")
    archs = parse_known(args.models, ARCH_NAMES, "architecture")
    load_dataset()  # built and cached before timing
    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()  # as the run sets it (runner.run_share), before the first measurement
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; precision {args.precision}; load average {os.getloadavg()[0]:.2f}")
    rows = [row for arch in archs for row in _arch_runs(arch, methods, args, device)]
    if len(rows) > 1:
        whole_protocol(rows, args.precision, f"{len(methods)} methods x {len(archs)} architectures")


if __name__ == "__main__":
    main()
