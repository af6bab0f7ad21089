"""A small async Kubernetes REST client that speaks plain JSON.

Connection and credentials come from lightkube's configuration loader (kubeconfig, in-cluster
service account, exec plugins); requests are plain httpx so that every mutation can carry exactly
the precondition the core asked for: a resourceVersion in the body, a JSON-patch ``test`` op, or a
delete precondition. Nothing here decides anything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2 as httpx
import orjson

from stanch.adapters import credentials
from stanch.adapters.permissions import undeclared
from stanch.adapters.resources import Kind, kind

PatchType = Literal["json", "merge", "strategic", "apply"]
_CONTENT_TYPES: dict[str, str] = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
FIELD_MANAGER = "stanch"
# The investigation caps every list at 5,000 objects (CollectorLimits) and keeps what it lists, so a
# page that size costs no extra memory and makes one round trip per list up to the cap: the number of
# list calls per refresh stays flat from 10 to 1,000 pods (at 500 a page, 10,000 Events took 8 pages
# of serial round trips). The API server still streams a page from its watch cache.
PAGE_SIZE = 5000


PRECONDITION_FAILED = "PreconditionFailed"
Objects = list[dict[str, Any]]
"""Objects as the API server sends them (named so the ``list`` method cannot shadow the type)."""


class KubeError(Exception):
    """An API error with its HTTP status and the server's reason."""

    def __init__(self, status: int, reason: str, message: str, *, about: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.about = about
        """``details.kind/name`` of the Status: the object a validation or admission refusal is
        about. Empty for a failed JSON-patch operation, which the API server reports bare."""

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """The precondition failed: someone else changed the object first."""
        return self.status == 409 or self.reason == PRECONDITION_FAILED

    @property
    def forbidden(self) -> bool:
        return self.status == 403


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an outage that passes on its own (the API server overloaded or restarting,
    the network down, a timeout), as opposed to an error that a retry would only repeat."""
    if isinstance(exc, KubeError):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, httpx.TransportError | TimeoutError | ConnectionError)


@dataclass
class RequestStats:
    """Counts of API requests by verb, for benchmarks and the operator's own metrics."""

    by_verb: dict[str, int] = field(default_factory=dict)

    def count(self, verb: str) -> None:
        self.by_verb[verb] = self.by_verb.get(verb, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_verb.values())


class KubeClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self.stats = RequestStats()

    @classmethod
    def from_env(cls, kubeconfig: str | None = None, timeout: float = 10.0) -> KubeClient:
        """From the process's credentials (kubectl's order: ``--kubeconfig``/``--context``, then
        $KUBECONFIG, ~/.kube/config, then the Pod's ServiceAccount; see ``credentials``), or from
        an explicit kubeconfig file. Raises ``CredentialsError`` with the fix."""
        creds = credentials.resolve(credentials.Selection(kubeconfig=kubeconfig)) if kubeconfig else None
        return cls.from_credentials(creds or credentials.current(), timeout)

    @classmethod
    def from_credentials(cls, creds: credentials.Credentials, timeout: float = 10.0) -> KubeClient:
        return cls(creds.http_client(httpx.Timeout(timeout)))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # ---- plumbing ------------------------------------------------------------------------------
    @staticmethod
    def _declared(k: Kind, verb: str, subresource: str | None = None, name: str | None = None) -> Kind:
        """``k``, when the request is in the permissions table; a 403 naming the fix otherwise.
        RBAC would refuse it in a shipped install anyway (rbac.yaml grants exactly the table): this
        fails the same way under broader credentials too, so tests run as admin still notice."""
        problem = undeclared(k, verb, subresource, name)
        if problem is not None:
            raise KubeError(403, "Undeclared", problem, about=f"{k.kind}")
        return k

    async def _request(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        self.stats.count(verb)
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        resp = await self._http.request(method, path, params=params, content=content, headers=headers)
        if resp.status_code >= 400:
            raise _error(resp.status_code, resp.content)
        if not resp.content:
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            # orjson decodes a 4 MB list of 4,000 Events in half the time of json (57 vs 121 ms):
            # the investigation's lists are decoded one after another on the event loop.
            return orjson.loads(resp.content)
        return resp.text

    # ---- reads ---------------------------------------------------------------------------------
    async def version(self) -> dict[str, Any]:
        """The API server's ``/version`` (every client may read it: ``system:public-info-viewer``)."""
        info: dict[str, Any] = await self._request("version", "GET", "/version")
        return info

    async def get(self, kind_name: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            k = self._declared(kind(kind_name), "get", name=name)
            obj: dict[str, Any] = await self._request("get", "GET", k.path(namespace, name))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return obj

    async def list(
        self,
        kind_name: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        cached: bool = False,
    ) -> list[dict[str, Any]]:
        """Every matching object (paged), or at most ``limit`` of them.

        ``cached`` reads the API server's watch cache (``resourceVersion=0``) instead of etcd: no
        quorum read and far less work for the server on large lists, at the price of data that may
        be a moment behind. Evidence can take that; a mitigation's snapshot and preconditions
        cannot, so it is opt-in. Older API servers answer from the cache in one piece, ignoring the
        page size; ``limit`` is applied here either way.
        """
        items, _ = await self.list_versioned(
            kind_name,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            cached=cached,
        )
        return items

    async def list_versioned(
        self,
        kind_name: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        cached: bool = False,
    ) -> tuple[Objects, str]:
        """Like :meth:`list`, with the list's resourceVersion: where a watch of the same objects
        starts so that it misses nothing that changed after the list."""
        k = self._declared(kind(kind_name), "list")
        items: Objects = []
        version: dict[str, str] = {}
        async for item in self._paged(k, namespace, label_selector, field_selector, limit, cached, version):
            items.append(item)
        return items, version.get("resourceVersion", "")

    async def watch(
        self,
        kind_name: str,
        namespace: str | None = None,
        *,
        resource_version: str,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The changes after ``resource_version`` as (type, object) pairs: ADDED, MODIFIED, DELETED,
        BOOKMARK (a newer version to resume from, nothing changed) and ERROR (a Status object; 410
        means the version is too old and the caller must list again). Ends after about
        ``timeout_seconds``, when the server closes the stream; the caller resumes from the last
        version it saw."""
        k = self._declared(kind(kind_name), "watch")
        params: dict[str, str | int] = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        self.stats.count("watch")
        # The client's read timeout is for ordinary requests; a quiet watch may send nothing for
        # a minute between bookmarks.
        timeout = httpx.Timeout(10.0, read=timeout_seconds + 30.0)
        async with self._http.stream("GET", k.path(namespace), params=params, timeout=timeout) as resp:
            if resp.status_code >= 400:
                raise _error(resp.status_code, await resp.aread())
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                event = orjson.loads(line)
                obj = event.get("object") or {}
                obj.setdefault("kind", k.kind)
                obj.setdefault("apiVersion", k.api_version)
                yield str(event.get("type", "")), obj

    async def _paged(
        self,
        k: Kind,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        limit: int | None,
        cached: bool = False,
        version: dict[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        params: dict[str, str | int] = {"limit": min(PAGE_SIZE, limit) if limit else PAGE_SIZE}
        if cached:
            params["resourceVersion"] = "0"
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        seen = 0
        while True:
            page = await self._request("list", "GET", k.path(namespace), params=params)
            if version is not None:
                # Every page of one list carries the version of the snapshot the list was served from.
                version["resourceVersion"] = page.get("metadata", {}).get("resourceVersion", "")
            for item in page.get("items", []):
                # List items carry no kind/apiVersion; add them so snapshots are self-describing.
                item.setdefault("kind", k.kind)
                item.setdefault("apiVersion", k.api_version)
                yield item
                seen += 1
                if limit and seen >= limit:
                    return
            cont = page.get("metadata", {}).get("continue")
            if not cont:
                return
            params["continue"] = cont
            params.pop("resourceVersion", None)  # a continue token carries its own; both are refused

    async def logs(
        self,
        pod: str,
        namespace: str,
        *,
        container: str | None = None,
        previous: bool = False,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
        timestamps: bool = True,
    ) -> str:
        params: dict[str, str | int] = {"timestamps": "true" if timestamps else "false"}
        if container:
            params["container"] = container
        if previous:
            params["previous"] = "true"
        if since_seconds:
            params["sinceSeconds"] = since_seconds
        if tail_lines:
            params["tailLines"] = tail_lines
        if limit_bytes:
            params["limitBytes"] = limit_bytes
        path = self._declared(kind("Pod"), "get", "log").path(namespace, pod, "log")
        text = await self._request("logs", "GET", path, params=params)
        return text if isinstance(text, str) else json.dumps(text)

    # ---- writes --------------------------------------------------------------------------------
    async def patch(
        self,
        kind_name: str,
        name: str,
        namespace: str | None,
        patch: Any,
        patch_type: PatchType = "merge",
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Patch an object. ``resource_version`` makes it conditional: the API server answers 409
        when the object changed since that version. JSON-patch ``test`` ops are conditional on
        values; their failure comes back as a bare 422 (no details) and is reported as a conflict.
        A 422 that names the object (validation: an immutable field; an admission policy's denial)
        is a refusal of the write itself and stays Invalid: retrying it cannot help."""
        params: dict[str, str | int] = {"fieldManager": FIELD_MANAGER}
        if resource_version is not None:
            patch = _with_resource_version(patch, patch_type, resource_version)
        if dry_run:
            params["dryRun"] = "All"
        if patch_type == "apply":
            params["force"] = "true"
        try:
            obj: dict[str, Any] = await self._request(
                "patch",
                "PATCH",
                self._declared(kind(kind_name), "patch", subresource, name).path(
                    namespace, name, subresource
                ),
                params=params,
                body=patch,
                content_type=_CONTENT_TYPES[patch_type],
            )
        except KubeError as exc:
            has_tests = patch_type == "json" and any(op.get("op") == "test" for op in patch)
            if has_tests and exc.status == 422 and exc.reason == "Invalid" and not exc.about:
                raise KubeError(exc.status, PRECONDITION_FAILED, f"a test op failed: {exc.message}") from exc
            raise
        return obj

    async def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        meta = obj["metadata"]
        params: dict[str, str | int] = {"fieldManager": FIELD_MANAGER}
        if dry_run:
            params["dryRun"] = "All"
        result: dict[str, Any] = await self._request(
            "create",
            "POST",
            self._declared(kind(obj["kind"]), "create").path(meta.get("namespace")),
            params=params,
            body=obj,
        )
        return result

    async def evict(self, name: str, namespace: str, *, uid: str | None = None) -> bool:
        """Create a ``policy/v1`` Eviction for the pod (PodDisruptionBudgets apply); False when the pod
        was already gone. A refusal by a budget raises KubeError 429."""
        body: dict[str, Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        if uid:
            body["deleteOptions"] = {"preconditions": {"uid": uid}}
        try:
            path = self._declared(kind("Pod"), "create", "eviction").path(namespace, name, "eviction")
            await self._request("evict", "POST", path, body=body)
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def delete(
        self,
        kind_name: str,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete with optional preconditions; False when it was already gone."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        try:
            path = self._declared(kind(kind_name), "delete", name=name).path(namespace, name)
            await self._request("delete", "DELETE", path, body=body)
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True


def _error(status_code: int, content: bytes) -> KubeError:
    """The API server's Status reply as a KubeError (plain text when it is not a Status)."""
    text = content.decode(errors="replace")
    try:
        status = orjson.loads(content)
    except orjson.JSONDecodeError:
        return KubeError(status_code, "", text[:500])
    if not isinstance(status, dict):
        return KubeError(status_code, "", text[:500])
    message = status.get("message", text)
    # The API server puts the specifics in details.causes (e.g. which PodDisruptionBudget
    # refused an eviction, and its numbers).
    causes = [c.get("message") for c in (status.get("details") or {}).get("causes") or []]
    if any(causes):
        message = f"{message} ({'; '.join(c for c in causes if c)})"
    details = status.get("details") or {}
    about = "/".join(str(details[k]) for k in ("kind", "name") if details.get(k))
    return KubeError(status_code, status.get("reason", ""), message, about=about)


def _with_resource_version(patch: Any, patch_type: PatchType, resource_version: str) -> Any:
    if patch_type == "json":
        return [{"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}, *patch]
    if patch_type in ("merge", "strategic"):
        merged = dict(patch)
        merged["metadata"] = {**merged.get("metadata", {}), "resourceVersion": resource_version}
        return merged
    raise ValueError("server-side apply has no resourceVersion precondition here; use merge or json")


class UserKubeClient(KubeClient):
    """A client acting with a person's own credentials (``stanch approve``), not the operator's.

    The permissions table describes what the *operator* may do, and rbac.yaml grants exactly that;
    a user's request is theirs, authorized by their own RBAC (approving needs ``create`` on
    ``mitigationapprovals``, which the operator deliberately lacks). So this client does not
    consult the table: adding the user's verbs to it would grant them to the operator too."""

    @staticmethod
    def _declared(k: Kind, verb: str, subresource: str | None = None, name: str | None = None) -> Kind:
        return k
