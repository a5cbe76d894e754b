"""Per-method speed: the unmodified library (batched as a careful user would) vs ours, same inputs.

For each (method, architecture) prints images/s of both, the ratio, and ours as a multiple of the
method's pass bound measured in the same run (passes per image × measured time per pass), plus
the agreement of the maps (Pearson r). Random weights (seeded): speed does not depend on them.

    python benchmarks/bench_methods.py                      # CPU sizes: MobileNetV2, 2 images
    python benchmarks/bench_methods.py --device cuda --archs all --n 32   # GPU, full size
    python benchmarks/bench_methods.py --device cuda --archs googlenet --out goo.json   # also as JSON
    python benchmarks/bench_methods.py --markdown mob.json goo.json   # one markdown table of such files

``--precision bf16``: ours and the pass bound run under autocast (``calls.set_precision``), the library on
the float32 model (grad-cam cannot run in bf16, PROTOCOL §5.1): its speed-up is against the library in fp32,
its r the agreement of our bf16 maps with the library's fp32 ones.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
from tabulate import tabulate

from hfus_xai_bench.calls import set_precision
from hfus_xai_bench.config import PRECISIONS, parse_known
from hfus_xai_bench.explainers.contract import ExplainContext
from hfus_xai_bench.explainers.loader import load_builtin
from hfus_xai_bench.explainers.registry import ATTRIBUTION_METHODS, CAM_METHODS
from hfus_xai_bench.models.zoo import ARCHS, get_arch

OCCLUSION = {"occlusion15": 15, "occlusion30": 30, "occlusion45": 45}


def timed(
    fn: Callable[[], object], device: torch.device, repeat: int = 1, warmup: int = 0
) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls after ``warmup`` untimed calls (cuDNN autotuning, caches)."""
    for _ in range(warmup):
        fn()
    best, out = math.inf, None
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - tic)
    return best, out


