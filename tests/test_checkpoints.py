"""Checkpoint registry: save/load round trips, sha256 verification, lookup order, Hub cache, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hfus_xai_bench import cli
from hfus_xai_bench.config import parse_list
from hfus_xai_bench.constants import ARCH_NAMES, NUM_FOLDS, arch_name
from hfus_xai_bench.data.dataset import synth_revision
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.models import checkpoints as C
from hfus_xai_bench.models import reference as R
from hfus_xai_bench.models.zoo import build_model

HUB_SHA = "0123456789abcdef0123456789abcdef01234567"
#: the user cache of the test session (the default track is built there once), before `isolated` empties it
SESSION_CACHE = os.environ.get("HFUS_BENCH_CACHE")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Empty user cache, empty package folder, empty HF cache, offline."""
    monkeypatch.setenv("HFUS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(C, "PACKAGE_DIR", tmp_path / "package")
    monkeypatch.setattr(C, "REGISTRY", {})
    threads = torch.get_num_threads()  # small tensors: one thread avoids OpenMP spin-waits on shared cores
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_model("mobilenet_v2")
    with torch.no_grad():  # non-trivial BN statistics, so buffers are checked too
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.num_batches_tracked.fill_(7)
    return m


def _card(**kw):
    return {
        "arch": "mobilenet_v2",
        "dataset": {"id": "toy", "revision": "r1"},
        "fold": 0,
        "metrics": {"test": {"accuracy": 0.95, "f1": 0.94}},
        **kw,
    }


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa
    )


def test_float32_round_trip_is_bit_exact(tmp_path, model):
    sha = C.save_checkpoint(model, tmp_path / "m", _card())
    weights, card_path = tmp_path / "m.safetensors", tmp_path / "m.json"
    assert sha == hashlib.sha256(weights.read_bytes()).hexdigest() == C.sha256_file(weights)
    card = json.loads(card_path.read_text())
    assert card["sha256"] == sha and card["dtype"] == "float32" and card["file"] == "m.safetensors"
    assert card["schema"] == C.CARD_SCHEMA and card["name"] == "m"
    for checkpoint in (weights, card_path, str(weights)):
        loaded, info = C.load_model("mobilenet_v2", checkpoint=checkpoint)
        assert _states_equal(model, loaded)
        assert not loaded.training
        assert info.sha256 == sha and info.path == weights
        assert info.target_layer is loaded.features[-1]
        assert info.checkpoint.accuracy == 0.95 and info.checkpoint.dataset_revision == "r1"
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    # saving again gives the same bytes (deterministic serialisation)
    assert C.save_checkpoint(model, tmp_path / "again.safetensors", _card()) == sha


def test_float16_storage_is_upcast_on_load(tmp_path, model):
    C.save_checkpoint(model, tmp_path / "f32", _card())
    C.save_checkpoint(model, tmp_path / "f16", _card(dtype="float16"))
    assert (tmp_path / "f16.safetensors").stat().st_size < 0.55 * (
        tmp_path / "f32.safetensors"
    ).stat().st_size
    from safetensors.torch import load_file

    raw = load_file(str(tmp_path / "f16.safetensors"))
    assert raw["features.0.0.weight"].dtype == torch.float16
    assert raw["features.0.1.num_batches_tracked"].dtype == torch.int64
    loaded, info = C.load_model("mobilenet_v2", checkpoint=tmp_path / "f16.safetensors")
    assert info.checkpoint.dtype == "float16"
    for k, v in model.state_dict().items():
        got = loaded.state_dict()[k]
        expected = v.half().float() if v.is_floating_point() else v
        assert got.dtype == v.dtype and torch.equal(got, expected), k


def test_tampered_file_is_refused(tmp_path, model):
    sha = C.save_checkpoint(model, tmp_path / "m", _card())
    path = tmp_path / "m.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(HfusError, match="sha256 mismatch") as err:
        C.load_model("mobilenet_v2", checkpoint=path)
    assert sha in str(err.value) and actual in str(err.value)


