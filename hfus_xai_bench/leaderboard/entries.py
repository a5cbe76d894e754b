"""Leaderboard entries: a result record without ``per_image``, plus ``track``, ``links`` and
``per_image_scores``.

``per_image_scores`` keeps, per architecture and fold, the image ids and one value per image of every
reported output (:func:`hfus_xai_bench.compare.entry_scores`): what the paired gains of PROTOCOL §7.3
and ``hfus-bench compare`` read. Entries made before it was kept have no such section (their gains show
``n/a``). An entry (``leaderboard/entries/<method>.json``; ``<method>.<track>.json`` for tracks other than
``hfus-synth``; ``.models-<arch>-…`` for architectures other than the default one alone; ``.folds-0-1-2-3-4``
before ``.json`` for folds other than fold 0 alone, so a method can have a fold-0 entry and a 5-fold one,
and an entry per architecture, each row in its table) follows ``schemas/entry.schema.json`` (its
``metrics`` section generated from the metric registry, like the result schema's). No two entries may hold
the same method, track, architecture and folds (:func:`entry_keys`): the table would show it twice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..compare import entry_scores
from ..config import require_leaderboard_precision
from ..constants import ARCH_DISPLAY_NAMES, DEFAULT_ARCH, LEADERBOARD_ENTRIES_DIR, SYNTH_DATASET
from ..errors import HfusError
from ..explainers.registry import BUILTIN_METHODS
from ..jsonio import dumps_compact_lists, load_json
from ..results import validate

ENTRIES_DIR = Path(LEADERBOARD_ENTRIES_DIR)


def default_links(record: dict[str, Any]) -> dict[str, str | None]:
    """Links for an entry from the record's method metadata, falling back to the built-in method's
    METADATA."""
    method = record["method"]
    name, source = method["name"], method.get("source", "")
    ref_url = ref_bib = None
    if source == "builtin" and name in BUILTIN_METHODS:
        from ..explainers.loader import load_builtin

        meta = load_builtin(name).metadata
        ref_url, ref_bib = meta.get("url"), meta.get("citation")
    code: str | None = None
    if source == "builtin" and name in BUILTIN_METHODS:
        code = BUILTIN_METHODS[name].partition(":")[0].replace(".", "/") + ".py"
    elif source.startswith("file:"):
        path = Path(source[5:])
        try:
            code = path.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            code = path.name
    elif source:
        code = source
    return {"url": method.get("url") or ref_url, "citation": method.get("citation") or ref_bib, "code": code}


def entry_from_result(
    record: dict[str, Any],
    *,
    track: str | None = None,
    url: str | None = None,
    citation: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """A leaderboard entry: the record minus ``per_image``, plus ``track`` (default: the dataset id),
    ``links`` and ``per_image_scores`` (the per-image values of every reported output, for the paired
    gains). A record of another precision than the leaderboard's (fp32) is refused."""
    validate(record, source="result")
    require_leaderboard_precision(record["options"].get("precision", "fp32"), "this record")
    entry = {k: v for k, v in record.items() if k != "per_image"}
    scores = entry_scores(record)
    if scores is not None:
        entry["per_image_scores"] = scores
    links = default_links(record)
    links.update({k: v for k, v in (("url", url), ("citation", citation), ("code", code)) if v is not None})
    entry["track"] = track or record["dataset"]["id"]
    entry["links"] = links
    entry = json.loads(json.dumps(entry))
    validate_entry(entry)
    return entry


def validate_entry(entry: dict[str, Any], source: str = "entry") -> None:
    """Raise HfusError naming the first field that breaks ``schemas/entry.schema.json``."""
    validate(entry, source=source, name="entry")


def slug(text: str) -> str:
    """File-name and anchor safe text."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "-", text).strip("-") or "x"


def entry_filename(entry: dict[str, Any]) -> str:
    """``<method>.json`` on the synthetic track, ``<method>.<track>.json`` on others; architectures other than
    the default one alone add ``.models-<a1>-<a2>…`` (e.g. ``gradcam.models-googlenet.json``), folds other
    than fold 0 alone ``.folds-<f1>-<f2>…`` (e.g. ``gradcam.folds-0-1-2-3-4.json``)."""
    name = slug(entry["method"]["name"])
    if entry["track"] != SYNTH_DATASET:
        name += f".{slug(entry['track'])}"
    models = list(entry["options"]["models"])
    if models != [DEFAULT_ARCH]:
        name += ".models-" + "-".join(slug(m) for m in models)
    folds = [int(f) for f in entry["options"]["folds"]]
    if folds != [0]:
        name += ".folds-" + "-".join(map(str, folds))
    return f"{name}.json"


def entry_keys(entry: dict[str, Any]) -> set[tuple[str, str, str, tuple[int, ...]]]:
    """(method, track, architecture, folds) of each table row the entry makes; unique over the entries."""
    method, track = entry["method"]["name"], entry["track"]
    folds = tuple(int(f) for f in entry["options"]["folds"])
    return {(method, track, arch, folds) for arch in entry["options"]["models"]}


def _key_text(key: tuple[str, str, str, tuple[int, ...]]) -> str:
    method, track, arch, folds = key
    return f"{method!r} on {track!r}, {ARCH_DISPLAY_NAMES.get(arch, arch)}, folds {list(folds)}"


def entry_conflict(entry: dict[str, Any], entries_dir: str | Path = ENTRIES_DIR) -> str | None:
    """Why ``entry`` cannot be written to ``entries_dir`` (another file there holds one of its rows,
    :func:`entry_keys`), or None; the file of its own name would be replaced."""
    keys, name = entry_keys(entry), entry_filename(entry)
    for other in sorted(Path(entries_dir).glob("*.json")):
        both = keys & entry_keys(load_json(other, "leaderboard entry")) if other.name != name else set()
        if both:
            return (
                f"{other} already holds {_key_text(min(both))}; remove it first, or add a record of the "
                "other architectures or folds only"
            )
    return None


def write_entry(entry: dict[str, Any], entries_dir: str | Path = ENTRIES_DIR) -> Path:
    """Write the entry as :func:`entry_filename` in ``entries_dir`` (:func:`dumps_compact_lists`: a list of
    per-image values on one line), replacing the file of that name; an HfusError where
    :func:`entry_conflict` says why not."""
    validate_entry(entry)
    path = Path(entries_dir) / entry_filename(entry)
    conflict = entry_conflict(entry, entries_dir)
    if conflict:
        raise HfusError(conflict)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_compact_lists(entry) + "\n")
    return path


def load_entries(entries_dir: str | Path = ENTRIES_DIR) -> list[dict[str, Any]]:
    """Every ``*.json`` in ``entries_dir``, validated, sorted by file name; one entry per method, track,
    architecture and set of folds."""
    folder = Path(entries_dir)
    if not folder.is_dir():
        raise HfusError(f"entries folder not found: {folder}; pass --entries")
    entries, seen = [], {}
    for path in sorted(folder.glob("*.json")):
        entry = load_json(path, "leaderboard entry")
        validate_entry(entry, source=str(path))
        if path.name != entry_filename(entry):
            raise HfusError(
                f"{path}: an entry for {entry['method']['name']!r} on {entry['track']!r} must be named "
                f"{entry_filename(entry)}; rename it"
            )
        for key in sorted(entry_keys(entry)):
            if key in seen:
                raise HfusError(f"{path}: a second entry for {_key_text(key)} (first: {seen[key]}); keep one")
            seen[key] = path.name
        entries.append(entry)
    return entries
