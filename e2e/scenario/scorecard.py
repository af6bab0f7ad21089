"""Judge a scenario's outcome against its expectations, and write the scorecard (Markdown + JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from e2e.scenario.format import ObjectExpectation, Scenario
from e2e.scenario.runner import ACTION_FIELDS, Outcome

SCORES_DIR = Path(__file__).resolve().parents[2] / "out" / "scenarios-ci" / "scores"
"""Where the pytest run of the public scenarios keeps one score per scenario: workers write them,
the process that reports the run reads them all into one scorecard."""


@dataclass
class Score:
    scenario: str
    title: str
    detected: bool | None
    top1: bool | None
    top3: bool | None
    localised: bool | None
    first_mitigation: bool | None
    outcome: str | None
    outcome_ok: bool | None
    unreverted_regressions: int
    time_to_detect: float | None
    time_to_mitigate: float | None
    failures: list[str] = field(default_factory=list)
    false_actions: int = 0
    """Mitigations suggested or created where there was no fault, or against an innocent change."""
    variant: str = ""
    """The variant's seed (``--variant-seed``), empty for the scenario as written."""

    @property
    def label(self) -> str:
        return f"{self.scenario} (seed {self.variant})" if self.variant else self.scenario

    @property
    def passed(self) -> bool:
        return not self.failures


def judge(sc: Scenario, o: Outcome) -> Score:
    exp = sc.expect
    failures = [f"error: {e}" for e in o.errors]
    detected_ok = o.detected == exp.detected
    if not detected_ok:
        failures.append(
            f"detected={o.detected}, expected {exp.detected} (top: {o.top_category} {o.top_confidence}%)"
        )
    top1 = top3 = None
    if exp.category is not None:
        accept = {str(exp.category), *(str(c) for c in exp.also_acceptable)}
        top1 = o.top_category in accept
        top3 = bool(accept & set(o.categories[:3]))
        if not top1:
            failures.append(f"top hypothesis {o.top_category!r}, expected {sorted(accept)}")
    localised = None
    if exp.object is not None:
        text = json.dumps(o.judged_hypotheses[:1])
        localised = exp.object.name in text and (
            exp.object.revision is None or f"revision {exp.object.revision}" in text.lower()
        )
        if not localised:
            want = f"{exp.object.kind}/{exp.object.name}" + (
                f" revision {exp.object.revision}" if exp.object.revision is not None else ""
            )
            failures.append(f"top hypothesis does not name {want}")
    first = None
    if exp.first_mitigation is not None:
        fm = exp.first_mitigation
        forbidden = {str(a) for a in fm.forbidden}
        if fm.action is None:
            first = o.suggested_action not in forbidden
            if not first:
                failures.append(f"suggested {o.suggested_action!r}, which is forbidden {sorted(forbidden)}")
        else:
            ok = {str(fm.action), *(str(a) for a in fm.alternatives)}
            first = o.suggested_action in ok and o.suggested_action not in forbidden
            if not first:
                failures.append(f"suggested {o.suggested_action!r}, expected {sorted(ok)}")
        if first and fm.hot_pods_only:
            named = sorted((o.suggested.get("restart") or {}).get("pods") or [])
            first = bool(o.hot_pods) and named == o.hot_pods
            if not first:
                failures.append(
                    f"suggested restarting {named or 'the whole workload'}, expected only the hot pod(s) "
                    f"{o.hot_pods or '(none was hot)'}"
                )
    if exp.expects_no_action and o.suggested_action is not None:
        first = False
        failures.append(f"suggested {o.suggested_action!r}, expected no action")
    elif exp.expects_no_action:
        first = True
    false = false_actions(sc, o)
    failures += [f"false action: {f}" for f in false]
    if false and not exp.anomaly:
        first = False  # something was suggested, if not at the moment the diagnosis was judged
    outcome_ok = None
    if exp.outcome is not None:
        outcome_ok = o.mitigation_phase == str(exp.outcome)
        if not outcome_ok:
            failures.append(
                f"mitigation {o.mitigation!r} ended {o.mitigation_phase!r}, expected {exp.outcome}"
            )
    if exp.recovery is not None and not o.recovered:
        failures.append(f"no recovery below {exp.recovery.below} error ratio")
    if o.unreverted_regressions:
        failures.append(f"{o.unreverted_regressions} unreverted regression(s)")
    return Score(
        scenario=sc.name,
        title=sc.title,
        detected=o.detected,
        top1=top1,
        top3=top3,
        localised=localised,
        first_mitigation=first,
        outcome=o.mitigation_phase,
        outcome_ok=outcome_ok,
        unreverted_regressions=o.unreverted_regressions,
        time_to_detect=o.time_to_detect,
        time_to_mitigate=o.time_to_mitigate,
        failures=failures,
        false_actions=len(false),
    )


