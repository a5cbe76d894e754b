"""Ranked tables from leaderboard entries: one per (track, dataset revision and content hash, architecture,
checkpoints, setting), so every table's rows share the dataset, the checkpoints and the images.

PROTOCOL §7.4: a table ranks only the rows whose ``randomisation@2`` verdict is ``pass`` over K = 3 copies
(``randomisation@1/pass`` for entries made before v1.2; :func:`hfus_xai_bench.compare.gate`), by the
headline ``hit_rate@1`` (``metrics.registry.HEADLINE``). Rank rule (higher is better, CI = the 95 %
bootstrap CI of the headline), among the ranked rows: the rank range of a method is ``[1 + #methods
whose CI lower bound is above its CI upper bound, #methods whose CI upper bound is at or above its CI
lower bound]`` (itself included). Below them, in this order (:data:`ORDER`): ``fail`` rows (every sanity
baseline by construction) marked "maps do not depend enough on the model", ``undetermined`` rows marked
"randomisation undecided (degenerate share D)", rows with a verdict over another K, entries without §7
data, and the oracle reference rows of §9 (methods declaring ``"reference": "oracle"``), never ranked.

Columns (:func:`main_columns`): HR1, ΔHR1 vs the depth prior, ROAD combined, ρ (ρ_cross) and r (D) of the
randomisation, DiC, IiC, then accuracy, FE/img (§6) and the fixed ones; on evidence tracks (a row carries
``evidence@1``) also evidence hit and mass with their gains over the copies and ``class_sensitivity@1``,
and ``counterfactual@1`` once, next to accuracy (:func:`accuracy_columns`). A second table per group has
the paired gains of §7.3 (:func:`detail_columns`: HR1 and ROAD combined, plus evidence hit and mass on
evidence tracks, vs ``depth_prior``, ``random`` and, on evidence tracks, ``input``) and every other column
of the metric registry; labels, digits and directions come from the registry. After the score columns,
one rank column per criterion the table has (:func:`rank_cell`: the ranked rows' per-criterion mean ranks of
:mod:`.ranks`; they never set the order); under the table, the built-ins declared undefined on the
architecture (:func:`not_applicable`). Two rows are "identical" when all registry column means agree
within ``IDENTICAL_TOL``; expected identities (HiRes-CAM = Grad-CAM on all four pinned targets, PROTOCOL
§5.1) are annotated, never hidden.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..compare import Difference, differences, fe_per_image, gate, image_scores, paired_difference
from ..constants import ARCH_DISPLAY_NAMES, ARCH_NAMES, DEFAULT_ARCH
from ..errors import HfusError
from ..explainers.registry import BUILTINS, SANITY_METHODS
from ..metrics import registry
from ..metrics.registry import HEADLINE
from ..models.checkpoints import published
from .entries import slug
from .numbers import fmt_num, fmt_signed
from .ranks import CriterionRanks, rank_header, table_ranks

#: Column means closer than this (all of them) make two rows "identical" (= equal as displayed).
IDENTICAL_TOL = 5e-4
#: (method, same-as) -> architectures where the two are expected to be identical (PROTOCOL §5.1): the
#: target layer is followed only by pooling + linear. With the pinned post-ReLU DenseNet201 target
#: (models/zoo.py) that holds for DenseNet201 too (tests/test_cam.py checks all four).
EXPECTED_IDENTICAL: dict[tuple[str, str], frozenset[str]] = {
    ("hirescam", "gradcam"): frozenset(ARCH_NAMES),
}
#: Model-blind rows marked "(sanity)": the §5 sanity baselines and §9's ``input`` map.
SANITY_ROWS = frozenset(SANITY_METHODS) | {"input"}
ARCH_LABELS = ARCH_DISPLAY_NAMES

#: A table is an evidence track (PROTOCOL §9) when a row carries this record key.
EVIDENCE_KEY = "evidence@1/hit"
#: PROTOCOL §7.3: the paired gains are reported for these outputs (+ the evidence ones on evidence tracks) ...
GAIN_KEYS = ("hit_rate@1", "road@1/combined")
EVIDENCE_GAIN_KEYS = ("evidence@1/hit", "evidence@1/mass")
#: ... over these sanity baselines (+ ``input`` on evidence tracks).
GAIN_REFERENCES = ("depth_prior", "random")
EVIDENCE_GAIN_REFERENCES = ("input",)
#: The degenerate share D of ``randomisation@2`` (a field of a table section), shown next to r.
DEGENERATE = "randomisation@2/pairs#degenerate_share"
#: PROTOCOL §7.4: the ranked table's score columns, in order: (record key, gain reference or None, key shown
#: in parentheses or None, the ``randomisation@1`` key read for entries made before v1.2). Keys the registry
#: does not know are left out.
MAIN_COLUMNS: tuple[tuple[str, str | None, str | None, str | None], ...] = (
    ("hit_rate@1", None, None, None),
    ("hit_rate@1", "depth_prior", None, None),
    ("road@1/combined", None, None, None),
    ("randomisation@2/rho", None, "randomisation@2/cross_image", "randomisation@1/rho"),
    ("randomisation@2/pearson", None, DEGENERATE, None),
    ("confidence@1/dic", None, None, None),
    ("confidence@1/iic", None, None, None),
)
#: The evidence-track columns (PROTOCOL §9), after IiC, and ``counterfactual@1`` after accuracy.
EVIDENCE_COLUMNS = (
    "evidence@1/hit",
    "evidence@1/hit_gain",
    "evidence@1/mass",
    "evidence@1/mass_gain",
    "class_sensitivity@1/rho",
)
COUNTERFACTUAL_COLUMNS = ("counterfactual@1/effect", "counterfactual@1/flip")
#: The order of row kinds in a table (ranked first) and the heading above each kind of unranked rows.
ORDER = ("ranked", "fail", "undetermined", "other_copies", "no_s7", "reference")
UNRANKED_HEADINGS = {
    "fail": "not ranked — maps do not depend enough on the model (randomisation verdict fail: the 95 % CI of "
    "ρ or r reaches 0.5, or fewer than half the pairs are scored; v1.1 entries: randomisation@1/pass false)",
    "undetermined": "not ranked — randomisation undecided (more than half of the image × copy pairs are "
    "degenerate: a constant map on one side)",
    "other_copies": "not ranked — randomisation over another number of copies (ranking needs K = 3)",
    "no_s7": "not ranked — no §7 data (entries made before randomisation and road@1; re-run them)",
    "reference": "references — never ranked (oracle rows: the evidence mask itself and at the 7×7 grid, "
    "PROTOCOL §9)",
}
_ARROWS = {"higher": " ↑", "lower": " ↓", "none": ""}


@dataclass(frozen=True)
class Column:
    """A score column: a registry output (``ref`` None), or its paired gain over the method ``ref``;
    ``aside``: another output whose mean is shown in parentheses (ρ_cross next to ρ), or :data:`DEGENERATE`;
    ``fallback``: the output shown for entries that lack ``key`` (``randomisation@1/rho`` before v1.2)."""

    key: str
    ref: str | None = None
    aside: str | None = None
    fallback: str | None = None

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
        if self.aside == DEGENERATE:
            text += " (D)"
        elif self.aside is not None:
            text += f" ({registry.output(self.aside)[1].label or self.aside})"
        return text


def _known(key: str | None) -> bool:
    if key is None or key == DEGENERATE:
        return True
    try:
        registry.output(key)
    except HfusError:
        return False
    return True


def main_columns(evidence: bool = False) -> list[Column]:
    """The §7.4 score columns the registry knows (:data:`MAIN_COLUMNS`; + :data:`EVIDENCE_COLUMNS` on an
    evidence track)."""
    cols = [
        Column(k, ref, aside if _known(aside) else None, old if _known(old) else None)
        for k, ref, aside, old in MAIN_COLUMNS
        if _known(k)
    ]
    if evidence:
        cols += [Column(k) for k in EVIDENCE_COLUMNS if _known(k)]
    return cols


def accuracy_columns(evidence: bool = False) -> list[Column]:
    """The score columns shown once next to accuracy: ``counterfactual@1`` on an evidence track."""
    return [Column(k) for k in COUNTERFACTUAL_COLUMNS if _known(k)] if evidence else []


def gain_keys(evidence: bool = False) -> list[str]:
    """The outputs of the §7.3 paired gains the registry knows."""
    return [k for k in (*GAIN_KEYS, *(EVIDENCE_GAIN_KEYS if evidence else ())) if _known(k)]


def gain_references(evidence: bool = False) -> tuple[str, ...]:
    return (*GAIN_REFERENCES, *(EVIDENCE_GAIN_REFERENCES if evidence else ()))


def _fallback_aside(column: Column) -> str | None:
    """The ``randomisation@1`` key of a column's aside (ρ_cross) for entries made before v1.2."""
    if column.fallback is None or column.aside is None or column.aside == DEGENERATE:
        return None
    return f"{column.fallback.partition('/')[0]}/{column.aside.partition('/')[2]}"


