"""Index files: the general escape hatch of the importer (``--index FILE``) and what ``--write-index`` writes.

An index is a table with one row per image (CSV, TSV or JSON; columns in docs/DATASET.md):

=============  =========================================================================================
``image``      image path, relative to the archive folder (or absolute) — required
``class``      AD, CG, PS, ST, a class name (``Atopic dermatitis``) or a ``--class-map`` name — required
``epidermis``  binary mask file(s) of the structure (``;``-separated); ``x.mat#VAR`` picks a variable
``sleb``       ditto
``tumor``      ditto
``mask``       untyped mask file(s): label image, colour mask, ``.mat`` label array or structure variables
``mask_values`` code → structure map of the label masks (``1=epidermis,2=sleb,3=tumor`` or
               ``#ff0000=epidermis,...``); every row that gives it must give the same map
``image_id``   the image's id in the dataset (default: the file stem)
``group_id``   its patient/session group for the folds (default: ``YYYY-MM-DD_<series>`` of the id)
=============  =========================================================================================

Empty cells mean "none" / "default". JSON: a list of objects with these keys (or ``{"images": [...]}``),
mask cells may be lists.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..constants import CLASSES
from ..errors import HfusError
from ..hashing import sha256_file
from .discovery import ImageEntry
from .layouts import IGNORE, STRUCTURES, ImportOptions, class_of_value, parse_mask_colors, parse_mask_values
from .masks import MAT_EXT, MaskSource, mapping_text, mat_sources

COLUMNS: tuple[str, ...] = ("image", "class", *STRUCTURES, "mask", "mask_values", "image_id", "group_id")
_ALIASES = {
    "path": "image",
    "file": "image",
    "filename": "image",
    "image_path": "image",
    "img": "image",
    "label": "class",
    "class_name": "class",
    "diagnosis": "class",
    "group_name": "class",
    "epi": "epidermis",
    "epidermis_mask": "epidermis",
    "sleb_mask": "sleb",
    "tumour": "tumor",
    "lesion": "tumor",
    "tumor_mask": "tumor",
    "tumour_mask": "tumor",
    "label_mask": "mask",
    "label_image": "mask",
    "mask_path": "mask",
    "segmentation": "mask",
    "labels": "mask",
    "id": "image_id",
    "group": "group_id",
    "patient": "group_id",
    "patient_id": "group_id",
    "session": "group_id",
}
_EXTS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


def _column(name: str) -> str:
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    return _ALIASES.get(key, key)


def _read_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(rows, number of the first data row as a user counts it)."""
    ext = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise HfusError(f"cannot read the index {path} ({err}); check the --index path") from err
    if ext == ".json":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise HfusError(f"index {path.name} is not valid JSON ({err})") from err
        if isinstance(data, dict) and isinstance(data.get("images"), list):
            data = data["images"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise HfusError(f'index {path.name} must be a JSON list of objects (or {{"images": [...]}})')
        return data, 1
    if ext not in _EXTS:
        raise HfusError(f"index {path.name}: use a .csv, .tsv or .json file (columns in docs/DATASET.md)")
    reader = csv.DictReader(io.StringIO(text), delimiter=_EXTS[ext])
    rows = [r for r in reader if any((v or "").strip() for v in r.values() if isinstance(v, str))]
    if reader.fieldnames is None:
        raise HfusError(f"index {path.name} is empty; it needs a header row with at least image,class")
    return rows, 2


def _cells(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).replace("|", ";").split(";") if v.strip()]


def _split_var(cell: str) -> tuple[str, str | None]:
    if "#" in cell:
        p, var = cell.rsplit("#", 1)
        if p.lower().endswith(MAT_EXT):
            return p, var
    return cell, None


def parse_mapping(text: str) -> tuple[dict, bool]:
    """A ``mask_values`` cell: (mapping, is colour)."""
    keys = [e.split("=", 1)[0].strip() for e in str(text).replace(";", ",").split(",") if "=" in e]
    if any(not k.isdigit() for k in keys):
        return parse_mask_colors(text), True
    return parse_mask_values(text), False


