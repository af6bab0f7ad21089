"""The scenario format: every public scenario is valid; mistakes get errors naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from e2e.scenario.format import ScenarioError, discover, load, seconds, world_key
from e2e.scenario.runner import Outcome, ScenarioRun
from e2e.scenario.scorecard import judge, render_markdown
from e2e.scenario.suite import jobs, touches_nodes
from e2e.scenario.variants import vary

PUBLIC = Path(__file__).resolve().parents[2] / "scenarios"
PENDING = Path(__file__).resolve().parents[2] / "scenarios-pending"
"""Scenarios that wait for diagnosis not on main yet: `make test` does not run them, but they are
valid like every public one (see the README there)."""

MINIMAL = """
name: tiny
title: tiny
world:
  workloads: [{name: web}]
steps:
  - {at: 0s, incident: {name: web-5xx, target: web}}
expect: {detected: true, category: RecentDeploy}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", discover(PUBLIC) + discover(PENDING), ids=lambda p: p.stem)
def test_public_scenarios_are_valid(path: Path) -> None:
    sc = load(path)
    assert sc.steps


def test_every_pending_scenario_says_what_it_waits_for() -> None:
    readme = (PENDING / "README.md").read_text(encoding="utf-8")
    for path in discover(PENDING):
        assert f"`{path.name}`" in readme, f"{path.name} has no line in {PENDING}/README.md"


def test_no_scenario_is_both_public_and_pending() -> None:
    names = [load(p).name for p in discover(PUBLIC) + discover(PENDING)]
    assert len(names) == len(set(names))


def test_at_least_the_fifteen_incidents_of_the_issue() -> None:
    assert len(discover(PUBLIC)) >= 15


def test_durations() -> None:
    assert seconds("500ms") == 0.5
    assert seconds("2m") == 120
    with pytest.raises(ValueError, match="duration"):
        seconds("soon")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("target: web}", "target: nope}", "steps.0.incident names workload 'nope'"),
        (
            "{at: 0s, incident:",
            "{at: 0s, scale: {workload: web, replicas: 1}, incident:",
            "does exactly one thing",
        ),
        ("category: RecentDeploy", "category: Gremlins", "expect.category"),
        ("{name: web}", "{name: Web_1}", "world.workloads.0.name"),
        ("at: 0s", "at: soon", "steps.0.at"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = MINIMAL.replace(old, new)
    assert text != MINIMAL
    with pytest.raises(ScenarioError) as err:
        load(write(tmp_path, text))
    assert message in str(err.value)


def test_explicit_mitigations_are_checked_against_the_crd_model(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "incident: {name: web-5xx, target: web}}",
        "mitigate: {target: web, action: {scale: {replicas: 2, factor: '2'}}}}",
    )
    with pytest.raises(ScenarioError, match="mitigate"):
        load(write(tmp_path, text))


def test_steps_must_be_in_time_order(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "steps:\n",
        "steps:\n  - {at: 30s, scale: {workload: web, replicas: 1}}\n",
    )
    with pytest.raises(ScenarioError, match="time order"):
        load(write(tmp_path, text))


def test_scorecard_judges_expectations(tmp_path: Path) -> None:
    sc = load(write(tmp_path, MINIMAL))
    good = Outcome("tiny", "tiny", detected=True, top_category="RecentDeploy", categories=["RecentDeploy"],
                   top_confidence=80)  # fmt: skip
    wrong = Outcome("tiny", "tiny", detected=True, top_category="TrafficChange",
                    categories=["TrafficChange", "RecentDeploy"], top_confidence=70)  # fmt: skip
    s_good, s_wrong = judge(sc, good), judge(sc, wrong)
    assert s_good.passed
    assert s_good.top1
    assert not s_wrong.passed
    assert s_wrong.top1 is False
    assert s_wrong.top3 is True
    table = render_markdown([s_good, s_wrong])
    assert "| **total** | 2/2 | 1/2 | 2/2 |" in table
    assert "1/2 passed" in table
    assert "top hypothesis 'TrafficChange'" in table


# ---- world keys: {namespace} -------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "dependency.{namespace}.payments",
        "clients.{namespace}.web",
        "client-errors.{namespace}.web",
        "cert.{namespace}.web",
        "traffic.{namespace}.web",
        "hot-pod.{namespace}.web",
        "images.{namespace}",
        "seed.{namespace}",
    ],
)
def test_namespaced_world_keys_name_the_scenarios_own_namespace(tmp_path: Path, key: str) -> None:
    value = {
        "dependency": "fail",
        "clients": "web=70,scraper=300",
        "client-errors": "scraper=0.5",
        "cert": "expired",
        "traffic": "120",
        "hot-pod": "ordinal=0; cores=1.5",
        "images": '{":2.0": "latency-ms=400"}',
        "seed": "7",
    }[key.split(".")[0]]
    text = MINIMAL.replace("steps:\n", f"steps:\n  - {{at: 0s, worldKeys: {{'{key}': '{value}'}}}}\n")
    sc = load(write(tmp_path, text))
    assert sc.steps[0].world_keys == {key: value}
    assert world_key(key, "sc-tiny-ab12") == key.replace("{namespace}", "sc-tiny-ab12")
    assert world_key("images", "sc-tiny-ab12") == "images.sc-tiny-ab12"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dependency.shop.payments", "fail", "write dependency.{namespace}.payments"),
        ("cert.prod.web", "expired", "write cert.{namespace}.web"),
        ("images.shop", "{}", "write images.{namespace} (or images)"),
        ("traffic.default", "80", "write traffic.{namespace}.<workload>"),
        ("clients.default", "web=1", "write clients.{namespace}.<workload>"),
        ("dependency.{ns}.payments", "fail", "the only placeholder is {namespace}"),
        ("dependency.{namespace}.payments", "broken", "it takes fail, slow, ok or"),
        ("hot-pod.{namespace}.web", "temperature=90", "ordinal=N and cores=C"),
        ("traffic.{namespace}.web", "-3", "negative"),
        ("trafic.{namespace}.web", "3", "unknown key; the keys are cert, client-errors"),
    ],
)
def test_bad_world_keys_name_the_key_and_the_fix(tmp_path: Path, key: str, value: str, message: str) -> None:
    for text in (
        MINIMAL.replace("steps:\n", f"steps:\n  - {{at: 0s, worldKeys: {{'{key}': '{value}'}}}}\n"),
        MINIMAL.replace("  workloads:", f"  worldKeys: {{'{key}': '{value}'}}\n  workloads:"),
    ):
        with pytest.raises(ScenarioError) as err:
            load(write(tmp_path, text))
        assert message in str(err.value)
        assert "worldKeys" in str(err.value)