def false_actions(sc: Scenario, o: Outcome) -> list[str]:
    """What Stanch suggested or did that it should not have, one line each.

    With no fault (``anomaly: false``) every suggestion on any hypothesis and every Mitigation Stanch
    created is one: there is nothing to mitigate. Against an innocent change, the top hypothesis'
    suggestion (what an on-call engineer runs) and Stanch's own Mitigations count; a lower-ranked
    hypothesis may name the innocent change as a possibility with its way back, without accusing it.
    """
    exp = sc.expect
    found: list[str] = []
    for s in o.suggestions:
        rank = int(s.get("rank", 0))
        what = f"suggested {_describe(s)} ({s.get('category')} {s.get('confidence')}%, rank {rank + 1})"
        if not exp.anomaly:
            found.append(f"{what} with no fault")
            continue
        if rank == 0:
            hit = _against(s, exp.innocent)
            if hit is not None:
                found.append(f"{what} against innocent {_object(hit)}")
    for m in o.stanch_mitigations:
        what = f"Stanch created Mitigation {m.get('name')!r}: {_describe(m)}"
        if not exp.anomaly:
            found.append(f"{what} with no fault")
            continue
        hit = _against(m, exp.innocent)
        if hit is not None:
            found.append(f"{what} against innocent {_object(hit)}")
    return found


def _against(spec: dict[str, Any], innocent: list[ObjectExpectation]) -> ObjectExpectation | None:
    """The innocent change this mitigation would undo or stop, if any: a rollback or pause of that
    Deployment, a toggle of that ConfigMap, any action on another innocent object (an HPA)."""
    target = spec.get("target") or {}
    action = _action(spec)
    for obj in innocent:
        if obj.kind == "ConfigMap":
            if (spec.get("configToggle") or {}).get("configMap") == obj.name:
                return obj
        elif obj.kind == "Deployment":
            same = target.get("name") == obj.name and target.get("kind", "Deployment") == "Deployment"
            if same and action in ("Rollback", "Pause"):
                return obj
        elif target.get("kind") == obj.kind and target.get("name") == obj.name:
            return obj
    return None


def _action(spec: dict[str, Any]) -> str | None:
    return next((kind for key, kind in ACTION_FIELDS.items() if key in spec), None)


def _describe(spec: dict[str, Any]) -> str:
    target = spec.get("target") or {}
    return f"{_action(spec)} of {target.get('kind', 'Deployment')}/{target.get('name')}"


def _object(obj: ObjectExpectation) -> str:
    return f"{obj.kind}/{obj.name}" + (f" revision {obj.revision}" if obj.revision is not None else "")


def _mark(v: bool | None) -> str:
    return "-" if v is None else ("✅" if v else "❌")


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}s"


def render_markdown(scores: list[Score]) -> str:
    head = (
        "| scenario | detected | category top-1 | top-3 | object | first mitigation | outcome "
        "| unreverted regressions | false actions | time to detect | time to mitigate | result |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for s in scores:
        outcome = s.outcome or "-"
        if s.outcome_ok is not None:
            outcome = f"{outcome} {_mark(s.outcome_ok)}"
        cells = [
            s.label,
            *(_mark(v) for v in (s.detected, s.top1, s.top3, s.localised, s.first_mitigation)),
            outcome,
            str(s.unreverted_regressions),
            str(s.false_actions),
            _secs(s.time_to_detect),
            _secs(s.time_to_mitigate),
            "pass" if s.passed else "FAIL",
        ]
        rows.append("| " + " | ".join(cells) + " |")

    def count(attr: str) -> str:
        judged = [getattr(s, attr) for s in scores if getattr(s, attr) is not None]
        return f"{sum(1 for v in judged if v)}/{len(judged)}"

    detect_times = [s.time_to_detect for s in scores if s.time_to_detect is not None]
    mitigate_times = [s.time_to_mitigate for s in scores if s.time_to_mitigate is not None]
    totals = [
        "**total**",
        *(count(a) for a in ("detected", "top1", "top3", "localised", "first_mitigation", "outcome_ok")),
        str(sum(s.unreverted_regressions for s in scores)),
        str(sum(s.false_actions for s in scores)),
        f"{_secs(_median(detect_times))} median",
        f"{_secs(_median(mitigate_times))} median",
        f"{sum(1 for s in scores if s.passed)}/{len(scores)} passed",
    ]
    total = "| " + " | ".join(totals) + " |"
    failures = [f"- **{s.label}**: " + "; ".join(s.failures) for s in scores if s.failures]
    text = head + "\n".join([*rows, total]) + "\n"
    if failures:
        text += "\nFailures:\n\n" + "\n".join(failures) + "\n"
    return text


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def write(scores: list[Score], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "scorecard.md", out_dir / "scorecard.json"
    md.write_text(render_markdown(scores), encoding="utf-8")
    payload: list[dict[str, Any]] = [{**asdict(s), "passed": s.passed} for s in scores]
    js.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return md, js


def save_score(score: Score, scores_dir: Path) -> Path:
    scores_dir.mkdir(parents=True, exist_ok=True)
    path = scores_dir / f"{score.scenario}{'-' + score.variant if score.variant else ''}.json"
    path.write_text(json.dumps(asdict(score), indent=2), encoding="utf-8")
    return path


def load_scores(scores_dir: Path) -> list[Score]:
    """Every score saved in ``scores_dir``, in scenario order."""
    if not scores_dir.is_dir():
        return []
    return [
        Score(**json.loads(path.read_text(encoding="utf-8"))) for path in sorted(scores_dir.glob("*.json"))
    ]


def clear_scores(scores_dir: Path) -> None:
    for path in scores_dir.glob("*.json"):
        path.unlink(missing_ok=True)
