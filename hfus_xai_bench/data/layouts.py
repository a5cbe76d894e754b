"""Naming rules of the archive importer: class names, structure words, mask folders, import options.

Everything a user can say about an archive's layout lives in :class:`ImportOptions`, built from
command-line flag values (``parse_class_map("Atopic dermatitis=AD,...")``, ``parse_mask_values``,
``parse_mask_colors``) and/or a small JSON (or YAML) layout file (``load_layout``), combined by
:func:`import_options`, which refuses two sources that disagree. Parse errors are ``HfusError``
messages that show the expected syntax.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..constants import CLASSES
from ..errors import HfusError
from ..hashing import sha256_file

STRUCTURES: tuple[str, ...] = ("epidermis", "sleb", "tumor")
#: A class-map value (or layout ``class_map`` value) that drops the images of a folder.
IGNORE = -1
IGNORE_WORDS = frozenset({"ignore", "skip", "-", "none"})
BACKGROUND_WORDS = frozenset({"background", "bg", "none", "ignore", "-", "0"})

#: Words (lower case, singular) that name a structure in a mask file suffix, a mask folder or a
#: ``.mat`` variable.
STRUCTURE_WORDS: dict[str, str] = {
    "epidermis": "epidermis",
    "epi": "epidermis",
    "entryecho": "epidermis",
    "entry_echo": "epidermis",
    "sleb": "sleb",
    "tumor": "tumor",
    "tumour": "tumor",
    "tumors": "tumor",
    "tumours": "tumor",
    "lesion": "tumor",
    "lesions": "tumor",
}
#: Generic mask-file suffixes (the mask is *untyped*: binary, label image or colour mask).
GENERIC_MASK_WORDS: tuple[str, ...] = (
    "masks",
    "mask",
    "segmentations",
    "segmentation",
    "seg",
    "labels",
    "label",
    "lbl",
    "gt",
    "annotations",
    "annotation",
    "groundtruth",
)
#: Folder names (lower case, also as one word of a longer name: ``AD masks``) of mask trees.
MASK_DIR_WORDS = frozenset(
    {
        "mask",
        "masks",
        "segmentation",
        "segmentations",
        "seg",
        "segs",
        "label",
        "labels",
        "annotation",
        "annotations",
        "gt",
        "groundtruth",
        "ground_truth",
        "ground-truth",
    }
)

#: Class names understood in folder names (word sequences, singular, "tumour" spelt "tumor").
CLASS_ALIASES: dict[str, tuple[str, ...]] = {
    "AD": ("atopic dermatitis", "atopic eczema", "atopic", "dermatitis", "eczema"),
    "CG": (
        "control group",
        "control",
        "healthy",
        "healthy control",
        "healthy skin",
        "healthy volunteer",
        "normal",
        "normal skin",
    ),
    "PS": ("psoriasis", "psoriases", "psoriatic"),
    "ST": ("skin tumor", "tumor", "skin lesion", "lesion", "neoplasm", "skin neoplasm"),
}
_CLASS_TOKEN_RE = re.compile(r"(?<![A-Za-z])(AD|CG|PS|ST)(?![A-Za-z])")
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def words(name: str) -> tuple[str, ...]:
    """``"Atopic_Dermatitis"``, ``"atopicDermatitis"``, ``"Skin tumours"`` → lower-case singular words."""
    out = []
    for token in re.findall(r"[^\W_]+", name):
        for w in _WORD_RE.findall(token) if token.isascii() else [token]:
            w = w.lower()
            if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "is", "us")):
                w = w[:-1]
            out.append("tumor" if w == "tumour" else w)
    return tuple(out)


def norm_key(name: str) -> str:
    """The form in which folder names and class-map keys are compared."""
    return " ".join(words(name)) or name.strip().lower()


def _contains(seq: tuple[str, ...], sub: tuple[str, ...]) -> bool:
    n = len(sub)
    return any(seq[i : i + n] == sub for i in range(len(seq) - n + 1))


_ALIAS_WORDS = {c: [words(a) for a in names] for c, names in CLASS_ALIASES.items()}


def class_of_folder(name: str, class_map: dict[str, int] | None = None) -> tuple[int | None, str]:
    """(class index, ``IGNORE`` or ``None``; the rule that matched) for one folder name.

    Rules, first match wins: the class map (exact, case/separator-insensitive); the code itself
    (``AD``, ``ps``); an upper-case code token (``AD_images``, ``Atopic dermatitis (AD)``); a class
    name from ``CLASS_ALIASES`` as a word sequence of the folder name (``Healthy controls``).
    """
    key = norm_key(name)
    if class_map and key in class_map:
        return class_map[key], "class-map"
    up = name.strip().upper()
    if up in CLASSES:
        return CLASSES.index(up), "code"
    tokens = set(_CLASS_TOKEN_RE.findall(name))
    if len(tokens) == 1:
        return CLASSES.index(tokens.pop()), "code token"
    ws = words(name)
    hits = {c for c, aliases in _ALIAS_WORDS.items() if any(_contains(ws, a) for a in aliases)}
    if len(hits) == 1:
        return CLASSES.index(hits.pop()), "class name"
    return None, ""


def class_of_stem(stem: str, class_map: dict[str, int] | None = None) -> int | None:
    """A class token in a file stem (``33PS``), or a one-word class-map key as a token."""
    tokens = {CLASSES.index(t) for t in _CLASS_TOKEN_RE.findall(stem)}
    if class_map:
        parts = {p.lower() for p in re.findall(r"[A-Za-z]+", stem)}
        tokens |= {v for k, v in class_map.items() if " " not in k and k in parts}
    return tokens.pop() if len(tokens) == 1 else None


def class_of_value(value: str, class_map: dict[str, int] | None = None) -> int | None:
    """A class given as text (an index ``class`` column): code, class name or class-map key."""
    label, _ = class_of_folder(str(value), class_map)
    return label


def structure_of_word(name: str, extra: dict[str, str] | None = None) -> str | None:
    """The structure a folder / suffix / variable name denotes (``Epidermis``, ``tumour masks``)."""
    low = name.strip().lower()
    if extra and low in extra:
        return extra[low]
    if low in STRUCTURE_WORDS:
        return STRUCTURE_WORDS[low]
    ws = [w for w in words(name) if w not in MASK_DIR_WORDS]
    if len(ws) == 1 and ws[0] in STRUCTURE_WORDS:
        return STRUCTURE_WORDS[ws[0]]
    if extra and len(ws) == 1 and ws[0] in extra:
        return extra[ws[0]]
    return None


def structure_of_variable(name: str, extra: dict[str, str] | None = None) -> str | None:
    """The structure a MATLAB variable name denotes (``epidermis``, ``mask_SLEB``, ``tumourMask``)."""
    found = {STRUCTURE_WORDS[w] for w in words(name.replace(".", "_")) if w in STRUCTURE_WORDS}
    if extra:
        found |= {s for w, s in extra.items() if w in {x.lower() for x in words(name)}}
    return found.pop() if len(found) == 1 else None


def is_mask_dir(name: str, extra: frozenset[str] = frozenset()) -> bool:
    low = name.strip().lower()
    return low in MASK_DIR_WORDS or low in extra or any(w in MASK_DIR_WORDS for w in words(name))


# ----------------------------------------------------------------------------- flag-value parsers


def _split_entries(text: str) -> list[str]:
    # commas / semicolons separate entries, except inside parentheses (rgb(255,0,0))
    return [e.strip() for e in re.split(r"[,;](?![^()]*\))", text) if e.strip()]


def _resolve_class(value: str, what: str) -> int:
    v = value.strip()
    if v.lower() in IGNORE_WORDS:
        return IGNORE
    label, _ = class_of_folder(v)
    if label is None:
        raise HfusError(f"{what}: {value!r} is not a class; use one of {', '.join(CLASSES)} (or 'ignore')")
    return label


def _pairs(text: str | dict, name: str, syntax: str, hint: str, rsplit: bool = False) -> list[tuple]:
    """(key, value) pairs of a flag value ``KEY=VALUE,...`` (``syntax``) or of a layout file's mapping."""
    if isinstance(text, dict):
        return list(text.items())
    if not isinstance(text, str):
        raise HfusError(f"{name} must be a string {syntax},... or a mapping, got {type(text).__name__}")
    items = []
    for entry in _split_entries(text):
        if "=" not in entry:
            raise HfusError(
                f"--{name.replace('_', '-')} entry {entry!r} has no '='; write {syntax} pairs{hint}"
            )
        items.append(tuple(entry.rsplit("=", 1) if rsplit else entry.split("=", 1)))
    return items


