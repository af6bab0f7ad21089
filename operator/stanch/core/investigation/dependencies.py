"""Failing dependencies: which host the pods' error lines name, and what that host is in the cluster.

Log lines written by every runtime name the host they failed to reach in their own way — Go's
``dial tcp 10.96.4.7:5432: connect: connection refused`` and ``lookup payments.shop.svc.cluster.local
on 10.96.0.10:53: no such host``, Java's ``Connect to payments:8080 [payments/10.96.4.7] failed``
and ``UnknownHostException``, Python's ``HTTPConnectionPool(host='payments', port=8080)``, Node's
``connect ECONNREFUSED 10.96.4.7:8080``, gRPC's ``code = Unavailable``, Envoy's
``outbound|8080||payments.shop.svc.cluster.local``. :func:`failing_hosts` reads every sampled
error line (not one sample per signature: one dependency may answer from many addresses), keeps the
candidate hosts of each line and the way it failed, and :func:`resolve` maps a host — an IP, a
ClusterIP, ``name``, ``name.ns``, ``name.ns.svc.cluster.local``, a StatefulSet pod's DNS name,
host:port — to the Service of the namespace (by name, ClusterIP or endpoint address) and the
Deployment or StatefulSet behind it (by the Service's selector), or says that it is external.

Pure: the collector hands in the sampled lines and the namespace's objects as plain dicts.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from stanch.core.investigation.gathering import REVISION_ANNOTATION, parse_time, revision_of
from stanch.core.models import DependencyEvidence, ObjectRef
from stanch.core.redaction import redact_text

Obj = Mapping[str, Any]
MAX_DEPENDENCIES = 5
SAMPLE_MAX = 1024


class Line(Protocol):
    @property
    def time(self) -> datetime | None: ...
    @property
    def pod(self) -> str: ...
    @property
    def message(self) -> str: ...


# --- how a line fails -----------------------------------------------------------------------------

FAILURES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "dns",
        re.compile(
            r"no such host|NXDOMAIN|Name or service not known|nodename nor servname|"
            r"Temporary failure in name resolution|UnknownHostException|ENOTFOUND|EAI_AGAIN|"
            r"could not resolve|Name does not resolve|DNS resolution failed|getaddrinfo failed|"
            r"failed to resolve",
            re.IGNORECASE,
        ),
    ),
    (
        "refused",
        re.compile(r"connection refused|ECONNREFUSED|Connect call failed|refused\b|ConnectException", re.I),
    ),
    (
        "timeout",
        re.compile(
            r"i/o timeout|timed? ?out|ETIMEDOUT|deadline exceeded|DeadlineExceeded|DEADLINE_EXCEEDED|"
            r"SocketTimeoutException|\btimeout\b",
            re.IGNORECASE,
        ),
    ),
    (
        "reset",
        re.compile(
            r"connection reset|ECONNRESET|broken pipe|EPIPE|upstream prematurely closed|"
            r"disconnect/reset before headers|unexpected EOF|Connection aborted|RemoteDisconnected",
            re.IGNORECASE,
        ),
    ),
    (
        "unavailable",
        re.compile(
            r"code = Unavailable|StatusCode\.UNAVAILABLE|(?-i:\bUNAVAILABLE\b)|no healthy upstream|"
            r"upstream connect error|failed to connect to all addresses|no route to host|EHOSTUNREACH|"
            r"network is unreachable|ENETUNREACH|Cannot connect to host|could not connect|"
            r"\b5\d\d (?:UF|UH|UO|URX|UC|UT|UPE|NR)\b|upstream_reset|connection_failure|"
            r"unable to connect|failed to connect|Failed to establish a new connection|Max retries exceeded",
            re.IGNORECASE,
        ),
    ),
    (
        "5xx",
        re.compile(
            r"(?:upstream|backend|dependency|remote|server|service)\b[^\n]{0,80}?\b(?:returned|responded|answered|"
            r"replied|status|code|with)\D{0,12}5\d\d\b|"
            r"\b(?:received|got|returned)\s+(?:an?\s+)?(?:HTTP\s*)?5\d\d\b[^\n]{0,40}?\bfrom\b|"
            r"\b5\d\d\b[^\n]{0,40}\bfrom (?:upstream|backend)\b",
            re.IGNORECASE,
        ),
    ),
)
SATURATION = re.compile(
    r"pool exhausted|queue (?:is )?full|overloaded|too many requests|rate limit|server busy|"
    r"capacity exceeded|no free workers?",
    re.IGNORECASE,
)
"""The workload refusing work itself (its own pool or queue is full): not a dependency failing,
even when it answers "503 Service Unavailable"."""


def failure_kinds(line: str) -> list[str]:
    """How ``line`` says a dependency failed (several kinds can apply); empty when it does not."""
    if SATURATION.search(line):
        return []
    return [kind for kind, pattern in FAILURES if pattern.search(line)]


# --- which host a line names ------------------------------------------------------------------------

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_NAME = rf"{_LABEL}(?:\.{_LABEL})*\.?"
_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_IPV6 = r"\[[0-9A-Fa-f:.]+\]"
_HOST = rf"(?:{_IPV6}|{_IPV4}|{_NAME})"
_PORT = r"(?::(?P<port>\d{1,5}))?"

# Specific shapes first; each names the host group ``host`` and optionally ``port``.
_SHAPES: tuple[re.Pattern[str], ...] = (
    # Go: lookup <name> on <dns server>: no such host (the DNS server is not the dependency).
    re.compile(rf"\blookup (?P<host>{_HOST}){_PORT}(?: on \S+)?", re.I),
    # Istio/Envoy cluster names: outbound|8080||payments.shop.svc.cluster.local
    re.compile(rf"outbound\|(?P<port>\d+)\|[^|\s]*\|(?P<host>{_NAME})"),
    # URLs: http://payments:8080/charge, postgres://user@db:5432/app, dns:///payments:50051
    re.compile(rf"\b[a-z][a-z0-9+.-]*://(?:/)?(?:[^@/\s'\"]+@)?(?P<host>{_HOST}){_PORT}", re.I),
    # Python urllib3/requests: HTTPConnectionPool(host='payments', port=8080)
    re.compile(rf"host=['\"]?(?P<host>{_HOST})['\"]?,\s*port=(?P<port>\d+)", re.I),
    # Java: payments/10.96.4.7:8080 (name/address), keep the name.
    re.compile(rf"(?<![\w/.-])(?P<host>{_NAME})/{_IPV4}{_PORT}"),
    # Node: connect ECONNREFUSED 10.96.4.7:8080, getaddrinfo ENOTFOUND payments
    re.compile(
        rf"\b(?:ECONNREFUSED|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|ECONNRESET|EHOSTUNREACH)\s+(?P<host>{_HOST}){_PORT}"
    ),
    # Java: UnknownHostException: payments.shop.svc.cluster.local
    re.compile(rf"UnknownHostException:\s*(?P<host>{_HOST})"),
    # gRPC core: ipv4:10.96.4.7:50051
    re.compile(rf"\bipv[46]:(?P<host>{_HOST}){_PORT}"),
    # aiohttp: Connect call failed ('10.96.4.7', 8080)
    re.compile(rf"\(\s*'(?P<host>{_HOST})',\s*(?P<port>\d+)"),
    # Go: dial tcp 10.96.4.7:5432 (also gRPC "Error while dialing dial tcp ...").
    re.compile(rf"\bdial (?:tcp|udp)[46]? (?P<host>{_HOST}){_PORT}", re.I),
    # Generic: connect(ing) to / connection to / calling / upstream / host <host>[:port]
    re.compile(
        rf"\b(?:connect(?:ing|ion)? to(?: host)?|calling|upstream|backend|dependency|host|server on|"
        rf"(?:request|call)s? to)\s+['\"{{\[]?(?P<host>{_HOST}){_PORT}",
        re.I,
    ),
    # Bare "to"/"from" only with a port: "refused to payments:5432", not "to establish".
    re.compile(rf"\b(?:to|from)\s+['\"]?(?P<host>{_HOST}):(?P<port>\d{{1,5}})\b", re.I),
)
_NOT_A_HOST = frozenset(
    {
        "connect",
        "the",
        "a",
        "an",
        "server",
        "service",
        "host",
        "upstream",
        "backend",
        "timeout",
        "remote",
        "all",
        "addresses",
        "failed",
        "error",
        "tcp",
        "udp",
        "dial",
        "lookup",
        "on",
        "to",
        "from",
        "with",
        "after",
        "read",
        "write",
        "client",
        "request",
        "requests",
        "localhost.",
        "default",
        "unknown",
        "null",
        "nil",
        "none",
        "peer",
        "it",
        "be",
        "is",
    }
)
_JUNK_SUFFIX = re.compile(r"[.:]+$")


def _plausible(host: str) -> bool:
    if not host or host.lower() in _NOT_A_HOST or host.startswith("<"):
        return False
    if _is_ip(host):
        return True
    # A host name has a letter, and one-label names are lower case in Kubernetes.
    return any(c.isalpha() for c in host) and not host.isdigit()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def candidate_hosts(line: str) -> list[str]:
    """Hosts a failure line names, in the order the shapes rank them (``host`` or ``host:port``)."""
    out: list[str] = []
    for shape in _SHAPES:
        for match in shape.finditer(line):
            host = _JUNK_SUFFIX.sub("", match.group("host"))
            if not _plausible(host):
                continue
            port = match.groupdict().get("port")
            value = f"{host}:{port}" if port else host
            if value not in out:
                out.append(value)
    return out


# --- what a host is in the namespace --------------------------------------------------------------


@dataclass(frozen=True)
class Namespace:
    """The namespace's objects a host is matched against."""

    name: str
    services: Sequence[Obj] = ()
    endpoint_slices: Sequence[Obj] = ()
    deployments: Sequence[Obj] = ()
    stateful_sets: Sequence[Obj] = ()
    replica_sets: Sequence[Obj] = ()
    """ReplicaSets of the matched Deployments (for their revisions); may be empty."""
    cluster_domain: str = "cluster.local"


