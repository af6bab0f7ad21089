"""``stanch approve NAMESPACE/NAME``: approve a Mitigation as yourself.

Fills in what the admission policy checks (your user name from a SelfSubjectReview, the groups you
ask to be listed, which must be yours) and the Mitigation's uid, and creates the MitigationApproval.
It grants nothing by itself: RBAC decides whether you may create approvals, the stanch-identity
admission policy whether the approver is you, and the operator whether the policy lets you approve
this one (the Mitigation's status says which).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from stanch.adapters.identity import whoami
from stanch.adapters.kube import KubeClient, KubeError, UserKubeClient
from stanch.core.identity import approval_manifest
from stanch.core.models import UserIdentity

EXIT_OK = 0
EXIT_FAILURE = 1


class ApproveError(Exception):
    """Something the user can act on; the message is the whole explanation."""


async def approve(
    kube: KubeClient, namespace: str, name: str, groups: Sequence[str], reason: str
) -> tuple[dict[str, Any], bool]:
    """Create the approval; returns it and whether it was created (False: it already existed)."""
    me = await whoami(kube)
    username = str(me.get("username") or "")
    mine = set(me.get("groups") or [])
    foreign = [g for g in groups if g not in mine]
    if foreign:
        yours = ", ".join(sorted(mine)) or "none"
        raise ApproveError(f"--group {foreign[0]}: you ({username}) are not in it; your groups: {yours}")
    mitigation = await kube.get("Mitigation", name, namespace)
    if mitigation is None:
        raise ApproveError(f"Mitigation {namespace}/{name} not found")
    approver = UserIdentity(username=username, groups=list(dict.fromkeys(groups)))
    manifest = approval_manifest(namespace, name, mitigation["metadata"]["uid"], approver, reason)
    try:
        return await kube.create(manifest), True
    except KubeError as exc:
        if exc.status == 409:
            return manifest, False
        raise


def approve_command(
    namespace: str,
    name: str,
    *,
    groups: Sequence[str],
    reason: str,
    stdout: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    async def run() -> tuple[dict[str, Any], bool]:
        async with UserKubeClient.from_env() as kube:
            return await approve(kube, namespace, name, groups, reason)

    try:
        approval, created = asyncio.run(run())
    except ApproveError as exc:
        print(f"stanch approve: error: {exc}", file=err)
        return EXIT_FAILURE
    except KubeError as exc:
        hint = " (RBAC: approving needs create on mitigationapprovals)" if exc.status == 403 else ""
        print(f"stanch approve: error: {namespace}/{name}: {exc}{hint}", file=err)
        return EXIT_FAILURE
    who = approval["spec"]["approver"]["username"]
    verb = "created" if created else "already exists:"
    print(
        f"MitigationApproval {namespace}/{approval['metadata']['name']} {verb} {name} approved by {who};"
        f" `kubectl get mitigation {name} -n {namespace}` shows whether the policy accepts it",
        file=stdout,
    )
    return EXIT_OK