def parse_class_map(text: str | dict | None) -> dict[str, int]:
    """``"Atopic dermatitis=AD,Healthy volunteers=CG,Other=ignore"`` → {normalised name: class index}.

    Keys are compared with folder names case- and separator-insensitively (and, when one word,
    with letter tokens of file stems). ``ignore`` leaves the folder's images out.
    """
    if text is None:
        return {}
    hint = (
        " separated by commas, "
        'e.g. --class-map "Atopic dermatitis=AD,Healthy=CG,Psoriasis=PS,Skin tumours=ST"'
    )
    out: dict[str, int] = {}
    for k, v in _pairs(text, "class_map", "NAME=CODE", hint):
        key = norm_key(str(k))
        if not str(k).strip():
            raise HfusError("--class-map has an empty name before '='")
        label = _resolve_class(str(v), f"--class-map {str(k).strip()}")
        if key in out and out[key] != label:
            raise HfusError(f"--class-map maps {str(k).strip()!r} to two classes; give each name once")
        out[key] = label
    return out


def _parse_structure(value: str, what: str) -> str | None:
    v = value.strip().lower()
    if v in BACKGROUND_WORDS:
        return None
    s = STRUCTURE_WORDS.get(v) or STRUCTURE_WORDS.get(" ".join(words(v)))
    if s is None:
        raise HfusError(f"{what}: {value!r} is not a structure; use epidermis, sleb, tumor or background")
    return s


