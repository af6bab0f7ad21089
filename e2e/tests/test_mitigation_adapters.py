"""The mitigation adapters against the real API server and Prometheus: effects run with their
preconditions and replay safely; signals come back as values or as typed no-data, never as 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from e2e.cluster import WorldInfo
from e2e.cluster.processes import free_loopback_port
from e2e.identity import operator_kubeconfig
from e2e.kube import Kube, deployment
from e2e.tests.test_workloads import ready_pods
from stanch.adapters.effects import EffectExecutor, Outcome
from stanch.adapters.kube import KubeClient
from stanch.adapters.prometheus import PrometheusClient
from stanch.adapters.signals import SignalSampler
from stanch.core.effects import Create, Delete, ObjectKey, Patch, Precondition, pointer
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES


async def test_effects_apply_once_and_refuse_a_changed_target(
    world: WorldInfo, kube: Kube, namespace: str
) -> None:
    kube.apply(deployment("api", replicas=2), namespace=namespace)
    key = ObjectKey("apps/v1", "Deployment", "api", namespace)
    async with KubeClient.from_env(operator_kubeconfig(world)) as client:
        executor = EffectExecutor(client)
        dep = await client.get("Deployment", "api", namespace)
        assert dep is not None
        generation = dep["metadata"]["generation"]
        scale = Patch(
            key,
            ({"op": "replace", "path": "/spec/replicas", "value": 4},),
            Precondition(generation=generation, tests=(("/spec/replicas", 2),)),
            step="Apply",
        )
        first = await executor.run(scale)
        assert first.outcome is Outcome.APPLIED, first.describe()
        assert first.generation == generation + 1
        # The replay after a crash is refused by the API server: the change is not applied twice.
        replay = await executor.run(scale)
        assert replay.outcome is Outcome.CONFLICT, replay.describe()
        current = await client.get("Deployment", "api", namespace)
        assert current is not None
        assert current["spec"]["replicas"] == 4
        assert current["metadata"]["generation"] == generation + 1

        # A "must be absent" test (lock annotation) holds on a missing member, fails once set.
        lock_path = pointer("metadata", "annotations", "stanch.dev/active-mitigation")
        lock = Patch(
            key,
            ({"op": "add", "path": lock_path, "value": "m1"},),
            Precondition(tests=(("/metadata/annotations", None),)),
            step="Lock",
        )
        kube.run("annotate", "deployment", "api", "-n", namespace, "team=shop")
        refused = await executor.run(lock)
        assert refused.outcome is Outcome.CONFLICT

        missing = await executor.run(
            Patch(
                ObjectKey("apps/v1", "Deployment", "nope", namespace),
                ({"op": "replace", "path": "/spec/replicas", "value": 1},),
                Precondition(),
                step="Apply",
            )
        )
        assert missing.outcome is Outcome.NOT_FOUND

        # Create: our own leftover counts as done; somebody else's object is a conflict. A canary
        # is a Deployment owned by its Mitigation; any owner will do here (a ConfigMap the test
        # makes with kubectl: the operator's identity may not create ConfigMaps).
        kube.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace=namespace
        )
        owner_uid = kube.get("configmap", "owner", namespace)["metadata"]["uid"]
        manifest = deployment("canary-like", replicas=1)
        manifest["metadata"].update(
            namespace=namespace,
            ownerReferences=[{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}],
        )
        created = await executor.run(Create(manifest, owner_uid, step="Apply"))
        assert created.outcome is Outcome.APPLIED
        again = await executor.run(Create(manifest, owner_uid, step="Apply"))
        assert again.outcome is Outcome.APPLIED
        # The same object (its controller may have written its status meanwhile).
        assert again.obj is not None
        assert created.obj is not None
        assert again.obj["metadata"]["uid"] == created.obj["metadata"]["uid"]
        foreign = await executor.run(Create(manifest, "00000000-0000-0000-0000-000000000000", step="Apply"))
        assert foreign.outcome is Outcome.CONFLICT

        # Delete: value tests are checked against the read the delete is conditional on.
        canary_key = ObjectKey("apps/v1", "Deployment", "canary-like", namespace)
        wrong = await executor.run(
            Delete(canary_key, Precondition(tests=(("/spec/replicas", 2),)), step="Cleanup")
        )
        assert wrong.outcome is Outcome.CONFLICT
        assert await client.get("Deployment", "canary-like", namespace) is not None
        assert created.obj is not None
        uid = created.obj["metadata"]["uid"]
        gone = await executor.run(Delete(canary_key, Precondition(uid=uid), step="Cleanup"))
        assert gone.outcome is Outcome.APPLIED
        assert await client.get("Deployment", "canary-like", namespace) is None
        twice = await executor.run(Delete(canary_key, Precondition(), step="Cleanup"))
        assert twice.outcome is Outcome.APPLIED
        assert twice.message == "already gone"


@pytest.mark.local_world("ready-pods", "simulator")
async def test_signals_are_values_or_typed_no_data(world: WorldInfo, kube: Kube, namespace: str) -> None:
    kube.apply(
        deployment("web", replicas=2, annotations={"sim.stanch.dev/error-ratio": "0.2"}), namespace=namespace
    )
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    templates = dict(DEFAULT_SIGNAL_TEMPLATES)
    prom = PrometheusClient(world.prometheus_url)
    sampler = SignalSampler(prom, templates)
    try:

        async def sample() -> dict[str, tuple[float, ...] | None]:
            end = datetime.now(UTC)
            got = await sampler.sample(
                ["error_ratio", "latency_p99"],
                values={"namespace": namespace, "workload": "web"},
                start=end - timedelta(seconds=10),
                end=end,
                step_seconds=1,
            )
            return {s.signal: s.points for s in got}

        deadline = datetime.now(UTC) + timedelta(seconds=60)
        values = await sample()
        while values["error_ratio"] is None and datetime.now(UTC) < deadline:
            values = await sample()
        points = values["error_ratio"]
        assert points is not None
        assert 0.1 < points[-1] < 0.3, points

        end = datetime.now(UTC)
        nothing, unknown = await sampler.sample(
            ["error_ratio", "no_such_signal"],
            values={"namespace": namespace, "workload": "absent"},
            start=end - timedelta(seconds=10),
            end=end,
            step_seconds=1,
        )
        assert nothing.points is None
        assert nothing.error
        assert "no data" in nothing.error
        assert unknown.points is None
        assert unknown.error
        assert "no signal template" in unknown.error
        missing_value = await sampler.sample(
            ["error_ratio"],
            values={"namespace": namespace},
            start=end - timedelta(seconds=10),
            end=end,
            step_seconds=1,
        )
        assert missing_value[0].points is None
        assert "placeholder" in (missing_value[0].error or "")
    finally:
        await prom.close()

    dead = PrometheusClient(f"http://127.0.0.1:{free_loopback_port()}", timeout=2)
    try:
        end = datetime.now(UTC)
        (down,) = await SignalSampler(dead, templates).sample(
            ["error_ratio"],
            values={"namespace": namespace, "workload": "web"},
            start=end - timedelta(seconds=10),
            end=end,
            step_seconds=1,
        )
        assert down.points is None
        assert down.error
        assert down.error.startswith("prometheus unreachable")
    finally:
        await dead.close()
