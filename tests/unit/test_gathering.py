"""Evidence shaping (pure): template diffs, rollout history, pod health, events, nodes, config, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stanch.adapters.evidence import label_selector
from stanch.adapters.evidence.logs import LogLimits, LogRequest, choose, parse_lines
from stanch.core.investigation.diffs import template_diff
from stanch.core.investigation.gathering import (
    EventSelections,
    config_changes,
    events_by_reason,
    node_evidence,
    pod_health,
    pod_reasons,
    relevant_objects,
    revisions_by_hash,
    rollout_completed_at,
    rollout_history,
    select_events,
    summarise,
    target_events,
    workload_status,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def template(image: str = "api:1.4.2", **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image, **extra}
    return {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [container]}}


def replica_set(
    rev: int, pod_hash: str, tpl: dict[str, Any], created: float, replicas: int = 0
) -> dict[str, Any]:
    tpl = {**tpl, "metadata": {"labels": {"app": "api", "pod-template-hash": pod_hash}}}
    return {
        "metadata": {
            "name": f"api-{pod_hash}",
            "uid": f"rs-{rev}",
            "creationTimestamp": ts(created),
            "labels": {"app": "api", "pod-template-hash": pod_hash},
            "annotations": {"deployment.kubernetes.io/revision": str(rev)},
            "ownerReferences": [{"kind": "Deployment", "uid": "dep", "controller": True, "name": "api"}],
        },
        "spec": {"template": tpl},
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


DEPLOYMENT = {
    "metadata": {"name": "api", "uid": "dep", "annotations": {"deployment.kubernetes.io/revision": "2"}}
}


def pod(name: str, pod_hash: str, node: str | None, *, ready: bool = True, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"pod-template-hash": pod_hash}},
        "spec": {"nodeName": node, "containers": [{"name": "app"}]},
        "status": {
            "phase": status.pop("phase", "Running"),
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"},
                *status.pop("conditions", []),
            ],
            **status,
        },
    }


def crashing(restarts: int) -> dict[str, Any]:
    return {
        "containerStatuses": [
            {
                "name": "app",
                "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "OOMKilled"}},
            }
        ]
    }


def test_diff_names_image_env_resources_probes_and_scheduling() -> None:
    old = template(env=[{"name": "MODE", "value": "a"}], resources={"limits": {"memory": "256Mi"}})
    new = template(
        "api:1.5.0",
        env=[
            {"name": "MODE", "value": "b"},
            {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
        ],
        resources={"limits": {"memory": "512Mi"}},
        readinessProbe={"httpGet": {"path": "/ready"}},
    )
    new["spec"]["nodeSelector"] = {"pool": "spot"}
    lines = template_diff(old, new)
    assert "image app: api:1.4.2 → api:1.5.0" in lines
    assert "env app: MODE: a → b" in lines
    assert "env app: +DB=<secret db/pw>" in lines, "secret references are named, never resolved"
    assert "resources app: limits.memory: 256Mi → 512Mi" in lines
    assert any(line.startswith("readinessProbe app: added") for line in lines)
    assert "nodeSelector +pool=spot" in lines
    assert template_diff(None, new) == []
    assert template_diff(old, old) == []


def test_diff_redacts_credentials_in_literal_values() -> None:
    old = template(args=["--verbose"])
    new = template(args=["--db=postgres://admin:hunter2@db:5432/x"])
    (line,) = template_diff(old, new)
    assert "hunter2" not in line


def test_rollout_history_newest_first_with_diffs_and_current() -> None:
    rss = [
        replica_set(1, "aaa", template("api:1.4.2"), 0),
        replica_set(2, "bbb", template("api:1.5.0"), 600, replicas=3),
        {**replica_set(9, "zzz", template("other:1"), 700), "metadata": {"name": "x", "ownerReferences": []}},
    ]
    history = rollout_history(DEPLOYMENT, rss)
    assert [r.revision for r in history] == [2, 1], "ReplicaSets of other owners are not ours"
    assert history[0].changes == ["image app: api:1.4.2 → api:1.5.0"], "pod-template-hash is not a change"
    assert history[0].current
    assert not history[1].current
    assert history[0].replicas == 3
    assert revisions_by_hash(rss[:2]) == {"aaa": 1, "bbb": 2}


def _scaled(rs: str, at: float, *, frm: int | None = 0) -> dict[str, Any]:
    message = f"Scaled up replica set {rs} " + (f"from {frm} " if frm is not None else "") + "to 3"
    return {"reason": "ScalingReplicaSet", "type": "Normal", "message": message, "lastTimestamp": ts(at)}


def test_a_rollback_is_dated_when_it_went_out_not_when_its_replica_set_was_made() -> None:
    # kubectl rollout undo to revision 1: its ReplicaSet (made at 0) becomes revision 3 at 1800.
    back = replica_set(3, "aaa", template("api:1.4.2"), 0, replicas=3)
    back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] = "1"
    rss = [back, replica_set(2, "bbb", template("api:1.5.0"), 600)]
    deployment = {
        **DEPLOYMENT,
        "metadata": {**DEPLOYMENT["metadata"], "annotations": {"deployment.kubernetes.io/revision": "3"}},
    }
    events = [
        _scaled("api-aaa", 5, frm=None),  # its first rollout, older API servers' wording
        _scaled("api-bbb", 600),
        _scaled("api-aaa", 1800),
        {**_scaled("api-aaa", 2400), "reason": "Other"},
    ]
    history = rollout_history(deployment, rss, events)
    assert [r.revision for r in history] == [3, 2]
    assert history[0].rolled_out_at == T0 + timedelta(seconds=1800)
    assert history[0].since == T0 + timedelta(seconds=1800)
    assert history[0].created_at == T0
    # A ReplicaSet used once is dated by its creation, even with a scale-up Event of its own.
    assert history[1].rolled_out_at is None
    assert history[1].since == T0 + timedelta(seconds=600)
    # The Events expired: no rollout time is invented.
    assert rollout_history(deployment, rss)[0].rolled_out_at is None


def test_pod_health_groups_by_revision_and_node_and_skips_terminating() -> None:
    by_hash = {"aaa": 1, "bbb": 2}
    pods = [
        pod("a1", "aaa", "n1"),
        pod("a2", "aaa", "n2"),
        pod("b1", "bbb", "n1", ready=False, **crashing(4)),
        pod(
            "b2",
            "bbb",
            None,
            ready=False,
            phase="Pending",
            conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        ),
        {
            **pod("old", "aaa", "n2"),
            "metadata": {"name": "old", "labels": {"pod-template-hash": "aaa"}, "deletionTimestamp": ts(1)},
        },
    ]
    health = pod_health(pods, by_hash)
    assert (health.total, health.ready, health.restarts) == (4, 2, 4)
    assert [g.key for g in health.by_revision] == ["2", "1"], "newest revision first"
    rev2 = health.by_revision[0]
    assert {r.reason: r.count for r in rev2.reasons} == {
        "CrashLoopBackOff": 1,
        "OOMKilled": 1,
        "Unschedulable": 1,
    }
    assert health.by_node[0].key in ("n1", "<unscheduled>"), "worst node first"
    assert {g.key for g in health.by_node} == {"n1", "n2", "<unscheduled>"}


def test_pod_reasons_cover_image_pull_and_not_ready() -> None:
    pulling = pod(
        "p",
        "h",
        "n",
        ready=False,
        containerStatuses=[
            {"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}
        ],
    )
    assert pod_reasons(pulling) == {"ImagePullBackOff"}
    assert pod_reasons(pod("q", "h", "n", ready=False)) == {"NotReady"}
    assert pod_reasons(pod("r", "h", "n")) == set()


def test_events_aggregate_by_reason_for_relevant_objects_only() -> None:
    def event(
        reason: str, name: str, kind: str = "Pod", type_: str = "Warning", last: float = 0, count: int = 1
    ) -> dict[str, Any]:
        return {
            "metadata": {"uid": f"{reason}{name}{last}"},
            "involvedObject": {"kind": kind, "name": name},
            "reason": reason,
            "type": type_,
            "message": f"{reason} on {name} at {last}",
            "firstTimestamp": ts(last - 5),
            "lastTimestamp": ts(last),
            "count": count,
        }

    events = [
        event("BackOff", "p1", last=10, count=5),
        event("BackOff", "p2", last=30, count=2),
        event("BackOff", "someone-else", last=40),
        event("ScalingReplicaSet", "api", kind="Deployment", type_="Normal", last=50),
    ]
    groups = events_by_reason(events, {("Pod", "p1"), ("Pod", "p2"), ("Deployment", "api")})
    assert [g.reason for g in groups] == ["BackOff", "ScalingReplicaSet"], "warnings first"
    backoff = groups[0]
    assert (backoff.count, backoff.objects) == (7, 2)
    assert backoff.last_seen == T0 + timedelta(seconds=30)
    assert backoff.first_seen == T0 + timedelta(seconds=5)
    assert backoff.sample_message == "BackOff on p2 at 30", "the latest message is the sample"


def test_nodes_hosting_pods_problematic_first() -> None:
    nodes: list[dict[str, Any]] = [
        {"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {
            "metadata": {"name": "n2"},
            "spec": {"unschedulable": True, "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "KubeletDown"},
                    {"type": "MemoryPressure", "status": "True"},
                ]
            },
        },
        {"metadata": {"name": "idle"}, "status": {}},
    ]
    out = node_evidence(nodes, {"n1": 3, "n2": 1})
    assert [n.name for n in out] == ["n2", "n1"], "nodes without our pods are left out"
    assert out[0].problems == ["Ready=False (KubeletDown)", "MemoryPressure=True"]
    assert out[0].taints == ["k=v:NoSchedule"]
    assert out[0].unschedulable
    assert out[0].ready is False


def test_config_changes_referenced_recent_secrets_services_hpas() -> None:
    tpl = template(envFrom=[{"secretRef": {"name": "db-creds"}}])
    tpl["spec"]["volumes"] = [{"name": "flags", "configMap": {"name": "flags"}}]

    def cm(name: str, changed: float) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "namespace": "shop",
                "creationTimestamp": ts(0),
                "managedFields": [
                    {"manager": "kubectl-patch", "time": ts(changed), "fieldsV1": {"f:data": {}}}
                ],
            },
            "data": {"a": "1"},
        }

    service = {
        "metadata": {"name": "api", "namespace": "shop", "creationTimestamp": ts(0)},
        "spec": {"selector": {"app": "api"}},
    }
    other = {
        "metadata": {"name": "db", "namespace": "shop", "creationTimestamp": ts(0)},
        "spec": {"selector": {"app": "db"}},
    }
    slice_ = {
        "metadata": {"labels": {"kubernetes.io/service-name": "api"}},
        "endpoints": [{"conditions": {"ready": True}}, {"conditions": {"ready": False}}],
    }
    hpa = {
        "metadata": {"name": "api", "namespace": "shop", "creationTimestamp": ts(0)},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 5},
        "status": {"lastScaleTime": ts(900)},
    }
    changes = config_changes(
        namespace="shop",
        template=tpl,
        deployment_name="api",
        config_maps=[cm("flags", 1000), cm("unrelated-old", 10), cm("unrelated-new", 800)],
        services=[service, other],
        endpoint_slices=[slice_],
        hpas=[hpa],
        quotas=[],
        limit_ranges=[],
        since=T0 + timedelta(seconds=500),
    )
    names = [(c.object.kind, c.object.name) for c in changes]
    assert names[0] == ("ConfigMap", "flags"), "most recent change first"
    assert ("ConfigMap", "unrelated-old") not in names, "old unreferenced ConfigMaps are not changes"
    assert ("ConfigMap", "unrelated-new") in names
    assert ("Service", "db") not in names
    flags = changes[0]
    assert flags.referenced
    assert "data updated by kubectl-patch" in flags.summary
    secret = next(c for c in changes if c.object.kind == "Secret")
    assert secret.changed_at is None
    assert "no Secret access" in secret.summary
    svc = next(c for c in changes if c.object.kind == "Service")
    assert "1/2 endpoints ready" in svc.summary
    assert next(
        c for c in changes if c.object.kind == "HorizontalPodAutoscaler"
    ).changed_at == T0 + timedelta(seconds=900)


def test_summary_before_now_peak_and_no_data_is_not_zero() -> None:
    points = [(T0 + timedelta(seconds=i), v) for i, v in enumerate([0.0, 0.0, 0.5, 0.6, 0.4])]
    summary = summarise(
        "error_ratio", "overall", points, reference=T0 + timedelta(seconds=2), unit="ratio", keep_points=True
    )
    assert (summary.before, summary.now, summary.peak) == (0.0, 0.4, 0.6)
    assert len(summary.points) == 5
    empty = summarise("error_ratio", "overall", [], reference=T0, unit="ratio", keep_points=True)
    assert empty.now is None
    assert empty.error
    stale = summarise(
        "error_ratio",
        "revision:1",
        points,
        reference=T0,
        unit=None,
        keep_points=False,
        fresh_after=T0 + timedelta(seconds=10),
    )
    assert stale.now is None
    assert stale.peak == 0.6
    assert stale.points == []
    many = [(T0 + timedelta(seconds=i), float(i)) for i in range(500)]
    long = summarise("x", "overall", many, reference=T0, unit=None, keep_points=True)
    assert len(long.points) == 60
    assert long.points[-1].value == 499.0


def test_label_selector_rendering() -> None:
    sel = {
        "matchLabels": {"app": "api"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector(sel) == "app=api,tier in (a,b),!canary"
    assert label_selector({}) is None


def test_log_sampling_prefers_unhealthy_pods_and_reads_previous_after_restarts() -> None:
    by_hash = {"aaa": 1, "bbb": 2}
    pods = [pod(f"a{i}", "aaa", "n1") for i in range(5)]
    pods += [
        pod("b-ok", "bbb", "n1"),
        pod("b-crash", "bbb", "n2", ready=False, **crashing(3)),
        pod("b-pending", "bbb", None, ready=False),
    ]
    requests = choose(pods, by_hash, LogLimits(pods_per_revision=2, revisions=2))
    assert requests[0] == LogRequest("b-crash", "app", 2, previous=False)
    assert LogRequest("b-crash", "app", 2, previous=True) in requests
    assert all(r.pod != "b-pending" for r in requests), "no logs without a node"
    assert sum(1 for r in requests if r.revision == 1) == 2, "capped per revision, whatever the pod count"
    lines = parse_lines("2025-03-01T12:00:00.5Z ERROR boom\n\nno-timestamp line\n", requests[0])
    assert lines[0].message == "ERROR boom"
    assert lines[0].time is not None
    assert lines[1].time is None
    assert lines[1].message == "no-timestamp line"


def test_a_rollback_correlates_as_a_change_at_its_rollout_and_the_deploy_it_undid_stays_one() -> None:
    from stanch.core.investigation.analysis.correlation import revision_changes
    from stanch.core.models import RolloutRevision

    rollouts = [
        RolloutRevision(
            revision=3, replica_set="api-aaa", created_at=T0, rolled_out_at=T0 + timedelta(hours=1)
        ),
        RolloutRevision(revision=2, replica_set="api-bbb", created_at=T0 + timedelta(minutes=10)),
    ]
    changes = revision_changes(rollouts, "shop")
    # Revision 2 is the oldest retained revision only because the rollback took revision 1's
    # ReplicaSet: it was still deployed at its own time, and the report blames it.
    assert [(c.label, c.time) for c in changes] == [
        ("revision 2", T0 + timedelta(minutes=10)),
        ("revision 3", T0 + timedelta(hours=1)),
    ]


def test_revision_one_is_the_workloads_creation_not_a_change() -> None:
    from stanch.core.investigation.analysis.correlation import revision_changes
    from stanch.core.models import RolloutRevision

    rollouts = [
        RolloutRevision(revision=1, replica_set="api-aaa", created_at=T0),
        RolloutRevision(revision=2, replica_set="api-bbb", created_at=T0 + timedelta(minutes=10)),
    ]
    assert [c.label for c in revision_changes(rollouts, "shop")] == ["revision 2"]


def _event(uid: str | None, kind: str, name: str, type_: str = "Warning", ev_name: str | None = None) -> Any:
    meta: dict[str, Any] = {"namespace": "shop"}
    if uid is not None:
        meta["uid"] = uid
    if ev_name is not None:
        meta["name"] = ev_name
    return {"metadata": meta, "involvedObject": {"kind": kind, "name": name}, "type": type_, "reason": "R"}


def test_event_selections_from_memory_match_the_three_lists() -> None:
    events = [
        _event("1", "Pod", "api-1", ev_name="b"),
        _event("2", "Deployment", "api", type_="Normal", ev_name="c"),
        _event("3", "Deployment", "api", ev_name="a"),  # a Warning of the Deployment: in two lists
        _event("4", "ReplicaSet", "api-abc", type_="Normal", ev_name="d"),
        _event("5", "Deployment", "other", type_="Normal", ev_name="e"),
        _event("6", "Pod", "api-2", type_="Normal", ev_name="f"),  # Normal pod Events: never selected
    ]
    got = select_events(events, "api", cap=10)
    assert [e["metadata"]["uid"] for e in got.warnings] == ["3", "1"], "sorted by name, like a list"
    assert [e["metadata"]["uid"] for e in got.of_deployment] == ["3", "2"]
    assert [e["metadata"]["uid"] for e in got.of_replica_sets] == ["4"]
    assert [e["metadata"]["uid"] for e in select_events(events, "api", cap=1).warnings] == ["3"]


def test_target_events_are_each_counted_once_and_only_about_the_target() -> None:
    relevant = relevant_objects("api", ["api-abc"], ["api-abc-1"])
    assert relevant == {("Deployment", "api"), ("ReplicaSet", "api-abc"), ("Pod", "api-abc-1")}
    twice = _event("w", "Deployment", "api")
    selections = EventSelections(
        warnings=[twice, _event("x", "Pod", "someone-else"), _event(None, "Pod", "api-abc-1", ev_name="n1")],
        of_deployment=[twice],
        of_replica_sets=[
            _event("r", "ReplicaSet", "api-abc", "Normal"),
            _event(None, "Pod", "api-abc-1", ev_name="n1"),
        ],
    )
    got = target_events(selections, relevant)
    assert [(e["metadata"].get("uid"), e["involvedObject"]["name"]) for e in got] == [
        ("w", "api"),
        (None, "api-abc-1"),
        ("r", "api-abc"),
    ], "the uid (else namespace/name) identifies an Event; another workload's Warning is left out"
    anonymous = [_event(None, "Pod", "api-abc-1"), _event(None, "Pod", "api-abc-1")]
    assert len(target_events(EventSelections(warnings=anonymous), relevant)) == 2, (
        "Events with neither uid nor name cannot be told apart: both kept"
    )


def _deployment_with(conditions: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {
        **DEPLOYMENT,
        "spec": {"replicas": 4},
        "status": {"conditions": conditions, **status},
    }


def test_workload_status_and_rollout_completion_come_from_the_deployment_conditions() -> None:
    done = _deployment_with(
        [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "lastUpdateTime": ts(120),
                "lastTransitionTime": ts(0),
                "message": 'ReplicaSet "api-b" has successfully progressed.',
            },
        ],
        updatedReplicas=4,
        readyReplicas=4,
        availableReplicas=4,
    )
    status = workload_status(done)
    assert (status.desired, status.updated, status.ready, status.available) == (4, 4, 4, 4)
    assert status.progressing_reason == "NewReplicaSetAvailable"
    assert rollout_completed_at(done) == T0 + timedelta(seconds=120)
    rses = [replica_set(1, "a", template(), 0), replica_set(2, "b", template("api:2"), 60, replicas=4)]
    history = rollout_history(done, rses)
    assert [(r.revision, r.completed_at) for r in history] == [(2, T0 + timedelta(seconds=120)), (1, None)]

    stuck = _deployment_with(
        [
            {
                "type": "Available",
                "status": "False",
                "message": "Deployment does not have minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "lastUpdateTime": ts(700),
            },
        ],
        updatedReplicas=1,
        readyReplicas=3,
    )
    status = workload_status(stuck)
    assert status.progressing_reason == "ProgressDeadlineExceeded"
    assert status.message == "Deployment does not have minimum availability."
    assert rollout_completed_at(stuck) is None
    under_way = _deployment_with([{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}])
    assert rollout_completed_at(under_way) is None
    assert workload_status({"metadata": {"name": "x"}}).desired is None, "no spec.replicas: unknown, not 0"
