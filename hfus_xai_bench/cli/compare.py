"""`hfus-bench compare A.json B.json [C.json …]`: paired differences A − B of two results on the same
images (PROTOCOL §7.3); with more than two, their per-criterion mean ranks with intervals (§7.4)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any


def _fmt(x: float | None, digits: int, signed: bool = False) -> str:
    from ..leaderboard.numbers import fmt_num, fmt_signed

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
    from ..compare import compare, load_record
    from ..errors import HfusError

    if len(args.records) < 2:
        raise HfusError("compare needs two or more result JSONs (or leaderboard entries)")
    records = [load_record(path) for path in args.records]
    if len(records) > 2:
        return _compare_many(records, args.records, args.json)
    c = compare(*records)
    if args.json:
        print(json.dumps(_as_json(c), indent=1))
        return 0
    _print_header(c, *args.records)
    for arch in c.differences:
        _print_arch(c, arch)
    return 0


def _print_header(c: Any, path_a: str, path_b: str) -> None:
    from ..compare import CI_SEED, N_RESAMPLES

    ds = c.dataset
    print(f"A = {c.a}  ({path_a})")
    print(f"B = {c.b}  ({path_b})")
    print(
        f"same dataset {ds.get('id')} rev {ds.get('revision')} "
        f"(content sha256 {str(ds.get('sha256'))[:12]}…), checkpoints and images"
    )
    print(
        "A − B = mean over the shared images of the per-image difference (per fold, then over folds), "
        f"paired bootstrap 95 % CI ({N_RESAMPLES} resamples of the shared images, seed {CI_SEED}); "
        "better = the side the CI favours by the score's direction (neither: the CI contains 0)"
    )
    for note in c.notes:
        print(f"note: {note}")


def _print_arch(c: Any, arch: str) -> None:
    from tabulate import tabulate

    from ..leaderboard.numbers import fe_text
    from ..metrics import registry

    arrows = {"higher": "↑", "lower": "↓", "none": ""}
    folds = ", ".join(f"fold {f} (checkpoint {sha[:12]}…)" for f, sha in c.checkpoints[arch].items())
    print(f"\n{arch} · {folds} · {c.n_images[arch]} images")
    (ga, gb), (fa, fb) = c.gates[arch], c.fe[arch]
    print(f"randomisation verdict (PROTOCOL §7.4 ranks only pass): A {ga.text}; B {gb.text}")
    print(f"FE/img (model passes per image, PROTOCOL §6): A {fe_text(fa)}; B {fe_text(fb)}")
    rows = []
    for d in c.differences[arch]:
        digits = registry.output(d.key)[1].digits
        lo, hi = d.ci95
        ci = "" if lo is None else f"[{_fmt(lo, digits, True)}, {_fmt(hi, digits, True)}]"
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


# ------------------------------------------------------------------------- more than two: ranks


def _many_notes(records: Sequence[Mapping[str, Any]]) -> list[str]:
    from ..compare import image_scores, record_labels, setting_notes

    notes = setting_notes(records)
    for label, r in zip(record_labels(len(records)), records, strict=True):
        if image_scores(r) is None:
            notes.append(
                f"{label} keeps no per-image values (a leaderboard entry made before they were kept; re-add "
                "it from its result JSON with `hfus-bench leaderboard add`): ranked by no criterion"
            )
    return notes


def _ranks_json(
    records: Sequence[Mapping[str, Any]], paths: Sequence[str], ranks: Mapping[str, Any]
) -> dict[str, Any]:
    from ..compare import gate, record_labels

    labels = record_labels(len(records))
    out: dict[str, Any] = {}
    for arch, (criteria, cells) in ranks.items():
        out[arch] = {
            "randomisation_verdict": {x: gate(r, arch).text for x, r in zip(labels, records, strict=True)},
            "criteria": {
                c.criterion: {
                    "metrics": list(c.metrics),
                    "n_images": dict(c.n_images),
                    "rows": {
                        x: None
                        if row is None
                        else {
                            "mean_rank": row[k].mean_rank,
                            "ci95": [row[k].low, row[k].high],
                            "disagreement": row[k].disagreement,
                            "ranks": dict(row[k].ranks or {}),
                        }
                        for x, row in zip(labels, cells, strict=True)
                    },
                }
                for k, c in enumerate(criteria)
            },
        }
    return {
        "records": [
            {"label": x, "method": r["method"]["name"], "path": p}
            for x, r, p in zip(labels, records, paths, strict=True)
        ],
        "dataset": {k: records[0]["dataset"].get(k) for k in ("id", "revision", "sha256")},
        "notes": _many_notes(records),
        "ranks": out,
    }


def _compare_many(records: Sequence[Mapping[str, Any]], paths: Sequence[str], as_json: bool) -> int:
    from ..compare import CI_SEED, N_RESAMPLES, record_labels
    from ..leaderboard.ranks import records_ranks

    ranks = records_ranks(records)  # HfusError unless they are comparable
    if as_json:
        print(json.dumps(_ranks_json(records, paths, ranks), indent=1))
        return 0
    labels = record_labels(len(records))
    for x, r, path in zip(labels, records, paths, strict=True):
        print(f"{x} = {r['method']['name']}  ({path})")
    ds = records[0]["dataset"]
    print(
        f"same dataset {ds.get('id')} rev {ds.get('revision')} "
        f"(content sha256 {str(ds.get('sha256'))[:12]}…), checkpoints and images"
    )
    print(
        f"mean rank per criterion among these {len(records)} records (PROTOCOL §7.4, computed as for a "
        "leaderboard table's ranked rows but over every record given, whatever its randomisation verdict): "
        "per metric rank 1 = best by the mean over the images where every record has a value (means equal "
        "as shown tie); the mean of a record's ranks over the criterion's metrics, with a 95 % interval "
        f"from the paired bootstrap over images ({N_RESAMPLES} resamples, seed {CI_SEED}, ranks recomputed "
        "per resample); spread = max − min of its ranks across those metrics (0: they agree); "
        "cells: mean rank [95 % interval]"
    )
    for note in _many_notes(records):
        print(f"note: {note}")
    for arch, (criteria, cells) in ranks.items():
        _print_ranks(records, arch, criteria, cells)
    return 0


def _print_ranks(
    records: Sequence[Mapping[str, Any]], arch: str, criteria: Sequence, cells: Sequence
) -> None:
    from tabulate import tabulate

    from ..compare import gate, record_labels
    from ..leaderboard.ranks import NA_CELL, criterion_header, metric_label

    folds = ", ".join(
        f"fold {f} (checkpoint {c['sha256'][:12]}…)"
        for f, c in sorted(records[0]["checkpoints"][arch].items())
    )
    print(f"\n{arch} · {folds} · {records[0]['counts'][arch]['n_images']} images")
    if not criteria:
        print("no per-image values in common: no ranks")
        return
    rows = []
    for x, r, row in zip(record_labels(len(records)), records, cells, strict=True):
        shown = row or [NA_CELL] * len(criteria)
        rows.append(
            [x, r["method"]["name"], gate(r, arch).text, *(t for c in shown for t in (c.text, c.spread))]
        )
    headers = ["", "method", "randomisation verdict"]
    headers += [h for c in criteria for h in (criterion_header(c), "spread")]
    print(tabulate(rows, headers=headers, disable_numparse=True))
    counts = "; ".join(f"{metric_label(k)} {n}" for c in criteria for k, n in c.n_images.items())
    print(f"images where every record has a value: {counts}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``compare``."""
    cp = sub.add_parser(
        "compare",
        help="paired differences A − B of two results on the same images (PROTOCOL §7.3); "
        "per-criterion mean ranks of more than two (§7.4)",
        description="Check that the result records (or leaderboard entries) share the dataset revision "
        "and content hash, the checkpoints and the images. With two, print per architecture "
        "both randomisation verdicts, both FE/img, and the paired difference A − B of every "
        "score with per-image values, its paired bootstrap 95 % CI and which side is better. "
        "With more than two, print per architecture each record's mean rank per criterion "
        "(localisation, faithfulness, sanity) with its bootstrap 95 % interval and the spread of "
        "its ranks across the criterion's metrics.",
    )
    cp.add_argument(
        "records",
        nargs="+",
        metavar="RECORD.json",
        help="two or more result JSONs from `hfus-bench evaluate`, or leaderboard entries (A, B, C, …)",
    )
    cp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    cp.set_defaults(func=_compare)
