"""fp32 against bf16 (``--precision bf16``): agreement of the maps and seconds per image, per method × arch.

For each architecture (``--archs``: the shipped checkpoint of fold 0 where one is found, else seeded random
weights as in ``bench_methods.py``) and method (``--methods``; default the study's built-ins that are cheap
on a CPU: every CAM but Score-CAM, GradientShap and Saliency; ``all``: the study's twelve), the first
``--n`` test images of fold 0 of the default track are explained once with the model in fp32 and once
with it in bf16 (``calls.set_precision``: every pass through the model under autocast, logits, maps and
metrics in float32), through the harness's own call (``calls.explain``: §3's random state, §3.1's
post-processing into m255). Both precisions explain the fp32 model's predicted class, so the maps answer
the same question. Printed per row:

- r mean / r min: Pearson r of the two m255 maps per image (images whose maps both succeeded);
- HR1 fp32, HR1 bf16 and dHR1 mean / max |dHR1|: ``hit_rate@1`` per image through the metric registry,
  bf16 − fp32;
- s/img in each precision (the method's calls only, after one untimed warm-up call, best of ``--repeat``)
  and their ratio;
- pred: images whose bf16 prediction differs from the fp32 one.

    python benchmarks/bench_precision.py                                   # CPU: MobileNetV2, 4 images
    python benchmarks/bench_precision.py --device cuda --archs all --n 64 --out precision.json
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch

# the method benchmark's random-weight model (the script's folder is on the path)
from bench_methods import make_model
from tabulate import tabulate

from hfus_xai_bench.batches import Batch, call_seed, model_input, training_sample
from hfus_xai_bench.calls import Call, PassCounter, explain, fingerprint, set_precision
from hfus_xai_bench.config import DEFAULT_BATCH_SIZE, RunConfig, parse_known
from hfus_xai_bench.data.dataset import depth_prior, fold_arrays, load_dataset
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.contract import ExplainContext
from hfus_xai_bench.explainers.loader import Method, load_builtin
from hfus_xai_bench.explainers.registry import ATTRIBUTION_METHODS, CAM_METHODS
from hfus_xai_bench.metrics.inputs import ScoringConfig, ScoringInputs
from hfus_xai_bench.metrics.registry import HEADLINE, get_metric
from hfus_xai_bench.models.checkpoints import load_model
from hfus_xai_bench.models.zoo import ARCHS, get_arch
from hfus_xai_bench.scoring import score_fold

#: the study's built-ins too slow for a CPU run by default (thousands of forwards per image)
SLOW = ("scorecam", "ig", "occlusion15", "occlusion30", "occlusion45")
DEFAULT_METHODS = tuple(m for m in (*CAM_METHODS, *ATTRIBUTION_METHODS) if m not in SLOW)
FOLD = 0


@dataclass
class Maps:
    """One precision's run of one method: m255 maps, which succeeded, seconds of the calls."""

    m255: np.ndarray
    ok: np.ndarray
    seconds: float


def model_for(arch: str, device: torch.device) -> tuple[torch.nn.Module, str]:
    """The fold-0 checkpoint of ``arch`` where there is one, else seeded random weights; and which."""
    try:
        model, info = load_model(arch, fold=FOLD, device=str(device))
        weights = f"checkpoint {info.checkpoint.name}"
    except HfusError:
        model, weights = make_model(arch, device), "random weights (no checkpoint)"
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model.eval(), weights


def run_method(
    method: Method,
    model: torch.nn.Module,
    context: ExplainContext,
    x: torch.Tensor,
    targets: torch.Tensor,
    batch: int,
    repeat: int,
) -> Maps:
    """The method's m255 maps of ``x`` through ``calls.explain`` in batches, after one untimed warm-up call;
    the seconds are the best of ``repeat`` passes over ``x`` (the maps: the first pass's)."""
    call = Call("the model", model, method.build(model, context), context, fingerprint(model))
    passes = PassCounter(x.device)
    config = RunConfig()
    ask = {"method": method, "stage": "method", "passes": passes, "sign": config.sign}
    explain(call, x[:batch], targets[:batch], seed=0, **ask)  # warm-up
    runs = []
    for _ in range(repeat):
        maps, ok, seconds = [], [], 0.0
        for start in range(0, len(x), batch):
            sl = slice(start, start + batch)
            seed = call_seed(config, Batch(context.arch, FOLD, start, min(start + batch, len(x))))
            done = explain(call, x[sl], targets[sl], seed=seed, **ask)
            maps.append(done.m255.cpu().numpy())
            ok += [r is None for r in done.reasons]
            seconds += done.seconds
        runs.append(Maps(np.concatenate(maps), np.array(ok, bool), seconds))
    return Maps(runs[0].m255, runs[0].ok, min(r.seconds for r in runs))


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image Pearson r of two (N, H, W) maps (NaN where a map is constant)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / den, np.nan)


def hr1(maps: Maps, test: object, targets: np.ndarray) -> np.ndarray:
    """Per-image ``hit_rate@1`` (the registry's headline value; NaN where the map failed)."""
    metric = get_metric(HEADLINE)
    inputs = ScoringInputs(
        m255=maps.m255,
        slms=test.slms,
        image_ids=test.image_ids,
        labels=test.labels,
        targets=targets,
        ok=maps.ok,
    )
    return score_fold(inputs, [metric], config=ScoringConfig())[metric.key(metric.values[0])]


