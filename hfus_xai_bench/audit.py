"""The private-seed audit (PROTOCOL §3, ``hfus-bench audit``): does a score rest on public ground truth?

A method file is Python and the synthetic track's ground truth is public, so a method can look its answer
up (find the image by its pixels, read its SLM). The generator is public too, but a seed need not be: the
audit rebuilds the track at the current generator version with a seed only the maintainers know and scores
every method with the published checkpoints on both sides, maps-only scores (``constants.AUDIT_SCORES``):

- public side: the default track's test split of the audited fold (what the leaderboard scores);
- private side: every image of the private build (no checkpoint has seen any of them). The runner evaluates
  a fold's test split, so the build's five fold partitions are evaluated in turn, each relabelled as the
  audited fold (:func:`partition_views`; the other partitions are then its training split).

Per method and score, d = public mean − private mean, and the statistic is d − d_ref, d_ref = the mean d of
the reference methods (``constants.AUDIT_REFERENCES``, run too when not given): what the public images give
every honest method is subtracted. Its CI resamples each side's images independently (one
``np.random.default_rng(BOOTSTRAP_SEED)`` per score: BOOTSTRAP_RESAMPLES index rows for the public images,
then as many for the private ones; the same rows for every method, so the methods stay paired); percentiles
at level 1 − AUDIT_ALPHA / m, m = methods × scores audited together. A method is flagged when the lower
bound is above 0. The harness adds a verdict of its own: a method without a value on a side is not
auditable (it cannot pass: docs/AUDIT.md). Either makes the exit status 1.

The seed is never printed, written to a file or used in a file name: the private build is cached under
``cache_dir()/audit/<sha256 of (seed, version, n)>``, holding its parquet shards and an audit card
(``models.checkpoints.AUDIT_BUILD_CARD``: generator and version, which also select the checkpoints,
``checkpoint_source``), never the generator's own info files, which name the seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .constants import (
    AUDIT_ALPHA,
    AUDIT_REFERENCES,
    AUDIT_SCORES,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    SYNTH_DATASET,
    cache_dir,
)
from .errors import HfusError

if TYPE_CHECKING:
    import datasets

    from .config import RunConfig
    from .explainers.loader import Method
    from .results import FoldScores

#: Environment variable read when no ``--seed`` is given (so the seed can live in a CI secret).
SEED_ENV = "HFUS_AUDIT_SEED"

__all__ = [
    "SEED_ENV",
    "AuditReport",
    "AuditRow",
    "audit",
    "audit_level",
    "audit_statistic",
    "build_key",
    "partition_views",
    "private_build",
]


# ------------------------------------------------------------------------------------------- statistic


@dataclass(frozen=True)
class AuditRow:
    """One method × score of an audit. ``excess`` = d − d_ref with its CI (``low``, ``high``) at ``level``."""

    method: str
    score: str
    reference: bool
    public_mean: float
    private_mean: float
    public_ci: tuple[float, float]
    private_ci: tuple[float, float]
    n_public: int
    n_private: int
    d: float
    d_ref: float
    excess: float
    low: float
    high: float
    level: float
    #: bootstrap resamples without a value (a side with no finite value drawn), left out of the percentiles
    dropped: int = 0
    #: images of each side and how many of them failed (PROTOCOL §3: counted, never dropped silently)
    images_public: int = 0
    images_private: int = 0
    failed_public: int = 0
    failed_private: int = 0

    @property
    def auditable(self) -> bool:
        """Both sides have a value (the harness's rule: a method without one cannot pass)."""
        return self.n_public > 0 and self.n_private > 0

    @property
    def flagged(self) -> bool:
        """PROTOCOL §3: the public advantage is beyond the references' (the CI's lower bound > 0)."""
        return self.auditable and bool(self.low > 0)

    @property
    def verdict(self) -> str:
        """``ok``, ``FLAGGED`` or ``NOT AUDITABLE: no values on the private side — N of M images failed``."""
        if self.auditable:
            return "FLAGGED" if self.flagged else "ok"
        side, failed, images = (
            ("public", self.failed_public, self.images_public)
            if self.n_public == 0
            else ("private", self.failed_private, self.images_private)
        )
        return f"NOT AUDITABLE: no values on the {side} side — {failed} of {images} images failed"


def audit_level(m: int, alpha: float = AUDIT_ALPHA) -> float:
    """The CI level of each of ``m`` comparisons audited together (Bonferroni): 1 − alpha / m."""
    if int(m) < 1:
        raise HfusError(f"an audit compares at least one method on one score, got m = {m}")
    return 1.0 - float(alpha) / int(m)


def _resampled_means(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean of the finite values among each row of drawn indices (NaN where a row drew none)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0)[idx].sum(axis=1)
    count = finite[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _side_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def audit_statistic(
    public: Mapping[str, Any],
    private: Mapping[str, Any],
    references: Sequence[str],
    *,
    score: str = "hit_rate@1",
    m: int | None = None,
    alpha: float = AUDIT_ALPHA,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> list[AuditRow]:
    """The audit rows of one score: per method (keys of ``public``, same order) d − d_ref with its CI.

    ``public[name]`` / ``private[name]``: per-image values (NaN = not scored) on the same public images and
    the same private images for every method. ``m``: comparisons audited together (default: the methods
    here). Pure: no I/O; the rule is the module docstring's.
    """
    names = list(public)
    missing = [r for r in references if r not in public or r not in private]
    if missing or set(private) != set(names):
        raise HfusError(f"audit: every method and reference needs both sides; missing {missing or names}")
    pub = {k: np.asarray(public[k], dtype=np.float64).reshape(-1) for k in names}
    priv = {k: np.asarray(private[k], dtype=np.float64).reshape(-1) for k in names}
    if len({v.size for v in pub.values()}) != 1 or len({v.size for v in priv.values()}) != 1:
        raise HfusError("audit: every method must be scored on the same images of each side")
    level = audit_level(len(names) if m is None else m, alpha)
    rng = np.random.default_rng(seed)
    idx_pub = rng.integers(0, next(iter(pub.values())).size, size=(int(n_resamples), pub[names[0]].size))
    idx_priv = rng.integers(0, priv[names[0]].size, size=(int(n_resamples), priv[names[0]].size))
    d = {k: _side_mean(pub[k]) - _side_mean(priv[k]) for k in names}
    d_boot = {k: _resampled_means(pub[k], idx_pub) - _resampled_means(priv[k], idx_priv) for k in names}
    blind = [r for r in references if not np.isfinite(d[r])]
    if blind:
        raise HfusError(
            f"audit ({score}): the reference {blind[0]} has no value on a side, so there is nothing to "
            "compare with; check that the built-in references run on this track"
        )
    d_ref = float(np.mean([d[r] for r in references]))
    ref_boot = np.mean([d_boot[r] for r in references], axis=0)
    return [
        _audit_row(
            k,
            pub[k],
            priv[k],
            score=score,
            reference=k in references,
            d=d[k],
            d_ref=d_ref,
            excess=d_boot[k] - ref_boot,
            level=level,
            n_resamples=n_resamples,
            seed=seed,
        )
        for k in names
    ]


def _audit_row(
    method: str,
    pub: np.ndarray,
    priv: np.ndarray,
    *,
    score: str,
    reference: bool,
    d: float,
    d_ref: float,
    excess: np.ndarray,
    level: float,
    n_resamples: int,
    seed: int,
) -> AuditRow:
    """One method's audit row: its side means and CIs (``n_resamples``, ``seed``), d − d_ref, and the
    ``level`` CI of the bootstrapped ``excess`` (resamples without a value dropped and counted)."""
    from .metrics.stats import bootstrap_ci

    ok = np.isfinite(excess)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(excess[ok], [tail, 100.0 - tail]) if ok.any() else (np.nan, np.nan)
    ci_pub, ci_priv = bootstrap_ci(pub, n_resamples, seed), bootstrap_ci(priv, n_resamples, seed)
    return AuditRow(
        method=method,
        score=score,
        reference=reference,
        public_mean=_side_mean(pub),
        private_mean=_side_mean(priv),
        public_ci=(ci_pub.low, ci_pub.high),
        private_ci=(ci_priv.low, ci_priv.high),
        n_public=ci_pub.n,
        n_private=ci_priv.n,
        d=d,
        d_ref=d_ref,
        excess=d - d_ref,
        low=float(low),
        high=float(high),
        level=level,
        dropped=int(np.count_nonzero(~ok)),
        images_public=pub.size,
        images_private=priv.size,
    )


# ------------------------------------------------------------------------------------------- the build


def _check_seed(seed: Any) -> int:
    """The private seed as an int; the message never repeats the value."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise HfusError(
            "the audit seed must be a non-negative integer (e.g. `python -c 'import secrets; "
            "print(secrets.randbits(63))'`); the value given is not"
        )
    return int(seed)


def build_key(seed: int, version: str, n: int) -> str:
    """The cache folder name of a private build: a sha256 of (seed, generator version, n), never the seed."""
    text = "hfus-xai-bench:audit-build:" + json.dumps([_check_seed(seed), str(version), int(n)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def private_build(
    seed: int,
    *,
    n: int | None = None,
    version: str | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """The dataset folder of the synthetic track at ``seed`` (generator ``version``, default the current one;
    ``n`` images, default the default track's), built once (under a lock, renamed into place when complete)
    and cached under ``cache_dir()/audit/<build_key>``. It holds the parquet shards and the audit card only:
    the generator's and importer's info files, which name the seed, are not kept."""
    from .data import dataset as data
    from .data.archive import import_archive
    from .data.synth import SYNTH_VERSION
    from .data.synth_archive import generate_archive
    from .models.checkpoints import AUDIT_BUILD_CARD, AUDIT_BUILD_FORMAT

    seed = _check_seed(seed)
    version = str(version or SYNTH_VERSION)
    n = int(data.SYNTH_N if n is None else n)
    workers = data.SYNTH_WORKERS if workers is None else workers
    root = cache_dir() / "audit"
    final = root / build_key(seed, version, n)
    if (final / AUDIT_BUILD_CARD).is_file():
        return final
    with data.file_lock(root / ".build.lock"):
        if (final / AUDIT_BUILD_CARD).is_file():  # built by another process meanwhile
            return final
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
        try:
            archive = generate_archive(
                tmp / "archive", n=n, seed=seed, progress=progress, workers=workers, version=version
            )
            folder = import_archive(archive, tmp / "dataset", expect=n, progress=progress, workers=workers)
            for path in folder.iterdir():
                if path.name != "data":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            card = {"format": AUDIT_BUILD_FORMAT, "generator": SYNTH_DATASET, "version": version, "n": n}
            (folder / AUDIT_BUILD_CARD).write_text(json.dumps(card, indent=1) + "\n")
            if final.exists():  # a leftover without a card (never produced by this code)
                shutil.rmtree(final)
            os.replace(folder, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def partition_views(ds: datasets.Dataset, fold: int) -> list[tuple[int, datasets.Dataset]]:
    """The private build as the runner sees it, one view per fold partition k (ascending): partitions k and
    ``fold`` swap their fold labels, so the test split of ``fold`` is partition k and the other partitions
    are its training / validation splits. Each view's provenance gets a content hash of its own (caches)."""
    from .data.dataset import attach_provenance, dataset_provenance

    prov = dataset_provenance(ds)
    folds = np.asarray(ds.with_format("arrow")[:].column("fold").to_numpy(), dtype=np.int64)
    views = []
    for k in sorted({int(v) for v in folds}):
        relabelled = np.where(folds == k, fold, np.where(folds == fold, k, folds))
        view = ds.remove_columns("fold").add_column("fold", relabelled.tolist())
        tag = f"{prov['sha256']}:audit-partition:{k}:as-fold:{int(fold)}"
        attach_provenance(view, {**prov, "sha256": hashlib.sha256(tag.encode()).hexdigest()})
        views.append((k, view))
    return views


# ------------------------------------------------------------------------------------------- evaluation


@dataclass
class AuditTarget:
    """One method to audit: its name in the table, the loaded method, its run settings (a submission's are the
    target, sign, run seed and batch size of its record)."""

    name: str
    method: Method
    config: RunConfig


def _submission_config(folder: Path, base: RunConfig) -> RunConfig:
    record_path = folder / "result.json"
    if not record_path.is_file():
        return base
    try:
        options = json.loads(record_path.read_text())["options"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise HfusError(f"{record_path} is not a readable result record ({err}); fix or remove it") from None
    keep = ("target", "sign", "seed", "batch_size")
    return base.replace(**{k: options[k] for k in keep if options.get(k) is not None})


def resolve_targets(specs: Sequence[str | Path], base: RunConfig) -> list[AuditTarget]:
    """The methods to audit (built-in names, method files, installed entry points or submission folders),
    then the reference methods not among them (built-ins, default settings); names must be unique."""
    from .explainers.loader import load_file, load_method

    targets: list[AuditTarget] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            if not (path / "method.py").is_file():
                raise HfusError(
                    f"{path} is not a submission folder (no method.py); give a method file, a built-in "
                    "name or a submission folder"
                )
            targets.append(AuditTarget("", load_file(path / "method.py"), _submission_config(path, base)))
        else:
            targets.append(AuditTarget("", load_method(spec), base))
    have = {t.method.name for t in targets if t.method.source == "builtin"}
    targets += [AuditTarget("", load_method(r), base) for r in AUDIT_REFERENCES if r not in have]
    for t in targets:
        t.name = t.method.name
    names = [t.name for t in targets]
    twice = sorted({x for x in names if names.count(x) > 1})
    if twice:
        raise HfusError(
            f"two audited methods are named {', '.join(twice)} (the references {', '.join(AUDIT_REFERENCES)} "
            "are the built-ins); rename the method in its METADATA or audit it once"
        )
    return targets


def _fold_scores(
    method: Method, config: RunConfig, ds: datasets.Dataset, metrics: list[Any], desc: str, progress: bool
) -> FoldScores:
    """The maps-only scores of one (arch, fold) of ``ds`` through the runner's batch path (only the metrics
    given: no randomised copy, runner-up, confidence or ROAD call). Unlike ``evaluate``, a side where every
    image fails is not an error: the verdict reports it (:attr:`AuditRow.verdict`)."""
    from .runner import fold_meta, fold_size, plan_run, run_share, score_fold_outputs

    device = config.resolve_device()
    plan = plan_run(ds, config, device)
    shared = run_share(method, config, ds, device, plan, progress=progress, desc=desc, metrics=metrics)
    ((arch, fold), entry), *_ = shared.folds.items()
    meta = fold_meta(ds, arch, fold, fold_size(ds, fold, config), entry["checkpoint"], entry["cost"])
    return score_fold_outputs(meta, shared.outputs, config, keep_maps=False, metrics=metrics)


def _score_target(
    target: AuditTarget,
    ds_public: datasets.Dataset,
    folder: Path,
    views: list[tuple[int, datasets.Dataset]],
    metrics: list[Any],
    progress: bool,
) -> tuple[FoldScores, list[FoldScores]]:
    """One method's scores on the public test split and on each private partition (the build's folder is the
    private runs' dataset, so they get the checkpoint its audit card names)."""
    private = target.config.replace(dataset=str(folder))
    sides = [(target.config, ds_public, "public")]
    sides += [(private, view, f"private {k + 1}/{len(views)}") for k, view in views]
    pub, *parts = [
        _fold_scores(target.method, config, ds, metrics, f"{target.name} {what}", progress)
        for config, ds, what in sides
    ]
    return pub, parts


def _audited_scores(*tracks: datasets.Dataset) -> list[str]:
    """The registered AUDIT_SCORES the tracks can score (one reading the evidence needs an evidence track)."""
    from .metrics import registry

    keys = []
    for key in AUDIT_SCORES:
        try:
            metric, _ = registry.output(key)
        except HfusError:
            continue
        if "evidence" in metric.extras and not all("evidence" in ds.column_names for ds in tracks):
            continue
        keys.append(key)
    return keys


@dataclass
class AuditReport:
    """What :func:`audit` measured: the rows (scores in AUDIT_SCORES order, methods in the given order,
    references last), m, the checkpoint both sides used and the image counts."""

    rows: list[AuditRow]
    m: int
    arch: str
    fold: int
    version: str
    revision: str
    checkpoint: dict[str, Any]
    n_public: int
    n_private: int
    references: tuple[str, ...] = AUDIT_REFERENCES
    scores: list[str] = field(default_factory=list)
    #: per score and method the per-image values of each side (NaN = not scored), for further analysis
    public: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    private: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    #: per method its runs' cost summed over both sides: ``forward_rows/<stage>``, ``backward_rows/<stage>``,
    #: ``seconds/<stage>`` (PROTOCOL §6's stages), ``images``, ``failed_public``, ``failed_private``
    cost: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def flagged(self) -> list[AuditRow]:
        """The rows flagged by PROTOCOL §3's statistic."""
        return [row for row in self.rows if row.flagged]

    @property
    def not_auditable(self) -> list[AuditRow]:
        """The rows without a value on a side (the harness's rule, docs/AUDIT.md)."""
        return [row for row in self.rows if not row.auditable]

    @property
    def exit_status(self) -> int:
        """1 when any row is flagged or not auditable, else 0."""
        return int(any(row.verdict != "ok" for row in self.rows))

    @property
    def level(self) -> float:
        """The CI level of every row: 1 − AUDIT_ALPHA / m."""
        return audit_level(max(self.m, 1))


def _cost(pub: FoldScores, parts: Sequence[FoldScores]) -> dict[str, float]:
    """A method's cost over both sides: images, failed images per side, PROTOCOL §6's rows and seconds."""
    out = {
        "images": float(sum(len(run.image_ids) for run in (pub, *parts))),
        "failed_public": float(sum(r is not None for r in pub.failed)),
        "failed_private": float(sum(r is not None for run in parts for r in run.failed)),
    }
    for run in (pub, *parts):
        for key, value in run.cost.items():
            if key.startswith(("forward_rows/", "backward_rows/", "seconds/")):
                out[key] = out.get(key, 0.0) + float(value)
    return out


@dataclass
class _Sides:
    """Every target's per-image values on the public and the private side (score → method → values), its
    cost, and the one checkpoint both sides used."""

    public: dict[str, dict[str, np.ndarray]]
    private: dict[str, dict[str, np.ndarray]]
    cost: dict[str, dict[str, float]] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    n_private: int = 0


def _score_sides(
    targets: Sequence[AuditTarget],
    ds_public: datasets.Dataset,
    folder: Path,
    views: list[tuple[int, datasets.Dataset]],
    scores: Sequence[str],
    progress: bool,
    log: Callable[[str, dict[str, float]], None] | None,
) -> _Sides:
    """Run every target on both sides (``log(name, cost)`` after each); all must use one checkpoint."""
    from .metrics import registry

    metrics = list({registry.output(key)[0].id: registry.output(key)[0] for key in scores}.values())
    sides = _Sides(public={key: {} for key in scores}, private={key: {} for key in scores})
    checkpoints: set[str] = set()
    for t in targets:
        pub, parts = _score_target(t, ds_public, folder, views, metrics, progress)
        checkpoints |= {pub.checkpoint["sha256"], *(p.checkpoint["sha256"] for p in parts)}
        if len(checkpoints) != 1:
            raise HfusError(
                "the public and private sides were scored with different checkpoints; install the one "
                "checkpoint of the default track of the current generator version"
            )
        sides.checkpoint, sides.n_private = dict(pub.checkpoint), sum(len(p.image_ids) for p in parts)
        for key in scores:
            sides.public[key][t.name] = pub.output(key)
            sides.private[key][t.name] = np.concatenate([p.output(key) for p in parts])
        sides.cost[t.name] = _cost(pub, parts)
        if log is not None:
            log(t.name, sides.cost[t.name])
    return sides


def audit(
    specs: Sequence[str | Path],
    seed: int,
    *,
    arch: str = "mobilenet_v2",
    fold: int = 0,
    limit: int | None = None,
    device: str = "auto",
    n: int | None = None,
    progress: bool = True,
    log: Callable[[str, dict[str, float]], None] | None = None,
) -> AuditReport:
    """Audit methods on a private build of the synthetic track at ``seed`` (module docstring, PROTOCOL §3).

    ``specs``: built-in names, method files, entry points or submission folders; the references are added.
    ``limit``: only the first N images of the public test split and of each private partition; ``n``: images
    of the private build (default: the default track's). ``log(name, cost)``: called after each method.
    """
    from .config import RunConfig
    from .data.dataset import dataset_provenance, load_dataset
    from .data.synth import SYNTH_VERSION

    base = RunConfig(models=(arch,), folds=(fold,), limit=limit, device=device)
    targets = resolve_targets(specs, base)
    ds_public = load_dataset(SYNTH_DATASET)
    folder = private_build(seed, n=n, progress=progress)
    views = partition_views(load_dataset(str(folder)), base.folds[0])
    scores = _audited_scores(ds_public, views[0][1])
    sides = _score_sides(targets, ds_public, folder, views, scores, progress, log)
    public, private, cost = sides.public, sides.private, sides.cost
    m = len(targets) * len(scores)
    rows = [
        replace(
            row,
            failed_public=int(cost[row.method]["failed_public"]),
            failed_private=int(cost[row.method]["failed_private"]),
        )
        for key in scores
        for row in audit_statistic(public[key], private[key], AUDIT_REFERENCES, score=key, m=m)
    ]
    return AuditReport(
        rows=rows,
        m=m,
        arch=base.models[0],
        fold=base.folds[0],
        version=SYNTH_VERSION,
        revision=str(dataset_provenance(ds_public)["revision"]),
        checkpoint=sides.checkpoint,
        n_public=len(next(iter(public[scores[0]].values()))) if scores else 0,
        n_private=sides.n_private,
        scores=scores,
        public=public,
        private=private,
        cost=cost,
    )
