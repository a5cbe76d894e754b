"""`hfus-bench leaderboard render|add|export`: the entries, the rendered pages and the dataset export."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..constants import LEADERBOARD_DIR, LEADERBOARD_ENTRIES_DIR
from .common import group


def _render(args: argparse.Namespace) -> int:
    from ..leaderboard import render, stale_files

    if args.check:
        stale = stale_files(args.entries, args.out)
        if stale:
            print(f"out of date: {', '.join(stale)}; run `hfus-bench leaderboard render`")
            return 1
        print("leaderboard pages are up to date")
        return 0
    for path in render(args.entries, args.out):
        print(f"wrote {path}")
    return 0


def _add(args: argparse.Namespace) -> int:
    from ..errors import HfusError
    from ..leaderboard import entry_filename, entry_from_result, write_entry
    from ..results import Result

    citation = None
    if args.citation:
        path = Path(args.citation)
        if not path.is_file():
            raise HfusError(
                f"citation file not found: {path} (--citation takes a file holding the method's BibTeX)"
            )
        citation = path.read_text(encoding="utf-8")
    record = Result.load(args.result).record
    if not record["command"]:
        raise HfusError(
            f"{args.result} records no command; leaderboard entries come from `hfus-bench evaluate` "
            "(or `hfus-bench submit`) runs, re-run it from the command line"
        )
    entry = entry_from_result(record, track=args.track, url=args.url, citation=citation, code=args.code)
    replaced = (Path(args.entries) / entry_filename(entry)).is_file()
    path = write_entry(entry, args.entries)
    print(
        f"{'replaced' if replaced else 'wrote'} {path}"
        + (" (the previous entry of that row)" if replaced else "")
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..leaderboard.export import export_leaderboard

    out = export_leaderboard(args.out, args.entries)
    print(f"wrote {out} (a Hugging Face dataset folder: datasets.load_dataset({str(out)!r}))")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``leaderboard render|add|export``."""
    lb = group(sub, "leaderboard", "leaderboard entries and pages", "leaderboard_command")
    rd = lb.add_parser("render", help="regenerate LEADERBOARD.md and index.html from the entries")
    rd.add_argument(
        "--entries",
        default=LEADERBOARD_ENTRIES_DIR,
        help=f"entries folder (default: {LEADERBOARD_ENTRIES_DIR})",
    )
    rd.add_argument("--out", default=LEADERBOARD_DIR, help=f"output folder (default: {LEADERBOARD_DIR})")
    rd.add_argument(
        "--check", action="store_true", help="only check that the pages are up to date (exit 1 if not)"
    )
    rd.set_defaults(func=_render)
    ad = lb.add_parser("add", help="turn a result JSON (from `hfus-bench evaluate`) into a leaderboard entry")
    ad.add_argument("result", help="result JSON written by `hfus-bench evaluate`")
    ad.add_argument(
        "--entries",
        default=LEADERBOARD_ENTRIES_DIR,
        help=f"entries folder (default: {LEADERBOARD_ENTRIES_DIR})",
    )
    ad.add_argument("--track", default=None, help="track name (default: the dataset id of the record)")
    ad.add_argument("--url", default=None, help="the method's paper or home page")
    ad.add_argument("--citation", default=None, help="a file holding the method's BibTeX")
    ad.add_argument("--code", default=None, help="where the method's code lives (path or URL)")
    ad.set_defaults(func=_add)
    ex = lb.add_parser(
        "export", help="write the leaderboard as a Hugging Face dataset folder (parquet + card)"
    )
    ex.add_argument("out", help="output folder")
    ex.add_argument(
        "--entries",
        default=LEADERBOARD_ENTRIES_DIR,
        help=f"entries folder (default: {LEADERBOARD_ENTRIES_DIR})",
    )
    ex.set_defaults(func=_export)
