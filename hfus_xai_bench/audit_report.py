"""The audit's report as text (PROTOCOL §3): what was compared, a row per method × score, the verdicts.
The seed never appears in it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .constants import AUDIT_ALPHA, SYNTH_DATASET

if TYPE_CHECKING:
    from .audit import AuditReport


def _num(value: float, sign: bool = False) -> str:
    if not np.isfinite(value):
        return "—"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def _lost(failed: int) -> str:
    return f" ({failed} failed)" if failed else ""


def _ci(pair: tuple[float, float], sign: bool = False) -> str:
    return f"[{_num(pair[0], sign)}, {_num(pair[1], sign)}]"


def format_report(report: AuditReport) -> str:
    """The audit (:func:`hfus_xai_bench.audit.audit`'s report) as text."""
    from tabulate import tabulate

    level = report.level
    ckpt = report.checkpoint
    lines = [
        f"audit (PROTOCOL §3): {SYNTH_DATASET} generator v{report.version}; public = {report.revision} fold "
        f"{report.fold} test split ({report.n_public} images), private = a build at an unpublished seed "
        f"({report.n_private} images, seed not shown)",
        f"checkpoint: {report.arch} {ckpt.get('name')} (sha256 {str(ckpt.get('sha256'))[:12]}…, trained on "
        f"{ckpt.get('dataset_revision')}), the same on both sides",
        f"d = public mean − private mean; d_ref = mean d of {', '.join(report.references)}; CI at level "
        f"1 − {AUDIT_ALPHA:g}/m = {100 * level:.2f} % (m = {report.m} = methods × scores); flagged when its "
        "lower bound > 0",
        "",
    ]
    table = [
        [
            row.method + (" (ref.)" if row.reference else ""),
            row.score,
            f"{_num(row.public_mean)} {_ci(row.public_ci)} n={row.n_public}{_lost(row.failed_public)}",
            f"{_num(row.private_mean)} {_ci(row.private_ci)} n={row.n_private}{_lost(row.failed_private)}",
            _num(row.d, True),
            f"{_num(row.excess, True)} {_ci((row.low, row.high), True)}",
            row.verdict,
        ]
        for row in report.rows
    ]
    headers = ["method", "score", "public (95 % CI)", "private (95 % CI)", "d", "d − d_ref (CI)", "audit"]
    lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    flagged = sorted({row.method for row in report.flagged})
    blind = sorted({row.method for row in report.not_auditable})
    lines.append("")
    lines.append(
        f"flagged: {', '.join(flagged)} (public advantage beyond the references')"
        if flagged
        else "no method flagged"
    )
    if blind:
        lines.append(
            f"not auditable: {', '.join(blind)} (no values on a side: a method that fails where it cannot "
            "look its answer up does not pass; exit status 1)"
        )
    return "\n".join(lines)
