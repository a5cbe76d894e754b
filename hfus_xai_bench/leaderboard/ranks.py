"""Per-criterion mean ranks with intervals (PROTOCOL §7.4, last paragraph; issue 22). Pure computation.

Within one table (one architecture), among the ranked rows only:

1. per metric, the images where every ranked row has a value (the metric's *common* images);
2. each row's score = the mean over folds of its per-fold mean over those images (as the table's means);
   rank 1 = best by the metric's direction, ties get their average rank (the leaderboard and ``compare``
   compare the means rounded to the registry's digits, as shown, so floating-point noise between
   identical methods is a tie);
3. per criterion (:data:`CRITERIA`, the metrics the table has), a row's *mean rank* over the criterion's
   metrics, and its *disagreement*: max − min of its ranks across those metrics (0: they agree);
4. a 95 % interval for the mean rank from §7.3's paired bootstrap over images: per resample, images are
   drawn with replacement within each fold (one ``np.random.default_rng(seed)``; the same draw for every
   row and metric, so rows stay paired), every metric's means and ranks are recomputed on the drawn
   images it has in common, and the mean rank is averaged again; percentiles 2.5 / 97.5.

The resampled means are weighted sums with the draw counts (one matrix product per fold and metric),
so nothing loops over images or resamples. For display: :func:`table_ranks` (a leaderboard table's
ranked rows) and :func:`records_ranks` (``hfus-bench compare`` with more than two records) give one
:class:`RankCell` per row and criterion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from ..constants import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from ..errors import HfusError

#: criterion -> record keys of its metrics (PROTOCOL §7.4); a table uses those it has for every ranked row.
#: ``class_sensitivity@1`` and ``counterfactual@1`` enter no rank.
CRITERIA: dict[str, tuple[str, ...]] = {
    "localisation": ("hit_rate@1", "evidence@1/hit", "evidence@1/mass"),
    "faithfulness": ("road@1/combined", "confidence@1/dic", "confidence@1/iic"),
    "sanity": ("randomisation@2/rho", "randomisation@2/pearson"),
}


@dataclass(frozen=True)
class CriterionRanks:
    """One criterion's ranks for the M ranked rows of a table (arrays in row order)."""

    criterion: str
    metrics: tuple[str, ...]
    #: metric -> (M,) rank on the full data (1 = best; ties averaged)
    ranks: Mapping[str, np.ndarray]
    #: metric -> number of common images
    n_images: Mapping[str, int]
    mean_rank: np.ndarray
    low: np.ndarray
    high: np.ndarray
    #: (M,) max − min of the row's ranks across the criterion's metrics
    disagreement: np.ndarray


