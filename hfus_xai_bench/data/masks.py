"""Reading and decoding segmentation masks: binary files, label images, colour masks, MATLAB ``.mat``.

Every mask kind ends as one boolean full-resolution array per structure (epidermis, sleb, tumor);
the importer turns those into 0/255 images and resizes them all the same way, so an archive gives
the same dataset whatever encoding its masks use.

* A **binary** mask (one file, or one ``.mat`` variable, per structure): foreground = any non-zero
  pixel (JPEG: > 127; several channels: any channel).
* A **label image** (one file per image, integer code per structure, ``0`` = background): 2-D or
  grey RGB, PNG/BMP/TIFF (not JPEG), or a label array in a ``.mat``. Palette PNGs are read as their
  indices.
* A **colour mask** (RGB, one colour per structure, black = background).
* ``.mat``: MATLAB v4/v5/v7 via ``scipy.io`` (v7.3 = HDF5 via ``h5py`` when it is installed).
  Candidate variables are 2-D numeric or logical arrays, struct fields included (``S.epidermis``).
"""

from __future__ import annotations

import functools
import io
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import CLASSES
from ..errors import HfusError
from .layouts import STRUCTURES, ImportOptions, structure_of_variable

JPEG_EXTS = frozenset({".jpg", ".jpeg"})
MAT_EXT = ".mat"
#: A set of untyped masks is read as label images when it holds 2..MAX_CODES non-background codes.
MAX_CODES = 8
#: Structures each class may have (PROTOCOL §1): used to infer a label image's value → structure map.
CLASS_STRUCTURES: dict[str, tuple[str, ...]] = {
    "AD": ("epidermis", "sleb"),
    "CG": ("epidermis",),
    "PS": ("epidermis", "sleb"),
    "ST": ("epidermis", "tumor"),
}


@dataclass(frozen=True)
class MaskSource:
    """One mask: a file, or one variable of a ``.mat`` file; ``structure`` None = untyped."""

    path: str
    rel: str
    var: str | None = None
    structure: str | None = None

    @property
    def key(self) -> str:
        return self.rel + (f"#{self.var}" if self.var else "")

    @property
    def jpeg(self) -> bool:
        return Path(self.path).suffix.lower() in JPEG_EXTS

    @property
    def is_mat(self) -> bool:
        return Path(self.path).suffix.lower() == MAT_EXT


# ------------------------------------------------------------------------------------------ .mat


def _scipy_io():
    try:
        import scipy.io
    except ImportError:
        raise HfusError(
            "reading MATLAB .mat masks needs scipy; pip install scipy (or export the masks as PNG)"
        ) from None
    return scipy.io


def _mat_major(path: str, rel: str) -> int:
    _scipy_io()
    from scipy.io.matlab import matfile_version

    try:
        major, _ = matfile_version(path)
    except Exception as err:  # scipy raises several types for a file that is not MATLAB
        raise HfusError(
            f"{rel} is not a readable MATLAB .mat file ({err}); remove it or re-save it from MATLAB"
        ) from None
    return int(major)


def _h5py(rel: str):
    try:
        import h5py
    except ImportError:
        raise HfusError(
            f"{rel} is a MATLAB v7.3 (HDF5) file, which needs h5py: pip install h5py, or re-save the masks "
            "in MATLAB with save(FILE, ..., '-v7')"
        ) from None
    return h5py


def _candidate(arr) -> bool:
    return (
        isinstance(arr, np.ndarray)
        and arr.ndim == 2
        and min(arr.shape) > 1
        and (arr.dtype == bool or np.issubdtype(arr.dtype, np.number))
    )