def test_a_null_world_key_deletes_and_is_not_parsed(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "steps:\n", "steps:\n  - {at: 0s, worldKeys: {'dependency.{namespace}.db': null}}\n"
    )
    assert load(write(tmp_path, text)).steps[0].world_keys == {"dependency.{namespace}.db": None}


def test_node_world_keys_run_the_scenario_alone(tmp_path: Path) -> None:
    text = MINIMAL.replace("steps:\n", "steps:\n  - {at: 0s, worldKeys: {node.kwok-node-1: slow}}\n")
    assert touches_nodes(load(write(tmp_path, text)))
    assert not touches_nodes(load(write(tmp_path, MINIMAL)))


# ---- patch, apply and objects --------------------------------------------------------------------
PATCHES = [
    (
        "{kind: Service, name: web, merge: {spec: {selector: {app: web-v2}}}}",
        "merge",
        {"spec": {"selector": {"app": "web-v2"}}},
    ),
    (
        "{kind: Service, name: web, json: [{op: replace, path: /spec/ports/0/targetPort, value: 9090}]}",
        "json",
        [{"op": "replace", "path": "/spec/ports/0/targetPort", "value": 9090}],
    ),
    (
        "{kind: HorizontalPodAutoscaler, name: web, merge: {spec: {maxReplicas: 2}}, fieldManager: argocd}",
        "merge",
        {"spec": {"maxReplicas": 2}},
    ),
    (
        "{kind: Secret, name: tls, json: [{op: add, path: /metadata/annotations, value: null},"
        " {op: remove, path: /metadata/labels/x}, {op: move, from: /a, path: /b}]}",
        "json",
        [
            {"op": "add", "path": "/metadata/annotations", "value": None},
            {"op": "remove", "path": "/metadata/labels/x"},
            {"op": "move", "path": "/b", "from": "/a"},
        ],
    ),
    (
        "{kind: deployment, name: web, strategic: {spec: {paused: true}}}",
        "strategic",
        {"spec": {"paused": True}},
    ),
]


