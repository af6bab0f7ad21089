"""Identity rules (design invariant 12): the admission policy that makes ``spec.requester`` and a
MitigationApproval's ``spec.approver`` trustworthy, the operator's check that it is in force, and
whether one approval may approve one Mitigation.

Pure: the wiring reads the admission policy, its binding and the approvals and passes them in.

Why an admission policy at all: Kubernetes records no creator on an object, and a
ValidatingAdmissionPolicy can refuse a request but not fill a field in. So the user states who they
are and the API server refuses the request unless it is true (``request.userInfo``). Why the
operator checks the policy is there: without it those fields are typed text again, and an approval
built on typed text is the hole this closes. With the policy missing, changed or narrowed, Stanch
refuses every approval, visibly, rather than trusting it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stanch import GROUP
from stanch.core.models import ApprovalRequirements, UserIdentity

ADMISSION_POLICY = "stanch-identity"
"""Name of the ValidatingAdmissionPolicy and of its binding."""
ADMISSION_API = "admissionregistration.k8s.io/v1"
RESOURCES = ("mitigations", "mitigationapprovals")
OPERATIONS = ("CREATE", "UPDATE")


@dataclass(frozen=True)
class Rule:
    """One validation of the admission policy."""

    expression: str
    message: str
    message_expression: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"expression": self.expression, "message": self.message, "reason": "Forbidden"}
        if self.message_expression:
            out["messageExpression"] = self.message_expression
        return out


def _on(resource: str, operation: str, condition: str) -> str:
    return f"request.resource.resource != '{resource}' || request.operation != '{operation}' || {condition}"


# Every group named must be one of the user's (a user with no groups has none to name). Listing a
# subset, not all, keeps manifests short: a policy only ever asks about the groups it names.
_GROUPS = (
    "!has(object.spec.{field}.groups) || object.spec.{field}.groups.all(g, "
    "has(request.userInfo.groups) && g in request.userInfo.groups)"
)
_YOU = "' (you are ' + request.userInfo.username + '; `kubectl auth whoami` shows your name and groups)'"

RULES: tuple[Rule, ...] = (
    Rule(
        _on(
            "mitigations",
            "CREATE",
            "has(object.spec.requester) && object.spec.requester.username == request.userInfo.username",
        ),
        "spec.requester.username must be your own user name",
        f"'spec.requester.username must be your own user name: Stanch records who asked from it' + {_YOU}",
    ),
    Rule(
        _on("mitigations", "CREATE", "!has(object.spec.requester) || " + _GROUPS.format(field="requester")),
        "spec.requester.groups may only name groups you are in",
        f"'spec.requester.groups may only name groups you are in' + {_YOU}",
    ),
    Rule(
        _on(
            "mitigations",
            "UPDATE",
            "has(object.spec.requester) == has(oldObject.spec.requester) && "
            "(!has(object.spec.requester) || object.spec.requester == oldObject.spec.requester)",
        ),
        "spec.requester is immutable: it was checked against the creator's identity",
    ),
    Rule(
        _on("mitigationapprovals", "CREATE", "object.spec.approver.username == request.userInfo.username"),
        "spec.approver.username must be your own user name",
        f"'spec.approver.username must be your own user name: you approve as yourself' + {_YOU}",
    ),
    Rule(
        _on("mitigationapprovals", "CREATE", _GROUPS.format(field="approver")),
        "spec.approver.groups may only name groups you are in",
        f"'spec.approver.groups may only name groups you are in' + {_YOU}",
    ),
    Rule(
        _on("mitigationapprovals", "UPDATE", "object.spec == oldObject.spec"),
        "a MitigationApproval is immutable: delete it and create a new one",
    ),
)


def admission_policy() -> dict[str, Any]:
    """The ValidatingAdmissionPolicy shipped in ``manifests/identity-admission.yaml``."""
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": ADMISSION_POLICY, "labels": {"app.kubernetes.io/part-of": "stanch"}},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": list(OPERATIONS),
                        "resources": list(RESOURCES),
                    }
                ]
            },
            "validations": [r.as_dict() for r in RULES],
        },
    }


def admission_binding() -> dict[str, Any]:
    """Its binding: every namespace, Deny (a warning or an audit annotation would let the request in)."""
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": ADMISSION_POLICY, "labels": {"app.kubernetes.io/part-of": "stanch"}},
        "spec": {"policyName": ADMISSION_POLICY, "validationActions": ["Deny"]},
    }


def _covers(rules: Sequence[Mapping[str, Any]], resource: str, operation: str) -> bool:
    def has(values: Any, wanted: str) -> bool:
        return isinstance(values, list) and ("*" in values or wanted in values)

    return any(
        has(r.get("apiGroups"), GROUP)
        and has(r.get("resources"), resource)
        and has(r.get("operations"), operation)
        and has(r.get("apiVersions") or ["*"], "v1alpha1")
        for r in rules
    )


def _narrowed(match: Mapping[str, Any] | None) -> str | None:
    """Why a matchConstraints/matchResources block leaves some requests unchecked, if it does."""
    match = match or {}
    for key in ("namespaceSelector", "objectSelector"):
        selector = match.get(key) or {}
        if selector.get("matchLabels") or selector.get("matchExpressions"):
            return f"{key} limits it to some objects"
    if match.get("excludeResourceRules"):
        return "excludeResourceRules exempts some requests"
    return None


def admission_problem(policy: Mapping[str, Any] | None, binding: Mapping[str, Any] | None) -> str | None:
    """Why the identities in ``spec.requester`` and ``spec.approver`` cannot be trusted right now, or
    None when the shipped policy is in force, unweakened, in every namespace. Stricter additions (more
    rules) are fine; anything that lets a request through unchecked is not."""
    fix = (
        f"apply manifests/identity-admission.yaml (ValidatingAdmissionPolicy and binding {ADMISSION_POLICY})"
    )
    vap = f"ValidatingAdmissionPolicy {ADMISSION_POLICY}"
    if policy is None:
        return f"the ValidatingAdmissionPolicy {ADMISSION_POLICY} does not exist; {fix}"
    spec = policy.get("spec") or {}
    if spec.get("failurePolicy", "Fail") != "Fail":
        return f"{vap} has failurePolicy {spec.get('failurePolicy')}; {fix}"
    if spec.get("matchConditions"):
        return f"ValidatingAdmissionPolicy {ADMISSION_POLICY} has matchConditions that exempt requests; {fix}"
    match = spec.get("matchConstraints") or {}
    rules = match.get("resourceRules") or []
    for resource in RESOURCES:
        for operation in OPERATIONS:
            if not _covers(rules, resource, operation):
                return f"{vap} does not match {operation} of {resource}; {fix}"
    narrowed = _narrowed(match)
    if narrowed:
        return f"ValidatingAdmissionPolicy {ADMISSION_POLICY}: {narrowed}; {fix}"
    present = {v.get("expression") for v in spec.get("validations") or []}
    missing = [r.message for r in RULES if r.expression not in present]
    if missing:
        return f"ValidatingAdmissionPolicy {ADMISSION_POLICY} lacks the rule '{missing[0]}'; {fix}"
    if binding is None:
        return f"the ValidatingAdmissionPolicyBinding {ADMISSION_POLICY} does not exist; {fix}"
    bspec = binding.get("spec") or {}
    if bspec.get("policyName") != ADMISSION_POLICY:
        return f"ValidatingAdmissionPolicyBinding {ADMISSION_POLICY} binds {bspec.get('policyName')!r}; {fix}"
    if "Deny" not in (bspec.get("validationActions") or []):
        return f"ValidatingAdmissionPolicyBinding {ADMISSION_POLICY} does not Deny; {fix}"
    narrowed = _narrowed(bspec.get("matchResources"))
    if narrowed:
        return f"ValidatingAdmissionPolicyBinding {ADMISSION_POLICY}: {narrowed}; {fix}"
    return None


@dataclass(frozen=True)
class OfferedApproval:
    """A MitigationApproval naming a Mitigation (by name and uid)."""

    name: str
    approver: UserIdentity
    reason: str = ""


def approvals_for(objects: Sequence[Mapping[str, Any]], name: str, uid: str) -> list[OfferedApproval]:
    """The approvals of the Mitigation ``name`` with ``uid``, oldest first. One that names another
    uid was written for an earlier Mitigation of that name and approves nothing here; one that is
    being deleted has been withdrawn."""
    found: list[tuple[str, str, OfferedApproval]] = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        ref = spec.get("mitigationRef") or {}
        if ref.get("name") != name or ref.get("uid") != uid or meta.get("deletionTimestamp"):
            continue
        try:
            approver = UserIdentity.model_validate(spec.get("approver") or {})
        except ValueError:
            continue  # the CRD schema refuses it; nothing to judge
        offered = OfferedApproval(str(meta.get("name", "")), approver, str(spec.get("reason") or "")[:1024])
        found.append((str(meta.get("creationTimestamp") or ""), offered.name, offered))
    return [o for _, _, o in sorted(found, key=lambda t: (t[0], t[1]))]


def approval_refusal(
    requester: UserIdentity | None,
    approval: OfferedApproval,
    requirements: ApprovalRequirements | None,
    admission: str | None,
) -> str | None:
    """Why ``approval`` does not approve the Mitigation, with the fix; None when it does.

    ``requirements`` None is a decision recorded before policies had an ``approval`` section: the
    defaults (another person approves, any group)."""
    who = approval.approver.username
    head = f"MitigationApproval {approval.name} by {who} does not approve"
    if admission is not None:
        return f"{head}: identities are unverified, {admission}"
    rules = requirements or ApprovalRequirements()
    if not rules.allow_self_approval:
        if requester is None:
            return (
                f"{head}: this Mitigation names no requester (created before spec.requester existed), so"
                " an approver other than the requester cannot be shown; recreate it"
            )
        if requester.username == who:
            return (
                f"{head}: {who} requested this Mitigation and the policy wants another approver"
                " (approval.allowSelfApproval is false)"
            )
    groups = set(approval.approver.groups)
    for entry in rules.approver_groups:
        if entry.groups and not groups & set(entry.groups):
            wanted = ", ".join(entry.groups)
            return (
                f"{head}: {entry.policy} approval.approverGroups wants one of [{wanted}] in"
                f" spec.approver.groups (listed: {', '.join(sorted(groups)) or 'none'})"
            )
    return None


def approval_manifest(
    namespace: str, mitigation: str, uid: str, approver: UserIdentity, reason: str
) -> dict[str, Any]:
    """The MitigationApproval ``stanch approve`` creates. Its name is the Mitigation's and a digest of
    the approver and the Mitigation's uid: one approval per approver and object, and a retry finds
    its own earlier create (AlreadyExists) instead of making a second."""
    digest = hashlib.sha256(f"{uid}\n{approver.username}".encode()).hexdigest()[:10]
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "MitigationApproval",
        "metadata": {"name": f"{mitigation[:200]}-{digest}", "namespace": namespace},
        "spec": {
            "mitigationRef": {"name": mitigation, "uid": uid},
            "approver": approver.to_dict(),
            "reason": reason[:1024],
        },
    }


__all__ = [
    "ADMISSION_POLICY",
    "RULES",
    "OfferedApproval",
    "admission_binding",
    "admission_policy",
    "admission_problem",
    "approval_manifest",
    "approval_refusal",
    "approvals_for",
]
