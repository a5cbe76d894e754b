"""Paired comparison of two results on the same images (PROTOCOL §7.3), the ranking gate of a record
(§7.4: :func:`gate`) and its model-pass cost (§6: :func:`fe_per_image`); returns data, prints nothing.

Two records (result JSONs from ``hfus-bench evaluate``, or leaderboard entries, which keep the per-image
values as ``per_image_scores``) are *comparable* when they share the dataset (id, revision, content
hash), the checkpoint sha256 of every (architecture, fold) both evaluated, and the images of each
(architecture, fold). For every reported output of the metric registry with per-image values, the
paired difference A − B is the mean over the shared images of ``a_i − b_i`` (per fold, then the mean
over folds, as the record's means) with a paired bootstrap 95 % CI (:func:`metrics.stats.paired_bootstrap`:
1000 resamples of the shared images, seed 0). The leaderboard's gains over the depth prior, the
random map and (on evidence tracks) the ``input`` map are the same numbers (:func:`paired_difference`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .constants import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, RANDOMISATION_COPIES
from .errors import HfusError
from .jsonio import json_number, load_json
from .metrics import registry
from .metrics.stats import paired_bootstrap
from .results import per_image_output, require_record, validate

N_RESAMPLES = BOOTSTRAP_RESAMPLES
CI_SEED = BOOTSTRAP_SEED
#: significant digits of the per-image values kept in a leaderboard entry (the tables show 3 decimals)
ENTRY_DIGITS = 10


@dataclass(frozen=True)
class ImageScores:
    """Per-image values of the reported outputs of one (architecture, fold): record key -> (N,) array, NaN
    where the image failed or the value is undefined."""

    image_ids: tuple[str, ...]
    scores: Mapping[str, np.ndarray]


#: arch -> fold -> ImageScores
Scores = dict[str, dict[int, ImageScores]]


def _float_array(items: Sequence[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Row values (numbers, nested lists, None) -> float array (len(items), *shape); None -> NaN."""
    out = np.full((len(items), *shape), np.nan)
    for i, v in enumerate(items):
        if v is not None:
            out[i] = np.asarray(v, dtype=np.float64)  # None inside a list becomes NaN
    return out


def _round_array(values: np.ndarray) -> np.ndarray:
    """Per-image values at the precision an entry keeps (``ENTRY_DIGITS`` significant digits), so a record and
    the entry made from it give the same paired differences (identical maps: exactly 0)."""
    out = np.asarray(values, dtype=np.float64).copy()
    finite = np.isfinite(out)
    out[finite] = [float(f"{x:.{ENTRY_DIGITS}g}") for x in out[finite]]
    return out


def _scores_from_rows(rows: Sequence[Mapping[str, Any]], copies: int = RANDOMISATION_COPIES) -> Scores:
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["arch"], int(row["fold"])), []).append(row)
    out: Scores = {}
    for (arch, fold), group in groups.items():
        present = set().union(*(row.keys() for row in group))
        scores: dict[str, np.ndarray] = {}
        for metric in registry.METRICS.values():
            if not all(v.name in present for v in metric.values):
                continue
            values = {
                v.name: _float_array([row.get(v.name) for row in group], v.dims(copies=copies))
                for v in metric.values
            }
            for o in metric.outputs:
                scores[metric.key(o)] = _round_array(per_image_output(o, values))
        out.setdefault(arch, {})[fold] = ImageScores(tuple(str(row["image_id"]) for row in group), scores)
    return out


def _scores_from_entry(section: Mapping[str, Any]) -> Scores:
    out: Scores = {}
    for arch, folds in section.items():
        for fold, part in folds.items():
            n = len(part["image_ids"])
            scores = {key: _float_array(vals, ()) for key, vals in part["scores"].items() if len(vals) == n}
            out.setdefault(arch, {})[int(fold)] = ImageScores(tuple(part["image_ids"]), scores)
    return out


def image_scores(record: Mapping[str, Any]) -> Scores | None:
    """Per-image values of a result record (its ``per_image`` rows, rounded to ``ENTRY_DIGITS`` significant
    digits as an entry keeps them) or of a leaderboard entry (its ``per_image_scores``); None when it has
    neither (entries made before they were kept)."""
    if record.get("per_image"):
        copies = int(record.get("options", {}).get("randomisations", RANDOMISATION_COPIES))
        return _scores_from_rows(record["per_image"], copies)
    if record.get("per_image_scores"):
        return _scores_from_entry(record["per_image_scores"])
    return None