@pytest.mark.parametrize(("patch", "kind", "body"), PATCHES)
def test_patch_steps(tmp_path: Path, patch: str, kind: str, body: object) -> None:
    text = MINIMAL.replace("steps:\n", f"steps:\n  - {{at: 0s, patch: {patch}}}\n")
    step = load(write(tmp_path, text)).steps[0]
    assert step.kind == "patch"
    assert step.patch is not None
    assert step.patch.patch_type == kind
    assert step.patch.body == body


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("{kind: Service, name: web}", "give exactly one of merge"),
        (
            "{kind: Service, name: web, merge: {a: 1}, json: [{op: remove, path: /a}]}",
            "give exactly one of merge",
        ),
        ("{kind: Service, name: web, json: [{op: delete, path: /a}]}", "not a JSON patch operation"),
        (
            "{kind: Service, name: web, json: [{op: replace, path: spec.selector, value: {}}]}",
            "write it like /spec/selector/app",
        ),
        (
            "{kind: Service, name: web, json: [{op: replace, path: /spec/selector}]}",
            "op 'replace' needs value",
        ),
        ("{kind: Service, name: web, json: [{op: copy, path: /b}]}", "needs from"),
        ("{kind: Node, name: kwok-node-0, merge: {spec: {unschedulable: true}}}", "nodeFault"),
        ("{kind: ClusterRole, name: x, merge: {a: 1}}", "not in the scenario's namespace"),
        ("{kind: Namespace, name: x, merge: {a: 1}}", "not in the scenario's namespace"),
        ("{kind: Service, name: Web_1, merge: {a: 1}}", "steps.0.patch.name"),
        ("{kind: Service, name: web, megre: {a: 1}}", "steps.0.patch.megre"),
    ],
)
def test_bad_patch_steps_name_the_field_and_the_fix(tmp_path: Path, patch: str, message: str) -> None:
    text = MINIMAL.replace("steps:\n", f"steps:\n  - {{at: 0s, patch: {patch}}}\n")
    with pytest.raises(ScenarioError) as err:
        load(write(tmp_path, text))
    assert message in str(err.value)
    assert "steps.0.patch" in str(err.value)


QUOTA = "{apiVersion: v1, kind: ResourceQuota, metadata: {name: q}, spec: {hard: {pods: '10'}}}"


def test_objects_and_apply_steps(tmp_path: Path) -> None:
    text = MINIMAL.replace("  workloads:", f"  objects: [{QUOTA}]\n  workloads:").replace(
        "steps:\n", f"steps:\n  - {{at: 0s, apply: {QUOTA}}}\n"
    )
    sc = load(write(tmp_path, text))
    assert sc.world.objects[0]["kind"] == "ResourceQuota"
    assert sc.steps[0].apply is not None


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("{kind: ResourceQuota, metadata: {name: q}}", "needs apiVersion"),
        ("{apiVersion: v1, kind: ResourceQuota}", "needs metadata.name"),
        (
            "{apiVersion: v1, kind: Secret, metadata: {name: s, namespace: prod}}",
            "leave metadata.namespace out",
        ),
        ("{apiVersion: v1, kind: Node, metadata: {name: n}}", "nodeFault"),
    ],
)
def test_bad_objects_name_the_field(tmp_path: Path, manifest: str, message: str) -> None:
    text = MINIMAL.replace("  workloads:", f"  objects: [{manifest}]\n  workloads:")
    with pytest.raises(ScenarioError) as err:
        load(write(tmp_path, text))
    assert message in str(err.value)
    assert "world.objects.0" in str(err.value)


# ---- no fault, innocent changes, false actions ---------------------------------------------------
NO_FAULT = MINIMAL.replace(
    "expect: {detected: true, category: RecentDeploy}", "expect: {anomaly: false, detected: false}"
)


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ("{anomaly: false}", "set detected: false"),
        ("{anomaly: false, detected: false, category: RecentDeploy}", "remove category"),
        (
            "{anomaly: false, detected: false, firstMitigation: {action: Rollback}, outcome: Succeeded}",
            "remove firstMitigation, outcome",
        ),
    ],
)
def test_no_fault_expects_no_cause_and_no_mitigation(tmp_path: Path, expect: str, message: str) -> None:
    text = MINIMAL.replace("expect: {detected: true, category: RecentDeploy}", f"expect: {expect}")
    with pytest.raises(ScenarioError) as err:
        load(write(tmp_path, text))
    assert message in str(err.value)


def _suggestion(
    action: dict[str, object], name: str = "web", rank: int = 0, kind: str = "Deployment"
) -> dict[str, object]:
    return {
        "target": {"kind": kind, "name": name},
        **action,
        "rank": rank,
        "category": "RecentDeploy",
        "confidence": 60,
    }


