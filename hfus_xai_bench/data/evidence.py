"""Evidence masks and counterfactual twins in an archive and in the dataset (DATASET.md, PROTOCOL §9).

Archive layout (written by the synthetic generator from version 3): ``<CLASS>/masks/<stem>_evidence.png``
(0/255, frame size: where the class evidence is rendered) and ``<CLASS>/twins/<stem>.png`` (RGB: the
same frame with the evidence removed; a CG frame's twin is itself). Neither is ever imported as an
image: discovery sets them aside (:func:`extra_kind`) and pairs them with their image by stem and class.

Dataset columns: ``evidence`` (L, 0/255, 224×224, the importer's mask rule: bilinear then > 127) and
``twin`` (RGB, resized like the images). Which archives get them (:func:`evidence_mode`):

* evidence files present → ``evidence`` from them; twin files present (for every image) → ``twin``;
* a real archive (no generator info) → ``evidence`` *derived* from its own masks as an approximation
  (ST: tumour; AD / PS: SLEB; CG: empty; :func:`derived_evidence`), no ``twin``;
* a synthetic archive of version 1 or 2 → neither column (their golden hashes predate them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..constants import CLASSES
from ..errors import HfusError

#: File-stem suffix of an evidence mask and folder name of the twins (both case-insensitive).
EVIDENCE_SUFFIX = "_evidence"
TWIN_DIR = "twins"

#: At 224×224 a twin equals its image outside the ``evidence`` column dilated by a (2·7 + 1)² square
#: (PSF support + resize + mask threshold; measured on synth-v3-seed0: at most 7 px, median 4).
TWIN_BOUND_224 = 7

#: What the derived evidence of a real archive is, per class (an approximation, stated in the card).
DERIVED_EVIDENCE: dict[str, tuple[str, ...]] = {"AD": ("sleb",), "CG": (), "PS": ("sleb",), "ST": ("tumor",)}


def extra_kind(parts: list[str], stem: str) -> tuple[str, str] | None:
    """("twin" | "evidence", image stem) for a twin or evidence file, else None."""
    if any(p.lower() == TWIN_DIR for p in parts):
        return "twin", stem
    if stem.lower().endswith(EVIDENCE_SUFFIX) and len(stem) > len(EVIDENCE_SUFFIX):
        return "evidence", stem[: -len(EVIDENCE_SUFFIX)]
    return None


def evidence_mode(
    n_evidence: int, n_twins: int, n_images: int, generator: Mapping | None
) -> tuple[str | None, bool]:
    """(evidence source "file" | "derived" | None, twins?) of an archive; raises on partial twin sets."""
    if n_twins not in (0, n_images):
        raise HfusError(
            f"{n_twins} of {n_images} images have a twin in a '{TWIN_DIR}' folder; "
            "give every image a twin or none"
        )
    if n_evidence:
        if n_evidence != n_images:
            raise HfusError(
                f"{n_evidence} of {n_images} images have an '{EVIDENCE_SUFFIX}' mask; give every image one "
                "(all-zero for CG) or none"
            )
        return "file", n_twins > 0
    if n_twins:
        raise HfusError(
            f"the archive has twins but no '{EVIDENCE_SUFFIX}' masks; add them or remove the twins"
        )
    if generator is not None:
        return None, False  # synthetic v1 / v2: no evidence column
    return "derived", False


def derived_evidence(label: int, full: Mapping[str, np.ndarray | None], shape: tuple[int, int]) -> np.ndarray:
    """Full-size boolean evidence of a real-archive image from its structure masks (``DERIVED_EVIDENCE``)."""
    out = np.zeros(shape, dtype=bool)
    for name in DERIVED_EVIDENCE[CLASSES[label]]:
        m = full.get(name)
        if m is not None:
            if m.shape != out.shape:
                raise HfusError(f"the {name} mask has shape {m.shape}, its image {shape}; fix the archive")
            out |= m
    return out


def read_twin(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """The twin's RGB pixels at full size; it must have its image's size."""
    from PIL import Image

    with Image.open(path) as im:
        if im.size != tuple(size):
            raise HfusError(f"twin {path} is {im.size}, its image {tuple(size)}; regenerate the archive")
        return np.asarray(im.convert("RGB"))
