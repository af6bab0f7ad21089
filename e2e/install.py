"""The two ways to install Stanch, rendered: the Helm chart (charts/stanch) and the kustomize base
(manifests/). tests/unit/test_chart.py compares them; e2e/tests/test_install.py sends both to the
real API server as a server-side dry run.

"The same objects" means: the same kinds and names, and the same content, except for what Helm
adds by construction: its bookkeeping labels (release, chart, version), the config checksum that
rolls the Pods, the keep policy on CRDs, and kustomize's content hash on the generated ConfigMap's
name. Every label and annotation of the base must be in the chart with the same value.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "stanch"
BASE = REPO / "manifests"
MONITORING = BASE / "monitoring"
NAMESPACE = "stanch-system"
RELEASE = "stanch"

# What Helm adds on top of the base's own labels and annotations (charts/stanch/templates/_helpers.tpl).
HELM_LABELS = frozenset(
    {
        "app.kubernetes.io/name",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/version",
        "helm.sh/chart",
    }
)
HELM_ANNOTATIONS = frozenset({"helm.sh/resource-policy", "checksum/config"})
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)
# kustomize's configMapGenerator appends a hash of the content to the name.
_GENERATED = re.compile(r"^(stanch-config)-[a-z0-9]{10}$")

Key = tuple[str, str, str, str]


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render_chart(
    helm: str | Path,
    values: Mapping[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    extra: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """`helm template` of the chart; values given as one YAML document on stdin. Each distinct
    render runs helm once per process (a few seconds each on a loaded machine); the objects are
    parsed anew for every caller, who may change them."""
    cache_key = (str(helm), yaml.safe_dump(dict(values or {})), namespace, tuple(extra))
    if cache_key not in _RENDERED:
        out = helm_template(helm, values, namespace=namespace, extra=extra)
        if out.returncode != 0:
            raise AssertionError(f"helm template failed: {out.stderr.strip()}")
        _RENDERED[cache_key] = out.stdout
    return docs(_RENDERED[cache_key])


_RENDERED: dict[tuple[str, str, str, tuple[str, ...]], str] = {}


def helm_template(
    helm: str | Path,
    values: Mapping[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    extra: Iterable[str] = (),
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), "template", RELEASE, str(CHART), "--namespace", namespace, "-f", "-", *extra],
        input=yaml.safe_dump(dict(values or {})),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def render_kustomize(kubectl: str | Path, path: Path = BASE) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(kubectl), "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    if out.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed: {out.stderr.strip()}")
    return docs(out.stdout)


def key(obj: Mapping[str, Any]) -> Key:
    meta = obj["metadata"]
    name = meta["name"]
    if obj["kind"] == "ConfigMap":
        name = _GENERATED.sub(r"\1", name)
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), name)


def by_key(objects: Iterable[Mapping[str, Any]]) -> dict[Key, dict[str, Any]]:
    found: dict[Key, dict[str, Any]] = {}
    for obj in objects:
        k = key(obj)
        assert k not in found, f"rendered twice: {k}"
        found[k] = unhash(dict(obj))
    return found


def unhash(obj: dict[str, Any]) -> dict[str, Any]:
    """The generated ConfigMap under its plain name, and the references to it."""
    text = yaml.safe_dump(obj, sort_keys=True)
    plain = re.sub(r"\b(stanch-config)-[a-z0-9]{10}\b", r"\1", text)
    result: dict[str, Any] = yaml.safe_load(plain)
    return result


def metadata_differences(where: str, base: Mapping[str, Any], chart: Mapping[str, Any]) -> list[str]:
    """Labels and annotations: the chart has every one of the base's, and adds only Helm's own."""
    problems: list[str] = []
    for field, allowed in (("labels", HELM_LABELS), ("annotations", HELM_ANNOTATIONS)):
        ours = base.get(field) or {}
        theirs = chart.get(field) or {}
        for name, value in ours.items():
            if theirs.get(name) != value:
                problems.append(
                    f"{where}: {field}[{name}] is {theirs.get(name)!r} in the chart, {value!r} in the base"
                )
        for name in set(theirs) - set(ours) - allowed:
            problems.append(f"{where}: {field}[{name}] only in the chart")
    return problems


def without_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object with labels and annotations left out (top level and pod template)."""
    result: dict[str, Any] = yaml.safe_load(yaml.safe_dump(dict(obj)))
    for meta in _metas(result):
        meta.pop("labels", None)
        meta.pop("annotations", None)
    return result


def _metas(obj: dict[str, Any]) -> list[dict[str, Any]]:
    metas = [obj["metadata"]]
    template = (obj.get("spec") or {}).get("template")
    if isinstance(template, dict) and "metadata" in template:
        metas.append(template["metadata"])
    return metas


def differences(base: Iterable[Mapping[str, Any]], chart: Iterable[Mapping[str, Any]]) -> list[str]:
    """Everything that differs between two renders, beyond what Helm adds (empty: the same)."""
    ours, theirs = by_key(base), by_key(chart)
    problems = [f"only in the base: {k}" for k in sorted(set(ours) - set(theirs))]
    problems += [f"only in the chart: {k}" for k in sorted(set(theirs) - set(ours))]
    for k in sorted(set(ours) & set(theirs)):
        where = "/".join(part for part in k[1:] if part)
        for mine, other in zip(_metas(ours[k]), _metas(theirs[k]), strict=False):
            problems += metadata_differences(where, mine, other)
        a, b = without_metadata(ours[k]), without_metadata(theirs[k])
        if a != b:
            problems.append(f"{where}: content differs:\n{_diff(a, b)}")
    return problems


def _diff(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        lines = [
            _diff(a.get(k), b.get(k), f"{path}.{k}") for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
        ]
        return "\n".join(lines)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return "\n".join(
            _diff(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y
        )
    return f"  {path or '.'}: base {a!r} != chart {b!r}"


# --- the monitoring: alert rules and the Grafana dashboard (manifests/monitoring/) ---------------

# Grafana's variables, as Grafana substitutes them before a query reaches Prometheus.
GRAFANA_VARIABLES = {
    "$job": "stanch-metrics",
    "$__rate_interval": "2m",
    "$__range": "6h",
    "$__interval": "1m",
}


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"][
        "groups"
    ]
    return groups


def alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rule_groups() for r in g["rules"]}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MONITORING / "dashboard.json").read_text())
    return loaded


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title or ``variable NAME``, PromQL) of every query on the dashboard."""
    found = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", variable["definition"]))
    return found


def substituted(expr: str) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    return expr