def test_bad_inputs_are_clear_errors(tmp_path, model):
    C.save_checkpoint(model, tmp_path / "m", _card())
    with pytest.raises(HfusError, match="not resnet101"):
        C.load_model("resnet101", checkpoint=tmp_path / "m.safetensors")
    (tmp_path / "x.pt").write_bytes(b"pickle")
    with pytest.raises(HfusError, match="safetensors"):
        C.load_model("mobilenet_v2", checkpoint=tmp_path / "x.pt")
    with pytest.raises(HfusError, match="not found"):
        C.load_model("mobilenet_v2", checkpoint=tmp_path / "missing.safetensors")
    with pytest.raises(HfusError, match="float16"):
        C.save_checkpoint(model, tmp_path / "b", _card(dtype="bfloat16"))


def test_missing_checkpoint_offline_names_the_train_command():
    with pytest.raises(HfusError, match=r"offline.*hfus-bench train --models resnet101 --folds 3"):
        C.load_model("resnet101", fold=3)
    with pytest.raises(
        HfusError, match=r"hfus-bench train --models googlenet --dataset owner/data --folds 1"
    ):
        C.find_checkpoint("googlenet", dataset="owner/data", fold=1)


def test_missing_checkpoint_hint_names_only_what_exists(capsys):
    """The hint names the cache folder and `hfus-bench models`, never a flag no command has."""
    with pytest.raises(HfusError) as err:
        C.find_checkpoint("resnet101", fold=0)
    message = str(err.value)
    assert "--checkpoint" not in message and str(C.user_checkpoint_dir()) in message
    assert "`hfus-bench models` lists the checkpoints found" in message
    # no default model registered (this test's registry is empty): the command's defaults
    assert "train one with `hfus-bench train --models resnet101 --folds 0`," in message
    for command in ("evaluate", "check", "models"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "--checkpoint" not in capsys.readouterr().out


def test_user_cache_is_found_and_listed(model, capsys):
    sha = C.save_checkpoint(model, C.user_checkpoint_dir() / "mine", _card(fold=2, dataset="toy"))
    loaded, info = C.load_model("mobilenet", dataset="toy", fold=2)
    assert info.sha256 == sha and info.checkpoint.origin == "cache" and _states_equal(model, loaded)
    assert [e.name for e in C.list_checkpoints()] == ["mine"]
    assert C.list_checkpoints(include_cache=False) == []
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "mine" in out and "95.00" in out and "yes" in out and sha[:12] in out
    assert cli.main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["sha256"] == sha and listed[0]["local"] is True and listed[0]["fold"] == 2


def test_dropping_card_and_weights_into_package_folder_registers(tmp_path, model):
    pkg = tmp_path / "package"
    sha = C.save_checkpoint(
        model, pkg / "shipped", _card(dataset={"id": "hfus-synth", "revision": synth_revision()})
    )
    # a card whose weights are absent (and with no Hub entry) does not register
    orphan = json.loads((pkg / "shipped.json").read_text())
    (pkg / "orphan.json").write_text(json.dumps({**orphan, "name": "orphan", "file": "orphan.safetensors"}))
    (pkg / "notes.json").write_text('{"something": "else"}')  # not a card: ignored
    registry = C._build_registry()
    assert list(registry) == ["shipped"]
    entry = registry["shipped"]
    assert (entry.arch, entry.dataset, entry.fold, entry.sha256, entry.origin) == (
        "mobilenet_v2",
        "hfus-synth",
        0,
        sha,
        "package",
    )
    C.REGISTRY.update(registry)
    _, info = C.load_model("mobilenet_v2")  # default dataset hfus-synth, fold 0
    assert info.path == pkg / "shipped.safetensors"
    _, info = C.load_model("mobilenet_v2", checkpoint="shipped")  # by registry name
    assert info.sha256 == sha


def test_the_synthetic_track_is_evaluated_with_checkpoints_of_its_own_revision(tmp_path, model, monkeypatch):
    """Revisions of hfus-synth are different data (generator versions): a checkpoint trained on one never
    evaluates another, wherever it was found (here the user cache)."""
    monkeypatch.setattr(C, "REGISTRY", {})
    cache = C.user_checkpoint_dir()
    card = _card(dataset={"id": "hfus-synth", "revision": "synth-v2-seed0"}, fold=2, name="old")
    C.save_checkpoint(model, cache / "old", card)
    assert C.checkpoint_source("hfus-synth") == ("hfus-synth", synth_revision())
    assert C.find_checkpoint("mobilenet_v2", fold=2, revision="synth-v2-seed0").name == "old"
    with pytest.raises(HfusError) as err:
        C.load_model("mobilenet_v2", fold=2)  # the current revision: the v2 one is not taken
    assert f"no checkpoint for mobilenet_v2 on hfus-synth {synth_revision()} fold 2" in str(err.value)
    with pytest.raises(HfusError) as err:
        C.find_checkpoint("mobilenet_v2", fold=3, revision="synth-v2-seed0")
    message = str(err.value)
    assert "on hfus-synth synth-v2-seed0 fold 3" in message
    assert (
        "train one with `hfus-bench train --models mobilenet_v2 --folds 3 --revision synth-v2-seed0`"
        in message
    )
    # another dataset takes its checkpoints whatever revision is asked for
    assert C.checkpoint_source("owner/data", "abc") == ("owner/data", None)


def test_a_local_dataset_finds_its_checkpoints_however_its_path_is_typed(tmp_path, model, monkeypatch):
    """`train` names a local folder by its resolved path (load_dataset's id); a relative path finds it."""
    data = tmp_path / "mydata"
    data.mkdir()
    C.save_checkpoint(model, C.user_checkpoint_dir() / "local", _card(dataset={"id": str(data.resolve())}))
    monkeypatch.chdir(tmp_path)
    assert C.checkpoint_source("mydata") == (str(data.resolve()), None)
    assert (
        C.find_checkpoint("mobilenet_v2", "mydata", 0).name
        == C.find_checkpoint("mobilenet_v2", str(data), 0).name
    )
    with pytest.raises(HfusError, match="no checkpoint for mobilenet_v2 on mydata fold 1 .*--dataset mydata"):
        C.find_checkpoint("mobilenet_v2", "mydata", 1)


def _register(pkg: Path, model, name: str, published: str, fold: int, keep_weights: bool) -> str:
    """A package card of the default track (weights kept or removed) in the registry; its sha256."""
    from hfus_xai_bench.data.dataset import synth_revision

    card = _card(
        dataset={"id": "hfus-synth", "revision": synth_revision()},
        fold=fold,
        epochs=30,
        init="scratch",
        seed=0,
        dtype="float16",
        published=published,
        environment={"device": "cuda", "device_name": "NVIDIA H200"},
    )
    sha = C.save_checkpoint(model, pkg / name, card)
    if not keep_weights:
        (pkg / f"{name}.safetensors").unlink()
    C.REGISTRY.clear()
    C.REGISTRY.update(C._build_registry())
    return sha


def test_registered_by_sha256_only_says_how_to_make_it(tmp_path, model, capsys):
    pkg = tmp_path / "package"
    _register(pkg, model, "mobilenet_v2_hfus-synth_fold0", "package", 0, keep_weights=True)
    sha = _register(pkg, model, "mobilenet_v2_hfus-synth_fold3", "no", 3, keep_weights=False)
    entry = C.REGISTRY["mobilenet_v2_hfus-synth_fold3"]
    assert entry.published == "no" and not C.is_available(entry)
    command = (
        "hfus-bench train --models mobilenet_v2 --folds 3 --revision synth-v3-seed0 --epochs 30 "
        "--init scratch --seed 0 --dtype float16 --device cuda"
    )
    assert C.reproduce_command(entry) == command
    with pytest.raises(HfusError) as err:
        C.load_model("mobilenet_v2", fold=3)
    assert "registered by its sha256 only" in str(err.value) and f"`{command}`" in str(err.value)
    assert f"NVIDIA H200 and the card's torch this gives sha256 {sha[:12]}" in str(err.value)
    # the reference set: fold 0 here, fold 3 not published, folds 1, 2, 4 and the other architectures
    # not trained yet, each architecture's missing folds on one line with the default model's recipe
    slots = R.reference_set()
    assert len(slots) == 20 and [s.status for s in slots if s.arch == "mobilenet_v2"] == [
        "here",
        "not trained",
        "not trained",
        "not published",
        "not trained",
    ]
    lines = [line for line in R.missing_reference(slots) if line.startswith("mobilenet_v2")]
    assert lines[0] == (
        "mobilenet_v2 folds 1,2,4: not trained yet: `hfus-bench train --models mobilenet_v2 --folds 1,2,4 "
        "--revision synth-v3-seed0 --epochs 30 --init scratch --seed 0 --dtype float16`"
    )
    assert lines[1].startswith(
        "mobilenet_v2 fold 3: not published: mobilenet_v2_hfus-synth_fold3 is registered"
    )
    assert len(R.missing_reference(slots)) == 5  # + densenet201, googlenet, resnet101 folds 0,1,2,3,4
    # evaluating a missing one names the same reference recipe (the default model's registered card)
    with pytest.raises(HfusError) as err:
        C.find_checkpoint("resnet101", fold=0)
    recipe = "--revision synth-v3-seed0 --epochs 30 --init scratch --seed 0 --dtype float16"
    assert f"train one with `hfus-bench train --models resnet101 --folds 0 {recipe}`," in str(err.value)
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "registry (no)" in out and "1 of 20 here" in out and lines[1] in out
    assert "the same command with --resume)" in out.splitlines()[-1]
    # a reproduction in the user cache with other weights stands in for it, under its own card and sha256
    torch.manual_seed(1)
    other = build_model("mobilenet_v2")
    mine = C.save_checkpoint(
        other,
        C.user_checkpoint_dir() / "mobilenet_v2_hfus-synth_fold3",
        dict(C.REGISTRY["mobilenet_v2_hfus-synth_fold3"].meta, arch="mobilenet_v2", fold=3, published=None),
    )
    assert mine != sha and C.REGISTRY["mobilenet_v2_hfus-synth_fold3"].local_path() is None
    _, info = C.load_model("mobilenet_v2", fold=3)
    assert info.sha256 == mine and info.checkpoint.origin == "cache"
    assert [s.status for s in R.reference_set() if s.arch == "mobilenet_v2"][3] == "here"


def test_repository_only_weights_name_the_checkout(tmp_path, model):
    pkg = tmp_path / "package"
    _register(pkg, model, "mobilenet_v2_hfus-synth_fold2", "repository", 2, keep_weights=True)
    _, info = C.load_model("mobilenet_v2", fold=2)  # a git checkout: the weights are next to the card
    assert info.path == pkg / "mobilenet_v2_hfus-synth_fold2.safetensors"
    (pkg / "mobilenet_v2_hfus-synth_fold2.safetensors").unlink()  # a wheel install: the card only
    with pytest.raises(HfusError, match=r"published in the repository.*not in the wheel.*git checkout"):
        C.load_model("mobilenet_v2", fold=2)
    assert [s.status for s in R.reference_set() if s.arch == "mobilenet_v2"][2] == "not here"


def test_bad_published_field_is_a_clear_error(tmp_path, model):
    C.save_checkpoint(model, tmp_path / "m", _card(published="somewhere"))
    with pytest.raises(HfusError, match="'published' must be one of package, repository, hub, no"):
        C.load_model("mobilenet_v2", checkpoint=tmp_path / "m.json")


#: the `train` options that make the recipe (the card's); --out, --device and --quiet do not
RECIPE_OPTIONS = ("dataset", "revision", "epochs", "init", "seed", "dtype", "lr", "momentum", "step_size")
RECIPE_OPTIONS += ("gamma", "batch_size")


def _train_options(command: str) -> dict:
    """The recipe options of a `hfus-bench train` command line, as the CLI parses them (no revision: the
    default track's)."""
    from hfus_xai_bench.data.dataset import synth_revision

    args = cli.build_parser().parse_args(shlex.split(command)[1:])
    options = {name: getattr(args, name) for name in RECIPE_OPTIONS}
    options["revision"] = options["revision"] or synth_revision()
    return options


def test_shipped_cards_reproduce_their_own_command():
    """Each shipped card's recorded ``command`` (as typed, maybe for several architectures or folds) trained
    the card's architecture and fold with the recipe of the reproduce command derived from the card."""
    for entry in C._build_registry().values():
        recorded = entry.meta.get("command")
        if recorded:
            args = cli.build_parser().parse_args(shlex.split(recorded)[1:])
            assert entry.arch in [arch_name(a) for a in parse_list(args.models, ARCH_NAMES)], entry.name
            assert str(entry.fold) in parse_list(args.folds, range(NUM_FOLDS)), entry.name
            assert _train_options(recorded) == _train_options(C.reproduce_command(entry)), entry.name


def test_the_recipe_comparison_reads_commands_as_the_cli_does():
    typed = "hfus-bench train --models mobilenet,googlenet --folds all --epochs 30 --init scratch --out DIR"
    derived = (
        "hfus-bench train --models googlenet --folds 3 --revision synth-v3-seed0 --epochs 30 --init scratch"
    )
    assert _train_options(typed) == _train_options(derived)
    assert _train_options(typed) != _train_options(derived + " --lr 0.01")


def _hub_entry(sha: str, revision: str) -> C.Checkpoint:
    return C.Checkpoint.from_card(
        {
            "name": "hubbed",
            "arch": "mobilenet_v2",
            "dataset": {"id": "hfus-synth", "revision": "v1"},
            "fold": 4,
            "file": "hubbed.safetensors",
            "sha256": sha,
            "hub": {"repo_id": "owner/hfus-models", "revision": revision},
        },
        "hub",
    )


def test_hub_download_from_prepopulated_offline_cache(tmp_path, model):
    C.save_checkpoint(model, tmp_path / "src" / "hubbed", _card())
    sha = C.sha256_file(tmp_path / "src" / "hubbed.safetensors")
    repo = tmp_path / "hf" / "models--owner--hfus-models"
    (repo / "snapshots" / HUB_SHA).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HUB_SHA)
    shutil.copy(tmp_path / "src" / "hubbed.safetensors", repo / "snapshots" / HUB_SHA / "hubbed.safetensors")
    for revision in (HUB_SHA, "main"):
        entry = _hub_entry(sha, revision)
        assert entry.local_path() is None
        loaded, info = C.load_model("mobilenet_v2", checkpoint=entry)
        assert info.path == repo / "snapshots" / HUB_SHA / "hubbed.safetensors"
        assert _states_equal(model, loaded)
    # a pinned revision that is not cached, offline: the error names the local alternative
    with pytest.raises(HfusError, match=r"offline.*hfus-bench train --models mobilenet_v2 --folds 4"):
        C.load_model("mobilenet_v2", checkpoint=_hub_entry(sha, "f" * 40))
    # the Hub copy is verified like any other file
    with pytest.raises(HfusError, match="sha256 mismatch"):
        C.load_model("mobilenet_v2", checkpoint=_hub_entry("0" * 64, HUB_SHA))


