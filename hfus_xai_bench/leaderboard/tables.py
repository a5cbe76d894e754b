"""Ranked tables from leaderboard entries: one per (track, dataset revision and content hash, architecture,
checkpoints, setting), so every table's rows share the dataset, the checkpoints and the images.

PROTOCOL §7.4: a table ranks only the methods whose ``randomisation@1/pass`` is true; the others (every
sanity baseline by construction) are listed below the ranked rows with their numbers, marked "maps do
not depend on the model", and entries without the §7 scores are listed there too ("no §7 data"). The
headline is ``hit_rate@1`` (``metrics.registry.HEADLINE``). Rank rule (higher is better, CI = the 95 %
bootstrap CI of the headline), among the ranked rows: the rank range of a method is ``[1 + #methods
whose CI lower bound is above its CI upper bound, #methods whose CI upper bound is at or above its CI
lower bound]`` (itself included).

Columns: the §7.4 ones (:data:`MAIN_COLUMNS`: HR1, ΔHR1 vs the depth prior, ROAD combined, ρ with
ρ_cross, DiC, IiC, then accuracy and cost) and a second table per group with the four paired gains of
§7.3 (HR1 and ROAD combined vs ``depth_prior`` and ``random``) and every other column of the metric
registry (``registry.columns()``); labels, digits and directions come from the registry. Two rows are
"identical" when all registry column means agree within ``IDENTICAL_TOL``; expected identities
(HiRes-CAM = Grad-CAM on all four pinned targets, PROTOCOL §5.1) are annotated, never hidden.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..compare import Difference, differences, image_scores, paired_difference
from ..constants import ARCH_DISPLAY_NAMES, ARCH_NAMES
from ..errors import HfusError
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
    ("hirescam", "gradcam"): frozenset(ARCH_NAMES),
}
ARCH_LABELS = ARCH_DISPLAY_NAMES

#: PROTOCOL §7.4: only methods whose maps depend on the model are ranked (this record key, per arch ``pass``).
RANK_GATE = "randomisation@1/pass"
#: PROTOCOL §7.3: the paired gains are reported for these outputs ...
GAIN_KEYS = ("hit_rate@1", "road@1/combined")
#: ... over these sanity baselines.
GAIN_REFERENCES = ("depth_prior", "random")
#: PROTOCOL §7.4: the ranked table's columns, in order: (record key, gain reference or None, record key
#: shown in parentheses or None). Keys the registry does not know are left out.
MAIN_COLUMNS: tuple[tuple[str, str | None, str | None], ...] = (
    ("hit_rate@1", None, None),
    ("hit_rate@1", "depth_prior", None),
    ("road@1/combined", None, None),
    ("randomisation@1/rho", None, "randomisation@1/cross_image"),
    ("confidence@1/dic", None, None),
    ("confidence@1/iic", None, None),
)
#: row status -> the note of an unranked row, and the heading above the unranked rows of that kind
UNRANKED = {
    "model_independent": "not ranked: maps do not depend on the model",
    "no_s7": "not ranked: no §7 data",
}
UNRANKED_HEADINGS = {
    "model_independent": "not ranked — maps do not depend on the model (randomisation@1/pass false: the 95 % CI of "
    "ρ reaches 0.5)",
    "no_s7": "not ranked — no §7 data (entries made before randomisation@1 and road@1; re-run them)",
}
_ARROWS = {"higher": " ↑", "lower": " ↓", "none": ""}


@dataclass(frozen=True)
class Column:
    """A score column: a registry output (``ref`` None), or its paired gain over the method ``ref``;
    ``aside``: another output whose mean is shown in parentheses (ρ_cross next to ρ)."""

    key: str
    ref: str | None = None
    aside: str | None = None

    @property
    def output(self) -> registry.Output:
        return registry.output(self.key)[1]

    @property
    def digits(self) -> int:
        return self.output.digits

    @property
    def direction(self) -> str:
        return self.output.direction

    @property
    def header(self) -> str:
        label = self.output.label or self.key
        if self.ref is not None:
            return f"Δ{label} vs {self.ref}{_ARROWS[self.direction]}"
        text = f"{label}{_ARROWS[self.direction]}"
        if self.aside is not None:
            text += f" ({registry.output(self.aside)[1].label or self.aside})"
        return text


def _known(key: str | None) -> bool:
    if key is None:
        return True
    try:
        registry.output(key)
    except HfusError:
        return False
    return True


def main_columns() -> list[Column]:
    """The §7.4 columns the registry knows (:data:`MAIN_COLUMNS`)."""
    return [Column(k, ref, aside if _known(aside) else None) for k, ref, aside in MAIN_COLUMNS if _known(k)]


def detail_columns() -> list[Column]:
    """The second table: the four paired gains of §7.3, then every registry column not in the main table."""
    shown = {c.key for c in main_columns() if c.ref is None} | {c.aside for c in main_columns() if c.aside}
    gains = [Column(k, ref) for k in GAIN_KEYS if _known(k) for ref in GAIN_REFERENCES]
    return gains + [Column(key) for key, _, _ in registry.columns() if key not in shown]


def column_headers() -> list[str]:
    """The ranked table's header: rank, method, the §7.4 score columns, then the fixed ones."""
    return [
        "rank",
        "method",
        *(c.header for c in main_columns()),
        "acc",
        "evaluated",
        "s/img",
        "fwd/img",
        "device",
        "links",
        "notes",
    ]


