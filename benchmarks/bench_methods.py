"""Per-method speed: the unmodified library (batched as a careful user would) vs ours, same inputs.

For each (method, architecture) prints images/s of both, the ratio, and ours as a multiple of the
method's pass bound measured in the same run (passes per image × measured time per pass), plus
the agreement of the maps (Pearson r). Random weights (seeded): speed does not depend on them.

    python benchmarks/bench_methods.py                      # CPU sizes: MobileNetV2, 2 images
    python benchmarks/bench_methods.py --device cuda --archs all --n 32   # GPU, full size

``--precision bf16``: ours and the pass bound run under autocast (``calls.set_precision``), the library on
the float32 model (grad-cam cannot run in bf16, PROTOCOL §5.1): its speed-up is against the library in fp32,
its r the agreement of our bf16 maps with the library's fp32 ones.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable

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
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    archs = parse_known(args.archs, list(ARCHS), "architecture")
    study = [*CAM_METHODS, *ATTRIBUTION_METHODS]
    methods = parse_known(args.methods, study, "method")
    skip = set(parse_known(args.skip_library, study, "method to skip"))
    batch = args.batch or (256 if device.type == "cuda" else 64)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}; n={args.n}; "
        f"library batch={batch}; precision {args.precision}"
    )
    rows = []
    for arch in archs:
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
        t_fwd, t_bwd = pass_bounds(model, x, device, chunk=batch if device.type == "cuda" else 16)
        print(f"{arch}: forward {1 / t_fwd:.1f} img/s, forward+input-grad {1 / t_bwd:.1f} img/s")
        for method in methods:
            n_pass, kind = passes(method, spec.channels)
            bound = n_pass * (t_fwd if kind == "fwd" else t_bwd)
            ctx = ExplainContext(
                arch=spec.name,
                target_layer=spec.resolve_target_layer(model),
                device=device,
                head=spec.head(model),
                seed=0,
                batch_size=batch,
            )
            try:
                ours = load_builtin(method).build(model, ctx)
                t_ours, m_ours = timed(lambda ours=ours, x=x, t=t: ours(x, t), device, warmup=args.warmup)
            except Exception as err:  # keep measuring the other methods
                print(f"   {arch} {method}: ours failed: {type(err).__name__}: {err}", flush=True)
                continue
            t_ours /= args.n
            if method in skip:
                t_lib, r = float("nan"), float("nan")
            else:
                lib = library_call(method, lib_model, spec.resolve_target_layer(lib_model), batch)
                try:
                    t_lib, m_lib = timed(lambda lib=lib, x=x, t=t: lib(x, t), device, warmup=args.warmup)
                except Exception as err:
                    print(f"   {arch} {method}: library failed: {type(err).__name__}: {err}", flush=True)
                    continue
                t_lib /= args.n
                m_lib = torch.as_tensor(np.asarray(m_lib.detach().cpu() if torch.is_tensor(m_lib) else m_lib))
                # GradientShap: ours seeds each image from its content (batch-independent), the batched
                # library call draws per batch, so maps differ by design; tests/test_attribution.py checks it
                r = float("nan") if method == "gradientshap" else pearson(m_ours, m_lib)
                if method == "eigengradcam":
                    r = abs(r)
            rows.append(
                [
                    arch,
                    method,
                    f"{1 / t_lib:.2f}" if t_lib == t_lib else "skipped",
                    f"{1 / t_ours:.2f}",
                    f"{t_lib / t_ours:.1f}x" if t_lib == t_lib else "-",
                    f"{t_ours / bound:.2f}",
                    f"{r:.5f}",
                ]
            )
            print("  ", *rows[-1], flush=True)
    print(
        tabulate(
            rows,
            headers=["arch", "method", "library img/s", "ours img/s", "speed-up", "ours / bound", "min r"],
        )
    )


if __name__ == "__main__":
    main()
