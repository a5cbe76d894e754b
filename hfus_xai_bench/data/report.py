"""Texts about an import: the ``--dry-run`` report, the count check and the dataset card (README.md)."""

from __future__ import annotations

from collections import Counter, defaultdict

from ..constants import BENCHMARK_VERSION, CLASSES, N_IMAGES
from ..errors import HfusError
from .columns import DATA_DIR, features
from .discovery import Discovery, short_list
from .layouts import STRUCTURES
from .masks import code_text
from .slm import SLM_VERSION
from .synth_ops import INFO_NAME

_EVIDENCE_WORDS = {
    "file": "from the archive's _evidence masks",
    "derived": "derived from the masks (ST tumour, AD/PS SLEB, CG empty; an approximation)",
    None: "none (synthetic archive before version 3)",
}


def count_problem(found: Discovery, expect: int | None) -> str | None:
    """Why the number of images is not the expected one (``--expect``, the synthetic archive's n, or the
    real archive's ``N_IMAGES``), or None."""
    n = len(found.images)
    if expect is not None:
        return None if n == expect else f"found {n} images but --expect {expect}; {found.summary()}"
    if found.generator is not None:
        want = found.generator.get("n")
        if want is not None and n != int(want):
            return f"synthetic archive declares n={want} in {INFO_NAME} but holds {n} images; regenerate it"
        return None
    if n != N_IMAGES:
        return (
            f"found {n} images, the real archive has {N_IMAGES} ({found.summary()}); "
            f"check the extraction, or pass --expect {n} to import anyway"
        )
    return None


def check_count(found: Discovery, expect: int | None) -> None:
    """Raise :func:`count_problem` as ``HfusError``."""
    problem = count_problem(found, expect)
    if problem:
        raise HfusError(problem)


def _mask_lines(found: Discovery) -> list[str]:
    lines = [f"discovery: {found.rules()['discovery']}"]
    for name, info in found.class_folders.items():
        lines.append(f"class folder: {name!r} -> {info['class']} ({info['rule']}, {info['files']} files)")
    for kind, n in found.mask_kinds().items():
        lines.append(f"masks: {n} {kind}")
    lines.append(
        f"evidence column: {_EVIDENCE_WORDS[found.evidence_mode]}; twins: {'yes' if found.twins else 'no'}"
    )
    spc = {c: Counter() for c in CLASSES}
    for e in found.images:
        spc[CLASSES[e.label]].update(e.masks.keys())
        if e.coded:
            spc[CLASSES[e.label]]["label masks"] += 1
    for c in CLASSES:
        lines.append(
            f"masks per class {c}: " + (", ".join(f"{k} {v}" for k, v in sorted(spc[c].items())) or "none")
        )
    return lines


def _code_lines(found: Discovery) -> list[str]:
    if not found.encoding:
        return []
    colour = found.colour
    per_class: dict[str, set] = {c: set() for c in CLASSES}
    for e in found.images:
        for s in e.coded:
            per_class[CLASSES[e.label]].update(found.scanned_codes(s, colour) or [])
    codes = "; ".join(
        f"{c} {{{', '.join(code_text(v, colour) for v in sorted(vs))}}}" for c, vs in per_class.items() if vs
    )
    return [found.encoding_text(":"), f"codes per class: {codes}"]


def _value_lines(found: Discovery) -> list[str]:
    values: dict[str, set] = defaultdict(set)
    for e in found.images:
        for s, srcs in e.masks.items():
            for src in srcs:
                if src.key in found.scans:
                    values[s].update(found.scans[src.key]["values"])
    return [f"value set {s}: {sorted(values[s])[:32]}" for s in STRUCTURES if values[s]]


def _missing_lines(found: Discovery) -> list[str]:
    lines = [
        f"{what}: {len(items)}" + (f" ({short_list(items)})" if items else "")
        for what, items in (
            ("images without masks", found.images_without_masks),
            ("masks without images", found.orphan_masks),
            ("images without a class", found.unclassified_images),
        )
    ]
    if found.ignored:
        lines.append(f"ignored by --class-map: {len(found.ignored)} files")
    if found.index:
        lines.append(f"files not in the index: {len(found.unreferenced)}")
    return lines


def report(found: Discovery, expect: int | None = None) -> str:
    """The ``--dry-run`` summary: counts, class folders, mask kinds, value sets, what is missing."""
    problem = count_problem(found, expect)
    lines = [
        f"archive: {found.root}",
        f"images: {len(found.images)} (" + ", ".join(f"{k} {v}" for k, v in found.counts().items()) + ")",
        f"count check: {problem}" if problem else "count check: ok",
        *_mask_lines(found),
        *_code_lines(found),
        *_value_lines(found),
        *_missing_lines(found),
        f"flags: {found.options.flags_text() or '(none)'}",
    ]
    return "\n".join(lines)


