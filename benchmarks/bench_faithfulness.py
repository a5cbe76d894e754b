"""Cost of PROTOCOL §7 (one randomised copy + road@1) per image on top of a Grad-CAM run, on this machine.

On the default data (hfus-synth, fold 0 test split, first N images) with the shipped MobileNetV2 and the
built-in Grad-CAM, it measures per image:

- randomised explanation: building one randomised copy (§7.1, once per run, shown apart) and Grad-CAM
  on it, plus Spearman ρ and ρ_cross (negligible); `randomisation@2` (§7.1.1) makes K = 3 such copies,
  so a run pays this line three times;
- ROAD imputation: orders, masks, the 10 multigrid-CG solves, noise (``road_scores`` timing);
- ROAD forwards: the clean forward + 10 imputed images (``road_scores`` timing);
- the bound: 10 forwards of one image, measured in the same run (batch ``--batch-size``,
  channels_last on CPU, as the runner does), and the ratio imputation / bound;
- scipy's direct sparse solve (LU, float64) of the same systems for the first ``--direct`` images.

Targets (issue 12): all of §7 ≤ 2.0 s per image on 2 CPU cores (moonshot 0.5 s); on a GPU the imputation
costs no more than the 10 ROAD forwards. Ratios, not absolute numbers, are comparable between machines;
on a shared machine every number moves with the load.

    .venv/bin/python benchmarks/bench_faithfulness.py [--n 16] [--direct 2] [--device cpu] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch

from hfus_xai_bench.data.dataset import fold_arrays, load_dataset
from hfus_xai_bench.explainers.contract import ExplainContext
from hfus_xai_bench.explainers.loader import load_builtin
from hfus_xai_bench.metrics import quantize
from hfus_xai_bench.metrics.randomisation import cross_image_rho, randomised_model, spearman_maps
from hfus_xai_bench.metrics.road import (
    ROAD_FRACTIONS,
    direct_imputation,
    order_seed,
    removal_counts,
    removal_masks,
    removal_order,
    road_scores,
    solve_imputation,
)
from hfus_xai_bench.models.checkpoints import load_model
from hfus_xai_bench.seeding import item_seed

TARGET_S, MOONSHOT_S = 2.0, 0.5


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gradcam_m255(model, spec, device, images, targets, batch_size: int) -> torch.Tensor:
    context = ExplainContext.for_model(spec, model, device, batch_size=batch_size)
    explainer = load_builtin("gradcam").build(model, context)
    out = []
    for start in range(0, len(images), batch_size):
        out.append(explainer(images[start : start + batch_size].clone(), targets[start : start + batch_size]))
    return torch.as_tensor(quantize(torch.cat(out).clamp(min=0)))


def forward_seconds(
    model, images: torch.Tensor, repeats: int, batch_size: int, device: torch.device
) -> float:
    """Seconds to forward ``repeats`` copies of ``images`` in batches (the ROAD forwards' bound)."""
    x = images.repeat_interleave(repeats, dim=0)
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        x = x.contiguous(memory_format=torch.channels_last)  # as road_scores feeds the model
    with torch.inference_mode():
        model(x[:batch_size])  # warm-up
        sync(device)
        tic = time.perf_counter()
        for start in range(0, len(x), batch_size):
            model(x[start : start + batch_size])
        sync(device)
    return time.perf_counter() - tic


@dataclass
class _Inputs:
    """The first N fold-0 test images with the shipped MobileNetV2, its predictions and the item seeds."""

    model: torch.nn.Module
    spec: Any
    images: torch.Tensor
    targets: torch.Tensor
    seeds: list[int]


def _inputs(n: int, device: torch.device) -> _Inputs:
    test = fold_arrays(load_dataset(), 0, "test")
    n = min(n, len(test.image_ids))
    model, info = load_model("mobilenet_v2", fold=0, device=str(device))
    channels_last = device.type == "cpu"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    images = torch.from_numpy(test.images[:n]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        targets = model(images).argmax(1)
    seeds = [item_seed(0, image_id) for image_id in test.image_ids[:n]]
    return _Inputs(model, info.spec, images, targets, seeds)


def _timed(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and its seconds, the device synchronised before and after."""
    sync(device)
    tic = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - tic


def _direct_comparison(inp: _Inputs, m255: torch.Tensor, nd: int) -> dict[str, Any]:
    """scipy's direct solve of the first ``nd`` images' ROAD systems (no noise) and ours on the same ones."""
    counts = removal_counts(224 * 224)
    order = removal_order(m255[:nd], [order_seed(s) for s in inp.seeds[:nd]])
    masks = removal_masks(order, counts, 224, 224).reshape(-1, 224, 224)
    reps = inp.images[:nd].contiguous().cpu().repeat_interleave(2 * len(counts), dim=0)
    tic = time.perf_counter()
    ref = direct_imputation(reps, masks)
    t_direct = time.perf_counter() - tic
    tic = time.perf_counter()
    sol = solve_imputation(reps, masks)
    t_ours = time.perf_counter() - tic
    its = sol.iterations.tolist()
    max_diff = (sol.values - ref).abs().max().item()
    return {"nd": nd, "direct": t_direct, "ours": t_ours, "its": its, "max_diff": max_diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="test images of fold 0")
    parser.add_argument(
        "--direct", type=int, default=2, help="images whose 10 systems are also solved by scipy"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    device, bs = torch.device(args.device), args.batch_size
    inp = _inputs(args.n, device)
    model, images, targets = inp.model, inp.images, inp.targets

    # trained Grad-CAM (the run this is added to)
    m255, t_gradcam = _timed(device, lambda: gradcam_m255(model, inp.spec, device, images, targets, bs))
    # §7.1: randomised copy + Grad-CAM on it + ρ, ρ_cross
    rand, t_build = _timed(device, lambda: randomised_model(model, seed=0))

    def randomised() -> tuple[np.ndarray, np.ndarray]:
        m255_rand = gradcam_m255(rand, inp.spec, device, images, targets, bs)
        return spearman_maps(m255, m255_rand), cross_image_rho(m255)

    (rho, rho_cross), t_rand = _timed(device, randomised)
    # §7.2: ROAD
    scores = road_scores(model, images, m255, targets, seeds=inp.seeds, batch_size=bs)
    t_bound = forward_seconds(model, images, 2 * len(ROAD_FRACTIONS), bs, device)
    nd = min(args.direct, len(images))
    direct = _direct_comparison(inp, m255, nd) if nd else None

    n = len(images)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    per = 1.0 / n
    imp, fwd, rexp = scores.seconds_impute * per, scores.seconds_forward * per, t_rand * per
    total = imp + fwd + rexp
    print(f"device: {name}; load average {os.getloadavg()[0]:.2f}; {n} images, batch {bs}")
    print(f"trained Grad-CAM: {t_gradcam * per:.3f} s/img (the run §7 is added to)")
    print(f"randomised model built once: {t_build:.3f} s")
    print(
        f"§7 per image: imputation {imp:.3f} s + ROAD forwards {fwd:.3f} s + "
        f"randomised explanation {rexp:.3f} s "
        f"= {total:.3f} s (target <= {TARGET_S}, moonshot {MOONSHOT_S})"
    )
    bound = t_bound * per
    print(f"bound (10 forwards / img, same run): {bound:.3f} s/img; imputation / bound = {imp / bound:.2f}, "
          f"ROAD forwards / bound = {fwd / bound:.2f}")  # fmt: skip
    if direct:
        _print_direct(direct)
    print(f"mean rho {np.mean(rho):+.3f}, rho_cross {np.nanmean(rho_cross):+.3f}, ROAD combined "
          f"{scores.combined.mean():+.3f} (morf {scores.morf_mean.mean():+.3f}, "
          f"lerf {scores.lerf_mean.mean():+.3f})")  # fmt: skip


def _print_direct(d: dict[str, Any]) -> None:
    nd, its = d["nd"], d["its"]
    sys_n = nd * 2 * len(ROAD_FRACTIONS)
    print(
        f"scipy direct solve: {d['direct'] / nd:.3f} s/img "
        f"({d['direct'] / sys_n:.3f} s per image and fraction); "
        f"ours on the same systems {d['ours'] / nd:.3f} s/img: {d['direct'] / d['ours']:.1f}x faster; "
        f"CG iterations {min(its)}-{max(its)}; max |ours - direct| = {d['max_diff']:.1e}"
    )


if __name__ == "__main__":
    main()