def _shipped_synth_entries() -> list[C.Checkpoint]:
    return [
        e
        for e in C._build_registry().values()
        if e.dataset == "hfus-synth" and (C.PACKAGE_DIR / e.filename).is_file()
    ]


SHIPPED = _shipped_synth_entries()


@pytest.mark.slow
@pytest.mark.skipif(
    not SHIPPED,
    reason="no hfus-synth checkpoint shipped in hfus_xai_bench/checkpoints/ yet "
    "(the lead trains MobileNetV2 fold 0 on a GPU and drops its .safetensors + .json there)",
)
@pytest.mark.parametrize("entry", SHIPPED, ids=[e.name for e in SHIPPED])
def test_shipped_checkpoint_accuracy(entry: C.Checkpoint, monkeypatch):
    from hfus_xai_bench.data.dataset import dataset_provenance, fold_arrays, load_dataset
    from hfus_xai_bench.models.training import predict_logits

    monkeypatch.setattr(C, "PACKAGE_DIR", C.Path(C.__file__).resolve().parent.parent / "checkpoints")
    # the session's dataset cache, not `isolated`'s empty one (which would rebuild the track for every entry)
    if SESSION_CACHE is None:
        monkeypatch.delenv("HFUS_BENCH_CACHE")
    else:
        monkeypatch.setenv("HFUS_BENCH_CACHE", SESSION_CACHE)
    path = C.PACKAGE_DIR / entry.filename
    assert path.stat().st_size <= 5e6 or entry.arch != "mobilenet_v2", (
        "the shipped MobileNetV2 must stay <= 5 MB"
    )
    model, info = C.load_model(entry.arch, checkpoint=path)
    assert info.sha256 == entry.sha256
    ds = load_dataset(entry.dataset, revision=entry.dataset_revision)
    recorded_data = entry.meta["dataset"]
    if recorded_data.get("sha256"):
        assert dataset_provenance(ds)["sha256"] == recorded_data["sha256"], (
            "the card was trained on other data: the dataset here was generated differently (run `hfus-bench "
            "data info`: it prints this machine's content hash and whether it matches the golden one)"
        )
    test = fold_arrays(ds, entry.fold, "test")
    pred = predict_logits(model, test.images, "cpu", batch_size=32).argmax(1).numpy()
    accuracy = float(np.mean(pred == test.labels))
    recorded = entry.accuracy
    # a floor against shipping a broken model, not a target: the default model (fold 0) ≥ 90 %; the recipe's
    # other CV folds spread wider (MobileNetV2 folds 1-4: 88.2-97.6 %; fold 3 confuses AD with PS)
    assert recorded is not None and recorded >= (0.90 if entry.fold == 0 else 0.85)
    # GPU-trained, CPU-evaluated: allow two images of device noise (1/126 each)
    assert abs(accuracy - recorded) <= 2 / len(test.labels) + 1e-9, (accuracy, recorded)