def compare(fp32: Maps, bf16: Maps, test: object, targets: np.ndarray, n: int) -> dict[str, float]:
    """The agreement of one row: Pearson r (mean, min), HR1 of each and their difference, s/img."""
    both = fp32.ok & bf16.ok
    r = pearson(fp32.m255[both], bf16.m255[both])
    h32, h16 = hr1(fp32, test, targets), hr1(bf16, test, targets)
    d = (h16 - h32)[both & np.isfinite(h32) & np.isfinite(h16)]
    return {
        "n": int(both.sum()),
        "r_mean": float(np.nanmean(r)) if r.size else float("nan"),
        "r_min": float(np.nanmin(r)) if r.size else float("nan"),
        "hr1_fp32": float(np.nanmean(h32[both])),
        "hr1_bf16": float(np.nanmean(h16[both])),
        "dhr1_mean": float(d.mean()) if d.size else float("nan"),
        "dhr1_max_abs": float(np.abs(d).max()) if d.size else float("nan"),
        "s_per_img_fp32": fp32.seconds / n,
        "s_per_img_bf16": bf16.seconds / n,
    }


def run_arch(
    arch: str, methods: list[str], ds: object, n: int, device: torch.device, batch: int, repeat: int
) -> list[dict[str, object]]:
    """Every method on one architecture in both precisions: one result row per method."""
    test = fold_arrays(ds, FOLD, "test", rows=range(n))
    x = model_input(test.images, device)
    models, weights = {}, ""
    for precision in ("fp32", "bf16"):
        model, weights = model_for(arch, device)
        models[precision] = set_precision(model, precision, device)
    with torch.inference_mode():
        preds = {p: m(x).argmax(1) for p, m in models.items()}
    targets = preds["fp32"]
    spec = get_arch(arch)
    prior = torch.from_numpy(depth_prior(ds, FOLD)).to(device)
    sample = training_sample(ds, FOLD, 0, device)
    rows = []
    for name in methods:
        method = load_builtin(name)
        out = {}
        for precision, model in models.items():
            context = ExplainContext.for_model(
                spec,
                model,
                device,
                seed=0,
                batch_size=batch,
                depth_prior=prior,
                training_sample=sample,
            )
            out[precision] = run_method(method, model, context, x, targets, batch, repeat)
        row = {"arch": spec.name, "method": name, "weights": weights}
        row |= compare(out["fp32"], out["bf16"], test, targets.cpu().numpy(), n)
        row["pred_differs"] = int((preds["fp32"] != preds["bf16"]).sum())
        rows.append(row)
        print("  " + "  ".join(_cells(row)), flush=True)
    return rows


def _cells(row: dict[str, object]) -> list[str]:
    def f(key: str, fmt: str) -> str:
        return format(row[key], fmt)

    return [
        str(row["arch"]),
        str(row["method"]),
        str(row["n"]),
        f("r_mean", ".5f"),
        f("r_min", ".5f"),
        f("hr1_fp32", ".3f"),
        f("hr1_bf16", ".3f"),
        f("dhr1_mean", "+.4f"),
        f("dhr1_max_abs", ".3f"),
        f("s_per_img_fp32", ".4f"),
        f("s_per_img_bf16", ".4f"),
        f"{row['s_per_img_fp32'] / row['s_per_img_bf16']:.2f}x",
        str(row["pred_differs"]),
    ]


HEADERS = [
    "arch",
    "method",
    "n",
    "r mean",
    "r min",
    "HR1 fp32",
    "HR1 bf16",
    "dHR1 mean",
    "max |dHR1|",
    "s/img fp32",
    "s/img bf16",
    "fp32/bf16",
    "pred",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--archs", default="mobilenet_v2", help="comma-separated, or all")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated, or all")
    parser.add_argument("--n", type=int, default=4, help="test images of fold 0")
    parser.add_argument("--batch-size", type=int, default=None, help="images per call (default: the run's)")
    parser.add_argument("--repeat", type=int, default=2, help="timed passes per precision (the best counts)")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    archs = parse_known(args.archs, list(ARCHS), "architecture")
    methods = parse_known(args.methods, [*CAM_METHODS, *ATTRIBUTION_METHODS], "method")
    batch = args.batch_size or DEFAULT_BATCH_SIZE.get(device.type, DEFAULT_BATCH_SIZE["cpu"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    device_line = (
        f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"load average {os.getloadavg()[0]:.2f}; n={args.n}; batch {batch}"
    )
    print(device_line, flush=True)
    ds = load_dataset()
    rows = [row for arch in archs for row in run_arch(arch, methods, ds, args.n, device, batch, args.repeat)]
    print(tabulate([_cells(r) for r in rows], headers=HEADERS, disable_numparse=True))
    for weights in sorted({f"{r['arch']}: {r['weights']}" for r in rows}):
        print(weights)
    if args.out:
        Path(args.out).write_text(json.dumps({"device": device_line, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
