"""Shared fixtures: the default synthetic dataset (built once per machine in the user cache), an empty cache.

Helpers shared by several test files live in ``helpers.py``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synth_ds():
    """The embedded default dataset `hfus-synth` (631 images), as users get it."""
    from hfus_xai_bench.data.dataset import load_dataset

    return load_dataset("hfus-synth")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty user cache (``HFUS_BENCH_CACHE``) and no Hub access, for one test."""
    monkeypatch.setenv("HFUS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "cache"


def pytest_configure(config) -> None:
    """Under pytest-xdist (`make test` runs two workers on two cores) each worker uses one torch thread."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