def test_with_no_fault_every_suggestion_and_every_mitigation_of_stanch_is_a_false_action(
    tmp_path: Path,
) -> None:
    sc = load(write(tmp_path, NO_FAULT))
    quiet = Outcome("tiny", "tiny")
    assert judge(sc, quiet).passed
    assert judge(sc, quiet).first_mitigation is True
    low = Outcome("tiny", "tiny", suggestions=[_suggestion({"rollback": {}}, rank=1)])
    score = judge(sc, low)
    assert score.false_actions == 1
    assert not score.passed
    assert (
        "false action: suggested Rollback of Deployment/web (RecentDeploy 60%, rank 2) with no fault"
        in score.failures
    )
    auto = Outcome(
        "tiny", "tiny", stanch_mitigations=[{"name": "x", "target": {"name": "web"}, "restart": {}}]
    )
    assert judge(sc, auto).false_actions == 1


def test_acting_against_an_innocent_change_is_a_false_action(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "expect: {detected: true, category: RecentDeploy}",
        "expect: {detected: true, category: Dependency, innocent: ["
        "{kind: Deployment, name: web, revision: 2},"
        " {kind: ConfigMap, name: web-flags}, {kind: HorizontalPodAutoscaler, name: web}]}",
    )
    sc = load(write(tmp_path, text))
    right = Outcome(
        "tiny",
        "tiny",
        detected=True,
        top_category="Dependency",
        categories=["Dependency"],
        top_confidence=70,
        suggestions=[_suggestion({"rollback": {}}, rank=1), _suggestion({"restart": {}})],
    )
    assert judge(sc, right).false_actions == 0  # a rollback as the second hypothesis' way back accuses nobody
    assert judge(sc, right).passed
    cases = [
        (_suggestion({"rollback": {}}), "Deployment/web revision 2"),
        (_suggestion({"pause": {}}), "Deployment/web revision 2"),
        (
            _suggestion({"configToggle": {"configMap": "web-flags", "key": "a", "value": "b"}}),
            "ConfigMap/web-flags",
        ),
        (
            _suggestion({"scale": {"replicas": 4}}, kind="HorizontalPodAutoscaler"),
            "HorizontalPodAutoscaler/web",
        ),
    ]
    for suggestion, innocent in cases:
        wrong = Outcome("tiny", "tiny", detected=True, top_category="Dependency", categories=["Dependency"],
                        top_confidence=70, suggestions=[suggestion])  # fmt: skip
        score = judge(sc, wrong)
        assert score.false_actions == 1, suggestion
        assert f"against innocent {innocent}" in score.failures[-1]
    # Other actions on an innocent Deployment do not undo its change.
    scale = Outcome("tiny", "tiny", detected=True, top_category="Dependency", categories=["Dependency"],
                    top_confidence=70, suggestions=[_suggestion({"scale": {"replicas": 4}})])  # fmt: skip
    assert judge(sc, scale).false_actions == 0


def test_the_scorecard_counts_false_actions_per_scenario_and_in_total(tmp_path: Path) -> None:
    sc = load(write(tmp_path, NO_FAULT))
    bad = judge(
        sc,
        Outcome(
            "tiny",
            "tiny",
            suggestions=[_suggestion({"rollback": {}}), _suggestion({"scale": {"replicas": 3}}, rank=1)],
        ),
    )
    good = judge(sc, Outcome("tiny", "tiny"))
    good.variant = "17"
    table = render_markdown([bad, good])
    assert "| false actions |" in table
    assert "| tiny | ❌ | - | - | - | ❌ | - | 0 | 2 |" in table
    assert "| tiny (seed 17) | ❌ | - | - | - | ✅ | - | 0 | 0 |" in table
    assert "| 0 | 2 | - median | - median | 1/2 passed |" in table


# ---- variants ---------------------------------------------------------------------------------
def test_variants_jitter_timings_traffic_and_noise_deterministically_and_keep_expectations() -> None:
    sc = load(PUBLIC / "07-organic-load.yaml")
    a, b, c = vary(sc, 11), vary(sc, 11), vary(sc, 12)
    assert a == b
    assert a != c
    assert a.expect == sc.expect
    assert a.world.world_keys["seed.{namespace}"] == "11"
    factor = a.world.traffic["catalog"] / sc.world.traffic["catalog"]
    assert 0.85 <= factor <= 1.15
    surge = next(s.traffic for s in a.steps if s.traffic)
    assert surge is not None
    assert surge["catalog"] == pytest.approx(180 * factor, abs=0.1)
    assert seconds(sc.world.warmup) <= seconds(a.world.warmup) <= 1.3 * seconds(sc.world.warmup) + 0.001


