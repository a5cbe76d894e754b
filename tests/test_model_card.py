"""The exported model card states test accuracy in the Hub's evaluation-results formats (parsed offline)."""

from __future__ import annotations

import dataclasses

import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load

from hfus_xai_bench.models.checkpoints import Checkpoint
from hfus_xai_bench.models.export import eval_results_files, model_card

TEST = {"accuracy": 0.9682539682539683, "precision": 0.97, "recall": 0.9682539682539683, "f1": 0.968}


def _entry(fold: int, dataset: str = "hfus-synth", **metrics: float) -> Checkpoint:
    return Checkpoint(
        name=f"mobilenet_v2_{dataset.replace('/', '--')}_fold{fold}",
        arch="mobilenet_v2",
        dataset=dataset,
        dataset_revision="synth-v2-seed0",
        fold=fold,
        filename="x.safetensors",
        sha256="ab" * 32,
        meta={"metrics": {"test": metrics or TEST}, "dataset": {"sha256": "cd" * 32}},
    )


def test_model_index_parses_with_huggingface_hub(tmp_path) -> None:
    entries = [_entry(0), _entry(3, accuracy=0.5)]
    readme = tmp_path / "README.md"
    readme.write_text(model_card(entries))
    meta = metadata_load(readme)
    assert meta["license"] == "mit" and meta["pipeline_tag"] == "image-classification"
    assert [m["name"] for m in meta["model-index"]] == [e.name for e in entries]
    card = ModelCard.load(readme)
    results = card.data.eval_results
    accuracy = {(r.dataset_config, r.metric_type): r.metric_value for r in results}
    assert accuracy[("fold-0", "accuracy")] == round(TEST["accuracy"], 6)
    assert accuracy[("fold-3", "accuracy")] == 0.5
    assert ("fold-3", "f1") not in accuracy  # only the metrics a card has
    for r in results:
        assert r.task_type == "image-classification" and r.dataset_type == "hfus-synth"
        assert r.dataset_split == "test" and r.dataset_revision == "synth-v2-seed0"
    assert {r.metric_type for r in results if r.dataset_config == "fold-0"} == {
        "accuracy",
        "precision",
        "recall",
        "f1",
    }
    # the Markdown body is unchanged below the header
    assert "| `mobilenet_v2_hfus-synth_fold0.safetensors` | mobilenet_v2 | 0 |" in card.text


def test_eval_results_files_only_for_hub_datasets() -> None:
    assert eval_results_files([_entry(0)]) == {}  # "hfus-synth" is no Hub dataset id
    hub = dataclasses.replace(_entry(1, dataset="owner/hfus-synth"))
    files = eval_results_files([hub])
    assert list(files) == [f"{hub.name}.yaml"]
    (entry,) = yaml.safe_load(files[f"{hub.name}.yaml"])
    assert entry["dataset"] == {"id": "owner/hfus-synth", "task_id": "fold-1", "revision": "synth-v2-seed0"}
    assert entry["value"] == round(100 * TEST["accuracy"], 4)
    assert set(entry) == {"dataset", "value", "source", "notes"}