def detail_headers() -> list[str]:
    return ["method", *(c.header for c in detail_columns())]


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


# ---------------------------------------------------------------------------------------- cells


def fmt_num(x: Any, digits: int = 3) -> str:
    """``digits`` decimals (no "-0.000"); ``n/a`` for None."""
    if x is None:
        return "n/a"
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_signed(x: Any, digits: int = 3) -> str:
    """With a sign (``+0.500``, ``-0.770``); a value that rounds to 0 is ``0.000``."""
    if x is None:
        return "n/a"
    text = f"{x:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


@dataclass(frozen=True)
class Cell:
    """One score cell: ``text`` (the mean), ``ci`` (``[low, high]`` or ""), ``aside`` (or ""), ``sort`` (the
    number the HTML sorts by, None: n/a)."""

    text: str
    ci: str = ""
    aside: str = ""
    sort: float | None = None


def cell(row: Mapping[str, Any], column: Column) -> Cell:
    """The cell of ``row`` in ``column`` (shared by the markdown and the HTML)."""
    d = column.digits
    if column.ref is not None:
        gain = row["gains"].get((column.key, column.ref))
        if gain == "self":
            return Cell("—")
        if not isinstance(gain, Difference) or gain.diff is None:
            return Cell("n/a")
        lo, hi = gain.ci95
        ci = "" if lo is None else f"[{fmt_signed(lo, d)}, {fmt_signed(hi, d)}]"
        return Cell(fmt_signed(gain.diff, d), ci, sort=gain.diff)
    mean, (lo, hi) = row["scores"].get(column.key, (None, [None, None]))
    ci = "" if lo is None or mean is None else f"[{fmt_num(lo, d)}, {fmt_num(hi, d)}]"
    aside = ""
    if column.aside is not None:
        other = row["scores"].get(column.aside, (None, [None, None]))[0]
        if other is not None:
            aside = f"({fmt_num(other, registry.output(column.aside)[1].digits)})"
    return Cell(fmt_num(mean, d), ci, aside, sort=mean)


# ---------------------------------------------------------------------------------------- tables


def setting(entry: dict[str, Any]) -> tuple:
    o = entry["options"]
    return (tuple(o["folds"]), o["limit"], o["target"], o["sign"], o["confidence"])


def setting_text(setting: tuple) -> str:
    folds, limit, target, sign, confidence = setting
    parts = [
        f"fold{'s' if len(folds) > 1 else ''} {','.join(map(str, folds))}",
        "all test images" if limit is None else f"first {limit} test images per fold",
    ]
    if (target, sign, confidence) != ("pred", "pos", "logit"):
        parts.append(f"target {target}, sign {sign}, confidence {confidence}")
    return " · ".join(parts)


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


def status(entry: dict[str, Any], arch: str) -> str:
    """``"ranked"`` (``randomisation@1/pass`` true), ``"model_independent"`` (false) or ``"no_s7"`` (absent)."""
    gate = entry["metrics"].get(RANK_GATE, {}).get(arch)
    if gate is None:
        return "no_s7"
    return "ranked" if gate.get("pass") is True else "model_independent"


def _checkpoint_key(entry: dict[str, Any], arch: str) -> tuple:
    return tuple(sorted((f, c["sha256"]) for f, c in entry["checkpoints"].get(arch, {}).items()))


def _gains(
    entry: dict[str, Any],
    arch: str,
    refs: Mapping[str, dict[str, Any]],
    scores: Mapping[int, Any],
    notes: list[str],
) -> dict[tuple[str, str], Difference | str | None]:
    """(output key, reference) -> the paired gain over the reference (``"self"`` on its own row, None: n/a)."""
    out: dict[tuple[str, str], Difference | str | None] = {}
    mine = scores[id(entry)]
    for ref in GAIN_REFERENCES:
        other = refs.get(ref)
        keys = [k for k in GAIN_KEYS if _known(k)]
        if other is entry:
            out.update({(k, ref): "self" for k in keys})
            continue
        theirs = scores[id(other)] if other is not None else None
        if other is None or mine is None or theirs is None or arch not in mine or arch not in theirs:
            out.update({(k, ref): None for k in keys})
            continue
        diffs = differences(entry, other, archs=[arch], scores=(mine, theirs))
        if diffs:
            notes.append(f"not paired with {ref}: {'; '.join(diffs)}")
            out.update({(k, ref): None for k in keys})
            continue
        out.update({(k, ref): paired_difference(mine[arch], theirs[arch], k) for k in keys})
    return out


