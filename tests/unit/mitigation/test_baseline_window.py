"""The baseline is what a mitigation must not make worse: it never reaches back before the linked
Incident's onset. A rollback filed seconds after its errors began otherwise had a mostly healthy
baseline, the draining tail of the cured errors read as "worse", and the guard redeployed the bad
version (seen in a real-cluster run of the auto-rollback test)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from stanch.core.machine.effects import QuerySignals
from stanch.core.machine.observations import Tick
from stanch.core.machine.phases.baseline import MIN_BASELINE, baseline_start
from stanch.core.mitigation_context import incident_facts

from .test_machine import T0, new_cluster, state, step

WINDOW = timedelta(minutes=10)  # the built-in baselineWindow


def _baseline_query(st: Any) -> QuerySignals:
    _, log = step(st, Tick(), new_cluster(), T0)
    queries = [e for t in log for e in t.effects if isinstance(e, QuerySignals) and e.purpose == "baseline"]
    assert len(queries) == 1
    return queries[0]


def test_without_an_incident_the_baseline_is_the_whole_window() -> None:
    query = _baseline_query(state({"scale": {"factor": 1.5}}))
    assert (query.start, query.end) == (T0 - WINDOW, T0)


def test_an_onset_inside_the_window_starts_the_baseline() -> None:
    onset = T0 - timedelta(minutes=2)
    st = replace(state({"scale": {"factor": 1.5}}), incident_onset=onset)
    query = _baseline_query(st)
    assert (query.start, query.end) == (onset, T0)
    assert query.step_seconds == pytest.approx(120 / 40)
    _, log = step(st, Tick(), new_cluster(), T0)
    assert any("baseline from the Incident's onset" in a.reason for t in log for a in t.audit)


def test_an_onset_older_than_the_window_changes_nothing() -> None:
    st = replace(state({"scale": {"factor": 1.5}}), incident_onset=T0 - timedelta(hours=1))
    assert baseline_start(st, T0) == T0 - WINDOW


def test_an_onset_a_moment_ago_still_leaves_a_minimal_baseline() -> None:
    st = replace(state({"scale": {"factor": 1.5}}), incident_onset=T0 - timedelta(seconds=2))
    assert baseline_start(st, T0) == T0 - MIN_BASELINE


def test_only_a_change_point_or_a_reported_start_is_an_onset() -> None:
    def incident(source: str) -> dict[str, Any]:
        return {"spec": {}, "status": {"scope": {"onset": "2025-03-01T11:58:00Z", "onsetSource": source}}}

    assert incident_facts(incident("ChangePoint")).onset == T0 - timedelta(minutes=2)
    assert incident_facts(incident("StartedAt")).onset == T0 - timedelta(minutes=2)
    assert incident_facts(incident("CreationTime")).onset is None
    assert incident_facts({"spec": {"resolved": True}}).resolved is True
    assert incident_facts(None).onset is None