@pytest.mark.parametrize("path", discover(PUBLIC) + discover(PENDING), ids=lambda p: p.stem)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_variants_keep_order_and_simultaneity(path: Path, seed: int) -> None:
    sc = load(path)
    v = vary(sc, seed)
    old, new = [seconds(s.at) for s in sc.steps], [seconds(s.at) for s in v.steps]
    assert [s.kind for s in v.steps] == [s.kind for s in sc.steps]
    for i in range(1, len(old)):
        gap, moved = old[i] - old[i - 1], new[i] - new[i - 1]
        assert 0.8 * gap - 0.002 <= moved <= 1.25 * gap + 0.002
        assert (moved == 0) == (gap == 0)


def test_jobs_run_as_written_then_each_variant_and_replay_by_seed() -> None:
    sc = load(PUBLIC / "01-bad-image-5xx.yaml")
    src = PUBLIC / "01-bad-image-5xx.yaml"
    todo = jobs([sc], [5, 6], sources=[src])
    assert [j.label for j in todo] == ["bad-image-5xx", "bad-image-5xx-seed-5", "bad-image-5xx-seed-6"]
    assert todo[1].replay().endswith("01-bad-image-5xx.yaml --variant-seed 5")
    replay = jobs([sc], [5], as_written=False, sources=[src])
    assert [j.scenario for j in replay] == [todo[1].scenario]


def test_a_hot_pod_restart_must_name_exactly_the_hot_pods(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "expect: {detected: true, category: RecentDeploy}",
        "expect: {category: ResourceExhaustion,"
        " firstMitigation: {action: Restart, forbidden: [Scale], hotPodsOnly: true}}",
    )
    sc = load(write(tmp_path, text))

    def outcome(pods: list[str] | None, hot: list[str]) -> Outcome:
        restart = {"pods": pods} if pods is not None else {}
        return Outcome("tiny", "tiny", detected=True, top_category="ResourceExhaustion", top_confidence=70,
                       categories=["ResourceExhaustion"], suggested_action="Restart",
                       suggested={"target": {"name": "web"}, "restart": restart}, hot_pods=hot)  # fmt: skip

    assert judge(sc, outcome(["web-1"], ["web-1"])).passed
    whole = judge(sc, outcome(None, ["web-1"]))
    assert not whole.passed
    assert "suggested restarting the whole workload, expected only the hot pod(s) ['web-1']" in whole.failures
    assert not judge(sc, outcome(["web-2"], ["web-1"])).passed
    assert not judge(sc, outcome([], [])).passed
    with pytest.raises(ScenarioError, match="set action: Restart"):
        load(write(tmp_path, text.replace("action: Restart", "action: Scale, alternatives: [Restart]")))


def test_a_first_mitigation_may_only_forbid(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "expect: {detected: true, category: RecentDeploy}",
        "expect: {category: Dependency, firstMitigation: {forbidden: [Rollback, Scale]}}",
    )
    sc = load(write(tmp_path, text))

    def outcome(action: str | None) -> Outcome:
        return Outcome("tiny", "tiny", detected=True, top_category="Dependency", top_confidence=70,
                       categories=["Dependency"], suggested_action=action)  # fmt: skip

    assert judge(sc, outcome(None)).passed
    assert judge(sc, outcome("Restart")).passed
    rollback = judge(sc, outcome("Rollback"))
    assert not rollback.passed
    assert "suggested 'Rollback', which is forbidden ['Rollback', 'Scale']" in rollback.failures
    with pytest.raises(ScenarioError, match="give forbidden"):
        load(write(tmp_path, text.replace("{forbidden: [Rollback, Scale]}", "{alternatives: [Restart]}")))


def test_suggestions_are_recorded_once_each_at_their_strongest() -> None:
    class Run:
        outcome = Outcome("tiny", "tiny")

    def hyp(category: str, confidence: int, **action: object) -> dict[str, object]:
        suggestion = {"target": {"name": "web"}, "summary": f"at {confidence}", **action}
        return {"category": category, "confidence": confidence, "suggestedMitigation": suggestion}

    run = cast(ScenarioRun, Run())  # only its outcome is used
    ScenarioRun._record_suggestions(run, [hyp("RecentDeploy", 18, rollback={}), hyp("Transient", 10)])
    ScenarioRun._record_suggestions(run, [hyp("RecentDeploy", 54, rollback={})])
    later = [hyp("TrafficChange", 30, scale={"replicas": 4}), hyp("RecentDeploy", 20, rollback={})]
    ScenarioRun._record_suggestions(run, later)
    got = [(s["category"], s["confidence"], s["rank"]) for s in run.outcome.suggestions]
    assert got == [
        ("RecentDeploy", 54, 0),
        ("Transient", 10, 1),
        ("TrafficChange", 30, 0),
        ("RecentDeploy", 20, 1),
    ]
