"""benchmarks/gpu_register.py (dry run): what a device session returned is reassembled, checked against its
cards' sha256 and registered only where it is the default recipe and no card of its name exists."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

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


def _run(monkeypatch, files_at: Path) -> None:
    monkeypatch.setattr(sys, "argv", ["gpu_register.py", str(files_at)])
    main()


def test_dry_run_registers_only_new_default_recipe_checkpoints(tmp_path: Path, monkeypatch, capsys) -> None:
    before = sorted(p.name for p in PACKAGE.iterdir())
    goo, res, mob1, short = b"googlenet weights", b"resnet weights", b"another fold 1", b"1 epoch"
    cards = {
        "googlenet_hfus-synth_fold0": _card("googlenet_hfus-synth_fold0", goo),
        "resnet101_hfus-synth_fold0": _card("resnet101_hfus-synth_fold0", res),  # its weights stay there
        "mobilenet_v2_hfus-synth_fold1": _card("mobilenet_v2_hfus-synth_fold1", mob1),  # registered already
        "googlenet_hfus-synth_fold1": _card("googlenet_hfus-synth_fold1", short, epochs=1),  # not the recipe
    }
    det = {"googlenet_hfus-synth_fold0": cards["googlenet_hfus-synth_fold0"]}  # the second run: same sha256
    weights = {
        "googlenet_hfus-synth_fold0": goo,
        "mobilenet_v2_hfus-synth_fold1": mob1,
        "googlenet_hfus-synth_fold1": short,
    }
    _run(monkeypatch, _files_at(tmp_path, cards, det, weights))
    out = capsys.readouterr().out
    sha_goo = hashlib.sha256(goo).hexdigest()
    assert "determinism: googlenet_hfus-synth_fold0: IDENTICAL" in out
    assert f"register googlenet_hfus-synth_fold0: sha256 {sha_goo[:12]}, published repository" in out
    assert "published no" in out and "register resnet101_hfus-synth_fold0" in out
    assert "kept the registered mobilenet_v2_hfus-synth_fold1; the GPU run gave ANOTHER sha256" in out
    assert "skipped googlenet_hfus-synth_fold1: recipe or data not the default model's: ['epochs']" in out
    assert "would register 2 checkpoint(s)" in out
    assert sorted(p.name for p in PACKAGE.iterdir()) == before  # a dry run changes nothing


def test_weights_that_differ_from_their_card_stop_the_registration(tmp_path: Path, monkeypatch) -> None:
    card = _card("googlenet_hfus-synth_fold0", b"what was trained")
    files_at = _files_at(tmp_path, {card["name"]: card}, {}, {card["name"]: b"what came back"})
    with pytest.raises(SystemExit, match="sha256 differs from its card: the transfer is broken"):
        _run(monkeypatch, files_at)