def shown_keys(evidence: bool = False) -> set[str]:
    """The record keys the main table shows (its columns, their asides and the v1.1 fallbacks)."""
    shown = [*main_columns(evidence), *accuracy_columns(evidence)]
    keys = {c.key for c in shown if c.ref is None} | {_fallback_aside(c) for c in shown}
    keys |= {k for c in shown for k in (c.aside, c.fallback)}
    return {k for k in keys if k and k != DEGENERATE}


def detail_columns(evidence: bool = False) -> list[Column]:
    """The second table: the paired gains of §7.3, then every registry column not in the main table."""
    keys = shown_keys(evidence)
    gains = [Column(k, ref) for k in gain_keys(evidence) for ref in gain_references(evidence)]
    return gains + [Column(key) for key, _, _ in registry.columns() if key not in keys]


def column_headers(evidence: bool = False, criteria: Sequence[CriterionRanks] = ()) -> list[str]:
    """The ranked table's header: rank, method, the §7.4 score columns, one rank column per criterion of
    ``criteria`` (a table's ``"criteria"``), accuracy (and ``counterfactual@1``), then the fixed ones."""
    return [
        "rank",
        "method",
        *(c.header for c in main_columns(evidence)),
        *(rank_header(c) for c in criteria),
        "acc",
        *(c.header for c in accuracy_columns(evidence)),
        "evaluated",
        "FE/img",
        "s/img",
        "device",
        "links",
        "notes",
    ]


