"""Class-dependent ground truth (PROTOCOL §9): ``evidence@1`` and ``class_sensitivity@1``, maps only.

- :func:`evidence_scores`: per image, with E the evidence mask (dataset column ``evidence``, 0/255) and
  P the peak set of §4 (every pixel with m255 = 255), "``hit`` = |P ∩ E| / |P|" and "``mass`` =
  Σ_E m255 / Σ m255 (relevance mass accuracy)". Images with an empty E are not applicable (NaN, never 0);
  an all-zero map has neither (NaN; the harness counts it as ``empty_map``).
- :func:`copy_evidence_scores` and :func:`evidence_gains`: "``evidence@1`` is also scored on every
  randomised copy's maps (§7.1.1, no extra passes), and ``hit_gain`` / ``mass_gain`` = the trained model's
  value − the mean over the copies, per image". Rule settled here: the mean runs over the copies whose
  map has a value — a copy whose map failed (``randomised_ok`` false) or is all zero (no peak, no mass)
  is left out; with no such copy the image has no gain (NaN, counted). The gain is computed as the mean
  over those copies of (trained − copy), so a map that is the same for every model has a gain of exactly 0.
- :func:`class_sensitivity`: "ρ = Spearman (average ranks) between the method's m255 for the target and
  for r" (r = the runner-up class, the highest trained-model logit other than the target's, lowest index
  on ties; the runner provides its map). A pair is **failed** when the runner-up map failed, else
  **degenerate** when either map is constant (no ρ; it is not 0), else **scored** (as §7.1.1 counts pairs).

Every count is an exact integer (one pass over the pixels per image, on the maps' device, chunked), so
hit and mass are single roundings of exact fractions. Results are float64 numpy arrays on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import HfusError
from .localisation import as_m255
from .postprocess import as_tensor, compute_device

if TYPE_CHECKING:
    from .inputs import ScoringConfig, ScoringInputs

__all__ = [
    "PAIR_DEGENERATE",
    "PAIR_FAILED",
    "PAIR_SCORED",
    "as_evidence",
    "class_sensitivity",
    "copy_evidence_scores",
    "evidence_counts",
    "evidence_from_counts",
    "evidence_gains",
    "evidence_scores",
    "score_class_sensitivity",
    "score_evidence",
    "shared_evidence_counts",
]

#: ``class_sensitivity@1`` per-image pair status (value ``cs_pair``)
PAIR_SCORED, PAIR_DEGENERATE, PAIR_FAILED = 0, 1, 2

_CHUNK = 16  # maps per vectorised chunk


def as_evidence(evidence: Any, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """Evidence masks as a bool tensor of ``shape`` (N, H, W) on ``device``: uint8 0/255 (the dataset column)
    or bool."""
    e = as_tensor(evidence, "evidence")
    if tuple(e.shape) != tuple(shape):
        raise HfusError(f"evidence: shape {tuple(e.shape)} does not match the maps {tuple(shape)}")
    e = e.to(device)
    if e.dtype == torch.bool:
        return e
    if e.is_floating_point() or e.is_complex() or (e.numel() and bool(((e != 0) & (e != 255)).any())):
        raise HfusError(
            "evidence: expected a 0/255 uint8 mask (the dataset's evidence column) or a bool mask"
        )
    return e != 0


def evidence_counts(maps: Any, evidence: Any) -> np.ndarray:
    """Exact per-image counts, int64 (N, 5): |P|, |P ∩ E|, Σ_E m255, Σ m255, |E| (P = {m255 == 255}).

    ``maps``: (N, H, W) m255 (uint8; float maps are quantised, see :func:`~.localisation.as_m255`);
    ``evidence``: (N, H, W) 0/255 uint8 or bool, same shape.
    """
    m = as_m255(maps)
    dev = compute_device(m.device)
    m = m.to(dev)
    e = as_evidence(evidence, m.shape, dev)
    out = torch.zeros(m.shape[0], 5, dtype=torch.int64, device=dev)
    for start in range(0, m.shape[0], _CHUNK):
        mc = m[start : start + _CHUNK].flatten(1)
        ec = e[start : start + _CHUNK].flatten(1)
        peak = mc == 255
        sums = (
            peak.sum(1),
            (peak & ec).sum(1),
            (mc * ec).sum(1, dtype=torch.int64),
            mc.sum(1, dtype=torch.int64),
            ec.sum(1),
        )
        out[start : start + mc.shape[0]] = torch.stack(sums, 1)
    return out.cpu().numpy()


def _ratio(num: np.ndarray, den: np.ndarray, defined: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num.astype(np.float64), den.astype(np.float64), out=out, where=defined & (den != 0))
    return out


def evidence_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hit, mass, |P|) from :func:`evidence_counts`; hit / mass NaN where E is empty or the map all zero."""
    applicable = counts[..., 4] > 0
    hit = _ratio(counts[..., 1], counts[..., 0], applicable)
    mass = _ratio(counts[..., 2], counts[..., 3], applicable)
    return hit, mass, counts[..., 0]