def test_wheel_ships_the_weights_the_cards_say():
    """pyproject's package data: every card, and the weights of exactly the cards published in the package
    (the others' weights stay in the git checkout, `published: repository`, or are not published)."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["hfus_xai_bench"]
    assert "checkpoints/*.json" in patterns
    shipped = {p for p in patterns if p.endswith(".safetensors")}
    registry = C.read_cards(root / "hfus_xai_bench" / "checkpoints", "package")
    assert shipped == {f"checkpoints/{e.filename}" for e in registry if e.published == "package"}
    for entry in registry:  # a git checkout holds the weights of every published card
        weights = root / "hfus_xai_bench" / "checkpoints" / entry.filename
        assert weights.is_file() == (entry.published in ("package", "repository")), entry.name


def test_verify_names_an_unknown_checkpoint_and_where_it_goes(tmp_path, model):
    from hfus_xai_bench.verify import load_checkpoint_model

    sha = _register(tmp_path / "package", model, "mobilenet_v2_hfus-synth_fold1", "no", 1, keep_weights=False)
    with pytest.raises(HfusError) as err:
        load_checkpoint_model("mobilenet_v2", 1, "ab" * 32, "hfus-synth", "cpu")
    assert f"has sha256 {'ab' * 32}" in str(err.value) and str(C.user_checkpoint_dir()) in str(err.value)
    assert "--no-model" in str(err.value)
    with pytest.raises(
        HfusError, match=r"registered by its sha256 only.*hfus-bench train --models mobilenet_v2"
    ):
        load_checkpoint_model("mobilenet_v2", 1, sha, "hfus-synth", "cpu")  # registered: how to make it