def _flatten(prefix: str, value, out: dict[str, np.ndarray]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not str(k).startswith("__"):
                _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif _candidate(value):
        out[prefix] = value


def mat_arrays(path: str, rel: str | None = None) -> dict[str, np.ndarray]:
    """The 2-D numeric/logical arrays of a ``.mat`` file, by (dotted, for struct fields) name."""
    rel = rel or Path(path).name
    out: dict[str, np.ndarray] = {}
    if _mat_major(path, rel) == 2:
        h5py = _h5py(rel)
        with h5py.File(path, "r") as f:

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and not name.startswith("#"):
                    cls = obj.attrs.get("MATLAB_class", b"")
                    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                    if cls in ("char", "cell", "struct"):
                        return
                    arr = obj[()]
                    if isinstance(arr, np.ndarray) and arr.ndim == 2:
                        arr = arr.T  # HDF5 stores MATLAB's column-major arrays transposed
                        if cls == "logical":
                            arr = arr.astype(bool)
                        if _candidate(arr):
                            out[name.replace("/", ".")] = arr

            f.visititems(visit)
        return out
    sio = _scipy_io()
    try:
        data = sio.loadmat(path, simplify_cells=True)
    except Exception as err:
        raise HfusError(
            f"{rel}: scipy cannot read this .mat file ({err}); re-save it from MATLAB with -v7"
        ) from None
    _flatten("", {k: v for k, v in data.items() if not k.startswith("__")}, out)
    return out


@functools.lru_cache(maxsize=2)
def _mat_cached(path: str, rel: str, mtime_ns: int) -> dict[str, np.ndarray]:
    """The variables of the last .mat files read (a file with 3 structure variables is read once)."""
    arrays = mat_arrays(path, rel)
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def mat_catalog(path: str, rel: str) -> dict[str, tuple[int, ...]]:
    """{variable: shape} of the candidate arrays of a ``.mat`` file (cheap for v5 files without structs)."""
    if _mat_major(path, rel) != 2:
        sio = _scipy_io()
        try:
            info = sio.whosmat(path)
        except Exception as err:
            raise HfusError(
                f"{rel}: scipy cannot read this .mat file ({err}); re-save it from MATLAB with -v7"
            ) from None
        numeric = (
            "double",
            "single",
            "logical",
            "uint8",
            "int8",
            "uint16",
            "int16",
            "uint32",
            "int32",
            "uint64",
            "int64",
        )
        if not any(cls == "struct" for _, _, cls in info):
            return {n: tuple(s) for n, s, cls in info if cls in numeric and len(s) == 2 and min(s) > 1}
    return {k: v.shape for k, v in mat_arrays(path, rel).items()}


def mat_sources(
    path: str, rel: str, structure: str | None, opts: ImportOptions, var: str | None = None
) -> list[MaskSource]:
    """The mask sources of one ``.mat`` file: ``var``; else the layout's ``mat_variables``; else its
    structure-named variables (only ``structure``'s when given and present); else its one 2-D array."""
    cat = mat_catalog(path, rel)
    if var is not None:
        if var not in cat:
            raise HfusError(
                f"{rel} has no 2-D array {var!r} (found {', '.join(cat) or 'none'}); fix the index entry"
            )
        return [MaskSource(path, rel, var, structure)]
    if opts.mat_variables:
        chosen = {v: s for v, s in opts.mat_variables.items() if v in cat}
        if chosen:
            return [MaskSource(path, rel, v, None if s == "label" else s) for v, s in sorted(chosen.items())]
    named = {v: structure_of_variable(v, opts.structure_names) for v in cat}
    named = {v: s for v, s in named.items() if s is not None}
    if structure is not None and named:
        named = {v: s for v, s in named.items() if s == structure} or named
    if named:
        return [MaskSource(path, rel, v, s) for v, s in sorted(named.items())]
    if len(cat) == 1:
        return [MaskSource(path, rel, next(iter(cat)), structure)]
    found = (
        ", ".join(f"{k} ({'x'.join(map(str, s))})" for k, s in cat.items())
        if cat
        else "no 2-D numeric or logical array"
    )
    raise HfusError(
        f"{rel}: no usable mask variable ({found}); "
        "name the variables by structure (epidermis, sleb, tumor), keep one label array, "
        "or map them in a --layout file: "
        '{"mat_variables": {"VAR1": "epidermis", "VAR2": "sleb", "L": "label"}}'
    )


# ----------------------------------------------------------------------------------- reading


def load_array(src: MaskSource) -> np.ndarray:
    """The raw array of one mask source (image file: as PIL decodes it; ``.mat``: the variable)."""
    if src.is_mat:
        arrays = _mat_cached(src.path, src.rel, os.stat(src.path).st_mtime_ns)
        if src.var not in arrays:
            raise HfusError(
                f"{src.rel}: variable {src.var!r} is missing or not a 2-D array; "
                f"found {', '.join(arrays) or 'none'}"
            )
        arr = np.asarray(arrays[src.var])
        if arr.dtype.kind == "f":
            arr = np.nan_to_num(arr, nan=0.0)
        return arr
    from PIL import Image

    try:
        with Image.open(io.BytesIO(Path(src.path).read_bytes())) as im:
            return np.asarray(im)
    except OSError as err:
        raise HfusError(f"{src.rel} is not a readable image ({err}); remove or re-export it") from None


def foreground(arr: np.ndarray, jpeg: bool) -> np.ndarray:
    """The binary rule: any non-zero pixel (JPEG: > 127), any channel."""
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    return arr > 127 if jpeg else arr != 0


def value_list(arr: np.ndarray, limit: int = 32) -> list:
    """Sorted distinct values of a mask (max over channels), at most ``limit`` (for the manifest)."""
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    if arr.dtype == np.uint8:
        values = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    else:
        values = np.unique(arr)
    return [int(v) if float(v).is_integer() else float(v) for v in values[:limit]]


def scan_mask(src: MaskSource) -> dict:
    """Values, integer codes (None: JPEG or non-integer), colour-ness and shape of one mask (runs in a
    worker process)."""
    arr = load_array(src)
    colour = is_colour(arr)
    return {
        "values": value_list(arr),
        "codes": None if src.jpeg else codes_of(arr, colour),
        "colour": colour,
        "shape": [int(arr.shape[0]), int(arr.shape[1])],
    }


def pack(rgb: tuple[int, int, int]) -> int:
    return (int(rgb[0]) << 16) | (int(rgb[1]) << 8) | int(rgb[2])


def unpack(code: int) -> tuple[int, int, int]:
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


def code_array(arr: np.ndarray, colour: bool) -> np.ndarray:
    """2-D integer codes: grey value, or a packed 0xRRGGBB colour when ``colour`` (grey v → v·0x010101)."""
    if arr.ndim == 3:
        rgb = arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1]
        if rgb.shape[2] == 3 and not (
            (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        ):
            if not colour:
                raise HfusError(
                    "a colour mask met grey-level label values; use --mask-colors for colour masks"
                )
            r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
            return (r << 16) | (g << 8) | b
        arr = rgb[..., 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if colour:
        return arr.astype(np.int64) * 0x010101
    return arr


def is_colour(arr: np.ndarray) -> bool:
    if arr.ndim != 3 or arr.shape[2] < 3:
        return False
    rgb = arr[..., :3]
    return not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def codes_of(arr: np.ndarray, colour: bool) -> list[int] | None:
    """Sorted distinct codes of a mask (``code_array``), None when not integral (e.g. a float map)."""
    c = code_array(arr, colour)
    if c.dtype.kind == "f":
        if not np.all(np.mod(c, 1) == 0):
            return None
        c = c.astype(np.int64)
    if c.dtype == np.uint8:
        return [int(v) for v in np.flatnonzero(np.bincount(c.ravel(), minlength=256))]
    return [int(v) for v in np.unique(c)]


def code_text(code: int, colour: bool) -> str:
    return "#{:02x}{:02x}{:02x}".format(*unpack(code)) if colour else str(code)


def decode_coded(
    arr: np.ndarray, mapping: dict[int, str | None], colour: bool, rel: str, flag: str
) -> dict[str, np.ndarray]:
    """{structure: bool mask} of a label image / colour mask; a code that maps to nothing is an error."""
    c = code_array(arr, colour)
    if c.dtype.kind == "f":
        c = c.astype(np.int64)
    present = codes_of(arr, colour) or []
    missing = [v for v in present if v not in mapping]
    if missing:
        raise HfusError(
            f"{rel} holds value(s) {', '.join(code_text(v, colour) for v in missing)} "
            "that map to no structure; "
            f"add them to {flag} (e.g. {code_text(missing[0], colour)}=background)"
        )
    out = {}
    for s in STRUCTURES:
        codes = [k for k, v in mapping.items() if v == s]
        if codes:
            m = np.isin(c, codes) if len(codes) > 1 else (c == codes[0])
            if m.any():
                out[s] = m
    return out


def mapping_text(mapping: dict[int, str | None], colour: bool) -> str:
    return ",".join(f"{code_text(k, colour)}={v or 'background'}" for k, v in sorted(mapping.items()))


def infer_mapping(
    image_codes: Iterable[tuple[int, frozenset[int]]], colour: bool, example_files: dict[int, list[str]]
) -> dict[int, str | None]:
    """The code → structure map of label images, when the classes present leave exactly one choice.

    ``image_codes``: (class index, codes of that image's label masks). Code 0 (black) is background;
    each other code is one structure, different codes different structures, and an image may only
    hold the structures of its class (CG: epidermis; AD, PS: + SLEB; ST: + tumour). Anything else is
    an ``HfusError`` that shows the codes per class and asks for the map.
    """
    flag = "--mask-colors" if colour else "--mask-values"
    per_image = [(label, frozenset(c) - {0}) for label, c in image_codes]
    codes = sorted(set().union(*(c for _, c in per_image))) if per_image else []
    per_class: dict[str, set[int]] = {c: set() for c in CLASSES}
    for label, c in per_image:
        per_class[CLASSES[label]].update(c)
    seen = "; ".join(
        f"{c}: {', '.join(code_text(v, colour) for v in sorted(vs)) or '-'}" for c, vs in per_class.items()
    )
    files = "; ".join(f"{CLASSES[k]} e.g. {', '.join(v[:2])}" for k, v in sorted(example_files.items()))

    def ask(why: str, example: dict[int, str | None] | None = None) -> HfusError:
        ex = example or {v: s for v, s in zip(codes, itertools.cycle(STRUCTURES))}
        return HfusError(
            f"label masks ({files}) hold the codes [{seen}] (0 = background); {why}; give the map with "
            f'{flag} "{mapping_text({k: v for k, v in ex.items() if k != 0}, colour)}" (or a layout file)'
        )

    if len(codes) > len(STRUCTURES):
        raise ask(f"{len(codes)} non-background codes cannot be one code per structure")
    solutions = []
    for assign in itertools.permutations(STRUCTURES, len(codes)):
        m = dict(zip(codes, assign, strict=True))
        if all(m[v] in CLASS_STRUCTURES[CLASSES[label]] for label, c in per_image for v in c):
            solutions.append(m)
    if not solutions:
        raise ask("no assignment of codes to structures fits the structures each class has")
    if len(solutions) > 1:
        raise ask(f"{len(solutions)} assignments fit the classes present", solutions[0])
    return {0: None, **solutions[0]}