def make_model(arch: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = get_arch(arch).build().to(device)
    head = (
        model.fc
        if hasattr(model, "fc")
        else (model.classifier[-1] if isinstance(model.classifier, torch.nn.Sequential) else model.classifier)
    )
    with torch.no_grad():
        head.weight.mul_(50.0)  # random-init logits are tiny; make the maps non-degenerate
    return model.eval()


def pass_bounds(
    model: torch.nn.Module, x: torch.Tensor, device: torch.device, chunk: int
) -> tuple[float, float]:
    """Seconds per image for a forward, and for a forward + input-gradient backward."""
    big = x.repeat(math.ceil(chunk / len(x)), 1, 1, 1)[:chunk]
    with torch.inference_mode():
        model(big[:2])
        t_fwd, _ = timed(lambda: model(big), device, repeat=3)

    def fwd_bwd() -> None:
        xi = big.clone().requires_grad_(True)
        torch.autograd.grad(model(xi).sum(), xi)

    for p in model.parameters():
        p.requires_grad_(False)
    t_bwd, _ = timed(fwd_bwd, device, repeat=2)
    for p in model.parameters():
        p.requires_grad_(True)
    return t_fwd / chunk, t_bwd / chunk


def passes(method: str, channels: int) -> tuple[float, str]:
    """Passes per image of the method's bound: (count, 'fwd' | 'bwd')."""
    if method == "scorecam":
        return channels + 1, "fwd"
    if method == "ablationcam":
        return 1, "fwd"
    if method in OCCLUSION:
        w = OCCLUSION[method]
        return (math.ceil((224 - w) / 9) + 1) ** 2 + 1, "fwd"
    return {"ig": 50, "gradientshap": 5}.get(method, 1), "bwd"


def library_call(method: str, model: torch.nn.Module, layer: torch.nn.Module, batch: int) -> Callable:
    from captum import attr
    from pytorch_grad_cam import AblationCAM, EigenGradCAM, GradCAM, GradCAMPlusPlus, HiResCAM, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cams = {
        "gradcam": GradCAM,
        "gradcampp": GradCAMPlusPlus,
        "hirescam": HiResCAM,
        "eigengradcam": EigenGradCAM,
        "ablationcam": AblationCAM,
        "scorecam": ScoreCAM,
    }
    if method in cams:
        cam = cams[method](model=model, target_layers=[layer])
        cam.batch_size = batch
        return lambda x, t: cam(input_tensor=x, targets=[ClassifierOutputTarget(int(i)) for i in t])
    if method == "ig":
        ig = attr.IntegratedGradients(model)
        return lambda x, t: ig.attribute(x, target=t, baselines=0.0, n_steps=50, internal_batch_size=batch)
    if method == "gradientshap":
        gs = attr.GradientShap(model)

        def run(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            torch.manual_seed(0)
            np.random.seed(0)
            base = torch.randn(1, *x.shape[1:], device=x.device) * 0.001
            return gs.attribute(x, baselines=base, target=t, n_samples=5, stdevs=0.09)

        return run
    if method == "saliency":
        sal = attr.Saliency(model)
        return lambda x, t: sal.attribute(x, target=t, abs=True)
    w = OCCLUSION[method]
    occ = attr.Occlusion(model)
    return lambda x, t: occ.attribute(
        x,
        target=t,
        sliding_window_shapes=(3, w, w),
        strides=(3, 9, 9),
        baselines=0,
        perturbations_per_eval=max(1, batch // len(x)),
    )


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = torch.as_tensor(a, dtype=torch.float64).flatten(1).cpu()
    b = torch.as_tensor(b, dtype=torch.float64).flatten(1).cpu()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-30)
    return float(r.min())


def measure_arch(arch: str, methods: list[str], args: argparse.Namespace, device: torch.device) -> list[dict]:
    """One row per method on ``arch``: library, ours and bound seconds per image, min Pearson r."""
    spec = get_arch(arch)
    lib_model = make_model(arch, device)  # float32: the library as a user runs it
    model = (
        lib_model
        if args.precision == "fp32"
        else set_precision(make_model(arch, device), args.precision, device)
    )
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(args.n, 3, 224, 224, generator=gen).to(device)
    with torch.no_grad():  # not inference_mode: the targets are used under autograd later
        t = lib_model(x).argmax(1)  # the same targets in both precisions
    t_fwd, t_bwd = pass_bounds(model, x, device, chunk=args.batch if device.type == "cuda" else 16)
    print(f"{arch}: forward {1 / t_fwd:.1f} img/s, forward+input-grad {1 / t_bwd:.1f} img/s")
    rows = []
    for method in methods:
        n_pass, kind = passes(method, spec.channels)
        ctx = ExplainContext.for_model(spec, model, device, seed=0, batch_size=args.batch)
        try:
            ours = load_builtin(method).build(model, ctx)
            t_ours, m_ours = timed(lambda ours=ours, x=x, t=t: ours(x, t), device, warmup=args.warmup)
        except Exception as err:  # keep measuring the other methods
            print(f"   {arch} {method}: ours failed: {type(err).__name__}: {err}", flush=True)
            continue
        t_lib, r = math.nan, math.nan
        if method not in args.skip:
            lib = library_call(method, lib_model, spec.resolve_target_layer(lib_model), args.batch)
            try:
                t_lib, m_lib = timed(lambda lib=lib, x=x, t=t: lib(x, t), device, warmup=args.warmup)
            except Exception as err:
                print(f"   {arch} {method}: library failed: {type(err).__name__}: {err}", flush=True)
                continue
            m_lib = torch.as_tensor(np.asarray(m_lib.detach().cpu() if torch.is_tensor(m_lib) else m_lib))
            # GradientShap: ours seeds each image from its content (batch-independent), the batched
            # library call draws per batch, so maps differ by design; tests/test_attribution.py checks it
            r = math.nan if method == "gradientshap" else pearson(m_ours, m_lib)
            if method == "eigengradcam":
                r = abs(r)
        rows.append(
            {
                "arch": arch,
                "method": method,
                "library_s": t_lib / args.n,
                "ours_s": t_ours / args.n,
                "bound_s": n_pass * (t_fwd if kind == "fwd" else t_bwd),
                "min_r": r,
            }
        )
        print("  ", *table_cells(rows[-1]), flush=True)
    return rows


HEADERS = [
    "method",
    "arch",
    "library s/img",
    "ours s/img",
    "bound s/img",
    "ours / bound",
    "speed-up",
    "min r",
]


def table_cells(row: dict) -> list[str]:
    """A row as the table's cells (NaN: the library side was skipped or r is n/a)."""
    lib, ours, bound, r = row["library_s"], row["ours_s"], row["bound_s"], row["min_r"]
    skipped = lib is None or math.isnan(lib)
    return [
        row["method"],
        row["arch"],
        "skipped" if skipped else f"{lib:.4g}",
        f"{ours:.4g}",
        f"{bound:.4g}",
        f"{ours / bound:.2f}",
        "-" if skipped else f"{lib / ours:.1f}x",
        "n/a" if r is None or math.isnan(r) else f"{r:.5f}",
    ]


def markdown_table(records: list[dict]) -> str:
    """One markdown table from ``--out`` files of one device, precision and commit (e.g. one per
    architecture): a line naming them, then a row per (method, architecture), methods in the order run."""
    keys = {(r["device"], r["precision"], r["commit"], r["torch"]) for r in records}
    if len(keys) != 1:
        raise SystemExit(f"--markdown: files of one device, precision, commit and torch, got {sorted(keys)}")
    device, precision, commit, version = keys.pop()
    rows = [row for r in records for row in r["rows"]]
    order = {m: i for i, m in enumerate(dict.fromkeys(row["method"] for row in rows))}
    rows.sort(key=lambda row: (order[row["method"]], row["arch"]))
    dates = sorted({r["date"] for r in records})
    lines = [
        f"{device}, {precision}, torch {version}, commit {commit}, {dates[0]}"
        + (f" to {dates[-1]}" if len(dates) > 1 else "")
        + f"; {records[0]['n']} images per call, warm-up {records[0]['warmup']}",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--archs", default="mobilenet_v2")
    parser.add_argument("--methods", default="all")
    parser.add_argument("--n", type=int, default=2, help="images per call")
    parser.add_argument(
        "--batch", type=int, default=None, help="library batch knob (default 64 CPU / 256 GPU)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed calls before each timed one (0 on slow CPU runs)"
    )
    parser.add_argument("--skip-library", default="", help="methods whose library side is skipped (too slow)")
    parser.add_argument(
        "--precision", default="fp32", choices=PRECISIONS, help="ours and the bound (module doc)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument(
        "--markdown", nargs="+", type=Path, help="measure nothing: one markdown table from these --out files"
    )
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table([json.loads(p.read_text()) for p in args.markdown]))
        return
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    archs = parse_known(args.archs, list(ARCHS), "architecture")
    study = [*CAM_METHODS, *ATTRIBUTION_METHODS]
    methods = parse_known(args.methods, study, "method")
    args.skip = set(parse_known(args.skip_library, study, "method to skip"))
    args.batch = args.batch or (256 if device.type == "cuda" else 64)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}; n={args.n}; "
        f"library batch={args.batch}; precision {args.precision}"
    )
    rows = [row for arch in archs for row in measure_arch(arch, methods, args, device)]
    print(tabulate([table_cells(row) for row in rows], headers=HEADERS))
    if args.out:
        record = {
            "device": name,
            "torch": torch.__version__,
            "precision": args.precision,
            "commit": git_commit(),
            "date": date.today().isoformat(),
            "n": args.n,
            "warmup": args.warmup,
            "rows": [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in rows
            ],
        }
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