def _row(
    entry: dict[str, Any],
    arch: str,
    rank: tuple[int, int] | None,
    state: str,
    members: Sequence[dict[str, Any]],
    refs: Mapping[str, dict[str, Any]],
    scores: Mapping[int, Any],
) -> dict[str, Any]:
    name = entry["method"]["name"]
    by_name = {e["method"]["name"]: e for e in members}
    notes = [] if state == "ranked" else [UNRANKED[state]]
    for (m, same), archs in EXPECTED_IDENTICAL.items():
        if name == m and same in by_name and arch in archs:
            if identical(entry, by_name[same], arch):
                notes.append(f"identical to {same} (expected: PROTOCOL §5.1)")
            else:
                notes.append(f"expected identical to {same} (PROTOCOL §5.1) but differs")
    expected = {m for (m, s), a in EXPECTED_IDENTICAL.items() if s == name and arch in a} | {
        s for (m, s), a in EXPECTED_IDENTICAL.items() if m == name and arch in a
    }
    for other in members:
        o = other["method"]["name"]
        if o != name and o not in expected and identical(entry, other, arch):
            notes.append(f"identical to {o}")
    keys = (
        {key for key, _, _ in registry.columns()}
        | {c.key for c in main_columns()}
        | {c.aside for c in main_columns() if c.aside}
    )
    n = entry["counts"][arch]
    cost = entry["cost"][arch]
    env = entry["environment"]
    return {
        "rank": rank,
        "status": state,
        "method": name,
        "sanity": name in SANITY_METHODS,
        "scores": {key: score(entry, key, arch) for key in sorted(keys)},
        "gains": _gains(entry, arch, refs, scores, notes),
        "accuracy": entry["classification"][arch]["accuracy"],
        "evaluated": f"{n['n_evaluated']}/{n['n_images']}",
        "failed": n["n_failed"],
        "seconds": cost["seconds_per_image"],
        "forwards": cost["forward_images_per_image"],
        "device": f"{env.get('device_name') or ''} ({entry['options']['device']})".strip(),
        "links": entry["links"],
        "notes": notes,
    }


def build_tables(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group entries into tables: ``{"title", "anchor", "track", "arch", "rows": [...]}``; the ranked rows
    first (sorted by HR1, with rank ranges), then the unranked ones (``row["status"]``; rank None)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for entry in entries:
        for arch in entry["options"]["models"]:
            key = (
                entry["track"],
                entry["dataset"]["revision"] or "",
                arch,
                setting(entry),
                entry["dataset"].get("sha256") or "",
                _checkpoint_key(entry, arch),
            )
            groups.setdefault(key, []).append(entry)
    scores = {id(e): image_scores(e) for e in entries}
    order = ("ranked", "model_independent", "no_s7")
    tables = []
    for (track, revision, arch, cond, data_sha, ckpts), members in sorted(
        groups.items(), key=lambda kv: repr(kv[0])
    ):

        def sort_key(e: dict[str, Any], arch: str = arch) -> tuple:
            mean = score(e, HEADLINE, arch)[0]
            return (order.index(status(e, arch)), mean is None, -(mean or 0.0), e["method"]["name"])

        members = sorted(members, key=sort_key)
        ranked = [e for e in members if status(e, arch) == "ranked"]
        ranks = rank_ranges([tuple(score(e, HEADLINE, arch)[1]) for e in ranked])
        refs = {e["method"]["name"]: e for e in members if e["method"]["name"] in GAIN_REFERENCES}
        rows = [
            _row(e, arch, ranks[i] if i < len(ranked) else None, status(e, arch), members, refs, scores)
            for i, e in enumerate(members)
        ]
        rev = revision[:12] if re.fullmatch(r"[0-9a-f]{40}", revision) else revision
        title = f"{track} · {ARCH_LABELS.get(arch, arch)} · {setting_text(cond)}"
        if rev:
            title += f" · rev {rev}"
        tables.append(
            {
                "title": title,
                "anchor": slug(f"{track}-{arch}-{rev}-{setting_text(cond)}").lower(),
                "track": track,
                "arch": arch,
                "rows": rows,
                "n_ranked": len(ranked),
                "data_sha": data_sha,
                "checkpoints": ckpts,
            }
        )
    titles = [t["title"] for t in tables]
    for t in tables:  # same revision and setting but another dataset content or checkpoint: say which
        if titles.count(t["title"]) > 1:
            extra = (
                f"data {t['data_sha'][:8]} · checkpoint {','.join(sha[:8] for _, sha in t['checkpoints'])}"
            )
            t["title"] += f" · {extra}"
            t["anchor"] = slug(f"{t['anchor']}-{extra}").lower()
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