def parse_mask_values(text: str | dict | None) -> dict[int, str | None] | None:
    """``"1=epidermis,2=sleb,3=tumor,4=background"`` → {1: "epidermis", …, 4: None}.

    Value 0 is background unless listed. Several values may name one structure.
    """
    if text is None:
        return None
    hint = ', e.g. --mask-values "1=epidermis,2=sleb,3=tumor"'
    out: dict[int, str | None] = {}
    for k, v in _pairs(text, "mask_values", "VALUE=STRUCTURE", hint):
        try:
            value = int(str(k).strip())
        except ValueError:
            raise HfusError(f"--mask-values: {str(k).strip()!r} is not an integer pixel value") from None
        if value < 0:
            raise HfusError(f"--mask-values: pixel value {value} is negative")
        s = _parse_structure(str(v), f"--mask-values {value}")
        if value in out and out[value] != s:
            raise HfusError(f"--mask-values gives value {value} twice with different structures")
        out[value] = s
    if not out:
        raise HfusError('--mask-values is empty; e.g. --mask-values "1=epidermis,2=sleb,3=tumor"')
    out.setdefault(0, None)
    return out


def parse_color(text: str) -> tuple[int, int, int]:
    """``#ff0000``, ``#f00``, ``255/0/0``, ``rgb(255,0,0)`` or a colour name → (r, g, b)."""
    from PIL import ImageColor

    t = text.strip()
    m = re.fullmatch(r"(\d{1,3})[/:](\d{1,3})[/:](\d{1,3})", t)
    if m:
        rgb = tuple(int(g) for g in m.groups())
        if max(rgb) > 255:
            raise HfusError(f"--mask-colors: {t!r} has a channel above 255")
        return rgb  # type: ignore[return-value]
    try:
        return tuple(ImageColor.getrgb(t)[:3])  # type: ignore[return-value]
    except ValueError:
        raise HfusError(
            f"--mask-colors: {t!r} is not a colour; write #rrggbb, r/g/b or a name such as red"
        ) from None