def evidence_text(found: Discovery) -> str:
    """The dataset card's words for the ``evidence`` / ``twin`` columns ("" without them)."""
    if found.evidence_mode == "file":
        twin = ", `twin` (RGB: the same frame with the evidence removed; CG: the image itself)"
        return (
            ", `evidence` (L, 0/255: where the class evidence is rendered, from the archive's "
            "`_evidence` masks)" + (twin if found.twins else "")
        )
    if found.evidence_mode == "derived":
        return (
            ", `evidence` (L, 0/255) derived from the archive's own masks as an approximation: ST tumour, "
            "AD/PS SLEB, CG empty (no twins: counterfactual measures are unavailable)"
        )
    return ""


_BIBTEX = (
    "```bibtex\n@misc{hfus_skin_mendeley,\n"
    "  title = {High-frequency ultrasound skin images with segmentations},\n"
    "  howpublished = {Mendeley Data, v1},\n  doi = {10.17632/5p7fxjt7vs.1},\n"
    "  note = {verify on the landing page}\n}\n"
    "@software{hfus_xai_bench,\n  title = {hfus-xai-bench},\n"
    f"  version = {{{BENCHMARK_VERSION}}}\n}}\n```\n"
)


def _card_header(found: Discovery) -> dict:
    return {
        "license": "cc-by-4.0",
        "pretty_name": "HFUS skin ultrasound (hfus-xai-bench)" if found.generator is None else "hfus-synth",
        "task_categories": ["image-classification"],
        "tags": ["ultrasound", "dermatology", "saliency", "xai", "hfus-xai-bench"],
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/train-*"}]}
        ],
        "dataset_info": {
            "features": features(found.evidence_mode is not None, found.twins)._to_yaml_list(),
            "splits": [{"name": "train", "num_examples": len(found.images)}],
        },
    }


def _source_words(found: Discovery) -> tuple[str, str, str]:
    """(source sentence, licence sentence, citation lead) of the synthetic or the real archive."""
    if found.generator is not None:
        settings = {k: found.generator.get(k) for k in ("generator", "version", "seed", "n")}
        return (
            f"Synthetic stand-in generated by hfus-xai-bench (generator {settings}).",
            "Synthetic data produced by hfus-xai-bench; CC-BY-4.0.",
            "Cite the benchmark; the synthetic track imitates the source dataset below:\n\n",
        )
    return (
        "Mendeley Data `5p7fxjt7vs` v1 (DOI probably 10.17632/5p7fxjt7vs.1): "
        "HFUS images, DUB SkinScanner 75.",
        "CC-BY-4.0 as stated for the source archive: **verify on the landing page "
        "(https://data.mendeley.com/datasets/5p7fxjt7vs/1) before redistributing.**",
        "Cite the source dataset (Mendeley Data 5p7fxjt7vs, v1, DUB SkinScanner 75 HFUS images with "
        "epidermis / SLEB / tumour segmentations) and the benchmark:\n\n",
    )


def card(
    found: Discovery,
    counts: dict[str, int],
    fold_table: dict[str, list[int]],
    n_shards: int,
    n_folds: int,
    seed: int,
) -> str:
    """The dataset card (README.md with the YAML that lets ``datasets.load_dataset(folder)`` work)."""
    import yaml

    header = _card_header(found)
    rows = "\n".join(
        f"| {c} | " + " | ".join(str(v) for v in fold_table[c]) + f" | {counts[c]} |" for c in CLASSES
    )
    totals = [sum(fold_table[c][k] for c in CLASSES) for k in range(n_folds)]
    source, licence, cite = _source_words(found)
    return (
        "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n"
        f"# {header['pretty_name']}\n\n{source}\n\n"
        "Imported with `hfus-bench data import` (hfus-xai-bench "
        f"{BENCHMARK_VERSION}). Images resized to 224×224 (bilinear, bit-identical to PIL's), masks resized "
        f"bilinear then > 127, skin layer map `{SLM_VERSION}`; {n_folds} folds stratified by class and "
        f"grouped by `YYYY-MM-DD_<series>` (seed {seed}); {n_shards} parquet shard(s) in `{DATA_DIR}/`.\n\n"
        "Columns: `image_id`, `image` (RGB), `label` (AD, CG, PS, ST), `epidermis`, `sleb`, `tumor` "
        "(L, 0/255, all-zero when absent), `slm` (L), `fold`, `group_id`" + evidence_text(found) + ".\n\n"
        f"## Import rules\n\n{found.rules_text()} Details in `manifest.json` (`import`).\n\n"
        "## Counts per class and fold\n\n"
        "| class | " + " | ".join(f"fold {k}" for k in range(n_folds)) + " | total |\n"
        "|---|" + "---|" * (n_folds + 1) + "\n" + rows + "\n"
        "| total | " + " | ".join(str(t) for t in totals) + f" | {len(found.images)} |\n\n"
        f"## Licence\n\n{licence}\n\n"
        "## Citation\n\n" + cite + _BIBTEX
    )
