"""The leaderboard (library code only; the commands are in ``cli/leaderboard.py``).

- :mod:`.entries`: entries from result records (with their per-image values), validation, file names, loading;
- :mod:`.tables`: grouping into tables, the ranking gate of PROTOCOL §7.4 (only a ``randomisation@2``
  verdict ``pass`` over K = 3 copies is ranked, ``randomisation@1/pass`` before v1.2;
  ``hfus_xai_bench.compare.gate``), rank ranges, the paired gains of §7.3 (``hfus_xai_bench.compare``),
  identical rows; columns from the registry (evidence-track columns when a row carries ``evidence@1``);
  the built-ins declared n/a on a table's architecture;
- :mod:`.ranks`: per-criterion mean ranks of a table's ranked rows with bootstrap intervals and the
  spread across the criterion's metrics (PROTOCOL §7.4, the rank columns of each table);
- :mod:`.markdown` / :mod:`.html`: ``LEADERBOARD.md`` and a self-contained ``index.html``;
  :mod:`.mdtext`: the small, safe Markdown-to-HTML converter the page uses for its texts;
  :mod:`.plots`: the inline SVG forest plot (HR1, ROAD combined) and DiC/IiC scatter (non-overlapping labels).

The pages are generated from the entries alone and deterministically (sorted, fixed number formats,
no render-time timestamps), so CI fails when the committed pages differ from a fresh render.
"""

from __future__ import annotations

from pathlib import Path

from ..constants import LEADERBOARD_DIR
from .entries import (
    ENTRIES_DIR,
    default_links,
    entry_conflict,
    entry_filename,
    entry_from_result,
    load_entries,
    validate_entry,
    write_entry,
)
from .html import render_html
from .markdown import RULES_MD, render_markdown
from .tables import EXPECTED_IDENTICAL, IDENTICAL_TOL, build_tables, rank_ranges

OUT_DIR = Path(LEADERBOARD_DIR)

__all__ = [
    "ENTRIES_DIR",
    "EXPECTED_IDENTICAL",
    "IDENTICAL_TOL",
    "OUT_DIR",
    "RULES_MD",
    "build_tables",
    "default_links",
    "entry_conflict",
    "entry_filename",
    "entry_from_result",
    "load_entries",
    "rank_ranges",
    "render",
    "render_html",
    "render_markdown",
    "stale_files",
    "validate_entry",
    "write_entry",
]


def render(entries_dir: str | Path = ENTRIES_DIR, out_dir: str | Path = OUT_DIR) -> list[Path]:
    """Regenerate ``LEADERBOARD.md`` and ``index.html`` in ``out_dir`` from ``entries_dir``."""
    entries = load_entries(entries_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "LEADERBOARD.md", out / "index.html"
    md.write_text(render_markdown(entries))
    page.write_text(render_html(entries))
    return [md, page]


def stale_files(entries_dir: str | Path = ENTRIES_DIR, out_dir: str | Path = OUT_DIR) -> list[str]:
    """Pages in ``out_dir`` that differ from a fresh render (empty list: up to date)."""
    entries = load_entries(entries_dir)
    out = Path(out_dir)
    stale = []
    for name, text in (("LEADERBOARD.md", render_markdown(entries)), ("index.html", render_html(entries))):
        path = out / name
        if not path.is_file() or path.read_text() != text:
            stale.append(str(path))
    return stale
