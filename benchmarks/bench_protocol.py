"""The whole protocol end to end: ours (`hfus_xai_bench.runner.evaluate`) vs a library-only pipeline.

Both pipelines make the maps of every built-in method for the first N test images of fold 0 of the
chosen architectures (registered checkpoints: the shipped one, or those `hfus-bench train` put in
the cache) and score them with every metric. The library-only pipeline calls pytorch-grad-cam /
captum batched as a careful user would and runs the confidence check image by image (22 forwards
per image and method, as the study's scripts did); map-only metrics use the same code in both.

    python benchmarks/bench_protocol.py                        # CPU: MobileNetV2, 4 images, cheap methods
    python benchmarks/bench_protocol.py --device cuda --archs all --n 32 --methods all
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
from bench_methods import library_call, timed

from hfus_xai_bench.config import parse_known
from hfus_xai_bench.constants import THRESHOLDS
from hfus_xai_bench.data.dataset import fold_arrays, load_dataset
from hfus_xai_bench.explainers.contract import ExplainContext
from hfus_xai_bench.explainers.loader import load_builtin
from hfus_xai_bench.explainers.registry import ATTRIBUTION_METHODS, CAM_METHODS, SANITY_METHODS
from hfus_xai_bench.metrics import hit_rate, mask_iou, normalize_attribution, quantize, slm_coverage
from hfus_xai_bench.models.checkpoints import load_model
from hfus_xai_bench.models.zoo import ARCHS, get_arch
from hfus_xai_bench.runner import evaluate

CHEAP = ("gradcam", "gradcampp", "hirescam", "eigengradcam", "saliency", "gradientshap")


def library_pipeline(arch: str, methods: list[str], n: int, device: torch.device, batch: int) -> float:
    """Seconds for the library-only pipeline on one architecture."""
    spec = get_arch(arch)
    model, _ = load_model(arch, fold=0, device=str(device))
    test = fold_arrays(load_dataset(), 0, "test")
    x_all = torch.from_numpy(test.images[:n]).to(device).permute(0, 3, 1, 2).float().div(255)
    slms = test.slms[:n]
    tic = time.perf_counter()
    for method in methods:
        if (
            method in SANITY_METHODS
        ):  # no library has them: our maps (the prior here only for timing), rest as below
            ctx = ExplainContext.for_model(
                spec,
                model,
                device,
                depth_prior=torch.from_numpy(slms.mean(0) / 255).float().to(device),
            )
            baseline = load_builtin(method).build(model, ctx)
            call = lambda x, t, baseline=baseline: baseline(x, t)  # noqa: E731
        else:
            call = library_call(method, model, spec.resolve_target_layer(model), batch)
        maps = []
        for start in range(0, n, 8):
            x = x_all[start : start + 8]
            with torch.no_grad():
                t = model(x).argmax(1)
            out = call(x, t)
            out = torch.as_tensor(np.asarray(out.detach().cpu()) if torch.is_tensor(out) else out)
            maps.append(normalize_attribution(out) if out.ndim == 4 else out)
        m255 = np.asarray(quantize(torch.cat(maps)))
        hit_rate(m255, slms), slm_coverage(m255, slms), mask_iou(m255, slms)
        with torch.no_grad():
            for i in range(n):  # the study's per-image confidence check
                x, h = x_all[i], torch.from_numpy(m255[i]).to(device).float() / 255
                masks = [(h > t / 100).float() for t in THRESHOLDS]
                batch_in = torch.stack(
                    [x, x * h, x * (1 - h), *(x * m for m in masks), *(x * (1 - m) for m in masks)]
                )
                model(batch_in)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--archs", default="mobilenet_v2")
    parser.add_argument("--methods", default="cheap", help="'cheap', 'all' or a comma-separated list")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--batch", type=int, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    archs = parse_known(args.archs, list(ARCHS), "architecture")
    every = [*CAM_METHODS, *ATTRIBUTION_METHODS, *SANITY_METHODS]
    methods = (
        [*CHEAP, *SANITY_METHODS] if args.methods == "cheap" else parse_known(args.methods, every, "method")
    )
    batch = args.batch or (256 if device.type == "cuda" else 64)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; archs {archs}; {len(methods)} methods; n={args.n}")
    load_dataset()
    t_ours, _ = timed(
        lambda: [
            evaluate(
                m, models=archs, folds="0", limit=args.n, device=args.device, progress=False, figure=False
            )
            for m in methods
        ],
        device,
    )
    t_lib = sum(library_pipeline(a, methods, args.n, device, batch) for a in archs)
    print(f"ours: {t_ours:.1f} s; library-only: {t_lib:.1f} s; speed-up {t_lib / t_ours:.2f}x")


if __name__ == "__main__":
    main()