def evidence_scores(maps: Any, evidence: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``evidence@1`` per image: ``(hit, mass, peak_pixels)``, float64 / float64 / int64 (N,) (PROTOCOL §9).

    hit = |P ∩ E| / |P|, mass = Σ_E m255 / Σ m255; both NaN where E is empty (not applicable) or the map is
    all zero (``empty_map``); ``peak_pixels`` = |P| (0 for an all-zero map).
    """
    return evidence_from_counts(evidence_counts(maps, evidence))


def copy_evidence_scores(maps: Any, ok: Any, evidence: Any) -> tuple[np.ndarray, np.ndarray]:
    """``evidence@1`` hit and mass of the randomised copies' maps: float64 (N, K) each.

    ``maps``: (N, K, H, W) m255 of the K copies (zeros where a copy's map failed); ``ok``: (N, K) bool,
    False where the copy's map failed; ``evidence``: (N, H, W). NaN where the copy failed, its map is all
    zero, or E is empty.
    """
    t = as_tensor(maps, "m255_randomised")
    if t.ndim != 4:
        raise HfusError(f"m255_randomised: expected (N, K, H, W), got shape {tuple(t.shape)}")
    n, k, h, w = t.shape
    okk = np.asarray(ok, dtype=bool)
    if okk.shape != (n, k):
        raise HfusError(f"randomised_ok: expected shape ({n}, {k}), got {okk.shape}")
    e = as_tensor(evidence, "evidence")
    if tuple(e.shape) != (n, h, w):
        raise HfusError(f"evidence: shape {tuple(e.shape)} does not match the maps {(n, h, w)}")
    e = e.unsqueeze(1).expand(n, k, h, w).reshape(n * k, h, w)
    hit, mass, _ = evidence_from_counts(evidence_counts(t.reshape(n * k, h, w), e).reshape(n, k, 5))
    hit[~okk] = np.nan
    mass[~okk] = np.nan
    return hit, mass


def evidence_gains(trained: Any, copies: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: ``(gain, copies_mean, n_copies)`` = mean over the copies with a value of (trained − copy_k),
    the mean of those copies' values, and their number (float64, float64, int64 (N,)); NaN without a copy."""
    a = np.asarray(trained, dtype=np.float64)
    c = np.asarray(copies, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != a.shape[0]:
        raise HfusError(f"copies: expected (N, K) = ({a.shape[0]}, K), got shape {c.shape}")
    has = np.isfinite(c)
    used = has.sum(1)
    diff = np.where(has, a[:, None] - c, 0.0).sum(1)
    total = np.where(has, c, 0.0).sum(1)
    gain = _ratio(diff, used, np.isfinite(a))
    mean = _ratio(total, used, np.ones(a.shape, bool))
    return gain, mean, used.astype(np.int64)


# ------------------------------------------------------------------------------- class sensitivity


def _constant(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    return flat.amax(1) == flat.amin(1) if flat.shape[1] else torch.ones(flat.shape[0], dtype=torch.bool)


def class_sensitivity(maps: Any, runner_up_maps: Any, runner_up_ok: Any) -> tuple[np.ndarray, np.ndarray]:
    """``class_sensitivity@1`` per image: ``(rho, pair)``, float64 (N,) and int64 (N,) (PROTOCOL §9).

    ρ = Spearman (average ranks) between the target's and the runner-up class's m255 over all pixels;
    ``pair`` = :data:`PAIR_FAILED` where ``runner_up_ok`` is false, else :data:`PAIR_DEGENERATE` where
    either map is constant (an all-zero map included), else :data:`PAIR_SCORED`. ρ is NaN unless scored.
    """
    from .randomisation import spearman_maps

    a, b = as_m255(maps), as_m255(runner_up_maps)
    if a.shape != b.shape:
        raise HfusError(f"m255_runner_up: shape {tuple(b.shape)} does not match the maps {tuple(a.shape)}")
    ok = np.asarray(runner_up_ok, dtype=bool)
    if ok.shape != (a.shape[0],):
        raise HfusError(f"runner_up_ok: expected shape ({a.shape[0]},), got {ok.shape}")
    degenerate = (_constant(a) | _constant(b.to(a.device))).cpu().numpy()
    pair = np.where(~ok, PAIR_FAILED, np.where(degenerate, PAIR_DEGENERATE, PAIR_SCORED)).astype(np.int64)
    rho = np.full(a.shape[0], np.nan)
    idx = np.flatnonzero(pair == PAIR_SCORED)
    if idx.size:
        sel = torch.from_numpy(idx)
        rho[idx] = spearman_maps(a.cpu().index_select(0, sel), b.cpu().index_select(0, sel))
    return rho, pair


# ----------------------------------------------------------------------------- registry entry points


def _copies(inputs: ScoringInputs) -> tuple[Any, Any] | None:
    """The randomised copies' maps (N, K, H, W) and ``randomised_ok`` (N, K), if the run made copies."""
    maps, ok = inputs.extras.get("m255_randomised"), inputs.extras.get("randomised_ok")
    if maps is None or ok is None:
        return None
    if maps.ndim == 3:  # one copy in the (N, H, W) layout of randomisation@1
        return maps[:, None], np.asarray(ok).reshape(-1, 1)
    return maps, ok


def shared_evidence_counts(inputs: ScoringInputs) -> np.ndarray:
    """:func:`evidence_counts` of the inputs' maps and ``extras["evidence"]``, computed once per inputs
    object."""
    return inputs.shared("evidence_counts", lambda: evidence_counts(inputs.m255, inputs.extras["evidence"]))


def score_evidence(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``evidence@1``: hit, mass, |P|, |E| and the copies' means and gains, each (N,).

    Reads ``extras["evidence"]`` (N, H, W) 0/255 and, when the run made randomised copies,
    ``extras["m255_randomised"]`` (N, K, H, W) and ``extras["randomised_ok"]`` (N, K); without copies the
    copy values and gains are NaN.
    """
    inputs.require("evidence@1", "evidence")
    counts = shared_evidence_counts(inputs)
    hit, mass, peak = evidence_from_counts(counts)
    n = len(inputs)
    nan = np.full(n, np.nan)
    out = {
        "ev_hit": hit,
        "ev_mass": mass,
        "ev_peak_pixels": np.where(counts[:, 4] > 0, peak, np.nan),  # only where evidence@1 applies
        "ev_evidence_pixels": counts[:, 4].astype(np.float64),
        "ev_hit_copies": nan,
        "ev_mass_copies": nan.copy(),
        "ev_hit_gain": nan.copy(),
        "ev_mass_gain": nan.copy(),
        "ev_copies": np.zeros(n),
    }
    copies = _copies(inputs)
    if copies is not None:
        chit, cmass = copy_evidence_scores(copies[0], copies[1], inputs.extras["evidence"])
        out["ev_hit_gain"], out["ev_hit_copies"], used = evidence_gains(hit, chit)
        out["ev_mass_gain"], out["ev_mass_copies"], _ = evidence_gains(mass, cmass)
        out["ev_copies"] = used.astype(np.float64)
    return out


def score_class_sensitivity(inputs: ScoringInputs, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``class_sensitivity@1``: ``cs_rho``, ``cs_pair`` (status code) and ``cs_runner_up`` (class r), each
    (N,)."""
    inputs.require("class_sensitivity@1", "m255_runner_up", "runner_up_ok", "runner_up")
    rho, pair = class_sensitivity(inputs.m255, inputs.extras["m255_runner_up"], inputs.extras["runner_up_ok"])
    runner_up = np.asarray(
        torch.as_tensor(inputs.extras["runner_up"]).cpu().numpy(), dtype=np.float64
    ).reshape(-1)
    return {"cs_rho": rho, "cs_pair": pair.astype(np.float64), "cs_runner_up": runner_up}


def _count(values: np.ndarray, code: float) -> int:
    return int(np.count_nonzero(np.asarray(values, dtype=np.float64) == code))


def evidence_count_table(per_fold: Sequence[Mapping[str, np.ndarray]]) -> dict[str, int]:
    """``evidence@1/counts`` per arch: images scored (non-empty E and a map), not applicable (empty E), with
    no map (not scored: failed or ``empty_map``), and with no gain (no copy had a value)."""
    e = np.concatenate([np.asarray(v["ev_evidence_pixels"], np.float64) for v in per_fold])
    hit = np.concatenate([np.asarray(v["ev_hit"], np.float64) for v in per_fold])
    gain = np.concatenate([np.asarray(v["ev_hit_gain"], np.float64) for v in per_fold])
    return {
        "n_scored": int(np.count_nonzero(np.isfinite(hit))),
        "n_not_applicable": _count(e, 0.0),
        "n_no_map": int(np.count_nonzero(np.isnan(e))),
        "n_no_gain": int(np.count_nonzero(np.isfinite(hit) & np.isnan(gain))),
    }


def pair_count_table(per_fold: Sequence[Mapping[str, np.ndarray]]) -> dict[str, int]:
    """``class_sensitivity@1/counts`` per arch: scored, degenerate and failed pairs (images with a trained
    map)."""
    pair = np.concatenate([np.asarray(v["cs_pair"], np.float64) for v in per_fold])
    return {
        "n_scored": _count(pair, PAIR_SCORED),
        "n_degenerate": _count(pair, PAIR_DEGENERATE),
        "n_failed": _count(pair, PAIR_FAILED),
    }
