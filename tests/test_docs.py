"""docs/: the metric reference is generated from the registry, and the docs cite files that exist."""

from __future__ import annotations

import re

from helpers import REPO

from hfus_xai_bench.docs_tables import METRICS_DOC, metrics_markdown
from hfus_xai_bench.metrics import registry


def test_metrics_doc_is_generated_from_the_registry() -> None:
    text = (REPO / METRICS_DOC).read_text(encoding="utf-8")
    assert text == metrics_markdown(), "docs/METRICS.md is stale: run `make docs`"
    for m, o in registry.outputs():
        assert f"`{m.key(o)}`" in text
    assert all(f"## `{m.id}`" in text for m in registry.metrics())


def test_docs_and_readme_link_only_existing_files() -> None:
    for doc in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
