"""Ranked tables from leaderboard entries: one per (track, dataset revision, architecture, setting).

Headline ``hit_rate@1`` (``metrics.registry.HEADLINE``); the columns are the registry's
(``registry.columns()``). Rank rule (higher is better, CI = the 95 % bootstrap CI of the headline):
the rank range of a method is ``[1 + #methods whose CI lower bound is above its CI upper bound,
#methods whose CI upper bound is at or above its CI lower bound]`` (itself included), i.e. the best
and worst rank it could take among methods whose CIs overlap with it. Two rows are "identical" when
all column means agree within ``IDENTICAL_TOL``; expected identities (HiRes-CAM = Grad-CAM on all four
pinned targets, PROTOCOL §5.1) are annotated, never hidden.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..explainers.registry import SANITY_METHODS
from ..metrics import registry
from ..metrics.registry import HEADLINE
from .entries import slug

#: Column means closer than this (all of them) make two rows "identical" (= equal as displayed).
IDENTICAL_TOL = 5e-4
#: (method, same-as) -> architectures where the two are expected to be identical (PROTOCOL §5.1): the
#: target layer is followed only by pooling + linear. With the pinned post-ReLU DenseNet201 target
#: (models/zoo.py) that holds for DenseNet201 too (tests/test_cam.py checks all four).
EXPECTED_IDENTICAL: dict[tuple[str, str], frozenset[str]] = {
    ("hirescam", "gradcam"): frozenset({"resnet101", "mobilenet_v2", "googlenet", "densenet201"}),
}
ARCH_LABELS = {"densenet201": "DenseNet201", "googlenet": "GoogLeNet", "mobilenet_v2": "MobileNetV2", "resnet101": "ResNet101"}


def column_headers() -> list[str]:
    """The table header: rank, method, one column per registry column (label + ↑/↓), then the fixed ones."""
    arrows = {"higher": " ↑", "lower": " ↓", "none": ""}
    return ["rank", "method", *(f"{out.label}{arrows[out.direction]}" for _, _, out in registry.columns()),
            "acc", "evaluated", "s/img", "fwd/img", "device", "links", "notes"]


def column_digits(key: str) -> int:
    return registry.output(key)[1].digits


def rank_ranges(cis: Sequence[tuple[float | None, float | None]]) -> list[tuple[int, int] | None]:
    """Rank range of each CI (higher is better): [1 + #{lower_j > upper_i}, #{upper_j >= lower_i}].

    Rows with a missing bound get None and do not count for the others.
    """
    valid = [(lo, hi) for lo, hi in cis if lo is not None and hi is not None]
    out: list[tuple[int, int] | None] = []
    for lo, hi in cis:
        if lo is None or hi is None:
            out.append(None)
            continue
        best = 1 + sum(1 for lo_j, _ in valid if lo_j > hi)
        worst = sum(1 for _, hi_j in valid if hi_j >= lo)
        out.append((best, worst))
    return out


def rank_text(rank: tuple[int, int] | None) -> str:
    if rank is None:
        return "–"
    return str(rank[0]) if rank[0] == rank[1] else f"{rank[0]}–{rank[1]}"


# ---------------------------------------------------------------------------------------- tables

def setting(entry: dict[str, Any]) -> tuple:
    o = entry["options"]
    return (tuple(o["folds"]), o["limit"], o["target"], o["sign"], o["confidence"])


def setting_text(setting: tuple) -> str:
    folds, limit, target, sign, confidence = setting
    parts = [f"fold{'s' if len(folds) > 1 else ''} {','.join(map(str, folds))}",
             "all test images" if limit is None else f"first {limit} test images per fold"]
    if (target, sign, confidence) != ("pred", "pos", "logit"):
        parts.append(f"target {target}, sign {sign}, confidence {confidence}")
    return " · ".join(parts)


def fmt_num(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def score(entry: dict[str, Any], key: str, arch: str) -> tuple[float | None, list[float | None]]:
    """(mean, ci95) of a reported score of an entry; (None, [None, None]) where the entry lacks it."""
    summary = entry["metrics"].get(key, {}).get(arch)
    return (None, [None, None]) if summary is None else (summary["mean"], summary["ci95"])


def identical(a: dict[str, Any], b: dict[str, Any], arch: str) -> bool:
    """Every table column's mean agrees within ``IDENTICAL_TOL`` (missing on both sides counts as equal)."""
    for key, _, _ in registry.columns():
        x, y = score(a, key, arch)[0], score(b, key, arch)[0]
        if (x is None) != (y is None) or (x is not None and abs(x - y) > IDENTICAL_TOL):
            return False
    return True


def build_tables(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group entries into ranked tables: ``{"title", "anchor", "track", "arch", "rows": [...]}``."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for entry in entries:
        for arch in entry["options"]["models"]:
            key = (entry["track"], entry["dataset"]["revision"] or "", arch, setting(entry))
            groups.setdefault(key, []).append(entry)
    tables = []
    for (track, revision, arch, cond), members in sorted(groups.items(), key=lambda kv: repr(kv[0])):
        def sort_key(e: dict[str, Any], arch: str = arch) -> tuple:
            mean = score(e, HEADLINE, arch)[0]
            return (mean is None, -(mean or 0.0), e["method"]["name"])

        members = sorted(members, key=sort_key)
        ranks = rank_ranges([tuple(score(e, HEADLINE, arch)[1]) for e in members])
        by_name = {e["method"]["name"]: e for e in members}
        rows = []
        for entry, rank in zip(members, ranks, strict=True):
            name = entry["method"]["name"]
            notes = []
            for (m, same), archs in EXPECTED_IDENTICAL.items():
                if name == m and same in by_name and arch in archs:
                    if identical(entry, by_name[same], arch):
                        notes.append(f"identical to {same} (expected: PROTOCOL §5.1)")
                    else:
                        notes.append(f"expected identical to {same} (PROTOCOL §5.1) but differs")
            expected = {m for (m, s), a in EXPECTED_IDENTICAL.items() if s == name and arch in a} | {
                s for (m, s), a in EXPECTED_IDENTICAL.items() if m == name and arch in a}
            for other in members:
                o = other["method"]["name"]
                if o != name and o not in expected and identical(entry, other, arch):
                    notes.append(f"identical to {o}")
            n = entry["counts"][arch]
            cost = entry["cost"][arch]
            env = entry["environment"]
            rows.append({
                "rank": rank,
                "method": name,
                "sanity": name in SANITY_METHODS,
                "scores": {key: score(entry, key, arch) for key, _, _ in registry.columns()},
                "accuracy": entry["classification"][arch]["accuracy"],
                "evaluated": f"{n['n_evaluated']}/{n['n_images']}",
                "failed": n["n_failed"],
                "seconds": cost["seconds_per_image"],
                "forwards": cost["forward_images_per_image"],
                "device": f"{env.get('device_name') or ''} ({entry['options']['device']})".strip(),
                "links": entry["links"],
                "notes": notes,
            })
        rev = revision[:12] if re.fullmatch(r"[0-9a-f]{40}", revision) else revision
        title = f"{track} · {ARCH_LABELS.get(arch, arch)} · {setting_text(cond)}"
        if rev:
            title += f" · rev {rev}"
        tables.append({"title": title, "anchor": slug(f"{track}-{arch}-{rev}-{setting_text(cond)}").lower(),
                       "track": track, "arch": arch, "rows": rows})
    return tables


def citations(entries: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    out = {}
    for entry in entries:
        bib = entry["links"]["citation"]
        if bib:
            out.setdefault(entry["method"]["name"], bib)
    return sorted(out.items())


def code_href(code: str | None) -> str | None:
    if not code:
        return None
    return code if re.match(r"^[a-z]+://", code) else f"../{code}"


