"""Run one scenario end to end on the local world and score it.

The runner plays the world (workloads, faults, traffic), plays the on-call engineer (creates the
Incident, runs the mitigation Stanch suggested, approves) and plays the reviewer (scores what Stanch
concluded and did). Stanch itself runs as the real `stanch run` process, scoped to the scenario's
namespace, talking to Prometheus through a proxy that can simulate an outage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import yaml

from e2e.cluster import WorldInfo
from e2e.identity import operator_kubeconfig
from e2e.kube import Kube, approve, deployment, release_nodes
from e2e.operator_process import OperatorProcess
from e2e.scenario.format import Scenario, Step, Workload, seconds, world_key
from e2e.scenario.proxy import OutageProxy
from e2e.shared import GUARD, world_keys_touch
from stanch.core.investigation.breakdowns import DEFAULT_BREAKDOWN_TEMPLATES
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, with_rate_window

SCENARIO_APPROVER = "scenario-approver"
"""Who approves a scenario's Mitigations: not the requester (the harness's own user)."""
NOT_READY_LABEL = "node-not-ready.stage.kwok.x-k8s.io"
"""Our kwok Stage turns a node NotReady while it carries this label (e2e/cluster/stages)."""

# Time is compressed: short rate windows and fast loops so a scenario takes about a minute. The
# default templates' 5m windows would need a 5-minute baseline; these are the same queries at 15s.
RATE_WINDOW = "15s"
FAST_OPERATOR_ENV = {"STANCH_INVESTIGATION_INTERVAL": "5s"}


def fast_signals_file(directory: Path) -> Path:
    templates = {**DEFAULT_SIGNAL_TEMPLATES, **DEFAULT_BREAKDOWN_TEMPLATES}
    path = directory / "signals.yaml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(with_rate_window(templates, RATE_WINDOW)))
    return path


# settleTime: latency carries a rollout in its numbers for one rate window after the new pods are up.
FAST_GUARD = {
    "interval": "3s",
    "baselineWindow": "20s",
    "bakeTime": "24s",
    "failureLimit": 2,
    "settleTime": RATE_WINDOW,
}
TERMINAL = {"Succeeded", "Reverted", "Failed", "NeedsAttention", "Rejected"}
CONFIDENT = 50
NOT_A_CAUSE = (None, "Unknown", "NoAnomaly")
"""Top categories that blame nothing, however confident: no cause found, or nothing wrong at all."""
# Stanch denies by default; a scenario without policies of its own runs under a platform team's
# ordinary staging policy: the common actions allowed automatically, within limits.
DEFAULT_POLICY: dict[str, Any] = {
    "apiVersion": "stanch.dev/v1alpha1",
    "kind": "MitigationPolicy",
    "metadata": {"name": "scenario-staging"},
    "spec": {
        "actions": [{"action": a, "tier": "Auto"} for a in ("Rollback", "Restart", "Pause")]
        + [
            # What a mitigation may introduce is listed, never open: the scenarios' own images and
            # the feature-flag ConfigMap's keys (Stanch allows no image and no ConfigMap by default).
            {"action": "Canary", "tier": "Auto", "limits": {"canaryImages": ["shop/*"]}},
            {
                "action": "ConfigToggle",
                "tier": "Auto",
                "limits": {"configMaps": [{"name": "*-flags", "keys": ["*"]}]},
            },
            {"action": "Scale", "tier": "Auto", "limits": {"maxReplicas": 20, "maxScaleFactor": 4}},
            # Set an HPA's bounds or targets back after a bad autoscaler change, within the same cap.
            {"action": "Autoscaler", "tier": "Auto", "limits": {"minReplicas": 1, "maxReplicas": 20}},
            {"action": "Evacuate", "tier": "Auto", "limits": {"evacuateNodes": {"names": ["kwok-node-*"]}}},
        ],
    },
}


@dataclass
class Outcome:
    """What happened, as the scorecard needs it."""

    scenario: str
    title: str
    detected: bool = False
    top_category: str | None = None
    categories: list[str] = field(default_factory=list)
    top_confidence: int = 0
    top_statement: str = ""
    suggested_action: str | None = None
    suggested: dict[str, Any] = field(default_factory=dict)
    """The top hypothesis' suggested mitigation, as judged."""
    hot_pods: list[str] = field(default_factory=list)
    """The pods the simulator had pinned hot when the diagnosis was judged (hot-pod world keys)."""
    mitigation: str | None = None
    mitigation_phase: str | None = None
    mitigations: dict[str, str] = field(default_factory=dict)
    unreverted_regressions: int = 0
    time_to_detect: float | None = None
    time_to_mitigate: float | None = None
    recovered: bool | None = None
    errors: list[str] = field(default_factory=list)
    incident_status: dict[str, Any] = field(default_factory=dict)
    judged_hypotheses: list[dict[str, Any]] = field(default_factory=list)
    """The hypotheses the diagnosis is judged on: the last ones before anyone acted."""
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    """Every distinct mitigation Stanch suggested on any hypothesis at any poll before anyone acted,
    with ``rank`` (0: the top hypothesis), ``category`` and ``confidence``: an on-call engineer who
    looked at that moment could have run it, so a false one counts even if it later went away."""
    stanch_mitigations: list[dict[str, Any]] = field(default_factory=list)
    """The specs of the Mitigations Stanch created by itself (Auto mode)."""