def _check_columns(name: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        raise HfusError(f"index {name} has no rows")
    cols = {_column(k) for r in rows for k in r if k is not None}
    unknown = sorted(cols - set(COLUMNS))
    if unknown:
        raise HfusError(f"index {name}: unknown column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
    missing_cols = [c for c in ("image", "class") if c not in cols]
    if missing_cols:
        raise HfusError(
            f"index {name} has no column {' or '.join(missing_cols)}; columns: {', '.join(COLUMNS)}"
        )


def _resolve(root: Path, cell: str) -> tuple[Path, str]:
    """(full path, path relative to ``root`` where it is inside it) of an index cell."""
    q = Path(cell)
    full = q if q.is_absolute() else root / q
    try:
        rel = full.relative_to(root).as_posix()
    except ValueError:
        rel = str(full)
    return full, rel


def _optional(row: dict[str, Any], col: str) -> str | None:
    return (str(row[col]).strip() or None) if row.get(col) is not None else None


@dataclass
class _Problems:
    """What is wrong with an index, collected over all rows."""

    missing: list[str] = field(default_factory=list)
    bad_class: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def message(self, root: Path) -> str:
        out = list(self.errors)
        if self.missing:
            more = " …" if len(self.missing) > 8 else ""
            out.insert(
                0,
                f"{len(self.missing)} file(s) listed do not exist under {root} (paths are relative to the "
                f"archive folder): {', '.join(self.missing[:8])}{more}",
            )
        if self.bad_class:
            out.append(
                f"unknown class in {', '.join(self.bad_class[:8])}; use AD/CG/PS/ST or a class name, or map "
                'the names with --class-map "NAME=AD,..."'
            )
        return "; ".join(out)


def _add_masks(
    entry: ImageEntry, row: dict[str, Any], n: int, root: Path, opts: ImportOptions, bad: _Problems
) -> None:
    """Attach the mask files of an index row (columns epidermis / sleb / tumor / mask) to ``entry``."""
    for col in (*STRUCTURES, "mask"):
        for cell in _cells(row.get(col)):
            file, var = _split_var(cell)
            fpath, frel = _resolve(root, file)
            if not fpath.is_file():
                bad.missing.append(f"row {n} {col}: {file}")
                continue
            structure = None if col == "mask" else col
            if fpath.suffix.lower() == MAT_EXT:
                srcs = mat_sources(str(fpath), frel, structure, opts, var)
            else:
                srcs = [MaskSource(str(fpath), frel, None, structure)]
            for s in srcs:
                entry.attach(s)


def _entry(row: dict[str, Any], n: int, root: Path, opts: ImportOptions, bad: _Problems) -> ImageEntry | None:
    """The image of an index row with its masks (None: a broken or ignored row)."""
    image = _cells(row.get("image"))
    if len(image) != 1:
        bad.errors.append(f"row {n}: needs exactly one image path")
        return None
    ipath, irel = _resolve(root, image[0])
    if not ipath.is_file():
        bad.missing.append(f"row {n}: {image[0]}")
    label = class_of_value(str(row.get("class") or "").strip(), opts.class_map)
    if label is None:
        bad.bad_class.append(f"row {n}: {str(row.get('class') or '')!r}")
        return None
    if label == IGNORE:
        return None
    entry = ImageEntry(
        ipath,
        irel,
        ipath.stem,
        label,
        image_id=_optional(row, "image_id"),
        group_id=_optional(row, "group_id"),
    )
    _add_masks(entry, row, n, root, opts, bad)
    return entry


def read_index(path: str | Path, root: Path, opts: ImportOptions) -> tuple[list[ImageEntry], dict]:
    """Read and check an index against the archive at ``root``: (images, manifest record).

    Every problem (unknown column, unknown class, missing file, conflicting maps) is collected and
    raised as one ``HfusError`` naming the rows.
    """
    p = Path(path)
    rows, first = _read_rows(p)
    _check_columns(p.name, rows)
    out: list[ImageEntry] = []
    bad = _Problems()
    mapping = None
    for n, raw in enumerate(rows, start=first):
        row = {_column(k): v for k, v in raw.items() if k is not None}
        entry = _entry(row, n, root, opts, bad)
        if entry is None:
            continue
        mv = str(row.get("mask_values") or "").strip()
        if mv:
            m = parse_mapping(mv)
            if mapping is not None and m != mapping:
                bad.errors.append(
                    f"row {n}: mask_values {mv!r} differs from the earlier rows (one map per archive)"
                )
            mapping = mapping or m
        out.append(entry)
    if bad.missing or bad.bad_class or bad.errors:
        raise HfusError(f"index {p.name}: " + bad.message(root))
    info = {"path": p.name, "sha256": sha256_file(p), "rows": len(rows)}
    if mapping is not None:
        info["mask_values"] = {"mapping": mapping[0], "colour": mapping[1]}
    return out, info


def _cell(srcs: list[MaskSource]) -> str:
    return ";".join(s.rel + (f"#{s.var}" if s.var else "") for s in srcs)


def index_rows(found) -> list[dict[str, str]]:
    """The rows of the index a :class:`~.discovery.Discovery` amounts to (what ``--write-index`` writes)."""
    ids, groups = found.image_ids(), found.groups()
    mv = ""
    if found.encoding:
        mv = mapping_text(
            {k: v for k, v in found.encoding["mapping"].items()}, found.encoding["kind"] == "colour"
        )
    rows = []
    for e, i, g in zip(found.images, ids, groups, strict=True):
        row = {"image": e.rel, "class": CLASSES[e.label]}
        row.update({s: _cell(e.masks.get(s, [])) for s in STRUCTURES})
        row["mask"] = _cell(e.coded)
        row["mask_values"] = mv if e.coded else ""
        row["image_id"], row["group_id"] = i, g
        rows.append(row)
    return rows


def write_index(found, path: str | Path) -> Path:
    """Write the index of ``found`` as CSV / TSV / JSON (by extension); edit it, re-run with ``--index``."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in (".csv", ".tsv", ".json"):
        raise HfusError(f"--write-index {p}: use a .csv, .tsv or .json file name")
    rows = index_rows(found)
    p.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".json":
        p.write_text(json.dumps(rows, indent=1) + "\n")
    else:
        buf = io.StringIO()
        w = csv.DictWriter(
            buf, fieldnames=list(COLUMNS), delimiter="," if ext == ".csv" else "\t", lineterminator="\n"
        )
        w.writeheader()
        w.writerows(rows)
        p.write_text(buf.getvalue())
    return p
