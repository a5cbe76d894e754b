"""Numbers as the leaderboard, `compare` and the tables print them: fixed decimals, signs, ranges."""

from __future__ import annotations

from typing import Any


def fmt_num(x: Any, digits: int = 3) -> str:
    """``digits`` decimals (no "-0.000"); ``n/a`` for None."""
    if x is None:
        return "n/a"
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_signed(x: Any, digits: int = 3) -> str:
    """With a sign (``+0.500``, ``-0.770``); a value that rounds to 0 is ``0.000``."""
    if x is None:
        return "n/a"
    text = f"{x:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


def fe_text(fe: float | None) -> str:
    """FE/img with one decimal; "—" for entries made before the model passes were counted."""
    return "—" if fe is None else fmt_num(fe, 1)


def rank_text(rank: tuple[int, int] | None) -> str:
    if rank is None:
        return "–"
    return str(rank[0]) if rank[0] == rank[1] else f"{rank[0]}–{rank[1]}"