def entry_scores(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``per_image_scores`` section of a leaderboard entry made from ``record``: per arch and fold the
    image ids and, per reported output, one value per image (``ENTRY_DIGITS`` significant digits; null:
    failed or undefined). None when the record has no per-image values."""
    scores = image_scores(record)
    if scores is None:
        return None
    return {
        arch: {
            str(fold): {
                "image_ids": list(part.image_ids),
                "scores": {k: [json_number(float(x)) for x in v] for k, v in part.scores.items()},
            }
            for fold, part in sorted(folds.items())
        }
        for arch, folds in scores.items()
    }


def load_record(path: str | Path) -> dict[str, Any]:
    """A result record or a leaderboard entry from a JSON file, validated against its schema."""
    path = Path(path)
    record = load_json(path, "result record or leaderboard entry")
    require_record(record, path, entries=True)
    validate(record, source=str(path), name="entry" if "track" in record else "result")
    return record


# ------------------------------------------------------------------------------- ranking gate and cost

#: PROTOCOL §7.4: the record section that decides whether a row is ranked (``randomisation@1/pass`` for
#: records made before v1.2, whose gate is read only when the new one is absent)
GATE_KEY = "randomisation@2/verdict"
OLD_GATE_KEY = "randomisation@1/pass"
#: PROTOCOL §9: a method whose METADATA declares ``"reference": "oracle"`` is a reference row, never ranked
REFERENCE_KEY = "reference"


@dataclass(frozen=True)
class Gate:
    """Where a record's row goes in a table (PROTOCOL §7.4) and why.

    ``status``: ``ranked`` (verdict ``pass`` with K = 3 copies, or ``randomisation@1/pass`` true on a record
    made before v1.2), ``fail``, ``undetermined``, ``other_copies`` (a verdict over K ≠ 3 copies: shown,
    not ranked), ``no_s7`` (no randomisation at all) or ``reference`` (an oracle row, §9); ``verdict``: the
    recorded verdict text (``pass`` / ``fail`` / ``undetermined``, or ``v1.1 pass`` / ``v1.1 fail``, or
    None); ``copies``: K; ``degenerate``: the degenerate share D (None before v1.2).
    """

    status: str
    verdict: str | None = None
    copies: int | None = None
    degenerate: float | None = None

    @property
    def text(self) -> str:
        """One line for compare and the notes: ``pass (K = 3, D = 0.00)``, ``v1.1 fail``, ``n/a``."""
        if self.verdict is None:
            return "reference (oracle)" if self.status == "reference" else "n/a"
        if self.copies is None:
            return self.verdict
        d = "n/a" if self.degenerate is None else f"{self.degenerate:.2f}"
        return f"{self.verdict} (K = {self.copies}, D = {d})"


def gate(record: Mapping[str, Any], arch: str) -> Gate:
    """The ranking gate of one architecture of a record or entry (:class:`Gate`)."""
    if record["method"].get(REFERENCE_KEY) == "oracle":
        return Gate("reference")
    new = record["metrics"].get(GATE_KEY, {}).get(arch)
    if new is not None:
        k = int(new["copies"])
        status = new["verdict"] if new["verdict"] != "pass" else "ranked"
        if k != RANDOMISATION_COPIES:
            status = "other_copies"
        return Gate(status, new["verdict"], k, new["degenerate_share"])
    old = record["metrics"].get(OLD_GATE_KEY, {}).get(arch)
    if old is not None:
        passed = old.get("pass") is True
        return Gate("ranked" if passed else "fail", "v1.1 pass" if passed else "v1.1 fail")
    return Gate("no_s7")


def fe_per_image(record: Mapping[str, Any], arch: str) -> float | None:
    """Model passes per image (PROTOCOL §6: (forward_rows + 2 · backward_rows, the ``repeat`` stage excluded)
    / n_images), as the record's cost block states it (``fe_per_image``, computed once by the runner); None
    for records made before the passes were counted."""
    value = record["cost"].get(arch, {}).get("fe_per_image")
    return None if value is None else float(value)


# ------------------------------------------------------------------------------------ comparability


def _short(text: Any) -> str:
    s = str(text)
    return f"{s[:12]}…" if len(s) == 64 else s


def _folds(record: Mapping[str, Any], arch: str) -> list[int]:
    return sorted(int(f) for f in record["checkpoints"].get(arch, {}))


def differences(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    archs: Sequence[str] | None = None,
    scores: tuple[Scores | None, Scores | None] | None = None,
    names: tuple[str, str] = ("A", "B"),
) -> list[str]:
    """What keeps ``a`` and ``b`` from being paired (empty: comparable): dataset id, revision or content
    hash; per shared architecture the folds, checkpoint sha256 and images (ids when both keep per-image
    values, else the image counts). ``archs``: the architectures to check (default: those both evaluated);
    ``names``: how the messages call ``a`` and ``b``."""
    out = []
    A, B = names
    da, db = a["dataset"], b["dataset"]
    for field, what in (
        ("id", "dataset"),
        ("revision", "dataset revision"),
        ("sha256", "dataset content hash"),
    ):
        if da.get(field) != db.get(field):
            out.append(f"{what} differs ({A} {_short(da.get(field))}, {B} {_short(db.get(field))})")
    if archs is None:
        archs = [m for m in a["options"]["models"] if m in b["options"]["models"]]
        if not archs:
            out.append(
                f"no architecture in common ({A} {', '.join(a['options']['models'])}, "
                f"{B} {', '.join(b['options']['models'])})"
            )
    sa, sb = scores if scores is not None else (image_scores(a), image_scores(b))
    for arch in archs:
        out += _arch_differences(a, b, arch, (sa, sb), names)
    return out


def _arch_differences(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    arch: str,
    scores: tuple[Scores | None, Scores | None],
    names: tuple[str, str],
) -> list[str]:
    """:func:`differences` of one architecture: folds, checkpoints, images."""
    (A, B), (sa, sb) = names, scores
    fa, fb = _folds(a, arch), _folds(b, arch)
    if fa != fb:
        return [f"{arch}: folds differ ({A} {','.join(map(str, fa))}, {B} {','.join(map(str, fb))})"]
    out = []
    for fold in fa:
        ha, hb = a["checkpoints"][arch][str(fold)]["sha256"], b["checkpoints"][arch][str(fold)]["sha256"]
        if ha != hb:
            out.append(f"{arch} fold {fold}: checkpoint sha256 differs ({A} {_short(ha)}, {B} {_short(hb)})")
    if sa is not None and sb is not None and arch in sa and arch in sb:
        for fold in fa:
            ia = set(sa[arch][fold].image_ids) if fold in sa[arch] else set()
            ib = set(sb[arch][fold].image_ids) if fold in sb[arch] else set()
            if ia != ib:
                out.append(
                    f"{arch} fold {fold}: images differ ({len(ia & ib)} shared, {len(ia - ib)} only in {A}, "
                    f"{len(ib - ia)} only in {B})"
                )
    else:
        na, nb = a["counts"][arch]["n_images"], b["counts"][arch]["n_images"]
        if na != nb:
            out.append(f"{arch}: images differ ({A} {na}, {B} {nb})")
    return out


def check_comparable(a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    """Raise HfusError (one line naming every difference) unless ``a`` and ``b`` can be paired."""
    diffs = differences(a, b)
    if diffs:
        raise HfusError(not_comparable_message(diffs))


def not_comparable_message(diffs: Sequence[str], what: str = "A and B are") -> str:
    return (
        f"{what} not comparable: "
        + "; ".join(diffs)
        + "; compare results on the same dataset revision, checkpoints and images"
    )


def record_labels(n: int) -> list[str]:
    """How ``compare`` names n records: A, B, C, … (R27, R28, … past Z)."""
    return [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(n)]


def common_archs(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The architectures every record evaluated, in the first record's order."""
    return [m for m in records[0]["options"]["models"] if all(m in r["options"]["models"] for r in records)]


def check_all_comparable(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The architectures all ``records`` (two or more) evaluated; HfusError (one line naming every
    difference) unless each record can be paired with the first on them (then any two can: same dataset,
    checkpoints and images)."""
    if len(records) < 2:
        raise HfusError(f"compare needs two or more records, got {len(records)}")
    labels = record_labels(len(records))
    archs = common_archs(records)
    if not archs:
        models = "; ".join(
            f"{x} {', '.join(r['options']['models'])}" for x, r in zip(labels, records, strict=True)
        )
        raise HfusError(
            f"the records have no architecture in common ({models}); compare results of the same models"
        )
    diffs = []
    for label, other in zip(labels[1:], records[1:], strict=True):
        diffs += differences(records[0], other, archs=archs, names=("A", label))
    if diffs:
        raise HfusError(not_comparable_message(diffs, "the records are"))
    return archs


def setting_notes(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One note per run option that differs between the records (A, B, C, …): the scores that depend on it
    are not computed the same way."""
    labels = record_labels(len(records))
    notes = []
    for key in ("target", "sign", "confidence", "seed", "limit"):
        values = [r["options"].get(key) for r in records]
        if any(v != values[0] for v in values):
            which = ", ".join(f"{x} {v}" for x, v in zip(labels, values, strict=True))
            notes.append(
                f"{key} differs ({which}): the scores that depend on it are not computed the same way"
            )
    return notes


# ------------------------------------------------------------------------------------ differences


@dataclass(frozen=True)
class Difference:
    """A − B for one reported output of one architecture.

    ``mean_a`` / ``mean_b``: the two means over the paired images (per fold, then over folds), so
    ``diff = mean_a − mean_b``; ``ci95``: the paired bootstrap CI of ``diff`` (None, None when unpaired);
    ``n``: pairs used; ``n_excluded``: pairs left out (NaN on either side); ``paired``: False when a side
    keeps no per-image values (then the means are the records' own and there is no CI).
    """

    key: str
    label: str
    direction: str
    mean_a: float | None
    mean_b: float | None
    diff: float | None
    ci95: tuple[float | None, float | None]
    n: int
    n_excluded: int
    paired: bool

    @property
    def better(self) -> str | None:
        """``"A"`` / ``"B"`` when the CI excludes 0 on that side of the output's direction, ``"neither"`` when
        it contains 0, None for descriptive outputs (direction ``none``) or without a CI."""
        lo, hi = self.ci95
        if self.direction == "none" or lo is None or hi is None:
            return None
        sign = 1.0 if self.direction == "higher" else -1.0
        if min(sign * lo, sign * hi) > 0:
            return "A"
        if max(sign * lo, sign * hi) < 0:
            return "B"
        return "neither"


def _label(key: str) -> str:
    _, out = registry.output(key)
    return out.label or key


def paired_difference(
    sa: Mapping[int, ImageScores], sb: Mapping[int, ImageScores], key: str
) -> Difference | None:
    """The paired difference A − B of one output over the images both evaluated (per fold); None when a side
    lacks the output's per-image values."""
    ys_a, ys_b, strata = [], [], []
    for fold in sorted(set(sa) & set(sb)):
        pa, pb = sa[fold], sb[fold]
        if key not in pa.scores or key not in pb.scores:
            return None
        where = {image_id: i for i, image_id in enumerate(pb.image_ids)}
        shared = [(i, where[image_id]) for i, image_id in enumerate(pa.image_ids) if image_id in where]
        ia = np.array([i for i, _ in shared], dtype=np.int64)
        ib = np.array([j for _, j in shared], dtype=np.int64)
        ys_a.append(np.asarray(pa.scores[key])[ia])
        ys_b.append(np.asarray(pb.scores[key])[ib])
        strata.append(np.full(len(shared), fold))
    if not ys_a:
        return None
    x, y, s = np.concatenate(ys_a), np.concatenate(ys_b), np.concatenate(strata)
    res = paired_bootstrap(x, y, strata=s, n_resamples=N_RESAMPLES, seed=CI_SEED)
    ok = ~(np.isnan(x) | np.isnan(y))
    folds = [f for f in np.unique(s[ok])]
    mean_a = float(np.mean([x[ok & (s == f)].mean() for f in folds])) if folds else np.nan
    mean_b = float(np.mean([y[ok & (s == f)].mean() for f in folds])) if folds else np.nan
    _, out = registry.output(key)
    return Difference(
        key=key,
        label=_label(key),
        direction=out.direction,
        mean_a=json_number(mean_a),
        mean_b=json_number(mean_b),
        diff=json_number(res.mean),
        ci95=(json_number(res.low), json_number(res.high)),
        n=res.n,
        n_excluded=res.n_nan,
        paired=True,
    )


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` found: the two methods, the shared setting and, per architecture, one
    :class:`Difference` per reported output both records have (registry order)."""

    a: str
    b: str
    dataset: Mapping[str, Any]
    checkpoints: Mapping[str, Mapping[str, str]]
    n_images: Mapping[str, int]
    differences: Mapping[str, tuple[Difference, ...]]
    notes: tuple[str, ...]
    #: per arch: the ranking gate of A and of B (PROTOCOL §7.4)
    gates: Mapping[str, tuple[Gate, Gate]] = dataclasses.field(default_factory=dict)
    #: per arch: FE/img of A and of B (None: not counted in that record)
    fe: Mapping[str, tuple[float | None, float | None]] = dataclasses.field(default_factory=dict)

    @property
    def paired(self) -> bool:
        return all(d.paired for ds in self.differences.values() for d in ds)


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> Comparison:
    """Paired differences A − B per shared architecture for every reported output (PROTOCOL §7.3).

    Raises HfusError when the two are not comparable (:func:`check_comparable`). A side without per-image
    values (an entry made before they were kept) gives unpaired differences of the means, without a CI,
    and a note saying so.
    """
    sa, sb = image_scores(a), image_scores(b)
    diffs = differences(a, b, scores=(sa, sb))
    if diffs:
        raise HfusError(not_comparable_message(diffs))
    archs = [m for m in a["options"]["models"] if m in b["options"]["models"]]
    out = {arch: _output_differences(a, b, sa, sb, arch) for arch in archs}
    n_images = {arch: int(a["counts"][arch]["n_images"]) for arch in archs}
    checkpoints = {
        arch: {str(f): a["checkpoints"][arch][str(f)]["sha256"] for f in _folds(a, arch)} for arch in archs
    }
    return Comparison(
        a=a["method"]["name"],
        b=b["method"]["name"],
        dataset=dict(a["dataset"]),
        checkpoints=checkpoints,
        n_images=n_images,
        differences=out,
        notes=tuple(_compare_notes(a, b, sa, sb)),
        gates={arch: (gate(a, arch), gate(b, arch)) for arch in archs},
        fe={arch: (fe_per_image(a, arch), fe_per_image(b, arch)) for arch in archs},
    )


def _compare_notes(
    a: Mapping[str, Any], b: Mapping[str, Any], sa: Scores | None, sb: Scores | None
) -> list[str]:
    """The notes of a comparison: settings that differ, architectures in one only, sides without per-image
    values (``sa`` / ``sb``: their :func:`image_scores`)."""
    notes = setting_notes([a, b])
    only = sorted(set(a["options"]["models"]) ^ set(b["options"]["models"]))
    if only:
        notes.append(f"only in one of the two, not compared: {', '.join(only)}")
    for name, s in (("A", sa), ("B", sb)):
        if s is None:
            notes.append(
                f"{name} keeps no per-image values (a leaderboard entry made before they were kept; "
                "re-add it from its result JSON with `hfus-bench leaderboard add`): differences of the "
                "means, no CI"
            )
    return notes


def _output_differences(
    a: Mapping[str, Any], b: Mapping[str, Any], sa: Scores | None, sb: Scores | None, arch: str
) -> tuple[Difference, ...]:
    """A − B on ``arch`` for every registered output both report: paired where both sides keep per-image
    values, else the unpaired difference of the means."""
    rows = []
    for m, o in registry.outputs():
        key = m.key(o)
        d = paired_difference(sa[arch], sb[arch], key) if sa and sb and arch in sa and arch in sb else None
        if d is None:
            d = _unpaired_difference(a, b, arch, key, o)
        if d is not None:
            rows.append(d)
    return tuple(rows)


def _unpaired_difference(
    a: Mapping[str, Any], b: Mapping[str, Any], arch: str, key: str, output: registry.Output
) -> Difference | None:
    """The difference of the two means of ``key`` on ``arch`` (no CI); None when a side lacks it."""
    ma, mb = a["metrics"].get(key, {}).get(arch), b["metrics"].get(key, {}).get(arch)
    if ma is None or mb is None:
        return None
    x, y = ma["mean"], mb["mean"]
    return Difference(
        key=key,
        label=output.label or key,
        direction=output.direction,
        mean_a=x,
        mean_b=y,
        diff=None if x is None or y is None else x - y,
        ci95=(None, None),
        n=0,
        n_excluded=0,
        paired=False,
    )
