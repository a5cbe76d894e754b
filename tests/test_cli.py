"""cli/: `hfus-bench` and `python -m hfus_xai_bench`: help, version, exit codes, stderr, entry points."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
from helpers import REPO

from hfus_xai_bench.cli import build_parser, main
from hfus_xai_bench.constants import BENCHMARK_VERSION
from hfus_xai_bench.explainers import loader


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def test_python_m_help_and_version() -> None:
    done = _run("-m", "hfus_xai_bench", "--help")
    assert done.returncode == 0 and "usage: hfus-bench" in done.stdout
    for command in (
        "evaluate",
        "check",
        "submit",
        "verify",
        "cite",
        "leaderboard",
        "data",
        "train",
        "models",
    ):
        assert command in done.stdout
    done = _run("-m", "hfus_xai_bench", "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"hfus-xai-bench {BENCHMARK_VERSION}"


def test_parser_does_not_import_torch() -> None:
    done = _run(
        "-c",
        "import sys; from hfus_xai_bench.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'numpy', 'datasets') if m in sys.modules))",
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("argv", [[], ["data"], ["leaderboard"]])
def test_missing_sub_command_prints_help_and_exits_2(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("usage: hfus-bench") and captured.out == ""


def test_consistent_flags() -> None:
    """--models / --folds / --limit / --device mean the same in every command that has them; device default
    auto."""
    parser = build_parser()
    for argv in (
        ["evaluate", "x"],
        ["submit", "x"],
        ["check", "x"],
        ["verify", "x"],
        ["train", "--models", "a", "--folds", "0"],
    ):
        args = parser.parse_args(argv)
        assert args.device == "auto", argv
        assert not hasattr(args, "arch") and not hasattr(args, "fold") and not hasattr(args, "n"), argv
    assert parser.parse_args(["evaluate", "x"]).limit is None and parser.parse_args(["check", "x"]).limit == 4


def test_errors_and_warnings_go_to_stderr_one_line(monkeypatch, capsys: pytest.CaptureFixture) -> None:
    def noisy() -> dict:
        warnings.warn("something to know", stacklevel=1)
        return {"x": "builtin"}

    monkeypatch.setattr(loader, "available_methods", noisy)
    assert main(["methods"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "hfus-bench: warning: something to know\n" and "x" in captured.out
    assert main(["evaluate", "no-such-method"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfus-bench: error: unknown method") and err.count("\n") == 1


def test_entry_point_methods_load(tmp_path, monkeypatch) -> None:
    """An installed package registers a method in the entry-point group; it is found by name."""
    (tmp_path / "toy_plugin.py").write_text(
        "METADATA = {'name': 'toyplugin', 'kind': 'map', 'licence': 'MIT'}\n"
        "def explain(model, images, targets, *, context):\n    return images.mean(1)\n"
    )
    dist = tmp_path / "toy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{loader.ENTRY_POINT_GROUP}]\ntoyplugin = toy_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert loader.available_methods()["toyplugin"] == "entry point toy_plugin"
    method = loader.load_method("toyplugin")
    assert (
        method.source == "entry_point:toyplugin"
        and method.kind == "map"
        and method.metadata["licence"] == "MIT"
    )


@pytest.mark.parametrize("command", [["cite"], ["compare"], ["leaderboard", "add"]])
@pytest.mark.parametrize("content", [{"foo": 1}, [1, 2]])
def test_a_json_that_is_no_record_is_named_so(tmp_path, capsys, command, content) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps(content))
    args = [*command, str(path)] + ([str(path)] if command == ["compare"] else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{path} is not a result record" in err and "neither `schema_version` nor `method`" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["cite"], "result record or leaderboard entry"),
        (["compare"], "result record or leaderboard entry"),
        (["leaderboard", "add"], "result record"),
    ],
)
def test_a_missing_json_names_what_the_command_takes(tmp_path, capsys, command, expected) -> None:
    path = tmp_path / "missing.json"
    args = [*command, str(path)] + ([str(path)] if command == ["compare"] else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == f"hfus-bench: error: file not found: {path} (expected a {expected})\n"


def test_an_entry_or_a_file_where_a_record_or_folder_belongs(capsys) -> None:
    """`leaderboard add` takes a record, not an entry (cite and compare take both); verify takes a folder."""
    entry = str(REPO / "leaderboard" / "entries" / "gradcam.json")
    assert main(["leaderboard", "add", entry]) == 2
    err = capsys.readouterr().err
    assert f"{entry} is a leaderboard entry, not a result record" in err and err.count("\n") == 1
    assert main(["verify", entry]) == 2
    err = capsys.readouterr().err
    assert f"{entry} is a file: verify takes a submission folder" in err and err.count("\n") == 1


def test_a_closed_output_pipe_stops_quietly(capsys, monkeypatch) -> None:
    """`hfus-bench models | head -1`: no traceback, exit status 141 as other Unix tools."""
    import hfus_xai_bench.cli.models as models_cli

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(models_cli, "_cmd_models", closed)
    assert main(["models"]) == 141
    assert capsys.readouterr().err == ""
