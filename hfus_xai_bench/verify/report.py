"""What ``verify`` reports and how it compares: :class:`VerifyReport`, the tolerances and :func:`diff`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: maps-only metrics and everything aggregated: exact up to float printing (absolute)
MAP_ATOL = 1e-6
#: model-based metrics: relative (absolute below magnitude 1); see hfus_xai_bench.verify
MODEL_RTOL = 1e-4

__all__ = ["MAP_ATOL", "MODEL_RTOL", "VerifyReport", "diff", "first_problems", "mismatches", "model_tol"]


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_submission`: one line per check, failures name the field."""

    folder: Path
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.checks if not ok]

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, ok, detail))

    def render(self) -> str:
        lines = [f"verify {self.folder}"]
        lines += [
            f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}"
            for name, ok, detail in self.checks
        ]
        lines.append("PASSED" if self.ok else f"FAILED ({len(self.failures)} check(s))")
        return "\n".join(lines)


# ------------------------------------------------------------------------------- comparisons


def _close(a: Any, b: Any, rtol: float | None) -> bool:
    """Recorded ``a`` vs recomputed ``b`` (None = NaN)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    tol = MAP_ATOL if rtol is None else rtol * max(1.0, abs(float(b)))
    return abs(float(a) - float(b)) <= tol


def diff(
    recorded: Any, recomputed: Any, path: str, rtol: Callable[[str], float | None] = lambda p: None
) -> list[str]:
    """Every leaf where ``recorded`` and ``recomputed`` disagree.

    Args:
        recorded: a JSON value of the record (dicts, lists, numbers, None for NaN).
        recomputed: the same structure, recomputed.
        path: the name of this value in the messages (``per_image``, ``metrics``...).
        rtol: per leaf path, the relative tolerance (None: :data:`MAP_ATOL` absolute).

    Returns:
        One ``path: recorded …, recomputed … (tolerance …)`` line per disagreeing leaf.
    """
    if isinstance(recomputed, dict):
        if not isinstance(recorded, dict):
            return [f"{path}: recorded {recorded!r}, expected an object"]
        out = []
        for key in sorted(set(recomputed) | set(recorded)):
            sub = f"{path}/{key}"
            if key not in recorded or key not in recomputed:
                out.append(f"{sub}: present in only one of recorded/recomputed")
            else:
                out.extend(diff(recorded[key], recomputed[key], sub, rtol))
        return out
    if isinstance(recomputed, list):
        if not isinstance(recorded, list) or len(recorded) != len(recomputed):
            return [f"{path}: recorded {recorded!r}, recomputed {recomputed!r}"]
        return [
            m
            for i, (a, b) in enumerate(zip(recorded, recomputed, strict=True))
            for m in diff(a, b, f"{path}[{i}]", rtol)
        ]
    tol = rtol(path)
    if _close(recorded, recomputed, tol):
        return []
    what = f"{MAP_ATOL:g} absolute" if tol is None else f"{tol:g} relative"
    return [f"{path}: recorded {recorded!r}, recomputed {recomputed!r} (tolerance {what})"]


def model_tol(model_values: dict[str, float]) -> Callable[[str], float | None]:
    """Per leaf path, the relative tolerance of a per-image field of a model-based metric (``model_values``:
    field name → tolerance), None (absolute :data:`MAP_ATOL`) elsewhere."""

    def tol(path: str) -> float | None:
        return model_values.get(path.rsplit("/", 1)[-1].split("[", 1)[0])

    return tol


def first_problems(problems: list[str]) -> str:
    """The first three problems on one line, and how many more."""
    return "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")


def mismatches(
    first: int,
    sel: np.ndarray,
    recorded: dict[str, np.ndarray],
    fresh: dict[str, np.ndarray],
    rtols: dict[str, float] | None = None,
) -> list[str]:
    """Per value, the first image of ``sel`` whose recomputed value is outside its tolerance.

    Args:
        first: the index of the (arch, fold)'s first row in ``record["per_image"]`` (for the message).
        sel: the rows compared.
        recorded: ``{"<metric id>/<value>": (N, ...) array}`` from the record (NaN = None).
        fresh: the same keys, recomputed.
        rtols: per metric id, the relative tolerance (absolute below magnitude 1); default
            :data:`MODEL_RTOL`.

    Returns:
        One ``per_image[i].<value>: recorded …, recomputed …`` line per value that disagrees.
    """
    out = []
    for key, values in fresh.items():
        metric_id, _, name = key.rpartition("/")  # name: the per_image column
        rtol = (rtols or {}).get(metric_id, MODEL_RTOL)
        rec, new = recorded[key][sel], values[sel]
        close = np.abs(rec - new) <= rtol * np.maximum(1.0, np.abs(new))
        off = ~(close | (np.isnan(rec) & np.isnan(new)))
        if off.any():
            pos = np.argwhere(off)[0]
            out.append(
                f"per_image[{first + sel[pos[0]]}].{name}: recorded {rec[tuple(pos)]!r}, "
                f"recomputed {new[tuple(pos)]!r} (tolerance {rtol:g} relative)"
            )
    return out
