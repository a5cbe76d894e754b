"""Export checkpoints as a Hugging Face model-repo folder, ready for ``hf upload`` (PROTOCOL §2).

ResNet101 and DenseNet201 are too large for the package; they are published on the Hub and registered
as Hub entries (a shipped card with ``hub = {"repo_id", "revision"}`` and no weights file) only once a
real revision exists. The folder holds each ``<name>.safetensors`` (sha256 verified while copying), its
``<name>.json`` card unchanged, and a ``README.md`` model card with YAML metadata and one table row per
checkpoint (arch, fold, dataset revision + content hash, test metrics, sha256).

Test accuracy (and weighted precision / recall / F1) is stated in the two forms the Hub reads:
``model-index`` in the card's YAML (one entry per checkpoint; task ``image-classification``, dataset
type = the dataset id, config ``fold-<k>``, split ``test``, revision; ``huggingface_hub.ModelCard``
parses it into ``card.data.eval_results``), and the newer ``.eval_results/<checkpoint>.yaml`` files
(``dataset: {id, task_id, revision}``, ``value``, ``source``, ``notes``), which the Hub aggregates only
for datasets registered there as benchmarks, so they are written only when the dataset id is a Hub
id (``owner/name``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..constants import BENCHMARK_VERSION
from ..errors import HfusError
from .checkpoints import Checkpoint, resolve_file, verify_sha256


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


#: card metric key -> (Hub metric id, display name); values are fractions in [0, 1]
_HUB_METRICS = {
    "accuracy": ("accuracy", "Test accuracy"),
    "precision": ("precision", "Test precision (weighted)"),
    "recall": ("recall", "Test recall (weighted)"),
    "f1": ("f1", "Test F1 (weighted)"),
}


def model_index(entries: Sequence[Checkpoint]) -> list[dict]:
    """The card's ``model-index``: per checkpoint its test-fold metrics (Hub evaluation-results format)."""
    out = []
    for e in entries:
        test = e.test_metrics
        metrics = [
            {"type": hub_id, "name": label, "value": round(float(test[key]), 6)}
            for key, (hub_id, label) in _HUB_METRICS.items()
            if test.get(key) is not None
        ]
        if not metrics:
            continue
        dataset = {"type": e.dataset, "name": e.dataset, "config": f"fold-{e.fold}", "split": "test"}
        if e.dataset_revision:
            dataset["revision"] = e.dataset_revision
        task = {"type": "image-classification", "name": "Image Classification"}
        out.append({"name": e.name, "results": [{"task": task, "dataset": dataset, "metrics": metrics}]})
    return out


def eval_results_files(entries: Sequence[Checkpoint]) -> dict[str, str]:
    """``.eval_results/<name>.yaml`` texts (the Hub's newer format): test accuracy in %, Hub dataset ids
    only."""
    files = {}
    for e in entries:
        if "/" not in e.dataset or e.accuracy is None:
            continue
        dataset = {"id": e.dataset, "task_id": f"fold-{e.fold}"}
        if e.dataset_revision:
            dataset["revision"] = e.dataset_revision
        entry = {
            "dataset": dataset,
            "value": round(100 * float(e.accuracy), 4),
            "source": {"name": "hfus-xai-bench checkpoint card", "url": f"{e.name}.json"},
            "notes": f"test accuracy (%) of {e.arch} on fold {e.fold}, trained on the other folds",
        }
        files[f"{e.name}.yaml"] = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True)
    return files


def model_card(entries: Sequence[Checkpoint]) -> str:
    """The ``README.md`` of the exported repo: YAML front matter + what each file is and how to use it."""
    datasets_ = sorted({e.dataset for e in entries})
    rows = []
    for e in entries:
        data = e.meta.get("dataset", {})
        test = e.test_metrics
        rows.append(
            f"| `{e.name}.safetensors` | {e.arch} | {e.fold} | {e.dataset}@{e.dataset_revision} "
            f"(`{str(data.get('sha256', ''))[:16]}`) | {_pct(test.get('accuracy'))} | "
            f"{_pct(test.get('f1'))} | {e.meta.get('init', '-')} / {e.meta.get('epochs', '-')} ep | "
            f"{e.dtype} | `{e.sha256[:16]}` |"
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
            "metrics:",
            *[f"  - {hub_id}" for hub_id, _ in _HUB_METRICS.values()],
        ]
    )
    index = model_index(entries)
    if index:
        front += "\n" + yaml.safe_dump({"model-index": index}, sort_keys=False, allow_unicode=True).rstrip()
    front += "\n---"
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

The YAML header states each checkpoint's test-fold accuracy and weighted precision / recall / F1 as
`model-index` (the Hub's evaluation-results metadata; one entry per checkpoint, dataset config
`fold-<k>`, split `test`, revision as above).

## Use

`hfus-bench` loads these files through `huggingface_hub.hf_hub_download` at a pinned revision once
they are registered as Hub entries (the card, without the weights file, in the package's `checkpoints/`
folder, plus `"hub": {{"repo_id": "<owner>/<repo>", "revision": "<commit sha>"}}`). Until then, put a
file and its card into `~/.cache/hfus-xai-bench/checkpoints/`, where `hfus-bench` finds it.

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
                f"checkpoint {e.name} has no card file next to it ({e.card_dir}); re-create it with "
                "`hfus-bench train`"
            )
    (out / "README.md").write_text(model_card(entries))
    results = eval_results_files(entries)
    if results:
        (out / ".eval_results").mkdir(exist_ok=True)
        for name, text in results.items():
            (out / ".eval_results" / name).write_text(text)
    return out