class ScenarioRun:
    def __init__(
        self, scenario: Scenario, world: WorldInfo, kube: Kube, workdir: Path, artefacts: Path | None = None
    ) -> None:
        self.sc = scenario
        self.artefacts = artefacts
        self.world = world
        self.kube = kube
        self.ns = (
            f"sc-{scenario.name}"[:50].rstrip("-")
            + "-"
            + hashlib.sha1(str(time.time()).encode()).hexdigest()[:4]
        )
        self.workdir = workdir
        prom = urlparse(world.prometheus_url)
        self.proxy = OutageProxy(prom.hostname or "127.0.0.1", prom.port or 9090)
        env = {**FAST_OPERATOR_ENV, "STANCH_SIGNALS_FILE": str(fast_signals_file(workdir))}
        self.operator = OperatorProcess(
            operator_kubeconfig(world), self.proxy.url, [self.ns], workdir / "operator", env=env
        )
        self.outcome = Outcome(scenario.name, scenario.title)
        self.t0 = 0.0
        self.incident_created_at: float | None = None
        self.mitigation_created_at: float | None = None
        self.world_keys: set[str] = set()
        self.faulted_nodes: set[str] = set()
        self.error_ratio_before_mitigation: dict[str, float | None] = {}

    # ---- world -------------------------------------------------------------------------------
    def _manifest(self, w: Workload, **override: Any) -> dict[str, Any]:
        annotations = override.get("annotations")
        manifest = deployment(
            w.name,
            replicas=w.replicas,
            image=override.get("image") or w.image,
            annotations=dict(w.annotations if annotations is None else annotations),
            labels=w.labels,
            node_selector=override.get("node_selector") or w.node_selector or None,
            env=override.get("env") if override.get("env") is not None else (w.env or None),
            memory_limit=override.get("memory_limit") or w.memory_limit,
        )
        if w.config_map:
            container = manifest["spec"]["template"]["spec"]["containers"][0]
            container["envFrom"] = [{"configMapRef": {"name": w.config_map}}]
            annotations_ = manifest["spec"]["template"]["metadata"]["annotations"]
            annotations_.setdefault("sim.stanch.dev/config-map", w.config_map)
        cause = override.get("change_cause") or w.change_cause
        if cause:
            manifest["metadata"].setdefault("annotations", {})["kubernetes.io/change-cause"] = cause
        return manifest

    def _workload(self, name: str) -> Workload:
        return next(w for w in self.sc.world.workloads if w.name == name)

    def _world_patch(self, keys: dict[str, str | None]) -> None:
        if not self.world.simulator_url:
            raise AssertionError("scenarios need the workload simulator")
        # A scenario's images are its namespace's own key: scenarios and tests run side by side,
        # in other processes, and none may read-modify-write one shared value. {namespace} in a key
        # is the scenario's own namespace, which is random.
        keys = {world_key(k, self.ns): v for k, v in keys.items()}
        GUARD.allow(world_keys_touch(keys), f"simulator world keys {sorted(keys)}")
        self.world_keys |= set(keys)
        httpx.patch(f"{self.world.simulator_url}/world", json=keys, timeout=10).raise_for_status()

    def _traffic(self, traffic: dict[str, float]) -> None:
        self._world_patch({f"traffic.{self.ns}.{w}": f"{rps:g}" for w, rps in traffic.items()})

    def set_up(self) -> None:
        self.kube.run("create", "namespace", self.ns)
        self.kube.wait_for(lambda: self.kube.ok("get", "sa", "default", "-n", self.ns), 30, "namespace ready")
        w = self.sc.world
        if w.traffic:
            self._traffic(w.traffic)
        if w.world_keys:
            self._world_patch(dict(w.world_keys))
        for obj in w.objects:
            self.kube.apply(obj, namespace=self.ns)
        for cm in w.config_maps:
            self.kube.apply(_config_map(cm.name, cm.data), namespace=self.ns)
        for wl in w.workloads:
            self.kube.apply(self._manifest(wl), namespace=self.ns)
            if wl.service:
                self.kube.apply(_service(wl.name), namespace=self.ns)
        for hpa in w.hpas:
            self.kube.apply(_hpa(hpa.workload, hpa.min, hpa.max), namespace=self.ns)
        for pol in w.policies or [DEFAULT_POLICY]:
            self.kube.apply(pol, namespace=self.ns)
        for wl in w.workloads:
            if wl.replicas:
                self._wait_available(wl.name, wl.replicas)
        self.operator.start()
        time.sleep(seconds(w.warmup))
        self.t0 = time.monotonic()

    def _wait_available(self, name: str, replicas: int) -> None:
        self.kube.wait_for(lambda: _available(self.kube, self.ns, name) >= replicas, 90, f"{name} available")

    def tear_down(self) -> None:
        with contextlib.suppress(Exception):
            self.operator.stop()
        with contextlib.suppress(Exception):
            self._keep_artefacts()
        self.proxy.close()
        with contextlib.suppress(Exception):
            if self.world_keys:
                self._world_patch(dict.fromkeys(self.world_keys))
        with contextlib.suppress(Exception):
            self._restore_nodes()
        with contextlib.suppress(Exception):
            self.kube.run("delete", "namespace", self.ns, "--wait=false")

    def _restore_nodes(self) -> None:
        """Nodes are shared by every scenario and test: undo the faults we injected and the cordons our
        Mitigations left (a Succeeded evacuation keeps its cordon, as it should in production)."""
        for node in sorted(self.faulted_nodes):
            self.kube.run("label", "node", node, f"{NOT_READY_LABEL}-")
        release_nodes(self.kube, self.ns)

    def _keep_artefacts(self) -> None:
        """What a reviewer needs to see why a scenario failed: the final Incident and Mitigation
        objects (status, audit) and the operator's logs."""
        if self.artefacts is None:
            return
        self.artefacts.mkdir(parents=True, exist_ok=True)
        resources = self.kube.run("get", "incidents,mitigations,deployments", "-n", self.ns, "-o", "yaml")
        (self.artefacts / "resources.yaml").write_text(resources, encoding="utf-8")
        for log in sorted(self.operator.log_dir.glob("operator-*.log")):
            shutil.copy(log, self.artefacts / log.name)

    # ---- steps -------------------------------------------------------------------------------
    def run_steps(self) -> None:
        for step in self.sc.steps:
            delay = self.t0 + seconds(step.at) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._step(step)

    def _step(self, step: Step) -> None:
        # One branch per step kind, each a line or two: a table of callables would hide less.
        kind = step.kind
        if step.rollout:
            r = step.rollout
            wl = self._workload(r.workload)
            manifest = self._manifest(
                wl,
                image=r.image,
                annotations=r.annotations,
                env=r.env,
                memory_limit=r.memory_limit,
                node_selector=r.node_selector,
                change_cause=r.change_cause,
            )
            self.kube.apply(manifest, namespace=self.ns)
        elif step.scale:
            self.kube.run(
                "scale",
                f"deployment/{step.scale.workload}",
                f"--replicas={step.scale.replicas}",
                "-n",
                self.ns,
            )
        elif step.config_map:
            self.kube.apply(_config_map(step.config_map.name, step.config_map.data), namespace=self.ns)
        elif step.hpa:
            self.kube.apply(_hpa(step.hpa.workload, step.hpa.min, step.hpa.max), namespace=self.ns)
        elif step.node_fault:
            for node, state in step.node_fault.items():
                args = (
                    [f"{NOT_READY_LABEL}=true", "--overwrite"]
                    if state == "NotReady"
                    else [f"{NOT_READY_LABEL}-"]
                )
                self.faulted_nodes.add(node)
                self.kube.run("label", "node", node, *args)
        elif step.traffic:
            self._traffic(step.traffic)
        elif step.world_keys:
            self._world_patch(dict(step.world_keys))
        elif step.patch:
            p = step.patch
            args = [
                "patch",
                f"{p.kind}/{p.name}",
                "-n",
                self.ns,
                f"--type={p.patch_type}",
                "-p",
                json.dumps(p.body),
            ]
            if p.field_manager:
                args.append(f"--field-manager={p.field_manager}")
            self.kube.run(*args)
        elif step.apply:
            self.kube.apply(step.apply, namespace=self.ns)
        elif step.pod_kill:
            for workload, count in step.pod_kill.items():
                pods = self.kube.items("pods", self.ns, f"app={workload}")[:count]
                for pod in pods:
                    self.kube.run("delete", "pod", pod["metadata"]["name"], "-n", self.ns, "--wait=false")
        elif step.operator_restart:
            self.operator.restart()
        elif step.prometheus_outage:
            self.proxy.outage(seconds(step.prometheus_outage))
        elif step.incident:
            inc = step.incident
            self.kube.apply(
                _incident(inc.name, inc.target, inc.mode, inc.severity, inc.summary), namespace=self.ns
            )
            self.incident_created_at = time.monotonic()
        elif step.resolve:
            self.kube.run(
                "patch",
                "incident",
                step.resolve,
                "-n",
                self.ns,
                "--type=merge",
                "-p",
                '{"spec":{"resolved":true}}',
            )
        elif step.mitigate:
            self._mitigate(step)
        elif step.approve:
            # Someone other than the requester (the harness's admin) approves, as themselves.
            approve(self.kube, self.ns, step.approve, SCENARIO_APPROVER)
        elif step.policy:
            self.kube.apply(step.policy, namespace=self.ns)
        elif step.wait_for_phase:
            for name, phases in step.wait_for_phase.items():
                self._wait_for_phase(name, {str(p) for p in phases})
        else:  # pragma: no cover - the format guarantees one kind per step
            raise AssertionError(f"unhandled step kind {kind}")

    def _wait_for_phase(self, name: str, wanted: set[str]) -> None:
        self.kube.wait_for(lambda: self._phase(name) in wanted, 120, f"{name} in {wanted}")

    def _mitigate(self, step: Step) -> None:
        m = step.mitigate
        assert m is not None
        name = m.name or f"{self.sc.name}-fix"[:60]
        spec: dict[str, Any] = {"guard": {**FAST_GUARD, **m.guard}, "dryRun": m.dry_run}
        if m.incident:
            spec["incidentRef"] = {"name": m.incident}
        if m.suggested:
            if not m.incident:
                raise AssertionError("mitigate.suggested needs mitigate.incident")
            suggestion = self.kube.wait_for(
                lambda: self._suggestion(m.incident or ""), 90, f"a suggested mitigation on {m.incident}"
            )
            spec.update({k: v for k, v in suggestion.items() if k not in ("summary",)})
        else:
            spec["target"] = {"kind": "Deployment", "name": m.target}
            spec.update(m.action or {})
        if m.incident:
            # Judge the diagnosis the mitigation was taken from, even when it appeared between two
            # polls of the scorecard loop.
            self._snapshot(m.incident)
        target = spec.get("target", {}).get("name")
        if target:
            self.error_ratio_before_mitigation[name] = self.error_ratio(target)
        self.kube.apply(
            {
                "apiVersion": "stanch.dev/v1alpha1",
                "kind": "Mitigation",
                "metadata": {"name": name},
                "spec": spec,
            },
            namespace=self.ns,
        )
        if m.approve:
            approve(self.kube, self.ns, name, SCENARIO_APPROVER)
        self.outcome.mitigation = name
        self.mitigation_created_at = time.monotonic()

    def _suggestion(self, incident: str) -> dict[str, Any] | None:
        hyps = self._incident(incident).get("status", {}).get("hypotheses", [])
        if hyps and hyps[0].get("suggestedMitigation"):
            suggestion: dict[str, Any] = hyps[0]["suggestedMitigation"]
            return suggestion
        return None

    def _incident(self, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.kube.get("incident", name, self.ns)
        except AssertionError:
            return {}
        return obj

    def _phase(self, mitigation: str) -> str | None:
        try:
            phase: str | None = (
                self.kube.get("mitigation", mitigation, self.ns).get("status", {}).get("phase")
            )
        except AssertionError:
            return None
        return phase

    # ---- observation -------------------------------------------------------------------------
    def error_ratio(self, workload: str) -> float | None:
        sel = f'namespace="{self.ns}",deployment="{workload}"'
        q = (
            f'sum(rate(http_requests_total{{{sel},code=~"5.."}}[15s]))'
            f" / sum(rate(http_requests_total{{{sel}}}[15s]))"
        )
        try:
            body = httpx.get(
                f"{self.world.prometheus_url}/api/v1/query", params={"query": q}, timeout=5
            ).json()
            result = body["data"]["result"]
        except (httpx.HTTPError, KeyError, ValueError):
            return None
        return float(result[0]["value"][1]) if result else None

    def observe_until_settled(self) -> None:
        """Poll Stanch's resources until the expectations can be judged or time runs out."""
        exp = self.sc.expect
        deadline = time.monotonic() + seconds(exp.within)
        incident_name = next((s.incident.name for s in self.sc.steps if s.incident), None)
        while time.monotonic() < deadline:
            self._snapshot(incident_name)
            if self._settled():
                break
            time.sleep(2)
        self._snapshot(incident_name)
        if exp.recovery and self.outcome.recovered is None:
            target = next(
                (s.incident.target for s in self.sc.steps if s.incident), self.sc.world.workloads[0].name
            )
            ratio = self.error_ratio(target)
            self.outcome.recovered = ratio is not None and ratio < exp.recovery.below

    def _snapshot(self, incident_name: str | None) -> None:
        o = self.outcome
        if incident_name:
            inc = self._incident(incident_name)
            status = inc.get("status", {})
            o.incident_status = status
            hyps = status.get("hypotheses", [])
            # Judge the diagnosis Stanch gave before anyone acted on it: once a mitigation runs,
            # the rollback itself becomes the newest change and the ranking moves on.
            if hyps and self.mitigation_created_at is None:
                self._record_suggestions(hyps)
                top = hyps[0]
                o.judged_hypotheses = hyps
                o.top_category = top.get("category")
                o.categories = [h.get("category") for h in hyps]
                o.top_confidence = int(top.get("confidence", 0))
                o.top_statement = top.get("statement", "")
                sm = top.get("suggestedMitigation") or {}
                o.suggested_action = _action_of(sm)
                o.suggested = sm
                fm = self.sc.expect.first_mitigation
                if fm is not None and fm.hot_pods_only:
                    o.hot_pods = self._hot_pods()
                detected = o.top_confidence >= CONFIDENT and o.top_category not in NOT_A_CAUSE
                if detected and not o.detected and self.incident_created_at is not None:
                    o.time_to_detect = round(time.monotonic() - self.incident_created_at, 1)
                o.detected = o.detected or detected
        for mit in self.kube.items("mitigations", self.ns):
            name = mit["metadata"]["name"]
            phase = mit.get("status", {}).get("phase")
            o.mitigations[name] = phase or "Pending"
            if mit["metadata"].get("labels", {}).get("stanch.dev/incident"):
                spec = {**mit.get("spec", {}), "name": name}
                if all(m.get("name") != name for m in o.stanch_mitigations):
                    o.stanch_mitigations.append(spec)
                if o.mitigation is None:
                    o.mitigation = name  # created by Stanch in Auto mode
                    self.mitigation_created_at = self.mitigation_created_at or time.monotonic()
        if o.mitigation and o.mitigation in o.mitigations:
            o.mitigation_phase = o.mitigations[o.mitigation]
            if o.mitigation_phase in TERMINAL and o.time_to_mitigate is None and self.mitigation_created_at:
                o.time_to_mitigate = round(time.monotonic() - self.mitigation_created_at, 1)
        exp = self.sc.expect
        if exp.recovery and o.mitigation_phase in TERMINAL:
            target = next(
                (s.incident.target for s in self.sc.steps if s.incident), self.sc.world.workloads[0].name
            )
            ratio = self.error_ratio(target)
            if ratio is not None and ratio < exp.recovery.below:
                o.recovered = True

    def _hot_pods(self) -> list[str]:
        try:
            pods = httpx.get(f"{self.world.simulator_url}/debug/pods", timeout=5).json()["pods"]
        except (httpx.HTTPError, KeyError, ValueError):
            return self.outcome.hot_pods
        return sorted(p["pod"] for p in pods if p["namespace"] == self.ns and p["cpuHot"])

    def _record_suggestions(self, hyps: list[dict[str, Any]]) -> None:
        for rank, hyp in enumerate(hyps):
            suggestion = hyp.get("suggestedMitigation")
            if not suggestion:
                continue
            entry = {
                **{k: v for k, v in suggestion.items() if k != "summary"},
                "rank": rank,
                "category": hyp.get("category"),
                "confidence": int(hyp.get("confidence", 0)),
            }
            known = next(
                (s for s in self.outcome.suggestions if _suggestion_key(s) == _suggestion_key(entry)), None
            )
            if known is None:
                self.outcome.suggestions.append(entry)
            elif entry["confidence"] > known["confidence"]:
                # Report the strongest form of the accusation, not its first, hesitant one.
                known.update(category=entry["category"], confidence=entry["confidence"])

    def _settled(self) -> bool:
        o, exp = self.outcome, self.sc.expect
        if exp.outcome is not None or o.mitigation is not None:
            if o.mitigation_phase not in TERMINAL:
                return False
            return not (exp.recovery and not o.recovered)
        if exp.detected:
            return o.detected and (exp.category is None or o.top_category == exp.category)
        # Expecting no confident cause: give Stanch the whole window to (wrongly) become confident.
        return False

    def count_unreverted_regressions(self) -> None:
        """A mitigation that made things worse and stayed: Succeeded while the error ratio rose."""
        for name, phase in self.outcome.mitigations.items():
            if phase != "Succeeded":
                continue
            before = self.error_ratio_before_mitigation.get(name)
            mit = self.kube.get("mitigation", name, self.ns)
            target = mit["spec"].get("target", {}).get("name")
            now = self.error_ratio(target) if target else None
            if before is not None and now is not None and now > before + 0.05:
                self.outcome.unreverted_regressions += 1

    def run(self) -> Outcome:
        try:
            self.set_up()
            self.run_steps()
            self.observe_until_settled()
            self.count_unreverted_regressions()
        except AssertionError as exc:
            self.outcome.errors.append(str(exc)[:500])
        finally:
            self.tear_down()
        return self.outcome


def _suggestion_key(entry: dict[str, Any]) -> str:
    """One suggestion, however often it was seen: the action on its target, from one hypothesis rank
    (a rollback first suggested as an alternative and later at the top is counted at both)."""
    return json.dumps({k: v for k, v in entry.items() if k not in ("confidence", "category")}, sort_keys=True)


def _action_of(spec: dict[str, Any]) -> str | None:
    for key, kind in ACTION_FIELDS.items():
        if key in spec:
            return kind
    return None


ACTION_FIELDS = {
    "rollback": "Rollback",
    "scale": "Scale",
    "restart": "Restart",
    "canary": "Canary",
    "configToggle": "ConfigToggle",
    "evacuate": "Evacuate",
    "pause": "Pause",
    "autoscaler": "Autoscaler",
}


def _available(kube: Kube, ns: str, name: str) -> int:
    try:
        return int(kube.get("deployment", name, ns).get("status", {}).get("availableReplicas", 0))
    except AssertionError:
        return 0


def _config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def _hpa(workload: str, low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": workload},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def _incident(name: str, target: str, mode: str, severity: str, summary: str) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {
            "target": {"kind": "Deployment", "name": target},
            "severity": severity,
            "summary": summary or f"{target} is unhealthy",
            "mitigation": {"mode": mode},
            "lookback": "5m",
        },
    }