def detail_headers(evidence: bool = False) -> list[str]:
    return ["method", *(c.header for c in detail_columns(evidence))]


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


# ---------------------------------------------------------------------------------------- cells


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
    key, aside_key = column.key, column.aside
    if column.fallback is not None and row["scores"].get(key, (None,))[0] is None:
        key = column.fallback  # an entry made before v1.2: its randomisation@1 value
        aside_key = _fallback_aside(column) if aside_key != DEGENERATE else aside_key
    mean, (lo, hi) = row["scores"].get(key, (None, [None, None]))
    ci = "" if lo is None or mean is None else f"[{fmt_num(lo, d)}, {fmt_num(hi, d)}]"
    aside = ""
    if aside_key == DEGENERATE:
        share = row["gate"].degenerate
        aside = "" if share is None else f"({fmt_num(share, 2)})"
    elif aside_key is not None and _known(aside_key):
        other = row["scores"].get(aside_key, (None, [None, None]))[0]
        if other is not None:
            aside = f"({fmt_num(other, registry.output(aside_key)[1].digits)})"
    return Cell(fmt_num(mean, d), ci, aside, sort=mean)


def rank_cell(row: Mapping[str, Any], i: int) -> Cell:
    """The cell of ``row`` in the table's ``i``-th rank column: mean rank, [95 % interval], (spread) when the
    criterion has several metrics; "—" on an unranked row, "n/a" on a ranked row without per-image values."""
    if row["status"] != "ranked":
        return Cell("—")
    if row["criterion_ranks"] is None:
        return Cell("n/a")
    c = row["criterion_ranks"][i]
    return Cell(c.mean, c.interval, "" if c.spread == "—" else f"({c.spread})", sort=c.mean_rank)


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
    """The row kind of an entry in a table of ``arch`` (one of :data:`ORDER`; :func:`..compare.gate`)."""
    return gate(entry, arch).status


def is_evidence_track(members: Sequence[dict[str, Any]], arch: str) -> bool:
    """A table shows the §9 columns when one of its rows carries ``evidence@1``."""
    return any(arch in e["metrics"].get(EVIDENCE_KEY, {}) for e in members)


