"""What the discovery of an archive found (:class:`Discovery`, one :class:`ImageEntry` per image).

The rules that fill them are in :mod:`.discover`; this module holds the result and its views for
the manifest (``rules``, ``mask_kinds``), the dataset card (``rules_text``) and the user.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..constants import CLASSES
from .folds import group_key
from .layouts import ImportOptions
from .masks import MaskSource, code_text, mapping_text


def short_list(items: Iterable[str], limit: int = 8) -> str:
    """The first ``limit`` items, comma-separated, with how many more there are."""
    items = list(items)
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass
class ImageEntry:
    """One image of an archive with its masks (from the folder rules or an index row)."""

    path: Path
    rel: str
    stem: str
    label: int
    masks: dict[str, list[MaskSource]] = field(default_factory=dict)  # structure → binary masks
    #: label images / colour masks (or untyped, in discovery)
    coded: list[MaskSource] = field(default_factory=list)
    image_id: str | None = None  # from an index (default: the stem)
    group_id: str | None = None  # from an index (default: group_key of the id)
    evidence: str | None = None  # path of its evidence mask (synthetic v3; see .evidence)
    twin: str | None = None  # path of its counterfactual twin

    def attach(self, src: MaskSource) -> None:
        """Add a mask: a binary one under its structure, an untyped one to ``coded``."""
        if src.structure is None:
            self.coded.append(src)
        else:
            self.masks.setdefault(src.structure, []).append(src)

    def binary_sources(self) -> Iterator[MaskSource]:
        """Every binary (per-structure) mask of the image."""
        for srcs in self.masks.values():
            yield from srcs


@dataclass
class Discovery:
    """What ``discover_archive`` found in an archive tree."""

    root: Path
    images: list[ImageEntry]
    orphan_masks: list[str]
    unclassified_images: list[str]
    extensions: dict[str, int]
    dirs: dict[str, dict[str, int]]
    generator: dict | None
    options: ImportOptions = field(default_factory=ImportOptions)
    #: {"kind": "label" | "colour", "mapping": {code: structure | None}, "given_by": ...} for label masks
    encoding: dict | None = None
    #: folder name → {"class", "rule", "files"} of every folder that gave a class
    class_folders: dict[str, dict] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)  # --index: image/mask files not in the index
    index: dict | None = None  # {"path", "sha256", "rows"}
    untyped_cg: set[str] = field(default_factory=set)  # keys of untyped binary masks read as CG epidermis
    #: mask key → {"values", "codes", "colour", "shape"} (:func:`.masks.scan_mask`; untyped masks, all masks
    #: after a scan)
    scans: dict[str, dict] = field(default_factory=dict)
    evidence_mode: str | None = None  # "file" | "derived" | None (no evidence column; see .evidence)
    twins: bool = False  # the dataset gets a twin column

    def counts(self) -> dict[str, int]:
        c = Counter(e.label for e in self.images)
        return {name: c.get(i, 0) for i, name in enumerate(CLASSES)}

    @property
    def images_without_masks(self) -> list[str]:
        return sorted(e.rel for e in self.images if not e.masks and not e.coded)

    @property
    def colour(self) -> bool:
        """The label masks are colour masks (False without label masks)."""
        return bool(self.encoding) and self.encoding["kind"] == "colour"

    def image_ids(self) -> list[str]:
        stems = Counter(e.stem for e in self.images)
        return [
            e.image_id
            if e.image_id is not None
            else (e.stem if stems[e.stem] == 1 else f"{CLASSES[e.label]}_{e.stem}")
            for e in self.images
        ]

    def groups(self) -> list[str]:
        return [
            e.group_id if e.group_id is not None else group_key(e.image_id or e.stem) for e in self.images
        ]

    def scanned_codes(self, src: MaskSource, colour: bool) -> list[int] | None:
        """The codes of a scanned label mask (None: non-integer values); grey codes as grey colours when
        ``colour``."""
        scan = self.scans[src.key]
        codes = scan["codes"]
        if codes is None or not colour or scan["colour"]:
            return codes
        return [v * 0x010101 for v in codes]  # grey codes in a colour archive

    def mask_kinds(self) -> dict[str, int]:
        """How many masks of each kind were found (the manifest's ``import.mask_kinds``)."""
        c: Counter[str] = Counter()
        kind = "colour mask" if self.colour else "label image"
        for e in self.images:
            for s in e.binary_sources():
                if s.key in self.untyped_cg:
                    c["untyped binary, CG → epidermis"] += 1
                elif s.is_mat:
                    c["binary .mat variable per structure"] += 1
                else:
                    c["binary file per structure"] += 1
            for s in e.coded:
                c[f"{kind} (.mat array)" if s.is_mat else kind] += 1
        return {k: v for k, v in sorted(c.items()) if v}

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        return (
            f"{len(self.images)} images ({counts}); {len(self.images_without_masks)} without masks; "
            f"{len(self.orphan_masks)} masks without images; "
            f"{len(self.unclassified_images)} images without class"
        )

    def encoding_text(self, sep: str = "") -> str:
        """``label codes{sep} {1=epidermis, …} (given by)`` of the label masks."""
        enc = self.encoding
        return f"{enc['kind']} codes{sep} {mapping_text(enc['mapping'], self.colour)} ({enc['given_by']})"

    def rules(self) -> dict:
        """Which rules and flags produced the pairing (the manifest's ``import`` section)."""
        enc = None
        if self.encoding:
            enc = {
                "kind": self.encoding["kind"],
                "mapping": {
                    code_text(k, self.colour): v or "background"
                    for k, v in sorted(self.encoding["mapping"].items())
                },
                "given_by": self.encoding["given_by"],
            }
        return {
            "discovery": "index file" if self.index else "folder and file names (discover.py rules)",
            "options": self.options.to_manifest(),
            "class_folders": self.class_folders,
            "mask_kinds": self.mask_kinds(),
            "label_encoding": enc,
            "index": self.index,
            "ignored": self.ignored,
            "unreferenced": self.unreferenced,
        }

    def rules_text(self) -> str:
        """One paragraph for the dataset card."""
        how = (
            f"from the index file `{self.index['path']}`"
            if self.index
            else "by the folder and file naming rules of `hfus_xai_bench.data.discover`"
        )
        parts = [f"Images, classes and masks were found {how}"]
        if self.class_folders:
            parts.append(
                "class folders: "
                + ", ".join(f"`{k}` → {v['class']} ({v['rule']})" for k, v in self.class_folders.items())
            )
        kinds = self.mask_kinds()
        if kinds:
            parts.append("masks: " + ", ".join(f"{v} {k}" for k, v in kinds.items()))
        if self.encoding:
            parts.append(self.encoding_text())
        flags = self.options.flags_text()
        parts.append(f"flags: `{flags}`" if flags else "no layout flags")
        return "; ".join(parts) + "."