def parse_mask_colors(text: str | dict | None) -> dict[tuple[int, int, int], str | None] | None:
    """``"#ff0000=epidermis,#00ff00=sleb,0/0/255=tumor"`` → {(255, 0, 0): "epidermis", …}.

    Black is background unless listed.
    """
    if text is None:
        return None
    hint = ', e.g. --mask-colors "#ff0000=epidermis,#00ff00=sleb,#0000ff=tumor"'
    out: dict[tuple[int, int, int], str | None] = {}
    for k, v in _pairs(text, "mask_colors", "COLOUR=STRUCTURE", hint, rsplit=True):
        rgb = parse_color(str(k))
        s = _parse_structure(str(v), f"--mask-colors {str(k).strip()}")
        if rgb in out and out[rgb] != s:
            raise HfusError(f"--mask-colors gives colour {str(k).strip()} twice with different structures")
        out[rgb] = s
    if not out:
        raise HfusError('--mask-colors is empty; e.g. --mask-colors "#ff0000=epidermis,#00ff00=sleb"')
    out.setdefault((0, 0, 0), None)
    return out


def _parse_word_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise HfusError(f"layout {what} must be a mapping WORD: STRUCTURE")
    out = {}
    for k, v in value.items():
        s = _parse_structure(str(v), f"layout {what} {k}")
        if s is None:
            raise HfusError(f"layout {what} {k}: map words to epidermis, sleb or tumor")
        out[str(k).strip().lower()] = s
    return out