def _checkpoint_key(entry: dict[str, Any], arch: str) -> tuple:
    return tuple(sorted((f, c["sha256"]) for f, c in entry["checkpoints"].get(arch, {}).items()))


def _gains(
    entry: dict[str, Any],
    arch: str,
    refs: Mapping[str, dict[str, Any]],
    scores: Mapping[int, Any],
    notes: list[str],
    evidence: bool,
) -> dict[tuple[str, str], Difference | str | None]:
    """(output key, reference) -> the paired gain over the reference (``"self"`` on its own row, None:
    n/a)."""
    out: dict[tuple[str, str], Difference | str | None] = {}
    mine = scores[id(entry)]
    keys = gain_keys(evidence)
    for ref in gain_references(evidence):
        other = refs.get(ref)
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


def _gate_notes(entry: dict[str, Any], arch: str) -> list[str]:
    """Why a row is not ranked, in one line (PROTOCOL §7.4), or how a ranked row was gated."""
    g = gate(entry, arch)
    if g.status == "ranked":
        return ["randomisation@1 (v1.1: one randomised copy)"] if g.copies is None else []
    if g.status == "fail":
        return ["not ranked: maps do not depend enough on the model"]
    if g.status == "undetermined":
        d = "n/a" if g.degenerate is None else fmt_num(g.degenerate, 2)
        return [f"not ranked: randomisation undecided (degenerate share D = {d})"]
    if g.status == "other_copies":
        return [
            f"not ranked: randomisation verdict {g.verdict} over K = {g.copies} copies (ranking needs K = 3)"
        ]
    if g.status == "reference":
        return ["reference (oracle): not ranked"]
    return ["not ranked: no §7 data"]


def _identity_notes(entry: dict[str, Any], arch: str, members: Sequence[dict[str, Any]]) -> list[str]:
    name = entry["method"]["name"]
    by_name = {e["method"]["name"]: e for e in members}
    notes = []
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
    return notes


def _row(
    entry: dict[str, Any],
    arch: str,
    rank: tuple[int, int] | None,
    members: Sequence[dict[str, Any]],
    refs: Mapping[str, dict[str, Any]],
    scores: Mapping[int, Any],
    evidence: bool,
) -> dict[str, Any]:
    name = entry["method"]["name"]
    notes = _gate_notes(entry, arch) + _identity_notes(entry, arch, members)
    keys = {key for key, _, _ in registry.columns()} | shown_keys(evidence)
    keys |= {c.key for c in detail_columns(evidence)}
    n = entry["counts"][arch]
    env = entry["environment"]
    return {
        "rank": rank,
        "status": gate(entry, arch).status,
        "gate": gate(entry, arch),
        "method": name,
        "sanity": name in SANITY_ROWS,
        "scores": {key: score(entry, key, arch) for key in sorted(keys)},
        "gains": _gains(entry, arch, refs, scores, notes, evidence),
        "accuracy": entry["classification"][arch]["accuracy"],
        "evaluated": f"{n['n_evaluated']}/{n['n_images']}",
        "failed": n["n_failed"],
        "seconds": entry["cost"][arch]["seconds_per_image"],
        "fe": fe_per_image(entry, arch),
        "criterion_ranks": None,  # set for the ranked rows (build_tables)
        "device": f"{env.get('device_name') or ''} ({entry['options']['device']})".strip(),
        "links": entry["links"],
        "notes": notes,
    }


@functools.cache
def _declared_not_applicable() -> dict[str, dict[str, str]]:
    """Built-in name -> its METADATA ``not_applicable`` (arch -> why), for the built-ins that declare one."""
    from ..explainers.loader import load_builtin

    out = {}
    for name in BUILTINS:
        reasons = load_builtin(name).metadata.get("not_applicable") or {}
        if reasons:
            out[name] = dict(reasons)
    return out


def not_applicable(arch: str, shown: Sequence[str] = ()) -> list[tuple[str, list[str]]]:
    """The built-ins declared undefined on ``arch`` (METADATA ``not_applicable``; PROTOCOL §5: never run
    there, shown as n/a) and not among ``shown``: (why, [names]) per reason, sorted."""
    by_reason: dict[str, list[str]] = {}
    for name, reasons in _declared_not_applicable().items():
        if arch in reasons and name not in shown:
            by_reason.setdefault(reasons[arch], []).append(name)
    return sorted((why, sorted(names)) for why, names in by_reason.items())


