"""`hfus-bench evaluate METHOD` on the default track vs its forward-pass bound, on this machine.

The bound: (images) × (forward-equivalents per image) ÷ (MobileNetV2 forward throughput measured here,
channels_last, batch 64). Grad-CAM costs ~26 forward-equivalents per image: 1 prediction forward,
~3 for its forward + backward, 22 for the confidence check. Target (issue 5): ≤ 1.5× on 2 CPU cores.

    .venv/bin/python benchmarks/bench_evaluate.py [--method gradcam] [--limit N] [--fe 26]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")

import torch

from hfus_xai_bench.data.dataset import load_dataset
from hfus_xai_bench.models.checkpoints import load_model
from hfus_xai_bench.runner import evaluate


def forward_throughput(device: str, batch: int = 64, repeat: int = 3) -> float:
    """Images per second of the shipped MobileNetV2 (channels_last on CPU, as the runner uses it)."""
    model, _ = load_model("mobilenet_v2", device=device)
    x = torch.rand(batch, 3, 224, 224, device=device)
    if device == "cpu":
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    best = float("inf")
    with torch.inference_mode():
        model(x)
        for _ in range(repeat):
            tic = time.perf_counter()
            model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - tic)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--fe", type=float, default=26.0, help="forward-equivalents per image of the method + checks"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    load_dataset()  # built and cached before timing
    throughput = forward_throughput(args.device)
    tic = time.perf_counter()
    result = evaluate(args.method, limit=args.limit, device=args.device, progress=False, figure=False)
    seconds = time.perf_counter() - tic
    n = result.record["counts"]["total"]["n_images"]
    bound = n * args.fe / throughput
    name = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; MobileNetV2 forward {throughput:.1f} img/s")
    print(
        f"evaluate {args.method}: {n} images in {seconds:.1f} s; bound {bound:.1f} s ({args.fe:g} FE/img); "
        f"ratio {seconds / bound:.2f} (target <= 1.5)"
    )


if __name__ == "__main__":
    main()
