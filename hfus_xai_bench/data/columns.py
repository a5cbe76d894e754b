"""The dataset's columns: their ``datasets.Features`` and the conversion of one archive image into them.

:func:`convert` decodes one image with its masks, resizes everything to 224×224 (rules in
:mod:`.discover`) and encodes the PNG bytes of every column; :func:`parallel_map` runs it (and the
mask scans of discovery) over worker processes.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..constants import CLASSES, IMAGE_SIZE
from ..errors import HfusError
from ..hashing import sha256_file
from .evidence import derived_evidence, read_twin
from .layouts import STRUCTURES
from .masks import MaskSource, codes_of, decode_coded, foreground, load_array, value_list
from .resample import resize_bilinear, resize_mask
from .slm import skin_layer_map

#: Folder of the parquet shards inside a dataset folder.
DATA_DIR = "data"


def features(evidence: bool = False, twin: bool = False):
    """The dataset's ``datasets.Features`` (``evidence`` / ``twin``: see :mod:`.evidence`)."""
    import datasets

    cols = {
        "image_id": datasets.Value("string"),
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=list(CLASSES)),
        "epidermis": datasets.Image(),
        "sleb": datasets.Image(),
        "tumor": datasets.Image(),
        "slm": datasets.Image(),
        "fold": datasets.Value("int64"),
        "group_id": datasets.Value("string"),
    }
    if evidence:
        cols["evidence"] = datasets.Image()
    if twin:
        cols["twin"] = datasets.Image()
    return datasets.Features(cols)


def parallel_map(fn: Callable, items: list, workers: int | None, progress: bool, desc: str) -> list:
    """``[fn(x) for x in items]`` over ``workers`` processes (default: up to 8), with a progress bar."""
    from tqdm.auto import tqdm

    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    out = []
    with tqdm(total=len(items), desc=desc, unit="img", disable=not progress) as bar:
        if n_workers <= 1 or len(items) < 32:
            for it in items:
                out.append(fn(it))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                for r in pool.map(fn, items, chunksize=max(1, min(16, len(items) // (4 * n_workers)))):
                    out.append(r)
                    bar.update()
    return out


def _png(arr: np.ndarray) -> bytes:
    # zlib level 1 for speckled RGB (3x faster than the default 6, ~8 % larger), 3 for flat masks/SLM
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1 if arr.ndim == 3 else 3)
    return buf.getvalue()


def job(e, found) -> tuple:
    """The picklable work of one :class:`~.discovery.ImageEntry` of ``found`` for :func:`convert`."""
    enc = None
    if e.coded:
        enc = (found.encoding["mapping"], found.encoding["kind"] == "colour", found.encoding["given_by"])
    ev = (found.evidence_mode, e.evidence, e.twin if found.twins else None, e.label)
    return (str(e.path), {s: list(e.masks.get(s, [])) for s in STRUCTURES}, list(e.coded), enc, ev)


def _union(acc: np.ndarray | None, m: np.ndarray, what: str, keys: list[str]) -> np.ndarray:
    if acc is None:
        return m
    if acc.shape != m.shape:
        raise HfusError(
            f"the {what} masks of one image have different sizes: {', '.join(keys)}; fix the archive"
        )
    return acc | m


def _hash_once(shas: dict[str, str], path: str) -> None:
    if path not in shas:
        shas[path] = sha256_file(path)


def _full_masks(binary: dict, coded: list[MaskSource], enc: tuple | None, out: dict, shas: dict) -> dict:
    """One full-size boolean mask per structure (None: absent) from every mask of one image."""
    full: dict[str, np.ndarray | None] = dict.fromkeys(STRUCTURES)
    keys: dict[str, list[str]] = defaultdict(list)
    for structure in STRUCTURES:
        for src in binary.get(structure, []):
            _hash_once(shas, src.path)
            arr = load_array(src)
            fg = foreground(arr, src.jpeg)
            out["values"][src.key] = value_list(arr)
            out["mask_sizes"][src.key] = (fg.shape[1], fg.shape[0])
            keys[structure].append(src.key)
            full[structure] = _union(full[structure], fg, structure, keys[structure])
    for src in coded:
        mapping, colour, flag = enc
        _hash_once(shas, src.path)
        arr = load_array(src)
        out["values"][src.key] = codes_of(arr, colour) or []
        out["mask_sizes"][src.key] = (arr.shape[1], arr.shape[0])
        for structure, m in decode_coded(arr, mapping, colour, src.key, flag).items():
            keys[structure].append(src.key)
            full[structure] = _union(full[structure], m, structure, keys[structure])
    return full


def convert(job: tuple) -> dict:
    """Decode, resize and encode one image with its masks (runs in a worker process)."""
    image_path, binary, coded, enc, ev = job
    data = Path(image_path).read_bytes()
    shas = {image_path: hashlib.sha256(data).hexdigest()}
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            rgb = resize_bilinear(np.asarray(im.convert("RGB")))
    except OSError as err:
        raise HfusError(f"{image_path} is not a readable image ({err}); remove or re-export it") from None
    out: dict = {"image": _png(rgb), "size": size, "values": {}, "mask_sizes": {}, "present": []}
    full = _full_masks(binary, coded, enc, out, shas)
    small: dict[str, np.ndarray] = {}
    for structure in STRUCTURES:
        if full[structure] is None:
            small[structure] = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        else:
            small[structure] = resize_mask(full[structure].astype(np.uint8) * np.uint8(255))
            if full[structure].any():
                out["present"].append(structure)
        out[structure] = _png(small[structure])
    slm = skin_layer_map(small["epidermis"], small["sleb"], small["tumor"])
    out["slm"] = _png(slm)
    _convert_evidence(out, ev, full, shas, (size[1], size[0]))
    out["sha256"] = shas
    return out


def _convert_evidence(out: dict, ev: tuple, full: dict, shas: dict, shape: tuple[int, int]) -> None:
    """Add the ``evidence`` (and ``twin``) PNGs of one image to ``out`` (rules in :mod:`.evidence`)."""
    mode, ev_path, twin_path, label = ev
    if mode is None:
        return
    if mode == "file":
        shas[ev_path] = sha256_file(ev_path)
        src = MaskSource(ev_path, ev_path, None, "evidence")
        arr = load_array(src)
        fg = foreground(arr, src.jpeg)
        if fg.shape != shape:
            raise HfusError(
                f"evidence mask {ev_path} is {fg.shape[::-1]}, its image {shape[::-1]}; fix the archive"
            )
    else:
        fg = derived_evidence(label, full, shape)
    out["evidence"] = _png(resize_mask(fg.astype(np.uint8) * np.uint8(255)))
    if twin_path is not None:
        shas[twin_path] = sha256_file(twin_path)
        out["twin"] = _png(resize_bilinear(read_twin(twin_path, (shape[1], shape[0]))))
