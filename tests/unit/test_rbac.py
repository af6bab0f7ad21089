"""The shipped RBAC is exactly what the code needs: every request the adapters make and every request
Kopf makes for the registered handlers is in the permissions table, and manifests/rbac.yaml grants
the table, nothing less and nothing more. The real-cluster suite proves the same by running the
operator with a token of the shipped ServiceAccount (e2e/identity.py)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from stanch.adapters import permissions
from stanch.adapters.permissions import ACCESS, granted, undeclared
from stanch.adapters.resources import KINDS, kind
from stanch.wiring.handlers import build_registry
from stanch.wiring.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "operator" / "stanch"
Grant = tuple[str, str, str, tuple[str, ...]]


def manifest(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((REPO / "manifests" / name).read_text()) if d]


def rules_granted(rules: list[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb, tuple(rule.get("resourceNames") or ()))
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def operator_role() -> dict[str, Any]:
    (role,) = [d for d in manifest("rbac.yaml") if d["kind"] == "ClusterRole"]
    return role


def test_rbac_grants_exactly_the_permissions_table() -> None:
    shipped = rules_granted(operator_role()["rules"])
    declared = granted()
    assert not declared - shipped, (
        f"needed but not granted by manifests/rbac.yaml: {sorted(declared - shipped)}"
    )
    assert not shipped - declared, (
        f"granted but used by nothing (delete the rule): {sorted(shipped - declared)}"
    )


def test_every_permission_says_why() -> None:
    for access in ACCESS:
        assert access.why.strip(), access


def test_the_binding_names_the_shipped_service_account() -> None:
    (binding,) = [d for d in manifest("rbac.yaml") if d["kind"] == "ClusterRoleBinding"]
    (sa,) = manifest("serviceaccount.yaml")
    (deployment,) = manifest("deployment.yaml")
    assert binding["roleRef"]["name"] == operator_role()["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]}
    ]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


# --- Kopf: what the registered handlers make Kopf ask for ---------------------------------------


def resource_of(handler: Any) -> tuple[str, str]:
    """(group, plural) of a handler's selector; handlers are registered by plural name."""
    selector = handler.selector
    assert selector is not None, handler.id
    plural = selector.plural or selector.any_name
    plurals = {k.plural for k in KINDS.values() if k.group == (selector.group or "")}
    assert plural in plurals, f"{handler.id}: {plural!r} is not in the resource registry"
    return selector.group or "", plural


def kopf_needs() -> set[tuple[str, str, str]]:
    """Kopf lists and watches every resource a handler is registered for; for handlers that keep
    state (create/update/delete/resume, daemons) it patches the object (finalizers) and, with
    Stanch's status-based storage, its status subresource."""
    registry = build_registry(Metrics())
    needs: set[tuple[str, str, str]] = set()
    stateful = [*registry._changing.get_all_handlers(), *registry._spawning.get_all_handlers()]
    stateless = [*registry._watching.get_all_handlers(), *registry._indexing.get_all_handlers()]
    for handler in [*stateful, *stateless]:
        group, plural = resource_of(handler)
        needs |= {(group, plural, "list"), (group, plural, "watch")}
    for handler in stateful:
        group, plural = resource_of(handler)
        needs |= {(group, plural, "patch"), (group, f"{plural}/status", "patch")}
    # Events about the objects handled (kopf.info/warn/event, and Kopf's own handler reports).
    needs.add(("", "events", "create"))
    return needs


def test_kopf_needs_are_declared_and_granted() -> None:
    declared = {(g, r, v) for g, r, v, names in granted() if not names}
    missing = kopf_needs() - declared
    assert not missing, f"Kopf handlers need {sorted(missing)}: add them to ACCESS and rbac.yaml"


def test_peering_writes_are_limited_to_the_deployments_peering_object() -> None:
    (deployment,) = manifest("deployment.yaml")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    peering = args[args.index("--peering") + 1]
    for group, resource, verb, names in granted():
        if group == "kopf.dev" and verb == "patch":
            assert names == (peering,), resource


# --- Stanch's own requests: every call site, and every write and read of every action ----------

