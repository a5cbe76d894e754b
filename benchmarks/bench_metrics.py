"""Speed of the scoring protocol (not a unit test).

1. Map-only metrics (quantize + hit_rate + slm_coverage + mask_iou) on 631 random 224×224 maps,
   target < 2 s in total on a 2-core CPU; also the one-pass ``localisation_metrics``.
2. ``confidence_change`` (1 + 2 + 2·T forward inputs per image) against a plain forward of the
   same number of images through the same model: the ratio is the overhead of building the
   perturbations.

    .venv/bin/python benchmarks/bench_metrics.py [--n 631] [--n-conf 48] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch import nn

from hfus_xai_bench.constants import IMAGE_SIZE, SLM_LEVELS, THRESHOLDS
from hfus_xai_bench.metrics import (
    confidence_change,
    hit_rate,
    localisation_metrics,
    mask_iou,
    quantize,
    slm_coverage,
)

TARGET_S = 2.0


def synthetic_slms(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Layered SLMs like slm@1: per column 0 | 32 (16 px) | 255 (~34 px) | 128 | 64 | 32 (36 px each) | 0."""
    top = rng.integers(10, 60, (n, 1, size))
    thick = rng.integers(24, 38, (n, 1, size))
    row = np.arange(size)[None, :, None]
    slm = np.zeros((n, size, size), np.uint8)
    edges = [(top - 16, top, 32), (top, top + thick, 255)]
    b = top + thick
    for lv in (128, 64, 32):
        edges.append((b, b + 36, lv))
        b = b + 36
    for lo, hi, lv in edges:
        slm[(row >= lo) & (row < hi)] = lv
    slm[:, :, :5] = 0
    slm[:, :, -1] = 0
    assert set(np.unique(slm)) <= set(SLM_LEVELS)
    return slm


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=631, help="maps for the map-only metrics")
    ap.add_argument("--n-conf", type=int, default=48, help="images for confidence_change")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", choices=["small", "mobilenet_v2", "resnet101"], default="small")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, "
        f"load average {load:.1f} on {os.cpu_count()} CPUs "
        "(timings are best of 3; a busy machine inflates them)"
    )
    dev = torch.device(args.device)
    m255 = map_metrics(args.n, dev, rng)
    confidence_vs_forward(args.model, args.n_conf, args.batch_size, dev, m255)


def map_metrics(n: int, dev: torch.device, rng: np.random.Generator) -> torch.Tensor:
    """Part 1: the map-only metrics on ``n`` random maps; returns their m255."""
    maps = torch.rand(n, IMAGE_SIZE, IMAGE_SIZE, device=dev)
    slms = torch.from_numpy(synthetic_slms(n, IMAGE_SIZE, rng)).to(dev)

    def separate():
        m255 = quantize(maps)
        hit_rate(m255, slms)
        slm_coverage(m255, slms)
        return mask_iou(m255, slms)

    t_q, m255 = timed(lambda: quantize(maps))
    t_hr, _ = timed(lambda: hit_rate(m255, slms))
    t_cov, _ = timed(lambda: slm_coverage(m255, slms))
    t_iou, _ = timed(lambda: mask_iou(m255, slms))
    t_all, _ = timed(separate)
    t_one, _ = timed(lambda: localisation_metrics(quantize(maps), slms))
    print(f"map metrics, {n} maps {IMAGE_SIZE}x{IMAGE_SIZE}, {len(THRESHOLDS)} thresholds:")
    print(
        f"  quantize {t_q:.3f} s | hit_rate {t_hr:.3f} s | slm_coverage {t_cov:.3f} s | "
        f"mask_iou {t_iou:.3f} s"
    )
    print(f"  total (four calls) {t_all:.3f} s = {t_all / TARGET_S:.2f} x the {TARGET_S:.0f} s target")
    print(f"  quantize + localisation_metrics (one pass) {t_one:.3f} s = {t_one / TARGET_S:.2f} x target")
    return m255


def confidence_vs_forward(
    model_name: str, n: int, batch_size: int, dev: torch.device, m255: torch.Tensor
) -> None:
    """Part 2: ``confidence_change`` on ``n`` images against a plain forward of as many inputs."""
    if model_name == "small":
        model = SmallCNN()
    else:
        import torchvision

        model = getattr(torchvision.models, model_name)(num_classes=4)
    model = model.eval().to(dev)
    images = torch.rand(n, 3, IMAGE_SIZE, IMAGE_SIZE, device=dev)
    cm = m255[:n]
    targets = torch.randint(0, 4, (n,), device=dev)
    per_image = 3 + 2 * len(THRESHOLDS)
    plain_inputs = images.repeat(per_image, 1, 1, 1)[: n * per_image]

    def plain():
        with torch.inference_mode():
            for s in range(0, plain_inputs.shape[0], batch_size):
                model(plain_inputs[s : s + batch_size])
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def conf():
        r = confidence_change(model, images, cm, targets, batch_size=batch_size)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return r

    plain()  # warm-up
    t_plain, _ = timed(plain, repeats=2)
    t_conf, _ = timed(conf, repeats=2)
    n_fwd = n * per_image
    print(
        f"confidence_change, {n} images x {per_image} inputs = {n_fwd} forwards "
        f"({model_name}, batch {batch_size}):"
    )
    print(
        f"  confidence_change {t_conf:.3f} s ({n_fwd / t_conf:.0f} img/s) | plain forward {t_plain:.3f} s "
        f"({n_fwd / t_plain:.0f} img/s) | ratio {t_conf / t_plain:.2f}"
    )


if __name__ == "__main__":
    main()
