"""The Helm chart (charts/stanch) and the kustomize base (manifests/) install the same thing.

The chart reads the CRDs, the operator's ClusterRole, the user roles and the admission policies
from the base's own files (charts/stanch/files/ links to them), so they cannot drift; the rest
(Deployment, ConfigMap, Service, PDB, ServiceAccount) is templated and compared here, object by
object, with `helm template` against `kubectl kustomize`. Server-side dry runs of both are in
e2e/tests/test_install.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e.cluster.config import helm as helm_path
from e2e.cluster.config import read_versions
from e2e.install import (
    BASE,
    CHART,
    CLUSTER_SCOPED,
    NAMESPACE,
    differences,
    docs,
    helm_template,
    render_chart,
    render_kustomize,
)

from stanch.core.settings import Settings, resolve

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "docs" / "examples" / "overlay"
# The base's Namespace is the chart's only with namespace.create (helm's --create-namespace is the
# usual way, and makes no Namespace object).
AS_THE_BASE = {"namespace": {"create": True}}


@pytest.fixture
def helm() -> str:
    built = helm_path()
    if not built.exists():
        pytest.skip("no helm: run `make cluster-binaries` (or `bash e2e/cluster/build-binaries.sh helm`)")
    return str(built)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = find(objects, "Deployment", "stanch")["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = c
    return result


def env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


def test_helm_is_the_pinned_version(helm: str) -> None:
    pinned = read_versions()["HELM_VERSION"]
    out = subprocess.run([helm, "version", "--short"], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == pinned


# --- the same objects ---------------------------------------------------------------------------


def test_chart_renders_the_objects_of_the_kustomize_base(helm: str, kubectl: str) -> None:
    base = render_kustomize(kubectl)
    chart = render_chart(helm, AS_THE_BASE)
    problems = differences(base, chart)
    assert not problems, "\n".join(problems)
    # What the comparison covers, so an empty render could not pass it.
    kinds = {o["kind"] for o in chart}
    assert {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "Namespace",
    } <= kinds


def test_the_comparison_sees_a_difference(helm: str, kubectl: str) -> None:
    base = render_kustomize(kubectl)
    chart = render_chart(helm, {**AS_THE_BASE, "replicas": 3, "rbac": {"userRoles": False}})
    problems = differences(base, chart)
    assert (
        "Deployment/stanch-system/stanch: content differs:\n  .spec.replicas: base 2 != chart 3" in problems
    )
    assert "only in the base: ('rbac.authorization.k8s.io/v1', 'ClusterRole', '', 'stanch-view')" in problems


def test_the_chart_reads_the_base_files_it_must_not_copy() -> None:
    files = CHART / "files"
    linked = {p.name: p for p in files.iterdir()}
    for name in (
        "rbac.yaml",
        "user-roles.yaml",
        "identity-admission.yaml",
        "vap-target-namespace.yaml",
        "peering-crds.yaml",
    ):
        assert linked[name].is_symlink(), f"charts/stanch/files/{name} must link to manifests/{name}"
        assert linked[name].resolve() == (BASE / name).resolve()
    assert linked["crds"].is_symlink()
    assert linked["crds"].resolve() == (REPO / "crds").resolve()
    for name in ("prometheusrule.yaml", "dashboard.json"):
        assert linked[name].is_symlink(), (
            f"charts/stanch/files/{name} must link to manifests/monitoring/{name}"
        )
        assert linked[name].resolve() == (BASE / "monitoring" / name).resolve()


def test_no_cluster_scoped_object_carries_a_namespace(helm: str, kubectl: str) -> None:
    # kustomize's namespace transformer stamped one on the admission policies (its schema predates
    # them): the API server drops it, but GitOps tools then show a permanent diff.
    for source, objects in (("base", render_kustomize(kubectl)), ("chart", render_chart(helm, AS_THE_BASE))):
        for obj in objects:
            if obj["kind"] in CLUSTER_SCOPED:
                assert "namespace" not in obj["metadata"], (
                    f"{source}: {obj['kind']}/{obj['metadata']['name']}"
                )
            else:
                assert obj["metadata"]["namespace"] == NAMESPACE, f"{source}: {obj['kind']}"


def test_the_operator_role_is_exactly_the_base_file(helm: str) -> None:
    shipped = [d for d in yaml.safe_load_all((BASE / "rbac.yaml").read_text()) if d]
    role = find(render_chart(helm), "ClusterRole", "stanch")
    (base_role,) = [d for d in shipped if d["kind"] == "ClusterRole"]
    assert role["rules"] == base_role["rules"]


# --- values -------------------------------------------------------------------------------------


def test_another_namespace_moves_every_namespaced_object_and_the_binding(helm: str) -> None:
    objects = render_chart(helm, namespace="ops")
    binding = find(objects, "ClusterRoleBinding", "stanch")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "stanch", "namespace": "ops"}]
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == "ops", obj["kind"]


def test_prometheus_url_and_settings_go_to_the_config_map(helm: str) -> None:
    objects = render_chart(
        helm,
        {
            "prometheus": {
                "url": "https://mimir.example:8080/prometheus",
                "headers": {"X-Scope-OrgID": "team-a"},
            },
            "signals": {"preset": "kube-state-metrics", "workloadLabel": "app"},
            "config": {"STANCH_INVESTIGATION_INTERVAL": "45s"},
            "logLevel": "DEBUG",
        },
    )
    data = find(objects, "ConfigMap", "stanch-config")["data"]
    assert data == {
        "STANCH_PROMETHEUS_URL": "https://mimir.example:8080/prometheus",
        "STANCH_PROMETHEUS_HEADERS": "X-Scope-OrgID: team-a",
        "STANCH_SIGNAL_PRESET": "kube-state-metrics",
        "STANCH_WORKLOAD_LABEL": "app",
        "STANCH_INVESTIGATION_INTERVAL": "45s",
        "STANCH_LOG_LEVEL": "DEBUG",
    }
    assert container(objects)["envFrom"] == [{"configMapRef": {"name": "stanch-config"}}]
    # Not through the environment of the Deployment: one place, the ConfigMap.
    assert "STANCH_PROMETHEUS_URL" not in env(objects)


def test_a_changed_setting_rolls_the_pods(helm: str) -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = find(render_chart(helm, values), "Deployment", "stanch")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"prometheus": {"url": "http://other:9090"}})


def test_credentials_come_from_secrets_as_files(helm: str) -> None:
    objects = render_chart(
        helm,
        {
            "prometheus": {
                "bearerToken": {"secretName": "prom-token", "key": "tok"},
                "ca": {"configMapName": "trust-bundle", "key": "bundle.pem"},
                "headersSecret": {"name": "prom-headers"},
                # A credential-carrying header Secret replaces plain headers; both would race.
                "headers": {"X-Scope-OrgID": "team-a"},
            }
        },
    )
    variables = env(objects)
    assert variables["STANCH_PROMETHEUS_BEARER_TOKEN_FILE"] == "/etc/stanch/prometheus/token/tok"
    assert variables["STANCH_PROMETHEUS_CA_FILE"] == "/etc/stanch/prometheus/ca/bundle.pem"
    assert variables["STANCH_PROMETHEUS_HEADERS"] == {
        "secretKeyRef": {"name": "prom-headers", "key": "headers"}
    }
    assert "STANCH_PROMETHEUS_HEADERS" not in find(objects, "ConfigMap", "stanch-config")["data"]
    pod = find(objects, "Deployment", "stanch")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["prometheus-token"]["secret"] == {
        "secretName": "prom-token",
        "items": [{"key": "tok", "path": "tok"}],
    }
    assert volumes["prometheus-ca"]["configMap"] == {
        "name": "trust-bundle",
        "items": [{"key": "bundle.pem", "path": "bundle.pem"}],
    }
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    # A directory mount: a subPath mount would never see a rotated token.
    assert mounts["prometheus-token"] == {
        "name": "prometheus-token",
        "mountPath": "/etc/stanch/prometheus/token",
        "readOnly": True,
    }
    assert "subPath" not in mounts["prometheus-ca"]
    # The chart references Secrets you create; it never holds a credential itself.
    assert "Secret" not in {o["kind"] for o in objects}


def operator_settings(objects: list[dict[str, Any]], secrets: dict[str, str] | None = None) -> Settings:
    """What `stanch run` in the rendered Pod would resolve: the ConfigMap (envFrom), then the
    container's env (a Secret's value given by name in ``secrets``), with the container's args."""
    environment = dict(find(objects, "ConfigMap", "stanch-config")["data"])
    for item in container(objects)["env"]:
        if "value" in item:
            environment[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"] and item["name"] in (secrets or {}):
            environment[item["name"]] = (secrets or {})[item["name"]]
    args = container(objects)["args"]
    assert args[:2] == ["run", "--all-namespaces"]
    flags = {"all_namespaces": True, "peering_name": args[args.index("--peering") + 1]}
    return resolve(flags, environment, in_cluster=True, is_tty=False)


def mounted_file(objects: list[dict[str, Any]], path: str) -> tuple[str, str]:
    """(kind/name of the Secret or ConfigMap, key) a file path in the container comes from."""
    pod = find(objects, "Deployment", "stanch")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container(objects)["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            volume = volumes[mount["name"]]
            source = volume.get("secret") or volume["configMap"]
            name = source.get("secretName") or source["name"]
            (item,) = [i for i in source["items"] if i["path"] == path.removeprefix(prefix)]
            return ("Secret" if "secret" in volume else "ConfigMap") + "/" + name, item["key"]
    raise AssertionError(f"{path} is on no volume mount")


def test_the_operator_accepts_the_rendered_settings(helm: str) -> None:
    # The chart's names are the operator's (stanch.core.settings): a misspelt variable would be
    # silently ignored by the Pod and never reach `stanch run`.
    objects = render_chart(
        helm,
        {
            "prometheus": {
                "url": "https://mimir.example:8080/prometheus",
                "headers": {"X-Scope-OrgID": "team-a", "X-Extra": "1"},
                "bearerToken": {"secretName": "prom-token"},
                "ca": {"secretName": "prom-ca"},
            },
            "signals": {"preset": "kube-state-metrics", "workloadLabel": "app"},
            "alertmanagerReceiver": {
                "enabled": True,
                "port": 9095,
                "tokenSecret": {"name": "am-token"},
                "tlsSecretName": "am-tls",
            },
        },
    )
    settings = operator_settings(objects)
    assert settings.prometheus_url == "https://mimir.example:8080/prometheus"
    assert dict(settings.prometheus.headers) == {"X-Scope-OrgID": "team-a", "X-Extra": "1"}
    assert settings.signal_preset == "kube-state-metrics"
    assert settings.workload_label == "app"
    assert settings.prometheus_bearer_token_file is not None
    assert mounted_file(objects, settings.prometheus_bearer_token_file) == ("Secret/prom-token", "token")
    assert settings.prometheus_ca_file is not None
    assert mounted_file(objects, settings.prometheus_ca_file) == ("Secret/prom-ca", "ca.crt")
    assert settings.alertmanager_address is not None
    assert settings.alertmanager_address.port == 9095
    assert settings.alertmanager_token_file is not None
    assert mounted_file(objects, settings.alertmanager_token_file) == ("Secret/am-token", "token")
    assert settings.alertmanager_tls_cert_file is not None
    assert mounted_file(objects, settings.alertmanager_tls_cert_file) == ("Secret/am-tls", "tls.crt")
    assert settings.metrics_address is not None
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    assert ports["metrics"] == settings.metrics_address.port
    assert ports["alertmanager"] == 9095
    service = find(objects, "Service", "stanch-alertmanager")
    assert service["spec"]["ports"] == [
        {"name": "alertmanager", "port": 9095, "targetPort": "alertmanager", "protocol": "TCP"}
    ]


def test_basic_auth_reaches_the_operator(helm: str) -> None:
    objects = render_chart(
        helm,
        {
            "prometheus": {
                "url": "https://prometheus.example",
                "basicAuth": {"username": "stanch", "passwordSecret": {"name": "prom-basic"}},
                "insecureSkipTLSVerify": True,
            }
        },
    )
    settings = operator_settings(objects)
    assert settings.prometheus_username == "stanch"
    assert settings.prometheus_insecure_skip_tls_verify is True
    assert settings.prometheus_password_file is not None
    assert mounted_file(objects, settings.prometheus_password_file) == ("Secret/prom-basic", "password")


def test_secret_headers_reach_the_operator(helm: str) -> None:
    objects = render_chart(helm, {"prometheus": {"headersSecret": {"name": "prom-headers"}}})
    settings = operator_settings(objects, {"STANCH_PROMETHEUS_HEADERS": "X-Api-Key: k1\nX-Scope-OrgID: a"})
    assert settings.prometheus.headers == (("X-Api-Key", "k1"), ("X-Scope-OrgID", "a"))


def test_the_defaults_start_the_operator_with_the_receiver_off(helm: str) -> None:
    objects = render_chart(helm)
    settings = operator_settings(objects)
    assert settings.alertmanager_address is None
    assert settings.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert "stanch-alertmanager" not in {o["metadata"]["name"] for o in objects}


def test_without_credentials_nothing_points_at_a_missing_file(helm: str) -> None:
    variables = env(render_chart(helm))
    assert not {k for k in variables if k.startswith("STANCH_PROMETHEUS_")}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prometheus": {"url": ""}}, "prometheus.url: set the URL of the Prometheus"),
        (
            {"config": {"STANCH_PRIORITY": "5"}},
            "config.STANCH_PRIORITY: equal priorities pause every replica",
        ),
        (
            {"prometheus": {"ca": {"configMapName": "a", "secretName": "b"}}},
            "prometheus.ca: set configMapName or secretName, not both",
        ),
        ({"replica": 3}, "additional properties 'replica' not allowed"),
        (
            {"alertmanagerReceiver": {"enabled": True}},
            "alertmanagerReceiver.tokenSecret.name: the receiver needs the bearer token",
        ),
        ({"prometheus": {"basicAuth": {"username": "u"}}}, "prometheus.basicAuth: set both"),
        (
            {
                "prometheus": {
                    "bearerToken": {"secretName": "t"},
                    "basicAuth": {"username": "u", "passwordSecret": {"name": "p"}},
                }
            },
            "prometheus: set bearerToken or basicAuth, not both",
        ),
        ({"replicas": "two"}, "at '/replicas': got string, want integer"),
        (
            {"prometheus": {"url": "prometheus:9090"}},
            "at '/prometheus/url': 'prometheus:9090' does not match",
        ),
    ],
)
def test_bad_values_fail_the_render_naming_the_value(helm: str, values: dict[str, Any], message: str) -> None:
    out = helm_template(helm, values)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


