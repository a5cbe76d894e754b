"""`hfus-bench evaluate METHOD` on the default track against the bound from its counted passes (PROTOCOL §6).

The run's record counts every forward and backward row per stage. After the run, one forward row and one
backward row are timed on the same model, after a warm-up, at the run's batch sizes (the explanation batch
for the call stages, the scoring forward batch for the metrics) and memory format (channels_last on CPU):
bound = Σ rows × row time. Printed: per stage seconds, rows, bound and ratio, and for the whole run (wall
time of `evaluate` against the sum of the stage bounds) the ratio and the share that is not model passes.
Target (issue 25): ≤ 1.2× on 2 CPU cores at full size (126 images).

    .venv/bin/python benchmarks/bench_evaluate.py [--method gradcam] [--limit N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")

import torch

from hfus_xai_bench.data.dataset import load_dataset
from hfus_xai_bench.metrics.inputs import ScoringConfig
from hfus_xai_bench.models.checkpoints import load_model
from hfus_xai_bench.profiling import measure_row_times, profile_table, stage_rows
from hfus_xai_bench.runner import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    load_dataset()  # built and cached before timing
    tic, cpu = time.perf_counter(), time.process_time()
    result = evaluate(args.method, limit=args.limit, device=args.device, progress=False, figure=False)
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    record = result.record
    device = torch.device(record["options"]["device"])
    model, _ = load_model("mobilenet_v2", device=str(device))
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    times = measure_row_times(
        model, device, int(record["options"]["batch_size"]), ScoringConfig().forward_batch(device)
    )
    cost = record["cost"]["mobilenet_v2"]
    n = record["counts"]["total"]["n_images"]
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; load average {os.getloadavg()[0]:.2f}")
    print(profile_table(cost, times, n))
    bound = stage_rows(cost, times)[-1]["bound"]
    staged = stage_rows(cost, times)[-1]["seconds"]
    impute = float(cost.get("road_seconds_impute_per_image") or 0.0) * n
    not_passes = (wall - staged) + impute
    if device.type == "cpu":  # CPU time of this process: the ratio without the other processes' load
        cpu_times = measure_row_times(
            model, device, times.call_batch, times.score_batch, clock=time.process_time
        )
        cpu_bound = stage_rows(cost, cpu_times)[-1]["bound"]
        print(
            f"CPU time of the process: evaluate {cpu:.1f} s, counted bound {cpu_bound:.1f} s, "
            f"ratio {cpu / cpu_bound:.2f}"
        )
    print(
        f"evaluate {args.method}: {n} images in {wall:.1f} s; counted bound {bound:.1f} s "
        f"(FE/img {cost['fe_per_image']:.1f}); ratio {wall / bound:.2f} (target <= 1.2); "
        f"not model passes: {not_passes:.1f} s = {not_passes / wall:.0%} of the wall time "
        f"(ROAD imputation {impute:.1f} s, outside the stages {wall - staged:.1f} s: "
        "data, prepare, maps-only metrics)"
    )


if __name__ == "__main__":
    main()