def _parse_mat_variables(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise HfusError('layout mat_variables must be a mapping VARIABLE: STRUCTURE or "label"')
    out = {}
    for k, v in value.items():
        if str(v).strip().lower() in ("label", "labels"):
            out[str(k)] = "label"
        else:
            s = _parse_structure(str(v), f"layout mat_variables {k}")
            if s is None:
                raise HfusError(f"layout mat_variables {k}: map variables to epidermis, sleb, tumor or label")
            out[str(k)] = s
    return out


# ------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class ImportOptions:
    """What the user told the importer about the archive's layout (all optional)."""

    class_map: dict[str, int] = field(default_factory=dict)
    mask_values: dict[int, str | None] | None = None
    mask_colors: dict[tuple[int, int, int], str | None] | None = None
    structure_names: dict[str, str] = field(default_factory=dict)
    mask_dirs: frozenset[str] = frozenset()
    mat_variables: dict[str, str] = field(default_factory=dict)
    index: Path | None = None
    #: option name → where it came from ("--class-map", "layout FILE", …), for the manifest
    sources: dict[str, str] = field(default_factory=dict)
    layout_file: dict[str, str] | None = None  # {"path", "sha256"}

    def to_manifest(self) -> dict:
        """A JSON-able record of the options (the manifest's ``import.options``)."""
        return {
            "class_map": {
                k: ("ignore" if v == IGNORE else CLASSES[v]) for k, v in sorted(self.class_map.items())
            },
            "mask_values": None
            if self.mask_values is None
            else {str(k): v or "background" for k, v in sorted(self.mask_values.items())},
            "mask_colors": None
            if self.mask_colors is None
            else {
                "#{:02x}{:02x}{:02x}".format(*k): v or "background"
                for k, v in sorted(self.mask_colors.items())
            },
            "structure_names": dict(sorted(self.structure_names.items())),
            "mask_dirs": sorted(self.mask_dirs),
            "mat_variables": dict(sorted(self.mat_variables.items())),
            "index": None if self.index is None else self.index.name,
            "layout_file": self.layout_file,
            "given_by": dict(sorted(self.sources.items())),
        }

    def flags_text(self) -> str:
        """The options in command-line form (for the dataset card)."""
        m = self.to_manifest()
        out = []
        if m["class_map"]:
            out.append('--class-map "' + ",".join(f"{k}={v}" for k, v in m["class_map"].items()) + '"')
        if m["mask_values"]:
            out.append('--mask-values "' + ",".join(f"{k}={v}" for k, v in m["mask_values"].items()) + '"')
        if m["mask_colors"]:
            out.append('--mask-colors "' + ",".join(f"{k}={v}" for k, v in m["mask_colors"].items()) + '"')
        if self.layout_file:
            out.append(f"--layout {self.layout_file['path']}")
        if self.index is not None:
            out.append(f"--index {self.index.name}")
        return " ".join(out)


LAYOUT_KEYS = (
    "class_map",
    "mask_values",
    "mask_colors",
    "structure_names",
    "mask_dirs",
    "mat_variables",
    "index",
)


def load_layout(path: str | Path) -> dict[str, Any]:
    """Read a layout file: JSON (``.json``), or YAML (``.yaml``/``.yml``, needs PyYAML)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise HfusError(f"cannot read the layout file {p} ({err}); check the --layout path") from err
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise HfusError(
                f"{p} is YAML but PyYAML is not installed; pip install pyyaml or write it as JSON"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise HfusError(f"layout file {p} is not valid YAML ({err})") from err
    else:
        try:
            data = json.loads(text)
        except ValueError as err:
            raise HfusError(
                f"layout file {p} is not valid JSON ({err}); see docs/DATASET.md for the format"
            ) from err
    if not isinstance(data, dict):
        raise HfusError(f"layout file {p} must hold a mapping with keys {', '.join(LAYOUT_KEYS)}")
    unknown = sorted(set(data) - set(LAYOUT_KEYS))
    if unknown:
        raise HfusError(
            f"layout file {p}: unknown key(s) {', '.join(unknown)}; known: {', '.join(LAYOUT_KEYS)}"
        )
    return data


def _class_map(
    flag_value: str | dict | None, lay: dict[str, Any], lname: str, sources: dict[str, str]
) -> dict:
    """``--class-map`` merged with the layout file's map (no name may get two classes)."""
    cmap = parse_class_map(flag_value)
    if cmap:
        sources["class_map"] = "--class-map"
    if lay.get("class_map") is None:
        return cmap
    lmap = parse_class_map(lay["class_map"])
    clash = sorted(k for k in set(cmap) & set(lmap) if cmap[k] != lmap[k])
    if clash:
        raise HfusError(
            f"--class-map and the {lname} map {', '.join(repr(k) for k in clash)} to different classes; "
            "give each name in one place"
        )
    sources["class_map"] = " + ".join(x for x in (sources.get("class_map"), lname) if x)
    return {**lmap, **cmap}


def _one_setting(name: str, flag_value, parse, lay: dict[str, Any], lname: str, sources: dict[str, str]):
    """A setting given as a flag and/or in the layout file (the two must agree)."""
    val = parse(flag_value)
    src = f"--{name.replace('_', '-')}" if val is not None else None
    if lay.get(name) is not None:
        lval = parse(lay[name])
        if val is not None and val != lval:
            raise HfusError(
                f"--{name.replace('_', '-')} and the {lname} give different {name}; keep one of them"
            )
        val, src = lval, src or lname
    if src:
        sources[name] = src
    return val


def _index_path(index, layout, lay: dict[str, Any], lname: str, sources: dict[str, str]) -> Path | None:
    """``--index`` or the layout file's index (relative to the layout file); they must be the same file."""
    idx = Path(index) if index is not None else None
    if lay.get("index") is not None:
        lidx = Path(layout).parent / str(lay["index"])
        if idx is not None and idx.resolve() != lidx.resolve():
            raise HfusError(
                f"--index {idx} and the {lname} (index {lay['index']}) name different index files; keep one"
            )
        sources["index"] = "--index" if index is not None else lname
        return idx or lidx
    if idx is not None:
        sources["index"] = "--index"
    return idx


def _layout_only(lay: dict[str, Any], lname: str, sources: dict[str, str]) -> dict[str, Any]:
    """The settings only a layout file gives: structure_names, mask_dirs, mat_variables."""
    out: dict[str, Any] = {"structure_names": {}, "mask_dirs": frozenset(), "mat_variables": {}}
    if lay.get("structure_names") is not None:
        out["structure_names"] = _parse_word_map(lay["structure_names"], "structure_names")
        sources["structure_names"] = lname
    if lay.get("mask_dirs") is not None:
        if not isinstance(lay["mask_dirs"], list):
            raise HfusError(f"{lname}: mask_dirs must be a list of folder names")
        out["mask_dirs"] = frozenset(str(d).strip().lower() for d in lay["mask_dirs"])
        sources["mask_dirs"] = lname
    if lay.get("mat_variables") is not None:
        out["mat_variables"] = _parse_mat_variables(lay["mat_variables"])
        sources["mat_variables"] = lname
    return out


def import_options(
    *,
    class_map: str | dict | None = None,
    mask_values: str | dict | None = None,
    mask_colors: str | dict | None = None,
    layout: str | Path | None = None,
    index: str | Path | None = None,
) -> ImportOptions:
    """Build :class:`ImportOptions` from flag values and an optional layout file.

    A setting given both as a flag and in the layout file must agree (class maps are merged when
    no name gets two classes); ``mask_values`` and ``mask_colors`` exclude each other.
    """
    sources: dict[str, str] = {}
    lay: dict[str, Any] = {}
    layout_file = None
    lname = ""
    if layout is not None:
        lay = load_layout(layout)
        lp = Path(layout)
        layout_file = {"path": lp.name, "sha256": sha256_file(lp)}
        lname = f"layout file {lp.name}"
    cmap = _class_map(class_map, lay, lname, sources)
    mv = _one_setting("mask_values", mask_values, parse_mask_values, lay, lname, sources)
    mc = _one_setting("mask_colors", mask_colors, parse_mask_colors, lay, lname, sources)
    if mv is not None and mc is not None:
        raise HfusError(
            f"--mask-values ({sources['mask_values']}) and --mask-colors ({sources['mask_colors']}) "
            "are both given; an archive has one mask encoding: grey-level label images (--mask-values) "
            "or colour masks (--mask-colors)"
        )
    idx = _index_path(index, layout, lay, lname, sources)
    return ImportOptions(
        class_map=cmap,
        mask_values=mv,
        mask_colors=mc,
        index=idx,
        sources=sources,
        layout_file=layout_file,
        **_layout_only(lay, lname, sources),
    )


def check_import_paths(
    *,
    out: str | Path | None,
    dry_run: bool,
    index: str | Path | None = None,
    write_index: str | Path | None = None,
    preview: str | Path | None = None,
) -> None:
    """Refuse flag combinations that cannot work (before anything is read or written)."""
    if out is None and not dry_run:
        raise HfusError(
            "give --out DATASET_DIR to write the dataset, or --dry-run to only show what would be imported"
        )
    if index is not None and write_index is not None and Path(index).resolve() == Path(write_index).resolve():
        raise HfusError(
            f"--index and --write-index name the same file {index}; write the inferred index elsewhere"
        )
    if write_index is not None and Path(write_index).suffix.lower() not in (".csv", ".tsv", ".json"):
        raise HfusError(f"--write-index {write_index}: use a .csv, .tsv or .json file name")
    if preview is not None and Path(preview).suffix.lower() != ".png":
        raise HfusError(f"--preview {preview}: the preview sheet is a PNG; give a file name ending in .png")
