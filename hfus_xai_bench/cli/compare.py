"""`hfus-bench compare A.json B.json`: paired differences A − B of two results on the same images (PROTOCOL §7.3)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _fmt(x: float | None, digits: int, signed: bool = False) -> str:
    from ..leaderboard.tables import fmt_num, fmt_signed

    return fmt_signed(x, digits) if signed else fmt_num(x, digits)


def _as_json(comparison: Any) -> dict[str, Any]:
    return {
        "a": comparison.a,
        "b": comparison.b,
        "dataset": {k: comparison.dataset.get(k) for k in ("id", "revision", "sha256")},
        "checkpoints": comparison.checkpoints,
        "n_images": comparison.n_images,
        "notes": list(comparison.notes),
        "randomisation_verdict": {
            arch: {"a": ga.text, "b": gb.text, "ranked": [ga.status == "ranked", gb.status == "ranked"]}
            for arch, (ga, gb) in comparison.gates.items()
        },
        "fe_per_image": {arch: list(fe) for arch, fe in comparison.fe.items()},
        "differences": {
            arch: [
                {
                    "key": d.key,
                    "direction": d.direction,
                    "a": d.mean_a,
                    "b": d.mean_b,
                    "diff": d.diff,
                    "ci95": list(d.ci95),
                    "n": d.n,
                    "n_excluded": d.n_excluded,
                    "paired": d.paired,
                    "better": d.better,
                }
                for d in diffs
            ]
            for arch, diffs in comparison.differences.items()
        },
    }


def _compare(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..compare import CI_SEED, N_RESAMPLES, compare, load_record
    from ..leaderboard.tables import fe_text
    from ..metrics import registry

    a, b = load_record(args.a), load_record(args.b)
    c = compare(a, b)
    if args.json:
        print(json.dumps(_as_json(c), indent=1))
        return 0
    arrows = {"higher": "↑", "lower": "↓", "none": ""}
    ds = c.dataset
    print(f"A = {c.a}  ({args.a})")
    print(f"B = {c.b}  ({args.b})")
    print(
        f"same dataset {ds.get('id')} rev {ds.get('revision')} (content sha256 {str(ds.get('sha256'))[:12]}…), "
        "checkpoints and images"
    )
    print(
        f"A − B = mean over the shared images of the per-image difference (per fold, then over folds), paired "
        f"bootstrap 95 % CI ({N_RESAMPLES} resamples of the shared images, seed {CI_SEED}); better = the side the CI "
        "favours by the score's direction (neither: the CI contains 0)"
    )
    for note in c.notes:
        print(f"note: {note}")
    for arch, diffs in c.differences.items():
        folds = ", ".join(f"fold {f} (checkpoint {sha[:12]}…)" for f, sha in c.checkpoints[arch].items())
        print(f"\n{arch} · {folds} · {c.n_images[arch]} images")
        (ga, gb), (fa, fb) = c.gates[arch], c.fe[arch]
        print(f"randomisation verdict (PROTOCOL §7.4 ranks only pass): A {ga.text}; B {gb.text}")
        print(f"FE/img (model passes per image, PROTOCOL §6): A {fe_text(fa)}; B {fe_text(fb)}")
        rows = []
        for d in diffs:
            digits = registry.output(d.key)[1].digits
            ci = (
                ""
                if d.ci95[0] is None
                else f"[{_fmt(d.ci95[0], digits, True)}, {_fmt(d.ci95[1], digits, True)}]"
            )
            better = d.better or ("descriptive" if d.direction == "none" else "n/a")
            rows.append(
                [
                    f"{d.label} ({d.key})" if d.label != d.key else d.key,
                    arrows[d.direction],
                    _fmt(d.mean_a, digits),
                    _fmt(d.mean_b, digits),
                    _fmt(d.diff, digits, True),
                    ci,
                    d.n if d.paired else "",
                    better,
                ]
            )
        print(
            tabulate(
                rows,
                headers=["score", "dir", "A", "B", "A − B", "95 % CI", "n", "better"],
                disable_numparse=True,
                colalign=("left", "center", "right", "right", "right", "left", "right", "left"),
            )
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``compare``."""
    cp = sub.add_parser(
        "compare",
        help="paired differences A − B of two results on the same images (PROTOCOL §7.3)",
        description="Check that two result records (or leaderboard entries) share the dataset revision "
        "and content hash, the checkpoints and the images, then print per architecture "
        "both randomisation verdicts, both FE/img, and the paired difference A − B of every "
        "score with per-image values, its paired bootstrap 95 % CI and which side is better.",
    )
    cp.add_argument(
        "a", metavar="A.json", help="result JSON from `hfus-bench evaluate`, or a leaderboard entry"
    )
    cp.add_argument("b", metavar="B.json", help="the result (or entry) to compare against")
    cp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    cp.set_defaults(func=_compare)
