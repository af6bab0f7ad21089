"""The report tells one story: what it says in two places, it says the same way.

Checked on incidents built by the real investigation (``investigate``), including the `make demo`
story: a bad deploy, filed before its change point showed, rolled back, investigated again."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stanch.core.investigation.analysis import investigate
from stanch.core.investigation.analysis.ranking import NO_CHANGE_POINT
from stanch.core.models import (
    Evidence,
    Incident,
    IncidentSpec,
    IncidentStatus,
    MetricSummary,
    ObjectMeta,
    OnsetSource,
    TargetRef,
    TimelineKind,
)
from stanch.core.report import ChartMarker, chart_series, layout_labels, render_markdown
from stanch.core.report.blame import blamed_change, blamed_entries
from stanch.core.report.figures import ONSET_METHOD

from .incident_builders import NOW, T0, _series, bad_rollout_incident, rolled_back_incident


def _no_change_point_incident() -> Incident:
    """Errors already high for the whole window: nothing to locate, so the reported start."""
    started = T0 + timedelta(minutes=20)
    spec = IncidentSpec(target=TargetRef(name="checkout", namespace="shop"), started_at=started)
    evidence = Evidence(
        metrics=[
            MetricSummary(signal="error_ratio", points=_series(0.2, 0.2), unit="ratio"),
            MetricSummary(signal="latency_p99", points=_series(0.3, 0.3), unit="seconds"),
        ]
    )
    findings = investigate(spec, evidence, now=NOW, created_at=NOW)
    status = IncidentStatus(
        scope=findings.scope,
        timeline=findings.timeline,
        hypotheses=findings.hypotheses,
        top_hypothesis=findings.top_hypothesis,
        evidence=evidence,
    )
    return Incident(metadata=ObjectMeta(name="flat", namespace="shop"), spec=spec, status=status)


INCIDENTS = {
    "bad rollout": bad_rollout_incident,
    "rolled back before the change point showed": rolled_back_incident,
    "no change point": _no_change_point_incident,
}


def _section(doc: str, title: str) -> str:
    start = doc.index(f"\n## {title}\n")
    end = doc.find("\n## ", start + 1)
    return doc[start : end if end >= 0 else None]


def _rows(section: str, first_cell: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


def _percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


@pytest.fixture(params=list(INCIDENTS), ids=list(INCIDENTS))
def incident(request: pytest.FixtureRequest) -> Incident:
    return INCIDENTS[request.param]()


def test_the_rolled_back_story_is_the_demo_story() -> None:
    """The builder reproduces what `make demo` showed: a refined onset over a kept diagnosis."""
    status = rolled_back_incident().status
    assert status is not None
    assert status.scope is not None
    assert status.scope.onset_source is OnsetSource.CHANGE_POINT
    assert status.hypotheses[0].category.value == "RecentDeploy"
    assert any(e.kind is TimelineKind.MITIGATION for e in status.timeline)


def test_every_change_a_hypothesis_blames_is_on_the_timeline(incident: Incident) -> None:
    status = incident.status
    assert status is not None
    for h in status.hypotheses:
        if blamed_change(h) is not None:
            assert blamed_entries(h, status.timeline), (h.statement, [e.summary for e in status.timeline])


def test_the_blamed_deploy_of_the_rolled_back_incident_is_on_the_timeline_and_the_chart() -> None:
    incident = rolled_back_incident()
    assert incident.status is not None
    top = incident.status.hypotheses[0]
    blamed_deploy = blamed_change(top)
    assert blamed_deploy is not None
    assert blamed_deploy.key == "2"
    timeline = _section(render_markdown(incident, now=NOW), "Timeline")
    assert "| Deploy | revision 2:" in timeline
    assert "| Deploy | revision 3:" in timeline  # and the rollback, after it
    blamed = [m for m in chart_series(incident).markers if m.blamed]
    assert [m.label for m in blamed] == ["blamed: revision 2"]


def test_the_onset_method_is_stated_identically_everywhere(incident: Incident) -> None:
    status = incident.status
    assert status is not None
    assert status.scope is not None
    assert status.scope.onset_source is not None
    source = status.scope.onset_source
    doc = render_markdown(incident, now=NOW)
    summary = _section(doc, "Summary")
    assert f"({source.value}: {ONSET_METHOD[source]})" in summary
    onset_entries = [e for e in status.timeline if e.kind is TimelineKind.ONSET]
    assert [e.details.get("source") for e in onset_entries] == [source.value]
    if source is OnsetSource.CHANGE_POINT:
        assert "no change point" not in doc.lower()
        assert NO_CHANGE_POINT not in doc
    else:
        assert "(change point)" not in doc
        assert (
            "change point found" in onset_entries[0].summary or "no change point" in onset_entries[0].summary
        )


def test_impact_and_metrics_print_the_same_numbers(incident: Incident) -> None:
    doc = render_markdown(incident, now=NOW)
    impact, metrics = _section(doc, "Impact"), _section(doc, "Evidence")
    for impact_name, signal in (("error ratio", "error_ratio"), ("latency", "latency_p99")):
        [impact_row] = _rows(impact, impact_name)
        overall = [r for r in _rows(metrics, signal) if len(r) == 5]  # the overall table: no Scope column
        assert overall, f"{signal} has no overall row"
        assert impact_row[1:4] == overall[0][1:4], signal


def test_the_error_ratio_before_the_onset_is_one_number(incident: Incident) -> None:
    doc = render_markdown(incident, now=NOW)
    [impact_row] = _rows(_section(doc, "Impact"), "error ratio")
    before = _percent(impact_row[1])
    for quoted in re.findall(r"the error ratio was (\S+) before the onset", doc):
        assert _percent(quoted) == pytest.approx(before, abs=0.0005), quoted


def test_timings_in_hypotheses_match_the_timeline(incident: Incident) -> None:
    status = incident.status
    assert status is not None
    text = "\n".join(s for h in status.hypotheses for s in [h.statement, *h.supporting, *h.contradicting])
    checked = 0
    for entry in status.timeline:
        if entry.kind not in (TimelineKind.DEPLOY, TimelineKind.CONFIG_CHANGE):
            continue
        label = entry.summary.split(": ", 1)[0]
        offset = entry.details["offsetFromOnset"]
        for said in re.findall(rf"(\S+) after {re.escape(label)}\b", text):
            # "error spike 4m after revision 7" is the deploy at -4m on the timeline (+0s when equal).
            assert offset in (f"-{said}", "+0s" if said == "0s" else None), (label, said, offset)
            checked += 1
    if incident.metadata.name == "checkout-5xx":
        assert checked, "the blamed deploy's timing is quoted and was compared"


# --- the chart's labels --------------------------------------------------------------------------


def _markers(offsets: list[int], labels: list[str], blamed: int | None = None) -> list[ChartMarker]:
    return [
        ChartMarker(T0 + timedelta(seconds=o), TimelineKind.DEPLOY, label, blamed=(i == blamed))
        for i, (o, label) in enumerate(zip(offsets, labels, strict=True))
    ]


def _check_layout(markers: list[ChartMarker], char_width: float, rows: int) -> None:
    start = min(m.time for m in markers)
    end = max(m.time for m in markers) + timedelta(seconds=1)
    placed = layout_labels(markers, start, end, char_width=char_width, rows=rows)
    assert len({p.marker for p in placed}) == len(placed), "one label per marker"
    for p in placed:
        assert 0.0 <= p.left < p.right <= 1.0 + 1e-9, p
        assert p.right - p.left == pytest.approx(len(p.text) * char_width)
        assert 0 <= p.row < rows
        assert p.text == str(p.marker + 1) or p.text.startswith(f"{p.marker + 1} ")
        anchor = p.left if p.align == "left" else p.right
        assert anchor == pytest.approx(p.anchor if p.align == "left" else p.right)
    for a in placed:
        for b in placed:
            if a is not b and a.row == b.row:
                assert a.right <= b.left or b.right <= a.left, (a, b)


def test_labels_of_markers_at_the_same_moment_go_to_different_rows() -> None:
    markers = _markers([0, 0, 0], ["revision 2", "onset", "Rollback"])
    placed = layout_labels(markers, T0, T0 + timedelta(minutes=10), char_width=0.01, rows=4)
    assert sorted(p.row for p in placed) == [0, 1, 2]
    _check_layout(markers, 0.01, 4)


def test_a_label_at_the_right_edge_ends_at_its_marker_instead_of_being_cut() -> None:
    markers = _markers([0, 600], ["revision 2", "a long label for the last marker"])
    placed = layout_labels(markers, T0, T0 + timedelta(minutes=10), char_width=0.01)
    last = next(p for p in placed if p.marker == 1)
    assert last.align == "right"
    assert last.right == pytest.approx(1.0)
    assert last.text == "2 a long label for the last marker"


def test_the_blamed_label_is_placed_first_and_whole() -> None:
    crowded = _markers([0] * 8, [f"change {i}" for i in range(8)], blamed=5)
    placed = layout_labels(crowded, T0, T0 + timedelta(minutes=10), char_width=0.02, rows=2)
    blamed = next(p for p in placed if p.marker == 5)
    assert blamed.row == 0
    assert blamed.text == "6 change 5"


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=3600), min_size=1, max_size=25),
    char_width=st.floats(min_value=0.002, max_value=0.08),
    rows=st.integers(min_value=1, max_value=6),
    data=st.data(),
)
def test_labels_never_overlap_nor_leave_the_chart(
    offsets: list[int], char_width: float, rows: int, data: st.DataObject
) -> None:
    labels = data.draw(
        st.lists(
            st.text(alphabet="abcdefghij :/-0123456789", min_size=1, max_size=60),
            min_size=len(offsets),
            max_size=len(offsets),
        )
    )
    blamed = data.draw(st.none() | st.integers(min_value=0, max_value=len(offsets) - 1))
    _check_layout(_markers(offsets, labels, blamed), char_width, rows)


def test_the_legend_numbers_every_marker_like_its_label() -> None:
    chart = chart_series(rolled_back_incident())
    legend = chart.legend()
    assert len(legend) == len(chart.markers)
    for i, (line, marker) in enumerate(zip(legend, chart.markers, strict=True), 1):
        assert line.startswith(f"{i}  {marker.time.strftime('%H:%M:%SZ')}  ")
        assert ("BLAMED" in line) == marker.blamed
    assert any("BLAMED Deploy: revision 2:" in line for line in legend)
