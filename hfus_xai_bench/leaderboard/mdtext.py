"""A small, safe Markdown-to-HTML converter for the subset the leaderboard's texts use.

Blocks: paragraphs (separated by blank lines) and ``- `` or ``* `` bullet lists (a line that starts with
neither continues the item above). Inline: ```code``` (its content shown as is), ``**bold**``, ``*em*``
and ``[text](url)`` links whose url is relative, an ``#anchor`` or ``http(s)://`` / ``mailto:`` (any
other scheme, e.g. ``javascript:``, stays text). Everything else is HTML-escaped, so no text can inject
markup.
"""

from __future__ import annotations

import html
import re

_CODE = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"\[([^\[\]\n]+)\]\(([^()\s]+)\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", re.S)
_EM = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*]+?)(?<=[^\s*])\*(?![\w*])")
_SAFE_URL = re.compile(r"^(https?://|mailto:|#|[^:/?#]*(?:[/?#]|$))", re.I)
_ITEM = re.compile(r"^[-*] +")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def safe_url(url: str) -> bool:
    """Relative paths, ``#anchors``, ``http(s)://`` and ``mailto:`` urls; nothing with another scheme."""
    return bool(_SAFE_URL.match(url)) and not re.match(r"^\s*(javascript|data|vbscript):", url, re.I)


def _emphasis(escaped: str) -> str:
    escaped = _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", escaped)
    return _EM.sub(lambda m: f"<em>{m.group(1)}</em>", escaped)


def _plain(text: str) -> str:
    """Text without code spans: escape, then links (via placeholders, so their urls stay intact) and
    emphasis."""
    links: list[str] = []

    def link(m: re.Match) -> str:
        label, url = m.group(1), m.group(2)
        if not safe_url(url):
            return m.group(0)
        links.append(f'<a href="{_e(url)}">{_emphasis(_e(label))}</a>')
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(link, text.replace("\x00", ""))
    out = _emphasis(_e(text))
    return re.sub(r"\x00(\d+)\x00", lambda m: links[int(m.group(1))], out)


def inline_html(text: str) -> str:
    """One line (or paragraph) of the subset as HTML: code spans, bold, emphasis, links; the rest escaped."""
    codes: list[str] = []

    def code(m: re.Match) -> str:
        codes.append(f"<code>{_e(m.group(2))}</code>")
        return f"\x01{len(codes) - 1}\x01"

    out = _plain(_CODE.sub(code, text.replace("\x01", "")))
    return re.sub(r"\x01(\d+)\x01", lambda m: codes[int(m.group(1))], out)


def markdown_to_html(text: str) -> str:
    """Paragraphs and bullet lists of :func:`inline_html` text (one block per line of output)."""
    blocks: list[str] = []
    for block in re.split(r"\n[ \t]*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if _ITEM.match(lines[0]):
            items: list[str] = []
            for line in lines:
                if _ITEM.match(line):
                    items.append(_ITEM.sub("", line))
                else:
                    items[-1] += " " + line
            blocks.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in items) + "</ul>")
        else:
            blocks.append(f"<p>{inline_html(' '.join(lines))}</p>")
    return "\n".join(blocks)
