"""citation.py and `hfus-bench cite`: the benchmark (version and year from the package metadata, nothing
invented), the dataset, the study, and one exact result."""

from __future__ import annotations

import json
import re

import pytest
from helpers import REPO

from hfus_xai_bench.citation import (
    UNPUBLISHED,
    benchmark_bibtex,
    bibtex_balanced,
    cite,
    cite_result,
    package_version,
    package_year,
)
from hfus_xai_bench.cli import main
from hfus_xai_bench.constants import BENCHMARK_VERSION
from hfus_xai_bench.explainers.loader import load_builtin
from hfus_xai_bench.explainers.registry import ATTRIBUTION_METHODS, CAM_METHODS, SANITY_METHODS


def _entries(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^@(\w+)\{([^,\s]+),", text, flags=re.M)


def test_cite_prints_all_four_entries() -> None:
    text = cite()
    assert bibtex_balanced(text)
    assert [kind for kind, _ in _entries(text)] == ["software", "misc", "software", "article"]
    keys = [key for _, key in _entries(text)]
    assert len(set(keys)) == 4
    assert f"version   = {{{BENCHMARK_VERSION}}}" in text
    assert "doi          = {10.17632/5p7fxjt7vs.1}" in text
    assert "https://github.com/annasli378/SaliencyCNNAnalysis" in text
    assert "volume  = {21}" in text and "number  = {17}" in text and "pages   = {5846}" in text
    assert text.count("verify") >= 3  # unverified fields of third-party works are flagged


def test_benchmark_entry_invents_nothing() -> None:
    bib = benchmark_bibtex()
    assert package_version() == BENCHMARK_VERSION  # the installed metadata is this source tree's version
    year = package_year()
    assert year is None or (re.fullmatch(r"20\d\d", year) and f"year      = {{{year}}}" in bib)
    fields = re.findall(r"^\s+(\w+)\s+=", bib, flags=re.M)
    assert "url" not in fields and "doi" not in fields and "2025" not in bib
    assert UNPUBLISHED in bib and "no DOI" in bib
    bib = benchmark_bibtex("1.2.3", year="2031")
    assert _entries(bib) == [("software", "hfus_xai_bench_1_2_3")] and "version   = {1.2.3}" in bib
    assert "year      = {2031}" in bib and bibtex_balanced(bib)
    assert not bibtex_balanced(bib + "}") and not bibtex_balanced("@misc{x, title = {a}")


def test_year_is_the_licence_year() -> None:
    licence = (REPO / "LICENSE").read_text()
    year = re.search(r"Copyright \(c\) (\d{4})", licence).group(1)
    assert (
        package_year() == year
    )  # from the installed metadata, or the checkout's LICENSE for an older editable install


def test_every_published_builtin_declares_its_reference() -> None:
    for name in CAM_METHODS + ATTRIBUTION_METHODS:
        meta = load_builtin(name).metadata
        assert meta["url"].startswith("https://") and bibtex_balanced(meta["citation"]), name
        assert meta["hyperparameters"], name
    assert load_builtin("ig").metadata["hyperparameters"]["n_steps"] == 50
    assert load_builtin("occlusion30").metadata["hyperparameters"] == {
        "window": 30,
        "stride": 9,
        "baseline": 0.0,
    }
    for name in SANITY_METHODS:
        assert load_builtin(name).metadata["tuning_split"] == "none", name


def test_cite_one_result(tmp_path, capsys) -> None:
    record = json.loads((REPO / "submissions" / "example-gradient-x-input" / "result.json").read_text())
    text = cite_result(record)
    assert bibtex_balanced(text) and [k for k, _ in _entries(text)] == ["misc", "software"]
    assert (
        record["dataset"]["sha256"] in text and record["checkpoints"]["mobilenet_v2"]["0"]["sha256"] in text
    )
    assert f"hfus-xai-bench {record['benchmark_version']} (protocol v{record['protocol_version']})" in text
    assert "example-gradient-x-input" in text and record["dataset"]["revision"] in text
    assert cite_result(record) == text  # deterministic key
    assert main(["cite", str(REPO / "submissions" / "example-gradient-x-input" / "result.json")]) == 0
    assert capsys.readouterr().out == text


@pytest.mark.parametrize(
    ("flags", "n"), [([], 4), (["--benchmark-only"], 1), (["--no-paper", "--no-study"], 2)]
)
def test_cli(flags: list[str], n: int, capsys: pytest.CaptureFixture) -> None:
    assert main(["cite", *flags]) == 0
    out = capsys.readouterr().out
    assert len(_entries(out)) == n and bibtex_balanced(out) and BENCHMARK_VERSION in out


def test_cite_a_leaderboard_entry(capsys) -> None:
    """An entry is citable as it stands (the schema of entries, not of records, applies to it)."""
    path = REPO / "leaderboard" / "entries" / "gradcam.json"
    entry = json.loads(path.read_text())
    assert main(["cite", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == cite_result(entry) and entry["dataset"]["sha256"] in out and bibtex_balanced(out)