def test_crds_are_kept_on_uninstall_and_can_be_left_out(helm: str) -> None:
    crds = [o for o in render_chart(helm) if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 7  # five of Stanch's, Kopf's two peering kinds
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)
    assert not [
        o for o in render_chart(helm, {"crds": {"install": False}}) if o["kind"] == "CustomResourceDefinition"
    ]
    loose = [
        o for o in render_chart(helm, {"crds": {"keep": False}}) if o["kind"] == "CustomResourceDefinition"
    ]
    assert loose
    assert not any("annotations" in c["metadata"] for c in loose)


def test_one_replica_drops_the_disruption_budget(helm: str) -> None:
    # minAvailable 1 of 1 would block every node drain forever.
    assert not [o for o in render_chart(helm, {"replicas": 1}) if o["kind"] == "PodDisruptionBudget"]


def test_the_packaged_chart_carries_the_linked_files(helm: str, tmp_path: Path) -> None:
    # `helm package` stores the content of the files/ links, so a published chart stands alone.
    subprocess.run(
        [helm, "package", str(CHART), "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (archive,) = tmp_path.glob("stanch-*.tgz")
    packaged = subprocess.run(
        [helm, "template", "stanch", str(archive), "-n", NAMESPACE],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert not differences(render_chart(helm), docs(packaged.stdout))
    assert len([o for o in docs(packaged.stdout) if o["kind"] == "CustomResourceDefinition"]) == 7


def test_helm_lint_is_clean(helm: str) -> None:
    out = subprocess.run(
        [helm, "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_monitors_select_the_operator_and_its_metrics_port(helm: str) -> None:
    objects = render_chart(
        helm,
        {
            "metrics": {
                "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
                "podMonitor": {"enabled": True},
            }
        },
    )
    service = find(objects, "Service", "stanch-metrics")
    monitor = find(objects, "ServiceMonitor", "stanch")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    pods = find(objects, "PodMonitor", "stanch")
    template = find(objects, "Deployment", "stanch")["spec"]["template"]
    assert pods["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    (pod_endpoint,) = pods["spec"]["podMetricsEndpoints"]
    assert pod_endpoint["port"] in {p["name"] for p in container(objects)["ports"]}
    assert pod_endpoint["path"] == endpoint["path"] == "/metrics"
    # Off by default: the CRDs are prometheus-operator's, absent from many clusters.
    assert not {o["kind"] for o in render_chart(helm)} & {"ServiceMonitor", "PodMonitor"}
    out = helm_template(
        helm, {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}}
    )
    assert "metrics.serviceMonitor.enabled needs metrics.service.enabled" in out.stderr


# --- the kustomize overlay example --------------------------------------------------------------


def test_overlay_example_sets_the_url_and_credentials_without_set_env(kubectl: str) -> None:
    objects = render_kustomize(kubectl, OVERLAY)
    (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert config["data"]["STANCH_PROMETHEUS_URL"] == "https://prometheus.monitoring.svc:9091"
    assert config["data"]["STANCH_PROMETHEUS_HEADERS"] == "X-Scope-OrgID: team-a"
    c = container(objects)
    # The merged ConfigMap gets a new hashed name, and the Deployment follows it: the Pods roll.
    assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    base_config = next(o for o in render_kustomize(kubectl) if o["kind"] == "ConfigMap")
    assert config["metadata"]["name"] != base_config["metadata"]["name"]
    variables = {e["name"]: e.get("value") for e in c["env"]}
    assert variables["STANCH_PROMETHEUS_BEARER_TOKEN_FILE"] == "/etc/stanch/prometheus/token/token"
    assert variables["STANCH_PROMETHEUS_CA_FILE"] == "/etc/stanch/prometheus/ca/ca.crt"
    assert c["image"] == "registry.example.com/platform/stanch:0.1.0"


# The overlay example's options, as chart values.
OVERLAY_AS_VALUES = {
    **AS_THE_BASE,
    "image": {"repository": "registry.example.com/platform/stanch"},
    "prometheus": {
        "url": "https://prometheus.monitoring.svc:9091",
        "headers": {"X-Scope-OrgID": "team-a"},
        "bearerToken": {"secretName": "stanch-prometheus"},
        "ca": {"configMapName": "stanch-prometheus-ca"},
    },
    "alertmanagerReceiver": {"enabled": True, "tokenSecret": {"name": "stanch-alertmanager"}},
}


def test_the_components_and_the_chart_values_install_the_same(helm: str, kubectl: str) -> None:
    # Credentials, CA and the receiver: kustomize components in an overlay, values in the chart.
    problems = differences(render_kustomize(kubectl, OVERLAY), render_chart(helm, OVERLAY_AS_VALUES))
    assert not problems, "\n".join(problems)


def test_the_overlay_example_starts_the_operator(kubectl: str) -> None:
    objects = render_kustomize(kubectl, OVERLAY)
    (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
    objects = [o for o in objects if o["kind"] != "ConfigMap"]
    config["metadata"]["name"] = "stanch-config"
    settings = operator_settings([*objects, config])
    assert settings.prometheus_url == "https://prometheus.monitoring.svc:9091"
    assert settings.prometheus_bearer_token_file is not None
    assert mounted_file(objects, settings.prometheus_bearer_token_file) == (
        "Secret/stanch-prometheus",
        "token",
    )
    assert settings.prometheus_ca_file is not None
    assert mounted_file(objects, settings.prometheus_ca_file) == ("ConfigMap/stanch-prometheus-ca", "ca.crt")
    assert settings.alertmanager_token_file is not None
    assert mounted_file(objects, settings.alertmanager_token_file) == ("Secret/stanch-alertmanager", "token")
    assert settings.alertmanager_address is not None
    assert settings.alertmanager_address.port == 8082


def test_readme_has_no_set_env_step() -> None:
    readme = (REPO / "README.md").read_text()
    # Mentioned only as what not to do: no command that a GitOps controller would undo.
    assert "set env deploy" not in readme
    assert "helm install" in readme
    assert "kubectl apply -k manifests/" in readme
    assert os.path.exists(REPO / "docs" / "install.md")


def test_docs_install_lists_every_top_level_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    page = (REPO / "docs" / "install.md").read_text()
    missing = [k for k in values if f"`{k}" not in page]
    assert not missing, f"docs/install.md does not describe: {missing}"
    assert docs((CHART / "Chart.yaml").read_text())[0]["name"] == "stanch"
