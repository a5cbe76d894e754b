"""Records and entries for the leaderboard and compare tests: fake per-image values with the §7 ones
(``randomisation@2``: per copy rand2_rho, rand2_pearson, rand2_pair, and rand2_cross — or, for entries made
before v1.2, ``randomisation@1``: rho, cross_image; ``road@1``: road_s0, road_morf_p, road_lerf_p), so a
method can pass the randomisation check, fail it or leave it undetermined, and per-image values can be set
exactly (known paired gains)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
from helpers import fake_scores

from hfus_xai_bench.explainers.loader import Method
from hfus_xai_bench.results import FoldScores, build_result

ENV = {"hfus_xai_bench": "0.1.0", "torch": "x", "device": "cpu", "device_name": "test-cpu"}
FRACTIONS = np.array([0.1, 0.3, 0.5, 0.7, 0.9])


def s7_scores(
    arch: str,
    fold: int,
    level: float,
    seed: int,
    *,
    model_dependent: bool = True,
    road: float = 0.2,
    n: int = 12,
    version: int = 2,
    degenerate: float = 0.0,
) -> FoldScores:
    """``helpers.fake_scores`` plus §7 values: per copy ρ and r near 0.05 (model-dependent) or exactly 1 (a
    model-blind map); ``degenerate``: the share of the images whose three pairs are all degenerate (no value);
    ``version`` 1: ``randomisation@1`` values instead (an entry made before v1.2). ROAD combined per image
    ~ N(``road``, 0.05)."""
    run = fake_scores(arch, fold, level, seed, n=n)
    rng = np.random.default_rng(seed + 1000)
    ok = np.array([f is None for f in run.failed])
    k = 3
    rho = np.clip(rng.normal(0.05, 0.1, (n, k)), -1, 1) if model_dependent else np.ones((n, k))
    pearson = np.clip(rng.normal(0.05, 0.1, (n, k)), -1, 1) if model_dependent else np.ones((n, k))
    status = np.zeros((n, k))
    status[: int(round(degenerate * n))] = 1
    rho[status == 1] = np.nan
    pearson[status == 1] = np.nan
    s0 = np.random.default_rng(fold).uniform(
        0.6, 0.95, n
    )  # the clean image's probability: same for every method
    a = rng.normal(road, 0.05, n)
    shape = FRACTIONS[None, :] / FRACTIONS.mean()  # mean over p: 1
    morf = s0[:, None] - (0.05 + 2 * a)[:, None] * shape  # combined = mean_p (lerf - morf) / 2 = a
    lerf = s0[:, None] - 0.05 * shape
    cross = rng.normal(0.5, 0.1, n)
    if version == 1:
        rand = {"randomisation@1/rho": rho[:, 0], "randomisation@1/cross_image": cross}
    else:
        rand = {
            "randomisation@2/rand2_rho": rho,
            "randomisation@2/rand2_pearson": pearson,
            "randomisation@2/rand2_pair": status,
            "randomisation@2/rand2_cross": cross,
        }
    for key in [k for k in run.values if k.startswith("randomisation@")]:
        del run.values[key]
    for key, value in (
        *rand.items(),
        ("road@1/road_s0", s0),
        ("road@1/road_morf_p", morf),
        ("road@1/road_lerf_p", lerf),
    ):
        value = np.array(value, dtype=np.float64)
        value[~ok] = np.nan
        run.values[key] = value
    return run


def record(
    name: str,
    runs: Sequence[FoldScores],
    *,
    folds: Sequence[int] = (0, 1),
    revision: str = "synth-v2-seed0",
    dataset_sha: str = "a" * 64,
    metadata: dict | None = None,
) -> dict:
    """A result record (validated by ``build_result``) of method ``name`` from the given per-fold scores;
    ``metadata``: more METADATA of the method (e.g. ``{"reference": "oracle"}``)."""
    method = Method(
        name=name,
        source="builtin",
        kind="map",
        factory=lambda m, c: None,
        metadata={"name": name, **(metadata or {})},
    )
    archs = sorted({r.arch for r in runs})
    options = {
        "models": archs,
        "folds": list(folds),
        "limit": None,
        "target": "pred",
        "sign": "pos",
        "confidence": "logit",
        "batch_size": 16,
        "seed": 0,
        "precision": "fp32",
        "device": "cpu",
    }
    dataset = {"id": "hfus-synth", "revision": revision, "sha256": dataset_sha, "n_images": 631}
    result = build_result(
        method,
        runs,
        options=options,
        dataset=dataset,
        environment=dict(ENV),
        command=f"hfus-bench evaluate {name} --folds {','.join(map(str, folds))}",
    )
    result.record["timestamp"] = "2025-01-01T00:00:00+00:00"
    return result.record


def s7_record(
    name: str,
    level: float,
    seed: int,
    *,
    model_dependent: bool = True,
    road: float = 0.2,
    archs: Sequence[str] = ("mobilenet_v2",),
    folds: Sequence[int] = (0, 1),
    edit: Callable[[FoldScores], None] | None = None,
    version: int = 2,
    degenerate: float = 0.0,
    **kwargs: object,
) -> dict:
    runs = [
        s7_scores(
            a,
            f,
            level,
            seed + 10 * f,
            model_dependent=model_dependent,
            road=road,
            version=version,
            degenerate=degenerate,
        )
        for a in archs
        for f in folds
    ]
    for run in runs:
        if edit is not None:
            edit(run)
    return record(name, runs, folds=folds, **kwargs)


def shifted(base: Sequence[FoldScores], key: str, delta: float) -> list[FoldScores]:
    """Copies of ``base`` whose per-image value ``key`` is ``base + delta`` on every image (a known
    paired gain)."""
    out = []
    for run in base:
        values = {k: np.array(v, copy=True) for k, v in run.values.items()}
        values[key] = values[key] + delta
        out.append(
            FoldScores(
                arch=run.arch,
                fold=run.fold,
                checkpoint=dict(run.checkpoint),
                image_ids=list(run.image_ids),
                labels=run.labels,
                preds=run.preds,
                targets=run.targets,
                failed=list(run.failed),
                values=values,
                seconds=run.seconds,
                forward_images=run.forward_images,
            )
        )
    return out


def strip_s7(entry: dict) -> dict:
    """An entry as made before §7 and the per-image scores existed."""
    out = {k: v for k, v in entry.items() if k != "per_image_scores"}
    out["metrics"] = {
        k: v for k, v in entry["metrics"].items() if not k.startswith(("randomisation@", "road@"))
    }
    return out


def better_entry(entry: dict, name: str, deltas: dict[str, float] | float) -> dict:
    """A copy of a leaderboard entry named ``name`` whose per-image value of each directed registry output
    is *better* by ``deltas`` (one number for all of them, or key -> delta; a negative delta is worse) on
    every image: + for "higher is better", − for "lower is better". A paired shift, so every bootstrap
    resample sees the same order."""
    from hfus_xai_bench.metrics import registry

    out = copy.deepcopy(entry)
    out["method"]["name"] = name
    for folds in out["per_image_scores"].values():
        for part in folds.values():
            for key, values in part["scores"].items():
                delta = deltas if isinstance(deltas, float | int) else deltas.get(key, 0.0)
                direction = registry.output(key)[1].direction
                if direction == "none" or delta == 0:
                    continue
                step = delta if direction == "higher" else -delta
                part["scores"][key] = [None if v is None else v + step for v in values]
    return out


def fake_record(name: str, level: float, seed: int) -> dict:
    """A record from ``helpers.fake_scores`` (plausible values, ρ near 0.1)."""
    return record(name, [fake_scores("mobilenet_v2", f, level, seed + 10 * f) for f in (0, 1)])


def sample_records() -> dict[str, dict]:
    """Six records of one table: two identical CAMs (HiRes-CAM = Grad-CAM on MobileNetV2, PROTOCOL §5.1),
    Score-CAM, and three sanity baselines."""
    return {
        "gradcam": s7_record("gradcam", 2.0, 1),
        "hirescam": s7_record("hirescam", 2.0, 1),
        "scorecam": s7_record("scorecam", 1.2, 2, road=0.05),
        "depth_prior": s7_record("depth_prior", 2.4, 5, model_dependent=False, road=0.25),
        "random": s7_record("random", 0.2, 3, model_dependent=False, road=0.0),
        "sobel": s7_record("sobel", 0.9, 4, model_dependent=False),
    }
