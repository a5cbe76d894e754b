"""`hfus-bench cite`: BibTeX for the benchmark (with its version), the dataset, the study code and paper."""

from __future__ import annotations

import argparse
import re

import pytest

from hfus_xai_bench.citation import METHOD_REFERENCES, benchmark_bibtex, bibtex_balanced, cite
from hfus_xai_bench.constants import BENCHMARK_VERSION
from hfus_xai_bench.explainers.registry import ATTRIBUTION_METHODS, CAM_METHODS
from hfus_xai_bench.leaderboard import register


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
    assert text.count("verify") >= 4  # unverified fields are flagged, one note per entry


def test_benchmark_entry_carries_the_version() -> None:
    bib = benchmark_bibtex("1.2.3")
    assert _entries(bib) == [("software", "hfus_xai_bench_1_2_3")] and "version   = {1.2.3}" in bib
    assert bibtex_balanced(bib)
    assert not bibtex_balanced(bib + "}") and not bibtex_balanced("@misc{x, title = {a}")


def test_every_published_method_has_a_reference() -> None:
    for name in CAM_METHODS + ATTRIBUTION_METHODS:
        url, bib = METHOD_REFERENCES[name]
        assert url.startswith("https://") and bibtex_balanced(bib), name


@pytest.mark.parametrize(("flags", "n"), [([], 4), (["--benchmark-only"], 1), (["--no-paper", "--no-study"], 2)])
def test_cli(flags: list[str], n: int, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["cite", *flags])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert len(_entries(out)) == n and bibtex_balanced(out) and BENCHMARK_VERSION in out