CLIENT_METHODS = {
    "get": "get",
    "list": "list",
    "list_versioned": "list",
    "watch": "watch",
    "patch": "patch",
    "create": "create",
    "delete": "delete",
}
RECEIVERS = {"kube", "_kube", "client"}


def _receiver(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def literal_calls() -> list[tuple[str, str, str, str | None]]:
    """(where, kind, verb, subresource) of every KubeClient call whose kind is a string literal."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            verb = CLIENT_METHODS.get(node.func.attr)
            if verb is None or _receiver(node.func.value) not in RECEIVERS or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and first.value in KINDS):
                continue
            sub = next(
                (
                    str(k.value.value)
                    for k in node.keywords
                    if k.arg == "subresource" and isinstance(k.value, ast.Constant)
                ),
                None,
            )
            found.append((f"{path.relative_to(REPO)}:{node.lineno}", str(first.value), verb, sub))
    return found


def test_every_call_site_with_a_named_kind_is_declared() -> None:
    calls = literal_calls()
    assert len(calls) > 20  # the scan finds the call sites (it would pass vacuously otherwise)
    # A rule limited to names is checked at run time (the name is rarely a literal here).
    named = {(g, r, v) for g, r, v, names in granted() if names}
    calls = [
        c for c in calls if (kind(c[1]).group, permissions.resource_of(kind(c[1]), c[3]), c[2]) not in named
    ]
    problems = [
        f"{where}: {problem}" for where, k, verb, sub in calls if (problem := undeclared(kind(k), verb, sub))
    ]
    assert not problems, "\n".join(problems)


# --- the ready-made roles for people ----------------------------------------------------------------

AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def user_roles() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifest("user-roles.yaml") if d["kind"] == "ClusterRole"}


def aggregated_to(role: dict[str, Any]) -> set[str]:
    labels = role["metadata"].get("labels") or {}
    return {k.removeprefix(AGGREGATE) for k, v in labels.items() if k.startswith(AGGREGATE) and v == "true"}


def test_view_reads_stanchs_resources_and_joins_the_built_in_roles() -> None:
    view = user_roles()["stanch-view"]
    assert rules_granted(view["rules"]) == {
        ("stanch.dev", r, v, ())
        for r in (
            "incidents",
            "mitigations",
            "mitigationapprovals",
            "mitigationpolicies",
            "clustermitigationpolicies",
        )
        for v in ("get", "list", "watch")
    }
    assert aggregated_to(view) == {"view", "edit", "admin"}


def test_request_opens_incidents_and_asks_for_mitigations_but_never_edits_one() -> None:
    request = user_roles()["stanch-request"]
    grants = rules_granted(request["rules"])
    assert ("stanch.dev", "incidents", "create", ()) in grants
    assert ("stanch.dev", "mitigations", "create", ()) in grants
    assert ("stanch.dev", "mitigations", "delete", ()) in grants  # cancel: the revert runs
    # What runs is what the policy decided on: no edits of a Mitigation once created.
    assert not {v for g, r, v, _ in grants if r == "mitigations"} & {"update", "patch"}
    # Only namespace admins get it by aggregation; editors are granted it on purpose.
    assert aggregated_to(request) == {"admin"}


def test_approve_creates_approvals_only_and_is_granted_on_purpose() -> None:
    approve = user_roles()["stanch-approve"]
    assert rules_granted(approve["rules"]) == {("stanch.dev", "mitigationapprovals", "create", ())}
    assert aggregated_to(approve) == set()
    # Requesting never includes approving: separation of duties is a binding away, never implied.
    assert not any(
        r == "mitigationapprovals" for _, r, _, _ in rules_granted(user_roles()["stanch-request"]["rules"])
    )


def test_no_user_role_writes_status_or_policies() -> None:
    for name, role in user_roles().items():
        for _group, resource, verb, _ in rules_granted(role["rules"]):
            assert "/" not in resource, f"{name} grants {verb} on {resource}: only Stanch writes status"
            if resource.endswith("mitigationpolicies"):
                assert verb in ("get", "list", "watch"), f"{name} may {verb} {resource}"