def _fold_counts(folds: np.ndarray, n_resamples: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold (sorted): (image positions, (R, n_fold) draw counts) of a within-fold bootstrap."""
    rng = np.random.default_rng(seed)
    out = []
    for g in np.unique(folds):
        where = np.flatnonzero(folds == g)
        idx = rng.integers(0, where.size, size=(n_resamples, where.size))
        counts = np.zeros((n_resamples, where.size))
        np.add.at(counts, (np.arange(n_resamples)[:, None], idx), 1.0)
        out.append((where, counts))
    return out


def _means(
    values: np.ndarray, common: np.ndarray, counts: Sequence[tuple[np.ndarray, np.ndarray | None]]
) -> np.ndarray:
    """Mean over folds of per-fold means over the common images: (M,) without counts, (M, R) with them."""
    x = np.where(common, values, 0.0)
    per_fold = []
    for where, c in counts:
        mask = common[where].astype(float)
        if not mask.any():
            continue
        if c is None:
            per_fold.append(x[:, where].sum(1) / mask.sum())
        else:
            den = c @ mask  # (R,)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_fold.append(
                    (x[:, where] @ c.T) / den
                )  # (M, R); NaN where a draw missed every common image
    return np.nanmean(per_fold, axis=0) if len(per_fold) > 1 else per_fold[0]


def _ranks(means: np.ndarray, direction: str, digits: int | None = None) -> np.ndarray:
    """Average ranks along axis 0 (rows), 1 = best; ``digits``: compare the means rounded to that many
    decimals (rows that agree as shown tie)."""
    if digits is not None:
        means = np.round(means, digits)
    key = -means if direction == "higher" else means
    return rankdata(key, method="average", axis=0)


def criterion_ranks(
    scores: Mapping[str, np.ndarray],
    folds: Sequence[int] | np.ndarray,
    directions: Mapping[str, str],
    criteria: Mapping[str, Sequence[str]] = CRITERIA,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    digits: Mapping[str, int] | None = None,
) -> dict[str, CriterionRanks]:
    """Per criterion, the ranks of M rows from per-image values.

    ``scores``: record key -> (M, N) per-image values of the M ranked rows on the same N images (NaN: no
    value); ``folds``: (N,) the fold of each image; ``directions``: key -> "higher" | "lower";
    ``digits``: key -> decimals the means are rounded to before ranking (the leaderboard's shown precision,
    so rows whose means differ only by floating-point noise tie; none: exact means). A metric missing from
    ``scores`` or ``directions``, or without a common image, is left out; a criterion with no metric is
    left out.
    """
    digits = digits or {}
    folds = np.asarray(folds).reshape(-1)
    if n_resamples < 1:
        raise HfusError(f"n_resamples must be >= 1, got {n_resamples}")
    counts = _fold_counts(folds, n_resamples, seed)
    point_counts = [(where, None) for where, _ in counts]
    out: dict[str, CriterionRanks] = {}
    for criterion, keys in criteria.items():
        used, ranks, boot, n_images = [], {}, [], {}
        for key in keys:
            if key not in scores or directions.get(key) not in ("higher", "lower"):
                continue
            values = np.asarray(scores[key], dtype=np.float64)
            if values.ndim != 2 or values.shape[1] != folds.size:
                raise HfusError(f"{key}: expected (rows, {folds.size}) per-image values, got {values.shape}")
            common = np.isfinite(values).all(axis=0)
            if not common.any():
                continue
            used.append(key)
            n_images[key] = int(common.sum())
            d = digits.get(key)
            ranks[key] = _ranks(_means(values, common, point_counts), directions[key], d)
            resampled = _means(values, common, counts)
            boot.append(np.where(np.isnan(resampled), np.nan, _ranks(resampled, directions[key], d)))
        if not used:
            continue
        stacked = np.stack([ranks[k] for k in used])  # (K, M)
        boot_mean = np.nanmean(np.stack(boot), axis=0)  # (M, R)
        low, high = np.nanpercentile(boot_mean, [2.5, 97.5], axis=1)
        out[criterion] = CriterionRanks(
            criterion=criterion,
            metrics=tuple(used),
            ranks=ranks,
            n_images=n_images,
            mean_rank=stacked.mean(axis=0),
            low=low,
            high=high,
            disagreement=stacked.max(axis=0) - stacked.min(axis=0),
        )
    return out


# ------------------------------------------------------------------------------ tables.py's entry point


def registry_directions(keys: Sequence[str]) -> dict[str, str]:
    """key -> direction from the metric registry, for the keys it knows."""
    return {key: out.direction for key, out in _registry_outputs(keys).items()}


def registry_digits(keys: Sequence[str]) -> dict[str, int]:
    """key -> the decimals the tables show (metric registry), for the keys it knows."""
    return {key: out.digits for key, out in _registry_outputs(keys).items()}


def _registry_outputs(keys: Sequence[str]) -> dict:
    from ..metrics import registry

    out = {}
    for key in keys:
        try:
            out[key] = registry.output(key)[1]
        except HfusError:
            continue
    return out


def entry_criterion_ranks(
    entries: Sequence[Mapping], arch: str, **options: int
) -> tuple[list[Mapping], dict[str, CriterionRanks]]:
    """:func:`criterion_ranks` of leaderboard entries or result records (the caller passes the *ranked* rows
    of one table, or the records ``compare`` gets) on ``arch``, from their per-image values
    (:func:`hfus_xai_bench.compare.image_scores`); images are matched by (fold, image id), an image one row
    lacks has no value there. Returns (the rows with per-image values on ``arch``, in order; the ranks)."""
    from ..compare import image_scores

    parts = [((image_scores(e) or {}).get(arch), e) for e in entries]
    parts = [(p, e) for p, e in parts if p]
    rows = [e for _, e in parts]
    images = sorted({(int(fold), i) for p, _ in parts for fold, part in p.items() for i in part.image_ids})
    if not rows or not images:
        return rows, {}
    position = {key: i for i, key in enumerate(images)}
    wanted = sorted({k for keys in CRITERIA.values() for k in keys})
    scores = {key: np.full((len(rows), len(images)), np.nan) for key in wanted}
    for r, (p, _) in enumerate(parts):
        for fold, part in p.items():
            cols = [position[(int(fold), i)] for i in part.image_ids]
            for key in wanted:
                if key in part.scores:
                    scores[key][r, cols] = part.scores[key]
    present = {k: v for k, v in scores.items() if np.isfinite(v).any()}
    folds = np.array([f for f, _ in images])
    keys = list(present)
    return rows, criterion_ranks(
        present, folds, registry_directions(keys), digits=registry_digits(keys), **options
    )


#: decimals of a mean rank, its interval and the spread as shown (a metric's ranks are multiples of ½)
RANK_DIGITS = 1


@dataclass(frozen=True)
class RankCell:
    """One row's cell of one criterion as shown: ``mean`` (``"2.0"``), ``interval`` (``"[1.5, 3.0]"``, its
    95 % interval), ``spread`` (the disagreement, ``"—"`` when the criterion has one metric), and the numbers
    (None: n/a; ``ranks``: the row's rank per metric)."""

    mean: str
    interval: str
    spread: str
    mean_rank: float | None = None
    low: float | None = None
    high: float | None = None
    disagreement: float | None = None
    ranks: Mapping[str, float] | None = None

    @property
    def text(self) -> str:
        """``"2.0 [1.5, 3.0]"``: the mean rank and its interval (``"n/a"``)."""
        return f"{self.mean} {self.interval}".strip()


#: the cell of a row without per-image values
NA_CELL = RankCell("n/a", "", "n/a")


def metric_label(key: str) -> str:
    """The registry's short label of a record key (the key itself when it has none)."""
    from ..metrics import registry

    return registry.output(key)[1].label or key


def criterion_header(ranks: CriterionRanks) -> str:
    """``"faithfulness (ROAD, DiC, IiC %)"``: the criterion and the labels of the metrics it used."""
    return f"{ranks.criterion} ({', '.join(metric_label(k) for k in ranks.metrics)})"


#: criterion -> the header of its column in a leaderboard table (" (spread)" added for several metrics)
RANK_HEADERS = {"localisation": "loc. rank", "faithfulness": "faith. rank", "sanity": "sanity rank"}


def rank_header(ranks: CriterionRanks) -> str:
    """A table's column of one criterion: ``"faith. rank (spread)"`` (``"loc. rank"`` for one metric)."""
    head = RANK_HEADERS.get(ranks.criterion, f"{ranks.criterion} rank")
    return f"{head} (spread)" if len(ranks.metrics) > 1 else head


def ranks_legend(criteria: Sequence[CriterionRanks]) -> str:
    """The one-line legend (Markdown) of a table's rank columns ("" when it has none)."""
    if not criteria:
        return ""
    names = ", ".join(f"*{RANK_HEADERS.get(c.criterion, c.criterion)}*" for c in criteria)
    used = "; ".join(f"{c.criterion}: {', '.join(metric_label(k) for k in c.metrics)}" for c in criteria)
    return (
        f"**Rank columns** ({names}; PROTOCOL §7.4): per-criterion mean ranks, extra columns that never set "
        "the order or the rank range. Among the ranked rows, each metric ranks them by its mean over the "
        "images where every ranked row has a value (1 = best; means equal as shown tie and get their "
        f"average rank); a cell is the mean of the row's ranks over the criterion's metrics ({used}) with "
        f"a 95 % interval from the paired bootstrap over images ({BOOTSTRAP_RESAMPLES} resamples, seed "
        f"{BOOTSTRAP_SEED}, ranks recomputed per resample) and, in parentheses, the *spread*: max − min of "
        "the row's ranks across those metrics (0: they agree). Unranked rows (sanity baselines, references, "
        "gate failures) get —; n/a: a ranked entry without per-image values."
    )


def rank_cell(ranks: CriterionRanks, i: int) -> RankCell:
    """Row ``i``'s cell of one criterion (:class:`RankCell`)."""
    d = RANK_DIGITS
    mean, low, high, spread = (
        float(x[i]) for x in (ranks.mean_rank, ranks.low, ranks.high, ranks.disagreement)
    )
    return RankCell(
        mean=f"{mean:.{d}f}",
        interval=f"[{low:.{d}f}, {high:.{d}f}]",
        spread=f"{spread:.{d}f}" if len(ranks.metrics) > 1 else "—",
        mean_rank=mean,
        low=low,
        high=high,
        disagreement=spread,
        ranks={k: float(v[i]) for k, v in ranks.ranks.items()},
    )


def table_ranks(
    entries: Sequence[Mapping], arch: str, **options: int
) -> tuple[list[CriterionRanks], list[list[RankCell] | None]]:
    """The ranks section of a table: its criteria (in :data:`CRITERIA` order) and, for each of ``entries``
    (the table's ranked rows, in table order), one :class:`RankCell` per criterion (None: the row keeps no
    per-image values, so it is ranked by none)."""
    rows, ranks = entry_criterion_ranks(entries, arch, **options)
    index = {id(e): i for i, e in enumerate(rows)}
    criteria = [ranks[name] for name in CRITERIA if name in ranks]
    cells: list[list[RankCell] | None] = []
    for e in entries:
        i = index.get(id(e))
        cells.append(None if i is None else [rank_cell(c, i) for c in criteria])
    return criteria, cells


def records_ranks(
    records: Sequence[Mapping], **options: int
) -> dict[str, tuple[list[CriterionRanks], list[list[RankCell] | None]]]:
    """``hfus-bench compare`` with more than two records: per architecture all of them evaluated,
    :func:`table_ranks` of every record (all are ranked, whatever their gate); HfusError (one line) unless
    they are comparable (:func:`hfus_xai_bench.compare.check_all_comparable`)."""
    from ..compare import check_all_comparable

    return {arch: table_ranks(records, arch, **options) for arch in check_all_comparable(records)}