@dataclass(frozen=True)
class Resolution:
    service: str | None = None
    """Service name in the namespace."""
    external: bool = False
    how: str = ""
    other_namespace: str | None = None


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def split_host(host: str) -> tuple[str, str | None]:
    """``("payments", "8080")`` from ``payments:8080``; IPv6 in brackets keeps its colons."""
    if host.startswith("["):
        addr, _, rest = host[1:].partition("]")
        return addr, rest[1:] if rest.startswith(":") else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port
    return host, None


def _service_ips(service: Obj) -> set[str]:
    spec = service.get("spec") or {}
    ips = {str(ip) for ip in spec.get("clusterIPs") or () if ip and ip != "None"}
    if spec.get("clusterIP") and spec["clusterIP"] != "None":
        ips.add(str(spec["clusterIP"]))
    return ips


def _slice_service(es: Obj) -> str | None:
    return (_meta(es).get("labels") or {}).get("kubernetes.io/service-name")


def resolve(host: str, ns: Namespace) -> Resolution:
    """The Service ``host`` names in ``ns``, or why none: another namespace, external, or missing."""
    name, _ = split_host(host.strip().rstrip("."))
    services = {str(_meta(s).get("name")): s for s in ns.services}
    if _is_ip(name):
        addr = name.strip("[]")
        for svc_name, svc in services.items():
            if addr in _service_ips(svc):
                return Resolution(svc_name, how=f"{addr} is the ClusterIP of Service {svc_name}")
        for es in ns.endpoint_slices:
            for ep in es.get("endpoints") or ():
                if addr in (ep.get("addresses") or ()):
                    owner = _slice_service(es)
                    if owner:
                        return Resolution(owner, how=f"{addr} is an endpoint of Service {owner}")
        if ipaddress.ip_address(addr).is_loopback:
            return Resolution(how=f"{addr} is the pod itself (a sidecar or a local process)")
        return Resolution(
            external=True,
            how=f"{addr} is no ClusterIP or endpoint of a Service in namespace {ns.name}: outside it",
        )
    lowered = name.lower()
    labels = lowered.split(".")
    if "svc" in labels:
        i = labels.index("svc")
        if i >= 2:
            service, namespace = labels[i - 2], labels[i - 1]
            return _by_name(service, namespace, services, ns, host)
        if i == 1:  # "name.svc" is not a form Kubernetes DNS answers; take the name in this namespace
            return _by_name(labels[0], ns.name, services, ns, host)
    if len(labels) == 1:
        if lowered == "localhost":
            return Resolution(how="localhost is the pod itself (a sidecar or a local process)")
        return _by_name(lowered, ns.name, services, ns, host)
    if len(labels) == 2 and labels[1] not in _TLDS:
        # name.namespace: the short form cluster DNS answers from any namespace.
        return _by_name(labels[0], labels[1], services, ns, host)
    return Resolution(external=True, how=f"{host} is not a cluster name: an external dependency")


