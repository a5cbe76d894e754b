"""The metric reference (docs/METRICS.md), generated from the metric registry: one place for each definition.

``make docs`` writes it (:func:`write_metrics_doc`); ``tests/test_docs.py`` fails when the file in the
repository differs from :func:`metrics_markdown`, as ``tests/test_leaderboard_pages.py`` does for
LEADERBOARD.md.
"""

from __future__ import annotations

import math
from pathlib import Path

from .metrics import registry

__all__ = ["METRICS_DOC", "metrics_markdown", "write_metrics_doc"]

#: the generated file, relative to a checkout of the repository
METRICS_DOC = "docs/METRICS.md"

_HEADER = """# Metrics

<!-- generated from hfus_xai_bench/metrics/registry.py by `make docs`; do not edit by hand -->

Every metric is one registry entry (`id@version`) plus one pure function. `needs`: `maps` metrics are
re-scored exactly from saved maps (`hfus-bench verify`), `model` metrics re-run the model (within a
tolerance, see [REPRODUCIBILITY.md](REPRODUCIBILITY.md)). Each reported number is the mean over the
evaluated images of one (architecture, fold), then over folds, with a bootstrap 95 % CI; the normative
text is [PROTOCOL.md](PROTOCOL.md).

| output | column | range | better | unit | definition |
|---|---|---|---|---|---|
"""


def _num(x: float) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:g}".replace("-", "−")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def metrics_markdown() -> str:
    """docs/METRICS.md: one summary row per reported output, then one section per metric."""
    rows = [
        f"| `{m.key(o)}` | {_cell(o.label or '—')} | {_num(o.range[0])} … {_num(o.range[1])} | "
        f"{'—' if o.direction == 'none' else o.direction} | {_cell(o.unit or '—')} | {_cell(o.definition)} |"
        for m, o in registry.outputs()
    ]
    parts = [_HEADER + "\n".join(rows) + "\n"]
    for m in registry.metrics():
        parts.append(
            f"\n## `{m.id}`\n\n{m.category}; needs {m.needs}; scope {m.scope}"
            f"{'' if m.required else '; optional'}\n\n{_cell(m.description)}\n\n"
            "| per-image value | shape | definition |\n|---|---|---|\n"
            + "\n".join(
                f"| `{v.name}` | {'×'.join(map(str, v.shape)) or 'scalar'} | {_cell(v.definition)} |"
                for v in m.values
            )
            + "\n"
        )
    return "".join(parts)


def write_metrics_doc(repo: str | Path = ".") -> Path:
    """Write :data:`METRICS_DOC` under ``repo``; returns its path."""
    path = Path(repo) / METRICS_DOC
    path.write_text(metrics_markdown(), encoding="utf-8")
    return path
