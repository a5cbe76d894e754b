"""Loading a method file: METADATA checked at load time (a dict; the result schema's ``method`` types; JSON
data; a name safe as a file name), exit() while importing, which form of a file is used."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_method

from hfus_xai_bench.cli import main
from hfus_xai_bench.errors import HfusError
from hfus_xai_bench.explainers.loader import NAME_PATTERN, available_methods, load_file, load_method

ROOT = Path(__file__).resolve().parents[1]
EXPLAIN = "def explain(model, images, targets, *, context):\n    return images.mean(1)\n"


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ('"my-method"', "METADATA in file:{path} must be a dict"),
        ("[('name', 'x')]", "METADATA in file:{path} must be a dict"),
        ("{'hyperparameters': 'none'}", "invalid at hyperparameters: 'none' is not of type 'object'"),
        ("{'name': 42}", "invalid at name: 42 is not of type 'string'"),
        ("{'name': ''}", "invalid at name: ''"),
        ("{'licence': ['MIT']}", "invalid at licence"),
        ("{'hyperparameters': {'baseline': __import__('torch').zeros(1)}}", "'hyperparameters' must be JSON"),
        ("{'hyperparameters': {'layers': {'a', 'b'}}}", "not JSON serialisable: set"),
        ("{'hyperparameters': {'eps': float('nan')}}", "no NaN"),
        ("{'name': '../escaped'}", "method name '../escaped'"),
        ("{'name': 'a/b'}", "use only letters, digits and _ . - @, starting with a letter or digit"),
        ("{'name': '.hidden'}", "is not a safe file name"),
        ("{'name': '..'}", "is not a safe file name"),
        ("{'name': 'my method'}", "is not a safe file name"),
        # a built-in's name: the file's results and leaderboard entry would replace the built-in's
        ("{'name': 'gradcam'}", "method name 'gradcam' is a built-in method's; give yours another name"),
        ("{'name': 'oracle@grid'}", "method name 'oracle@grid' is a built-in method's"),
    ],
)
def test_bad_metadata_is_refused_at_load_naming_file_and_field(tmp_path, metadata, message):
    path = write_method(tmp_path, f"METADATA = {metadata}\n{EXPLAIN}")
    with pytest.raises(HfusError) as err:
        load_file(path)
    assert message.format(path=path) in str(err.value) and str(path) in str(err.value)


def test_bad_metadata_is_one_line_and_nothing_is_written(tmp_path, capsys):
    """The run never starts: no record, no figure named after the bad name."""
    path = write_method(tmp_path, f"METADATA = {{'name': 42}}\n{EXPLAIN}")
    out = tmp_path / "results"
    assert main(["evaluate", str(path), "--limit", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfus-bench: error: METADATA in file:") and err.count("\n") == 1
    assert "invalid at name" in err and not out.exists()


def test_numpy_scalars_and_tuples_in_metadata_still_load(tmp_path):
    source = (
        "import numpy as np\n"
        "METADATA = {'name': 'np-ok', 'authors': ('a', 'b'), 'hyperparameters': {'sigma': np.float32(0.5)}}\n"
    )
    method = load_file(write_method(tmp_path, source + EXPLAIN))
    assert method.name == "np-ok" and method.metadata["authors"] == ("a", "b")


def test_a_bad_file_name_is_refused_without_metadata_name(tmp_path):
    with pytest.raises(HfusError, match=r"name 'my method' \(METADATA\['name'\], else the file name\)"):
        load_file(write_method(tmp_path, EXPLAIN, name="my method.py"))


def test_exit_while_importing_is_a_load_error_naming_the_file(tmp_path):
    path = write_method(tmp_path, f"{EXPLAIN}import sys\nsys.exit(0)\n")
    with pytest.raises(HfusError) as err:
        load_file(path)
    want = "importing method.py failed: SystemExit: the method called exit(0) (at method.py:4)"
    assert str(err.value) == want


def test_exit_in_an_explainers_init_is_an_initialisation_error(tmp_path):
    path = write_method(
        tmp_path, "class Explainer:\n    def __init__(self, model, context):\n        exit()\n"
    )
    with pytest.raises(HfusError, match=r"failed to initialise: SystemExit: the method called exit\(\)"):
        load_file(path).build(None, None)


def test_both_forms_use_the_class_and_say_so(tmp_path):
    source = f"{EXPLAIN}class Explainer:\n    def __init__(self, model, context):\n        pass\n"
    assert load_file(write_method(tmp_path, source)).unused == "explain"
    assert load_file(write_method(tmp_path, EXPLAIN)).unused is None


def test_every_shipped_method_name_is_valid():
    """Built-ins, examples and the example submission keep loading under the name rule."""
    for name in available_methods():
        assert NAME_PATTERN.fullmatch(load_method(name).name), name
    files = sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "submissions").glob("*/method.py"))
    assert files
    for path in files:
        assert NAME_PATTERN.fullmatch(load_file(path).name), path
    for folder in (p for p in (ROOT / "submissions").iterdir() if p.is_dir()):
        assert NAME_PATTERN.fullmatch(folder.name), folder
