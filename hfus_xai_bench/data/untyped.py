"""What an archive's untyped masks are, decided once for the whole archive (rules in :mod:`.discover`).

A mask without a structure in its name or folder is a label image (one grey code per structure), a
colour mask (one colour per structure) or a binary mask; for CG a binary untyped mask is the
epidermis. The code → structure map comes from ``--mask-values`` / ``--mask-colors`` / the index's
``mask_values`` column, or is inferred from the classes present (:func:`.masks.infer_mapping`).
"""

from __future__ import annotations

from collections import defaultdict

from ..constants import CLASSES
from ..errors import HfusError
from .columns import parallel_map
from .discovery import Discovery, short_list
from .masks import MAX_CODES, MaskSource, code_text, infer_mapping, mapping_text, pack, scan_mask


def _given_codes(found: Discovery) -> tuple[dict | None, str, bool]:
    """(the code map the user gave or None, the flag that gave it, whether it maps colours)."""
    opts = found.options
    given = opts.mask_values if opts.mask_values is not None else opts.mask_colors
    flag = "--mask-colors" if opts.mask_colors is not None else "--mask-values"
    colour_given = opts.mask_colors is not None
    index_map = found.index.get("mask_values") if found.index else None
    if index_map is None:
        return given, flag, colour_given
    if given is not None and given != index_map["mapping"]:
        source = opts.sources.get("mask_values") or opts.sources.get("mask_colors")
        raise HfusError(
            f"the index's mask_values column and {flag} ({source}) give different label codes; "
            "keep one of them"
        )
    if given is None:
        return index_map["mapping"], "the index's mask_values column", index_map["colour"]
    return given, flag, colour_given


def _is_colour(
    found: Discovery, srcs: list[MaskSource], given: dict | None, colour_given: bool, flag: str
) -> bool:
    """Whether the archive's label masks are colour masks."""
    colour_srcs = [s.rel for s in srcs if found.scans[s.key]["colour"]]
    if given is None:
        return bool(colour_srcs)
    if not colour_given and colour_srcs:
        raise HfusError(
            f"{flag} is for grey-level label images but these masks are colour-coded: "
            f'{short_list(colour_srcs)}; use --mask-colors "#rrggbb=epidermis,..."'
        )
    return colour_given


def _looks_coded(found: Discovery, srcs: list[MaskSource], colour: bool) -> bool:
    """Untyped masks without a given map are label images when they hold 2..MAX_CODES non-zero codes."""
    nz = set()
    for s in srcs:
        c = found.scanned_codes(s, colour)
        if c is not None:
            nz.update(v for v in c if v != 0)
    return 2 <= len(nz) <= MAX_CODES


def _check_lossless_integer(found: Discovery, srcs: list[MaskSource], colour: bool) -> None:
    jpeg = [s.rel for s in srcs if s.jpeg]
    if jpeg:
        raise HfusError(
            f"label masks must be lossless, these are JPEG: {short_list(jpeg)}; use PNG/BMP/TIFF label "
            "images or binary masks with a structure suffix"
        )
    floats = [s.key for s in srcs if found.scanned_codes(s, colour) is None]
    if floats:
        raise HfusError(f"label masks with non-integer values: {short_list(floats)}; export integer labels")


def _inferred_mapping(found: Discovery, colour: bool) -> dict:
    examples: dict[int, list[str]] = defaultdict(list)
    per_image = []
    for e in found.images:
        if e.coded:
            per_image.append((e.label, frozenset(v for s in e.coded for v in found.scanned_codes(s, colour))))
            examples[e.label].append(e.coded[0].rel)
    return infer_mapping(per_image, colour, examples)


def _given_mapping(found: Discovery, srcs: list[MaskSource], given: dict, flag: str, colour: bool) -> dict:
    """``given`` with integer codes; every code in the masks must be in it."""
    if not colour:
        mapping = {int(k): v for k, v in given.items()}
    else:
        mapping = {pack(k) if isinstance(k, tuple) else int(k): v for k, v in given.items()}
    unmapped: dict[int, list[str]] = defaultdict(list)
    for s in srcs:
        for v in found.scanned_codes(s, colour) or []:
            if v not in mapping:
                unmapped[v].append(s.key)
    if unmapped:
        detail = "; ".join(
            f"{code_text(v, colour)} in {short_list(f, 4)}" for v, f in sorted(unmapped.items())
        )
        raise HfusError(
            f"label value(s) that map to no structure with {flag} {mapping_text(mapping, colour)}: "
            f"{detail}; add them to {flag} (as a structure, or =background)"
        )
    return mapping


def _binary_untyped(found: Discovery, srcs: list[MaskSource]) -> None:
    """Untyped binary masks: the epidermis of CG images; refused for the other classes and next to
    typed masks."""
    bad_mixed, bad_untyped = [], []
    for e in found.images:
        if not e.coded:
            continue
        if e.masks:
            bad_mixed.append(e.rel)
        elif CLASSES[e.label] == "CG":
            e.masks = {"epidermis": [MaskSource(s.path, s.rel, s.var, "epidermis") for s in e.coded]}
            found.untyped_cg.update(s.key for s in e.coded)
            e.coded = []
        else:
            bad_untyped.append(e.rel)
    if bad_mixed:
        raise HfusError(
            "images with both untyped and structure masks (ambiguous): "
            + short_list(bad_mixed)
            + "; keep one set of masks per image"
        )
    if bad_untyped:
        values = sorted({v for s in srcs for v in (found.scans[s.key]["values"] or [])})[:8]
        raise HfusError(
            "untyped masks (no _epidermis/_sleb/_tumor in name or folder) for AD/PS/ST images, which have "
            "several structures: "
            + short_list(bad_untyped)
            + f" (mask values {values}); rename the masks with a structure suffix, or, if they are label "
            'images, give the codes with --mask-values "1=epidermis,2=sleb,3=tumor"'
        )


def resolve_untyped(found: Discovery, workers: int | None, progress: bool) -> None:
    """Decide what the untyped masks are (label images, colour masks or binary) for the whole archive.

    Sets ``found.encoding`` for label / colour masks, or moves CG's binary untyped masks to their
    epidermis; raises ``HfusError`` when the masks cannot be resolved.
    """
    given, flag, colour_given = _given_codes(found)
    srcs = [s for e in found.images for s in e.coded]
    if not srcs:
        if given is not None:
            raise HfusError(
                f"{flag} is given but no image has an untyped mask (label image, colour mask): every mask "
                "is a binary per-structure mask; drop the flag"
            )
        return
    for src, r in zip(
        srcs, parallel_map(scan_mask, srcs, workers, progress, "read label masks"), strict=True
    ):
        found.scans[src.key] = r
    colour = _is_colour(found, srcs, given, colour_given, flag)
    if given is None and not _looks_coded(found, srcs, colour):
        _binary_untyped(found, srcs)
        return
    _check_lossless_integer(found, srcs, colour)
    if given is None:
        mapping, given_by = _inferred_mapping(found, colour), "inferred from the classes present"
    else:
        mapping = _given_mapping(found, srcs, given, flag, colour)
        given_by = found.options.sources.get("mask_colors" if colour else "mask_values") or flag
    found.encoding = {"kind": "colour" if colour else "label", "mapping": mapping, "given_by": given_by}
