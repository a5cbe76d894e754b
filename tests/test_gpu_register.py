"""benchmarks/gpu_register.py (dry run; --apply on a copy of the cards): what a device session returned (or
`hfus-bench train --out` wrote on the CPU) is reassembled, checked against its cards' sha256 and registered
only where it is the default recipe and no card of its name exists."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import gpu_register
import pytest
from gpu_register import PACKAGE, main

RECIPE = json.loads((PACKAGE / "mobilenet_v2_hfus-synth_fold0.json").read_text())


def _card(name: str, weights: bytes, **changes) -> dict:
    card = copy.deepcopy(RECIPE)
    card.update(name=name, arch=name.split("_hfus")[0], sha256=hashlib.sha256(weights).hexdigest(), **changes)
    card["environment"]["device_name"] = "NVIDIA H100 80GB HBM3"
    return card


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _files_at(tmp: Path, cards: dict[str, dict], det: dict[str, dict], weights: dict[str, bytes]) -> Path:
    """The device call's files as gpu_session.sh's pack() makes them (weights split in two parts)."""
    files_at = tmp / "files_at"
    files_at.mkdir()
    with tarfile.open(files_at / "cards.tar.gz", "w:gz") as tar:
        for folder, held in (("ckpt", cards), ("det", det)):
            for name, card in held.items():
                _add(tar, f"{folder}/{name}.json", json.dumps(card).encode())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in weights.items():
            _add(tar, f"{name}.safetensors", data)
    joined = buffer.getvalue()
    (files_at / "ckpt.tar.0").write_bytes(joined[: len(joined) // 2])
    (files_at / "ckpt.tar.1").write_bytes(joined[len(joined) // 2 :])
    return files_at


def _run(monkeypatch, files_at: Path, *flags: str) -> None:
    monkeypatch.setattr(sys, "argv", ["gpu_register.py", str(files_at), *flags])
    main()


def _returned(tmp: Path) -> tuple[Path, dict[str, dict]]:
    """What a default device call returns: ResNet101 fold 0 trained twice (b: its weights stay there), a
    DenseNet201 card (c), a run of a registered checkpoint and a 1-epoch run that is not the recipe."""
    res, den, goo, short = b"resnet weights", b"densenet weights", b"googlenet on the GPU", b"1 epoch"
    cards = {
        "resnet101_hfus-synth_fold0": _card("resnet101_hfus-synth_fold0", res),
        "densenet201_hfus-synth_fold0": _card("densenet201_hfus-synth_fold0", den),
        "googlenet_hfus-synth_fold0": _card("googlenet_hfus-synth_fold0", goo),  # registered already (CPU)
        "googlenet_hfus-synth_fold1": _card("googlenet_hfus-synth_fold1", short, epochs=1),  # not the recipe
    }
    del cards["densenet201_hfus-synth_fold0"]["counterfactual"]  # as cards written before `train` recorded it
    det = {"resnet101_hfus-synth_fold0": cards["resnet101_hfus-synth_fold0"]}  # the second run: same sha256
    weights = {"googlenet_hfus-synth_fold0": goo, "googlenet_hfus-synth_fold1": short}
    return _files_at(tmp, cards, det, weights), cards


def test_dry_run_registers_only_new_default_recipe_checkpoints(tmp_path: Path, monkeypatch, capsys) -> None:
    before = sorted(p.name for p in PACKAGE.iterdir())
    files_at, cards = _returned(tmp_path)
    _run(monkeypatch, files_at)
    out = capsys.readouterr().out
    sha_res = cards["resnet101_hfus-synth_fold0"]["sha256"]
    assert "determinism: resnet101_hfus-synth_fold0: IDENTICAL" in out
    assert f"register resnet101_hfus-synth_fold0: sha256 {sha_res[:12]}, published no" in out
    assert "register densenet201_hfus-synth_fold0" in out
    assert "its card has no counterfactual: trained before `train` recorded them" in out
    assert "kept the registered googlenet_hfus-synth_fold0; the GPU run gave ANOTHER sha256" in out
    assert "skipped googlenet_hfus-synth_fold1: recipe or data not the default model's: ['epochs']" in out
    assert "would register 2 checkpoint(s)" in out
    assert sorted(p.name for p in PACKAGE.iterdir()) == before  # a dry run changes nothing


def test_apply_writes_the_determinism_check_into_the_unpublished_card(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "package"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("*.safetensors"))  # the cards
    monkeypatch.setattr(gpu_register, "PACKAGE", package)
    files_at, cards = _returned(tmp_path)
    _run(monkeypatch, files_at, "--apply")
    card = json.loads((package / "resnet101_hfus-synth_fold0.json").read_text())
    sha = cards["resnet101_hfus-synth_fold0"]["sha256"]
    assert card["published"] == "no" and card["sha256"] == sha
    assert card["environment"]["determinism"] == {
        "device_name": "NVIDIA H100 80GB HBM3",
        "runs_sha256": [sha, sha],
        "identical": True,
    }
    assert not (package / "resnet101_hfus-synth_fold0.safetensors").exists()  # registered by sha256 only
    assert json.loads((package / "googlenet_hfus-synth_fold0.json").read_text()) == json.loads(
        (PACKAGE / "googlenet_hfus-synth_fold0.json").read_text()
    )  # a registered card is never replaced


def test_weights_that_differ_from_their_card_stop_the_registration(tmp_path: Path, monkeypatch) -> None:
    card = _card("googlenet_hfus-synth_fold0", b"what was trained")
    files_at = _files_at(tmp_path, {card["name"]: card}, {}, {card["name"]: b"what came back"})
    with pytest.raises(SystemExit, match="sha256 differs from its card: the transfer is broken"):
        _run(monkeypatch, files_at)


def test_a_folder_that_train_wrote_registers_with_its_weights(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "package"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr(gpu_register, "PACKAGE", package)
    trained = tmp_path / "trained"  # `hfus-bench train --models googlenet --folds 1 --out trained` on the CPU
    trained.mkdir()
    card = _card("googlenet_hfus-synth_fold1", b"cpu weights")
    del card["published"]  # `train` does not say where weights will be published
    (trained / "googlenet_hfus-synth_fold1.json").write_text(json.dumps(card))
    (trained / "googlenet_hfus-synth_fold1.safetensors").write_bytes(b"cpu weights")
    (trained / "gradcam.json").write_text(json.dumps({"schema": "a result record"}))  # not a card: ignored
    _run(monkeypatch, trained, "--apply")
    registered = json.loads((package / "googlenet_hfus-synth_fold1.json").read_text())
    assert registered["published"] == "repository" and registered["counterfactual"] == card["counterfactual"]
    assert (package / "googlenet_hfus-synth_fold1.safetensors").read_bytes() == b"cpu weights"
    assert not (package / "gradcam.json").exists()
