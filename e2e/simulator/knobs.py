"""Behaviour knobs: pod-template annotations under ``sim.stanch.dev/`` parsed into a `Behaviour`.

Knobs are strings because annotations are. A knob that does not parse keeps its default and is
reported as a problem rather than crashing the simulator: one bad scenario file must not take the
metrics of every other workload down with it.

Precedence, lowest first: defaults, pod-template annotations, the world's image profile for the
pod's image, then the overrides of every feature flag that is switched on in the pod's ConfigMap.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "sim.stanch.dev/"
WORKLOAD_LABEL = PREFIX + "workload"
FLAG_PREFIX = "flag."

TRUTHY = frozenset({"1", "true", "yes", "on", "enabled"})
NODE_EFFECTS = frozenset({"fail", "slow"})


@dataclass(frozen=True)
class Dependency:
    name: str
    namespace: str | None  # None: the caller's own namespace
    port: int


@dataclass(frozen=True)
class Behaviour:
    error_ratio: float = 0.0
    error_code: int = 500
    error_message: str = ""
    client_error_ratio: float = 0.01
    latency_ms: float = 40.0
    latency_jitter: float = 0.35
    capacity_rps: float = 100.0
    cpu_idle_cores: float = 0.02
    cpu_ms_per_request: float = 4.0
    memory_mb: float = 128.0
    memory_leak_mb_per_min: float = 0.0
    cpu_hot_ordinal: int | None = None
    cpu_hot_cores: float = 1.0
    cpu_hot_after_s: float = 0.0
    bad_node: str = ""
    bad_node_effect: str = "fail"
    depends_on: tuple[Dependency, ...] = ()
    cert_expired: bool = False
    # A cold start: a new pod answers this share of requests with 503 for its first seconds.
    warmup_s: float = 0.0
    warmup_error_ratio: float = 0.0
    config_map: str = ""
    # The port the app listens on: a Service whose targetPort is another one reaches nothing.
    port: int = 8080
    port_name: str = "http"
    # flag name -> knob overrides applied while the flag is on
    flags: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


@dataclass(frozen=True)
class _Knob:
    field: str
    parse: str  # "ratio" | "float" | "int" | "str" | "bool" | "duration" | "node-effect" | "deps" | "ordinal"


# Annotation suffix (after the prefix) -> Behaviour field.
KNOBS: Mapping[str, _Knob] = {
    "error-ratio": _Knob("error_ratio", "ratio"),
    "error-code": _Knob("error_code", "int"),
    "error-message": _Knob("error_message", "str"),
    "client-error-ratio": _Knob("client_error_ratio", "ratio"),
    "latency-ms": _Knob("latency_ms", "float"),
    "latency-jitter": _Knob("latency_jitter", "float"),
    "capacity-rps": _Knob("capacity_rps", "float"),
    "cpu-idle-cores": _Knob("cpu_idle_cores", "float"),
    "cpu-ms-per-request": _Knob("cpu_ms_per_request", "float"),
    "memory-mb": _Knob("memory_mb", "float"),
    "memory-leak-mb-per-min": _Knob("memory_leak_mb_per_min", "float"),
    "cpu-hot-ordinal": _Knob("cpu_hot_ordinal", "ordinal"),
    "cpu-hot-cores": _Knob("cpu_hot_cores", "float"),
    "cpu-hot-after": _Knob("cpu_hot_after_s", "duration"),
    "bad-node": _Knob("bad_node", "str"),
    "bad-node-effect": _Knob("bad_node_effect", "node-effect"),
    "depends-on": _Knob("depends_on", "deps"),
    "cert-expired": _Knob("cert_expired", "bool"),
    "warmup": _Knob("warmup_s", "duration"),
    "warmup-error-ratio": _Knob("warmup_error_ratio", "ratio"),
    "config-map": _Knob("config_map", "str"),
    "port": _Knob("port", "int"),
    "port-name": _Knob("port_name", "str"),
}

# Annotations other parts of the project own (kwok lifecycle stages); not ours to complain about.
FOREIGN_KNOBS = frozenset({"lifecycle", "crash-after", "restart-after", "probe-every"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class KnobError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"1.5m"``, ``"500ms"`` or ``"1h"``."""
    match = _DURATION.match(text)
    if not match:
        raise KnobError(f"not a duration: {text!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_dependencies(text: str) -> tuple[Dependency, ...]:
    """``"payments, other-ns/ledger:8080, postgres:5432"`` -> dependencies (default port 5432)."""
    deps: list[Dependency] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        namespace: str | None = None
        if "/" in item:
            namespace, item = item.split("/", 1)
        port = 5432
        if ":" in item:
            item, port_text = item.rsplit(":", 1)
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise KnobError(f"bad port in dependency {raw.strip()!r}")
            port = int(port_text)
        if not item:
            raise KnobError(f"empty dependency name in {text!r}")
        deps.append(Dependency(name=item, namespace=namespace or None, port=port))
    return tuple(deps)


def parse_overrides(text: str) -> tuple[tuple[str, str], ...]:
    """``"error-ratio=0.4; error-message=pricing failed"`` -> ordered knob overrides."""
    pairs: list[tuple[str, str]] = []
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        if "=" not in item:
            raise KnobError(f"override {item!r} is not knob=value")
        knob, value = item.split("=", 1)
        knob = knob.strip()
        if knob not in KNOBS:
            raise KnobError(f"unknown knob {knob!r} in override")
        pairs.append((knob, value.strip()))
    return tuple(pairs)


def _convert(kind: str, text: str) -> object:
    value = text.strip()
    try:
        if kind == "ratio":
            ratio = float(value)
            if not 0.0 <= ratio <= 1.0:
                raise KnobError(f"ratio out of [0, 1]: {value!r}")
            return ratio
        if kind == "float":
            number = float(value)
            if number < 0 or number != number:
                raise KnobError(f"must be a non-negative number: {value!r}")
            return number
        if kind in ("int", "ordinal"):
            integer = int(value)
            if integer < 0:
                raise KnobError(f"must be non-negative: {value!r}")
            return integer
    except ValueError as exc:
        if isinstance(exc, KnobError):
            raise
        raise KnobError(f"not a number: {value!r}") from exc
    if kind == "bool":
        return value.lower() in TRUTHY
    if kind == "duration":
        return parse_duration(value)
    if kind == "node-effect":
        if value not in NODE_EFFECTS:
            raise KnobError(f"bad-node-effect must be one of {sorted(NODE_EFFECTS)}: {value!r}")
        return value
    if kind == "deps":
        return parse_dependencies(value)
    return text


def _apply(
    fields: dict[str, object], pairs: tuple[tuple[str, str], ...], source: str, problems: list[str]
) -> None:
    for knob, text in pairs:
        spec = KNOBS[knob]
        try:
            fields[spec.field] = _convert(spec.parse, text)
        except KnobError as exc:
            problems.append(f"{source} {knob}: {exc}")


@dataclass(frozen=True)
class Resolved:
    behaviour: Behaviour
    problems: tuple[str, ...]


@functools.lru_cache(maxsize=8192)
def _resolve_cached(
    annotations: tuple[tuple[str, str], ...],
    image_profile: tuple[tuple[str, str], ...],
    flags_on: frozenset[str],
) -> Resolved:
    problems: list[str] = []
    fields: dict[str, object] = {}
    base_pairs: list[tuple[str, str]] = []
    flags: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for key, value in annotations:
        if not key.startswith(PREFIX):
            continue
        suffix = key[len(PREFIX) :]
        if suffix.startswith(FLAG_PREFIX):
            try:
                flags.append((suffix[len(FLAG_PREFIX) :], parse_overrides(value)))
            except KnobError as exc:
                problems.append(f"annotation {key}: {exc}")
        elif suffix in KNOBS:
            base_pairs.append((suffix, value))
        elif suffix != "workload" and suffix not in FOREIGN_KNOBS:
            problems.append(f"unknown annotation {key}")
    _apply(fields, tuple(base_pairs), "annotation", problems)
    _apply(fields, image_profile, "image profile", problems)
    for flag, pairs in sorted(flags):
        if flag in flags_on:
            _apply(fields, pairs, f"flag {flag}", problems)
    fields["flags"] = tuple(sorted(flags))
    behaviour = dataclasses.replace(Behaviour(), **fields)  # type: ignore[arg-type]
    return Resolved(behaviour, tuple(problems))


def resolve(
    annotations: Mapping[str, str],
    image_profile: tuple[tuple[str, str], ...] = (),
    config_data: Mapping[str, str] | None = None,
) -> Resolved:
    """The effective behaviour of a pod. ``config_data`` is its ``config-map``'s data, if any."""
    ann = tuple(sorted(annotations.items()))
    flags_on: frozenset[str] = frozenset()
    if config_data:
        flags_on = frozenset(k for k, v in config_data.items() if v.strip().lower() in TRUTHY)
    return _resolve_cached(ann, image_profile, flags_on)


def config_map_of(annotations: Mapping[str, str]) -> str:
    """The ConfigMap a pod reads its flags from, without resolving everything else."""
    return annotations.get(PREFIX + "config-map", "").strip()
