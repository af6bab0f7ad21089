"""Hypothesis profiles for the property tests.

``ci`` (the default) is derandomized: every run checks the same examples, so the test command is
reproducible and a red build always means a change broke something, never that a new random draw
found an old weakness. ``explore`` draws fresh examples on every run — run it when working on
the detectors and the guard (``pytest tests/unit --hypothesis-profile=explore``) and turn what it
finds into a fixed regression test.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)
settings.load_profile("ci")
