"""Shared fixtures: the default synthetic dataset (built once per machine in the user cache)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synth_ds():
    """The embedded default dataset `hfus-synth` (631 images), as users get it."""
    from hfus_xai_bench.data.hub import load_dataset

    return load_dataset("hfus-synth")