def _groups(entries: Sequence[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """The entries of each table, keyed by (track, revision, arch, setting, dataset sha256, checkpoints)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for entry in entries:
        for arch in entry["options"]["models"]:
            data = entry["dataset"]
            key = (entry["track"], data["revision"] or "", arch, setting(entry), data.get("sha256") or "")
            groups.setdefault((*key, _checkpoint_key(entry, arch)), []).append(entry)
    return groups


def _in_table_order(members: Sequence[dict[str, Any]], arch: str) -> list[dict[str, Any]]:
    """By kind (:data:`ORDER`: ranked first), then by HR1 (highest first, none last), then by name."""

    def sort_key(e: dict[str, Any]) -> tuple:
        mean = score(e, HEADLINE, arch)[0]
        return (ORDER.index(status(e, arch)), mean is None, -(mean or 0.0), e["method"]["name"])

    return sorted(members, key=sort_key)


def _table_rows(
    members: Sequence[dict[str, Any]],
    ranked: Sequence[dict[str, Any]],
    arch: str,
    scores: Mapping[int, Any],
    evidence: bool,
) -> tuple[list[dict[str, Any]], list[CriterionRanks]]:
    """The table's rows (the ranked ones with their HR1 rank range) and its per-criterion ranks (each
    ranked row's cells in ``row["criterion_ranks"]``)."""
    ranks = rank_ranges([tuple(score(e, HEADLINE, arch)[1]) for e in ranked])
    refs = {e["method"]["name"]: e for e in members if e["method"]["name"] in gain_references(evidence)}
    rows = [
        _row(e, arch, ranks[i] if i < len(ranked) else None, members, refs, scores, evidence)
        for i, e in enumerate(members)
    ]
    criteria, cells = table_ranks(ranked, arch)
    for row, row_cells in zip(rows, cells, strict=False):  # the ranked rows come first
        row["criterion_ranks"] = row_cells
    return rows, criteria


def _table_order(group: tuple[tuple, Any]) -> tuple:
    """Sort key of a table's group: track and revision, then the default architecture first, then the rest
    of the group's key."""
    (track, revision, arch, *_), _members = group
    return track, revision, arch != DEFAULT_ARCH, repr(group[0])


def build_tables(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group entries into tables: ``{"title", "anchor", "track", "arch", "evidence", "rows": [...],
    "criteria", "not_applicable", …}``; the ranked rows first (sorted by HR1, with rank ranges), then the
    unranked ones by kind (:data:`ORDER`; ``row["status"]``; rank None). ``criteria``: the table's
    per-criterion ranks (:func:`.ranks.table_ranks`, among the ranked rows; each ranked row's
    ``row["criterion_ranks"]`` holds its cells, None elsewhere); ``not_applicable``: the built-ins declared
    undefined on the architecture (:func:`not_applicable`). Per track and revision, the default
    architecture's tables come first."""
    groups = _groups(entries)
    scores = {id(e): image_scores(e) for e in entries}
    tables = []
    for (track, revision, arch, cond, data_sha, ckpts), members in sorted(groups.items(), key=_table_order):
        members = _in_table_order(members, arch)
        evidence = is_evidence_track(members, arch)
        ranked = [e for e in members if status(e, arch) == "ranked"]
        rows, criteria = _table_rows(members, ranked, arch, scores, evidence)
        rev = revision[:12] if re.fullmatch(r"[0-9a-f]{40}", revision) else revision
        title = f"{track} · {ARCH_LABELS.get(arch, arch)} · {setting_text(cond)}"
        if rev:
            title += f" · rev {rev}"
        if any(published(sha) == "no" for _, sha in ckpts):
            title += " · checkpoint not published"
        tables.append(
            {
                "title": title,
                "anchor": slug(f"{track}-{arch}-{rev}-{setting_text(cond)}").lower(),
                "track": track,
                "arch": arch,
                "evidence": evidence,
                "rows": rows,
                "n_ranked": len(ranked),
                "criteria": criteria,
                "not_applicable": not_applicable(arch, [e["method"]["name"] for e in members]),
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
