"""Export checkpoints as a Hugging Face model-repo folder, ready for ``hf upload`` (PROTOCOL §2).

ResNet101 and DenseNet201 are too large for the package; they are published on the Hub and registered
as Hub entries (a card with ``hub = {"repo_id", "revision"}`` in ``checkpoints.HUB_CARDS``) only once a
real revision exists. The folder holds each ``<name>.safetensors`` (sha256 verified while copying), its
``<name>.json`` card unchanged, and a ``README.md`` model card with YAML metadata and one table row per
checkpoint (arch, fold, dataset revision + content hash, test metrics, sha256).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from ..constants import BENCHMARK_VERSION
from ..errors import HfusError
from .checkpoints import Checkpoint, resolve_file, verify_sha256


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def model_card(entries: Sequence[Checkpoint]) -> str:
    """The ``README.md`` of the exported repo: YAML front matter + what each file is and how to use it."""
    datasets_ = sorted({e.dataset for e in entries})
    rows = []
    for e in entries:
        data = e.meta.get("dataset", {})
        test = e.test_metrics
        rows.append(
            f"| `{e.name}.safetensors` | {e.arch} | {e.fold} | {e.dataset}@{e.dataset_revision} "
            f"(`{str(data.get('sha256', ''))[:16]}`) | {_pct(test.get('accuracy'))} | {_pct(test.get('f1'))} | "
            f"{e.meta.get('init', '-')} / {e.meta.get('epochs', '-')} ep | {e.dtype} | `{e.sha256[:16]}` |"
        )
    front = "\n".join(
        [
            "---",
            "license: mit",
            "library_name: pytorch",
            "pipeline_tag: image-classification",
            "tags:",
            "  - hfus-xai-bench",
            "  - ultrasound",
            "  - explainability",
            "  - safetensors",
            *(["datasets:"] + [f"  - {d}" for d in datasets_] if datasets_ else []),
            "---",
        ]
    )
    return f"""{front}

# hfus-xai-bench reference checkpoints

Reference CNNs of the **hfus-xai-bench** benchmark (version {BENCHMARK_VERSION}), trained with the study
recipe (PROTOCOL §2: SGD lr 1e-3, momentum 0.9, StepLR 7 / 0.1, batch 8, rotation ±15° + flip,
best-validation checkpoint). Each `.safetensors` file has a `.json` card next to it with the full
provenance: dataset id, revision and content hash, fold split, seed, init, epochs, recipe, test and
validation metrics, training environment and the sha256 of the weights file (checked before use).

| file | arch | test fold | dataset (content hash) | acc % | F1 % | init / epochs | dtype | sha256 |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

## Use

`hfus-bench` loads these files through `huggingface_hub.hf_hub_download` at a pinned revision once
they are registered as Hub entries (`hfus_xai_bench.models.checkpoints.HUB_CARDS`: the card plus
`"hub": {{"repo_id": "<owner>/<repo>", "revision": "<commit sha>"}}`). Until then, put a file and its
card into `~/.cache/hfus-xai-bench/checkpoints/`, where `hfus-bench` finds it.

The numbers a model gives on the synthetic track `hfus-synth` are only comparable on the golden data:
`hfus-bench data info` prints the content hash of the local copy and whether it matches.
"""


def export_checkpoints(entries: Sequence[Checkpoint], out: str | Path) -> Path:
    """Write ``entries`` (weights verified, cards, model card) into the folder ``out``; returns ``out``."""
    if not entries:
        raise HfusError(
            "no checkpoints to export: train one with `hfus-bench train` or pick --models/--folds that exist"
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HfusError(f"{out} is a file; give a folder for the exported model repo")
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise HfusError(
            f"two checkpoints share a name ({', '.join(sorted({n for n in names if names.count(n) > 1}))}); "
            "export them one at a time"
        )
    out.mkdir(parents=True, exist_ok=True)
    for e in entries:
        src = resolve_file(e)
        verify_sha256(src, e.sha256)
        shutil.copyfile(src, out / f"{e.name}.safetensors")
        card_file = e.card_dir / f"{e.name}.json" if e.card_dir is not None else None
        if card_file is not None and card_file.is_file():
            shutil.copyfile(card_file, out / f"{e.name}.json")  # the card unchanged
        else:
            raise HfusError(
                f"checkpoint {e.name} has no card file next to it ({e.card_dir}); re-create it with `hfus-bench train`"
            )
    (out / "README.md").write_text(model_card(entries))
    return out
