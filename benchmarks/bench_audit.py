"""The private-seed audit (PROTOCOL §3) at the default size, and its detection power.

Audits every built-in that is applicable to the architecture and cheap on a CPU (the built-ins registry minus
the expensive ones and the evidence-reading reference rows) together with an inadmissible lookup method
(tests/fixtures/lookup_gradient_x_input.py: a gradient × input map whose peak is moved onto the image's
ground truth, found by its pixels in the public dataset), on the public test split of the fold (126 images)
and every image of a private build (631). Prints a line per method, the audit table and the counted model
rows per image, saves every method's per-image values of both sides to ``OUT/audit_values.npz``, and then
the detection power: over random subsets (without replacement) of the audited (public, private) images at
each size, the fraction of subsets where the lookup is flagged and where any built-in is flagged, at the
full audit's m (its correction); at the whole set the audit itself and the lookup's power by the normal
approximation.

The seed is read from the environment variable HFUS_AUDIT_SEED (taken out before any method is loaded) and
is never printed or written; nothing is named after it. OUT must lie outside the repository.

    export HFUS_AUDIT_SEED=...   # never echo it
    nice python benchmarks/bench_audit.py --out /tmp/audit-full             # full size: tens of CPU minutes
    nice python benchmarks/bench_audit.py --out /tmp/audit-dry --limit 2 --private-n 10 --sizes 2/5,2/10
    python benchmarks/bench_audit.py --out /tmp/audit-full --values /tmp/audit-full/audit_values.npz
        # the detection power again from saved values (no audit, no seed)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import NormalDist

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch

from hfus_xai_bench.audit import SEED_ENV, AuditRow, audit, audit_statistic
from hfus_xai_bench.audit_report import format_report
from hfus_xai_bench.constants import AUDIT_REFERENCES, BOOTSTRAP_RESAMPLES
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.loader import load_builtin, load_file
from hfus_xai_bench.explainers.registry import BUILTINS, REFERENCE_METHODS

REPO = Path(__file__).resolve().parent.parent
LOOKUP = REPO / "tests" / "fixtures" / "lookup_gradient_x_input.py"
#: built-ins left out by default: too slow for a CPU audit at the full size (many passes per image)
EXPENSIVE = ("ig", "scorecam", "occlusion15", "occlusion30", "occlusion45", "smoothgrad", "expectedgradients")
SIZES = "10/50,25/125,50/250,126/631"
#: the subsets of the detection power are drawn from np.random.default_rng(SUBSET_SEED)
SUBSET_SEED = 0


def default_methods(arch: str) -> list[str]:
    """The built-ins applicable to ``arch`` but the expensive ones and the reference rows (registry order)."""
    skip = {*EXPENSIVE, *REFERENCE_METHODS}
    return [name for name in BUILTINS if name not in skip and load_builtin(name).applicable(arch)]


def take_seed() -> int:
    """The private seed from the environment, removed from it (the message never repeats the value)."""
    text = os.environ.pop(SEED_ENV, None)
    if text is None:
        raise HfusError(f"set the private seed in the environment variable {SEED_ENV}")
    try:
        seed = int(text.strip())
    except ValueError:
        seed = -1
    if seed < 0:
        raise HfusError(f"{SEED_ENV} must hold a non-negative integer; the value given is not")
    return seed


def outside_repo(path: str) -> Path:
    out = Path(path).resolve()
    if out == REPO or REPO in out.parents:
        raise HfusError(f"--out {path} lies inside the repository; give a folder outside it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_values(report, out: Path, lookup: str) -> Path:  # noqa: ANN001
    """``audit_values.npz``: ``public:<score>:<method>`` / ``private:<score>:<method>`` per-image values
    (NaN = not scored) and ``meta`` (JSON: scores, methods, references, m, lookup, image counts, cost; no
    seed); ``audit_table.txt``: the printed table."""
    arrays = {}
    for key in report.scores:
        for name in report.public[key]:
            arrays[f"public:{key}:{name}"] = report.public[key][name]
            arrays[f"private:{key}:{name}"] = report.private[key][name]
    meta = {
        "scores": report.scores,
        "methods": list(report.public[report.scores[0]]),
        "references": list(report.references),
        "m": report.m,
        "lookup": lookup,
        "arch": report.arch,
        "fold": report.fold,
        "generator_version": report.version,
        "n_public": report.n_public,
        "n_private": report.n_private,
        "cost": report.cost,
    }
    path = out / "audit_values.npz"
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    (out / "audit_table.txt").write_text(format_report(report) + "\n")
    return path


def load_values(path: Path) -> tuple[dict, dict, dict]:
    """(meta, public, private) from ``audit_values.npz``; public[score][method] = per-image values."""
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        sides = {
            side: {k: {m: data[f"{side}:{k}:{m}"] for m in meta["methods"]} for k in meta["scores"]}
            for side in ("public", "private")
        }
    return meta, sides["public"], sides["private"]


def method_line(name: str, cost: dict[str, float]) -> str:
    """A method's images, failures, seconds and counted model rows per image explained (PROTOCOL §6 stages;
    f = forward, b = backward), both sides together."""
    images = max(cost.get("images", 0.0), 1.0)
    rows = [
        f"{kind[0]}/{k.split('/')[1]} {v / images:.3g}"
        for kind in ("forward_rows", "backward_rows")
        for k, v in cost.items()
        if k.startswith(kind + "/") and v
    ]
    seconds = sum(v for k, v in cost.items() if k.startswith("seconds/"))
    return (
        f"{name}: {int(images)} images ({int(cost.get('failed_public', 0))} public and "
        f"{int(cost.get('failed_private', 0))} private failed), {seconds / images:.3f} s/img; rows per "
        f"image: {', '.join(rows) or 'no model pass'}"
    )


def flagged_methods(
    meta: dict, public: dict, private: dict, ip: np.ndarray, iq: np.ndarray, resamples: int
) -> tuple[set[str], list[AuditRow]]:
    """The methods flagged on any score by the audit of public images ``ip`` and private images ``iq``, and
    the audit rows (at the full audit's m)."""
    rows: list[AuditRow] = []
    for key in meta["scores"]:
        rows += audit_statistic(
            {k: v[ip] for k, v in public[key].items()},
            {k: v[iq] for k, v in private[key].items()},
            meta["references"],
            score=key,
            m=int(meta["m"]),
            n_resamples=resamples,
        )
    flagged = {row.method for row in rows if row.flagged}
    return flagged, rows


def normal_power(rows: list[AuditRow], lookup: str) -> str:
    """The lookup's power at the full size by the normal approximation: Φ(excess / se − z), se from its CI."""
    out = []
    for row in (r for r in rows if r.method == lookup and np.isfinite(r.low)):
        z = NormalDist().inv_cdf(1 - (1 - row.level) / 2)
        se = (row.high - row.low) / (2 * z)
        power = NormalDist().cdf(row.excess / se - z) if se > 0 else float(row.low > 0)
        out.append(f"{row.score} {row.excess:+.3f} [{row.low:+.3f}, {row.high:+.3f}] → {power:.3f}")
    return "; ".join(out) or "no value"


def detection_power(
    meta: dict, public: dict, private: dict, sizes: list[tuple[int, int]], subsets: int, resamples: int
) -> list[str]:
    """Per size: the fraction of random (public, private) subsets of the audited images (without
    replacement) where the lookup / any built-in is flagged; at the whole set, the audit itself."""
    lookup = meta["lookup"]
    n_pub = len(public[meta["scores"][0]][lookup])
    n_priv = len(private[meta["scores"][0]][lookup])
    rng = np.random.default_rng(SUBSET_SEED)
    lines = [f"detection power (m = {meta['m']}, {resamples} resamples per CI):"]
    for size_pub, size_priv in sizes:
        if size_pub > n_pub or size_priv > n_priv:
            lines.append(f"  {size_pub}/{size_priv}: skipped (the audit has {n_pub}/{n_priv} images)")
            continue
        whole = (size_pub, size_priv) == (n_pub, n_priv)
        draws = 1 if whole else subsets
        counts = {"lookup": 0, "builtin": 0}
        tic = time.perf_counter()
        for _ in range(draws):
            ip = np.arange(n_pub) if whole else rng.choice(n_pub, size_pub, replace=False)
            iq = np.arange(n_priv) if whole else rng.choice(n_priv, size_priv, replace=False)
            flagged, rows = flagged_methods(meta, public, private, ip, iq, resamples)
            counts["lookup"] += lookup in flagged
            counts["builtin"] += bool(flagged - {lookup})
        how = "the whole set: the audit itself" if whole else f"{draws} subsets"
        lines.append(
            f"  {size_pub}/{size_priv} ({how}): lookup flagged {counts['lookup'] / draws:.3f}, "
            f"any built-in flagged {counts['builtin'] / draws:.3f} ({time.perf_counter() - tic:.0f} s)"
        )
        if whole:  # one audit says 0 or 1; the lookup's power at this size by the normal approximation
            lines.append(f"    lookup's power by the normal approximation: {normal_power(rows, lookup)}")
    return lines


def parse_sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [(int(a), int(b)) for a, b in (part.split("/") for part in text.split(","))]
    except ValueError:
        raise HfusError(f"--sizes takes PUBLIC/PRIVATE pairs separated by commas, e.g. {SIZES}") from None


def run_audit(args: argparse.Namespace, out: Path) -> Path:
    seed = take_seed()
    methods = args.methods.split(",") if args.methods else default_methods(args.arch)
    lookup = load_file(args.lookup).name
    where = f"device {args.device}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    print(f"auditing {lookup} and {len(methods)} built-ins ({where}): {', '.join(methods)}", flush=True)
    print("building (or reusing) the private track, then one line per method ...", flush=True)
    tic = time.perf_counter()
    report = audit(
        [args.lookup, *methods],
        seed,
        arch=args.arch,
        fold=args.fold,
        limit=args.limit,
        device=args.device,
        n=args.private_n,
        progress=False,
        log=lambda name, cost: print(
            f"  {method_line(name, cost)} ({time.perf_counter() - tic:.0f} s in all)", flush=True
        ),
    )
    print()
    print(format_report(report))
    print("\ncounted model rows per image (f = forward, b = backward; public and private together):")
    print("\n".join(f"  {method_line(name, cost)}" for name, cost in report.cost.items()))
    path = save_values(report, out, lookup)
    print(f"\nper-image values: {path}")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder outside the repository for audit_values.npz")
    parser.add_argument("--methods", default="", help="comma-separated built-ins (default: the cheap ones)")
    parser.add_argument("--lookup", default=str(LOOKUP), help="the lookup method file (flagged, we hope)")
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N public images and per partition")
    parser.add_argument("--private-n", type=int, default=None, help="images of the private build (631)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default=SIZES, help="PUBLIC/PRIVATE subset sizes of the detection power")
    parser.add_argument("--subsets", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=BOOTSTRAP_RESAMPLES)
    parser.add_argument("--values", default=None, help="an audit_values.npz: the detection power only")
    args = parser.parse_args()
    try:
        out = outside_repo(args.out)
        sizes = parse_sizes(args.sizes)
        path = Path(args.values) if args.values else run_audit(args, out)
        meta, public, private = load_values(path)
        print(f"\nreferences: {', '.join(AUDIT_REFERENCES)}; load average {os.getloadavg()[0]:.1f}")
        print("\n".join(detection_power(meta, public, private, sizes, args.subsets, args.resamples)))
    except HfusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
