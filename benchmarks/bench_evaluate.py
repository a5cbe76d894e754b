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

    .venv/bin/python benchmarks/bench_evaluate.py [--method gradcam] [--limit N] [--device cpu|cuda]
        [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")

import torch

from hfus_xai_bench.allocator import keep_freed_memory
from hfus_xai_bench.calls import set_precision
from hfus_xai_bench.config import DEFAULT_BATCH_SIZE, PRECISIONS
from hfus_xai_bench.data.dataset import load_dataset
from hfus_xai_bench.metrics.inputs import ScoringConfig
from hfus_xai_bench.models.checkpoints import load_model
from hfus_xai_bench.profiling import RowTimes, measure_row_times, profile_table, stage_rows
from hfus_xai_bench.runner import evaluate
from hfus_xai_bench.runtime import resolve_device


def mean_row_times(a: RowTimes, b: RowTimes) -> RowTimes:
    """The mean of two measurements at the same batch sizes (before and after the run)."""
    fields = ("forward_call", "backward_call", "forward_score", "backward_score")
    return RowTimes(a.call_batch, a.score_batch, *((getattr(a, f) + getattr(b, f)) / 2 for f in fields))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    args = parser.parse_args()
    load_dataset()  # built and cached before timing
    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()  # as the run sets it (runner.run_share), before the first measurement
    model, _ = load_model("mobilenet_v2", device=str(device))
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    set_precision(model, args.precision, device)  # the bound's passes as the run's
    batches = (DEFAULT_BATCH_SIZE[device.type], ScoringConfig().forward_batch(device))
    before = measure_row_times(model, device, *batches)
    tic, cpu = time.perf_counter(), time.process_time()
    result = evaluate(
        args.method,
        limit=args.limit,
        device=args.device,
        precision=args.precision,
        progress=False,
        figure=False,
    )
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    record = result.record
    if int(record["options"]["batch_size"]) != batches[0]:
        raise SystemExit(f"the run used batch size {record['options']['batch_size']}, measured {batches[0]}")
    after = measure_row_times(model, device, *batches)
    times = mean_row_times(before, after)  # the box's speed drifts: bracket the run
    cost = record["cost"]["mobilenet_v2"]
    n = record["counts"]["total"]["n_images"]
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; precision {args.precision}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"forward row time at batch {times.score_batch}: {before.forward_score * 1e3:.2f} ms before the run, "
        f"{after.forward_score * 1e3:.2f} ms after; the bound uses their mean"
    )
    print(profile_table(cost, times, n))
    bound = stage_rows(cost, times)[-1]["bound"]
    staged = stage_rows(cost, times)[-1]["seconds"]
    impute = float(cost.get("road_seconds_impute_per_image") or 0.0) * n
    not_passes = (wall - staged) + impute
    if device.type == "cpu":  # CPU time of this process: the ratio without the other processes' load
        cpu_times = measure_row_times(model, device, *batches, clock=time.process_time)
        cpu_bound = stage_rows(cost, cpu_times)[-1]["bound"]
        print(
            f"CPU time of the process: evaluate {cpu:.1f} s, counted bound {cpu_bound:.1f} s, "
            f"ratio {cpu / cpu_bound:.2f}"
        )
    print(
        f"evaluate {args.method}: {n} images in {wall:.1f} s; counted bound {bound:.1f} s "
        f"(FE/img {cost['fe_per_image']:.1f}); ratio {wall / bound:.2f} "
        f"(target <= {1.5 if args.precision == 'bf16' else 1.2}); "
        f"not model passes: {not_passes:.1f} s = {not_passes / wall:.0%} of the wall time "
        f"(ROAD imputation {impute:.1f} s, outside the stages {wall - staged:.1f} s: "
        "data, prepare, maps-only metrics)"
    )


if __name__ == "__main__":
    main()
