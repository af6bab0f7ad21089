"""Hypothesis profiles for the property tests.

``ci`` (the default) is derandomized: every run checks the same examples, so the test command is
reproducible and a red build always means a change broke something, never that a new random draw
found an old weakness. ``explore`` draws fresh examples on every run — run it when working on
the detectors and the guard (``pytest tests/unit --hypothesis-profile=explore``) and turn what it
finds into a fixed regression test.
"""

from __future__ import annotations

import shutil

import pytest
from e2e.cluster.config import binaries
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile("ci")


@pytest.fixture
def kubectl() -> str:
    """The world's pinned kubectl when built, else one on PATH; the test is skipped without either."""
    built = binaries().kubectl
    found = str(built) if built.exists() else shutil.which("kubectl")
    if found is None:
        pytest.skip("no kubectl: run `make cluster-binaries` to build one")
    return found