_TLDS = frozenset({"com", "net", "org", "io", "dev", "cloud", "local", "internal", "co", "ai", "app"})


def _by_name(
    service: str, namespace: str, services: Mapping[str, Obj], ns: Namespace, host: str
) -> Resolution:
    if namespace != ns.name:
        return Resolution(
            other_namespace=namespace,
            how=f"{host} names Service {service} in namespace {namespace}: not examined (another namespace)",
        )
    if service in services:
        spec = services[service].get("spec") or {}
        if spec.get("type") == "ExternalName":
            return Resolution(
                service,
                external=True,
                how=f"Service {service} is an ExternalName for {spec.get('externalName')}: external",
            )
        return Resolution(service, how=f"{host} names Service {service}")
    return Resolution(how=f"no Service named {service} in namespace {ns.name} (deleted or misnamed?)")


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def workload_behind(service: Obj, ns: Namespace) -> tuple[str, Obj] | None:
    """The Deployment or StatefulSet whose pods the Service selects (the first by name)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    if not selector:
        return None
    for kind, objs in (("Deployment", ns.deployments), ("StatefulSet", ns.stateful_sets)):
        for obj in sorted(objs, key=lambda o: str(_meta(o).get("name", ""))):
            labels = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
                "labels"
            ) or {}
            if _selects(selector, labels):
                return kind, obj
    return None


def _endpoints(service: str, ns: Namespace) -> tuple[int, int] | None:
    slices = [es for es in ns.endpoint_slices if _slice_service(es) == service]
    if not slices:
        return None
    endpoints = [ep for es in slices for ep in es.get("endpoints") or ()]
    ready = sum(1 for ep in endpoints if (ep.get("conditions") or {}).get("ready") is not False)
    return ready, len(endpoints)


def spec_change(obj: Obj) -> tuple[datetime | None, str]:
    """When the object's spec was last written, and by which manager (managedFields of the spec,
    never of the status subresource)."""
    best: tuple[datetime | None, str] = (None, "")
    for entry in _meta(obj).get("managedFields") or ():
        if entry.get("subresource") or "f:spec" not in (entry.get("fieldsV1") or {}):
            continue
        moment = parse_time(entry.get("time"))
        if moment is not None and (best[0] is None or moment > best[0]):
            template = "f:template" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
            what = "pod template" if template else "spec"
            best = (moment, f"{what} written by {entry.get('manager', 'unknown')}")
    return best


def _controlled(rs: Obj, uid: Any) -> bool:
    return any(r.get("controller") and r.get("uid") == uid for r in _meta(rs).get("ownerReferences") or ())


def _deployment_revisions(deployment: Obj, replica_sets: Sequence[Obj]) -> list[Obj]:
    uid = _meta(deployment).get("uid")
    owned = [rs for rs in replica_sets if uid and _controlled(rs, uid) and revision_of(rs) is not None]
    return sorted(owned, key=lambda rs: -(revision_of(rs) or 0))


def _workload_state(kind: str, obj: Obj, ns: Namespace) -> dict[str, Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    out: dict[str, Any] = {
        "workload": ObjectRef(
            kind=kind, name=_meta(obj)["name"], namespace=ns.name, uid=_meta(obj).get("uid")
        ),
        "replicas": int(spec.get("replicas", 1) or 0),
        "ready_replicas": int(status.get("readyReplicas") or 0),
    }
    changed, what = spec_change(obj)
    if kind == "Deployment":
        raw = (_meta(obj).get("annotations") or {}).get(REVISION_ANNOTATION)
        current = int(raw) if isinstance(raw, str) and raw.isdigit() else None
        out["revision"] = current
        revisions = _deployment_revisions(obj, ns.replica_sets)
        if revisions:
            newest = revisions[0]
            created = parse_time(_meta(newest).get("creationTimestamp"))
            if created is not None:
                changed = created
                what = f"revision {revision_of(newest)} (ReplicaSet {_meta(newest).get('name')}) created"
            if len(revisions) > 1:
                out["previous_revision"] = revision_of(revisions[1])
    out["changed_at"] = changed
    out["change"] = what[:512]
    return out


# --- putting it together --------------------------------------------------------------------------


@dataclass(frozen=True)
class HostErrors:
    """A dependency metric: errors per second the pods get from ``host``, over the window."""

    host: str
    points: tuple[tuple[datetime, float], ...]

    @property
    def rate(self) -> float | None:
        """The latest value."""
        return self.points[-1][1] if self.points else None

    @property
    def since(self) -> datetime | None:
        """Start of the current run of non-zero values (when the errors began, as far as the window
        shows)."""
        start: datetime | None = None
        for moment, value in self.points:
            start = (start or moment) if value > 0 else None
        return start


@dataclass
class _Agg:
    host: str
    count: int = 0
    pods: set[str] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None
    sample: str = ""
    resolution: Resolution = field(default_factory=Resolution)
    rate: float | None = None
    rate_since: datetime | None = None


def _rank(resolution: Resolution, host: str) -> int:
    """Prefer what the namespace knows: a Service by name, then by address, then any name, then an IP."""
    name, _ = split_host(host)
    if resolution.service is not None:
        return 0 if not _is_ip(name) else 1
    if resolution.other_namespace is not None:
        return 2
    return 3 if not _is_ip(name) else 4


def _key(resolution: Resolution, host: str) -> str:
    return f"svc:{resolution.service}" if resolution.service else f"host:{split_host(host)[0].lower()}"


def failing_hosts(lines: Iterable[Line], ns: Namespace, metrics: Sequence[HostErrors] = ()) -> list[_Agg]:
    """Every error line that says a dependency failed, and every host a dependency metric shows
    erring now, grouped by the Service it resolves to (else by host), most lines (then errors) first."""
    groups: dict[str, _Agg] = {}
    cache: dict[str, Resolution] = {}
    for metric in metrics:
        if not metric.rate or metric.rate <= 0:
            continue
        host = metric.host.strip()
        resolution = cache.setdefault(host, resolve(host, ns))
        erring = groups.setdefault(_key(resolution, host), _Agg(host, resolution=resolution))
        erring.rate = (erring.rate or 0.0) + metric.rate
        since = metric.since
        if since is not None and (erring.rate_since is None or since < erring.rate_since):
            erring.rate_since = since
    for line in lines:
        kinds = failure_kinds(line.message)
        if not kinds:
            continue
        hosts = candidate_hosts(line.message)
        if not hosts:
            continue
        resolved = []
        for host in hosts:
            if host not in cache:
                cache[host] = resolve(host, ns)
            resolved.append((_rank(cache[host], host), hosts.index(host), host, cache[host]))
        _, _, host, resolution = min(resolved)
        key = _key(resolution, host)
        agg = groups.get(key)
        if agg is None:
            agg = groups[key] = _Agg(host, resolution=resolution)
        elif agg.count == 0:
            agg.host = host  # the host as the lines write it, rather than the metric's label
        agg.count += 1
        agg.pods.add(line.pod)
        agg.failures.update(kinds)
        if line.time is not None and (agg.first is None or line.time < agg.first):
            agg.first, agg.sample = line.time, line.message
        elif not agg.sample:
            agg.sample = line.message
        if line.time is not None and (agg.last is None or line.time > agg.last):
            agg.last = line.time
    return sorted(groups.values(), key=lambda a: (-a.count, -(a.rate or 0.0), a.host))


def services_to_examine(
    lines: Iterable[Line], ns: Namespace, metrics: Sequence[HostErrors] = ()
) -> list[str]:
    """Services of the namespace the failing lines and metrics name, most lines first (what to read
    more of)."""
    found = failing_hosts(lines, ns, metrics)
    return [a.resolution.service for a in found if a.resolution.service][:MAX_DEPENDENCIES]


def dependency_evidence(
    lines: Iterable[Line], ns: Namespace, metrics: Sequence[HostErrors] = ()
) -> list[DependencyEvidence]:
    """The failing dependencies the sampled lines and dependency metrics show, each resolved as far
    as the namespace allows."""
    services = {str(_meta(s).get("name")): s for s in ns.services}
    out = []
    for agg in failing_hosts(lines, ns, metrics)[:MAX_DEPENDENCIES]:
        res = agg.resolution
        kinds = [k for k, _ in agg.failures.most_common(6)]
        if agg.rate is not None and "errors" not in kinds:
            kinds = [*kinds[:5], "errors"]
        fields: dict[str, Any] = {
            "host": agg.host[:300],
            "failures": kinds,
            "errors_per_second": agg.rate,
            "errors_since": agg.rate_since,
            "count": agg.count,
            "pods": len(agg.pods),
            "first_seen": agg.first,
            "last_seen": agg.last,
            "sample": redact_text(agg.sample.strip())[:SAMPLE_MAX],
            "external": res.external,
            "resolution": res.how[:512],
        }
        svc = services.get(res.service) if res.service else None
        if svc is not None:
            fields["service"] = ObjectRef(
                kind="Service", name=str(_meta(svc)["name"]), namespace=ns.name, uid=_meta(svc).get("uid")
            )
            endpoints = _endpoints(str(_meta(svc)["name"]), ns)
            if endpoints is not None:
                fields["endpoints_ready"], fields["endpoints_total"] = endpoints
            behind = workload_behind(svc, ns)
            if behind is not None:
                fields.update(_workload_state(behind[0], behind[1], ns))
        out.append(DependencyEvidence(**fields))
    return out
