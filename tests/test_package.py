"""hfus_xai_bench/__init__.py: the Python API works as the README shows (twice in one process, after other
imports)."""

from __future__ import annotations

import re

import pytest
from helpers import REPO

import hfus_xai_bench as hb


def _readme_python() -> str:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    block = next(b for b in blocks if "hb.evaluate(" in b)
    return block


def test_readme_python_example_runs_as_written_twice(synth_ds, capsys) -> None:
    code = compile(_readme_python(), "README.md", "exec")
    for _ in range(2):
        namespace: dict = {}
        exec(code, namespace)
        assert namespace["result"].record["method"]["name"] == "example-gradient-x-input"
    out = capsys.readouterr().out
    assert out.count("HR1") == 2


def test_evaluate_stays_callable_after_check_and_submission_imports(synth_ds) -> None:
    import hfus_xai_bench.check
    import hfus_xai_bench.runner
    import hfus_xai_bench.submission  # noqa: F401  (these used to rebind hb.evaluate to a module)

    report = hb.check_method("center", n_images=2, device="cpu")
    assert report.ok, report.render()
    for _ in range(2):
        result = hb.evaluate("center", limit=2, progress=False, figure=False)
        assert isinstance(result, hb.Result) and result.headline() is not None
    assert callable(hb.evaluate)


def test_lazy_exports_and_version() -> None:
    for name in hb.__all__:
        assert getattr(hb, name) is not None, name
    assert hb.__version__ == hb.cite_result.__globals__["BENCHMARK_VERSION"]
    assert "hit_rate@1" in hb.METRICS and hb.RunConfig().models == ("mobilenet_v2",)
    with pytest.raises(AttributeError):
        hb.nope  # noqa: B018
