"""Signal templates: PromQL with `{{placeholder}}` slots, their syntax check and their rendering.

Templates are data so that a MitigationPolicy (or `--signals FILE`) can replace them without code.
The check is deliberately strict: a typo in a placeholder would otherwise render into a query that
silently matches nothing, and "no data" must never be mistaken for "healthy".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDERS: frozenset[str] = frozenset({"namespace", "workload", "revision", "pod", "node"})

# Pods of a Deployment are named `<deployment>-<pod-template-hash>-<suffix>`. cAdvisor and
# kube-state-metrics series carry `pod` but not `deployment`, so they are matched by this pattern.
_POD_OF_WORKLOAD = "{{workload}}-[a-z0-9]+-[a-z0-9]+"
_HTTP = 'namespace="{{namespace}}",deployment="{{workload}}"'
_PODS = f'namespace="{{{{namespace}}}}",pod=~"{_POD_OF_WORKLOAD}"'

DEFAULT_SIGNAL_TEMPLATES: Mapping[str, str] = {
    # Fraction of requests answered with a 5xx over the last 5 minutes.
    "error_ratio": (
        f'sum(rate(http_requests_total{{{_HTTP},code=~"5.."}}[5m]))'
        f" / sum(rate(http_requests_total{{{_HTTP}}}[5m]))"
    ),
    "latency_p99": (
        f"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{_HTTP}}}[5m])))"
    ),
    "throughput": f"sum(rate(http_requests_total{{{_HTTP}}}[5m]))",
    # The worst pod matters, not the average: one pod pinned at its limit is throttled on its own.
    "cpu_vs_limit": (
        f'max(sum by (pod) (rate(container_cpu_usage_seconds_total{{{_PODS},container!=""}}[5m]))'
        f' / sum by (pod) (kube_pod_container_resource_limits{{{_PODS},resource="cpu"}}))'
    ),
    "memory_vs_limit": (
        f'max(sum by (pod) (container_memory_working_set_bytes{{{_PODS},container!=""}})'
        f' / sum by (pod) (kube_pod_container_resource_limits{{{_PODS},resource="memory"}}))'
    ),
    "restarts": f"sum(increase(kube_pod_container_status_restarts_total{{{_PODS}}}[5m]))",
}

SIGNAL_DESCRIPTIONS: Mapping[str, str] = {
    "error_ratio": "5xx responses / all responses (0..1)",
    "latency_p99": "99th percentile request latency, seconds",
    "throughput": "requests per second",
    "cpu_vs_limit": "CPU usage / CPU limit of the busiest pod (0..1, above 1 only without a limit cap)",
    "memory_vs_limit": "working-set memory / memory limit of the fullest pod (0..1)",
    "restarts": "container restarts in the last 5 minutes",
}

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUOTES = frozenset({'"', "'", "`"})
_PAIRS = {"(": ")", "[": "]", "{": "}"}
_OPENERS = frozenset(_PAIRS)
_CLOSERS = {close: open_ for open_, close in _PAIRS.items()}


class TemplateError(ValueError):
    """A template that would not render into the query its author meant."""

    def __init__(self, template: str, problem: str) -> None:
        self.template = template
        self.problem = problem
        super().__init__(f"signal template {template!r}: {problem}")


def placeholders_of(name: str, template: str) -> frozenset[str]:
    """The placeholders a template uses; raises TemplateError naming `name` on any syntax problem."""
    if not _NAME.match(name):
        raise TemplateError(
            name, "the name must be lower_snake_case, 1-63 characters, starting with a letter"
        )
    if not template.strip():
        raise TemplateError(name, "the query is empty")
    used: set[str] = set()
    # Open brackets outside strings, with their columns, so an error can point at the culprit.
    stack: list[tuple[str, int]] = []
    quote: str | None = None
    i = 0
    while i < len(template):
        if template.startswith("{{", i):
            end = template.find("}}", i + 2)
            if end < 0:
                raise TemplateError(name, f"'{{{{' at column {i + 1} is never closed with '}}}}'")
            slot = template[i + 2 : end].strip()
            if not _IDENT.match(slot):
                raise TemplateError(name, f"'{{{{{slot}}}}}' at column {i + 1} is not a placeholder name")
            if slot not in PLACEHOLDERS:
                known = ", ".join(sorted(PLACEHOLDERS))
                raise TemplateError(
                    name, f"unknown placeholder {{{{{slot}}}}} at column {i + 1}; known: {known}"
                )
            used.add(slot)
            i = end + 2
            continue
        if template.startswith("}}", i):
            raise TemplateError(name, f"'}}}}' at column {i + 1} has no opening '{{{{'")
        char = template[i]
        if quote is not None:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in _QUOTES:
            quote = char
        elif char in _OPENERS:
            stack.append((char, i + 1))
        elif char in _CLOSERS:
            opener = _CLOSERS[char]
            if not stack:
                raise TemplateError(name, f"'{char}' at column {i + 1} has no opening '{opener}'")
            top, column = stack.pop()
            if top != opener:
                raise TemplateError(
                    name, f"'{char}' at column {i + 1} closes '{top}' opened at column {column}"
                )
        i += 1
    if quote is not None:
        raise TemplateError(name, f"a string opened with {quote} is never closed")
    if stack:
        top, column = stack[-1]
        raise TemplateError(name, f"'{top}' at column {column} without a closing '{_PAIRS[top]}'")
    return frozenset(used)


def validate_templates(templates: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Check every template; the first problem raises, naming its template."""
    return {name: placeholders_of(name, query) for name, query in templates.items()}


def escape_label_value(value: str) -> str:
    """Escape a value for a double-quoted PromQL string, so a label value can never end the string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_SLOT = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render(name: str, template: str, values: Mapping[str, str]) -> str:
    """Fill a checked template. Every placeholder it uses must have a value: a blank slot would
    widen the query to other workloads instead of failing."""
    used = placeholders_of(name, template)
    missing = sorted(used - values.keys())
    if missing:
        raise TemplateError(name, f"no value for placeholder(s) {', '.join(missing)}")
    return _SLOT.sub(lambda m: escape_label_value(values[m.group(1)]), template)


DEFAULT_RATE_WINDOW = "5m"


def with_rate_window(templates: Mapping[str, str], window: str) -> dict[str, str]:
    """The templates with the default templates' ``[5m]`` rate window replaced by ``window``.

    The default window suits a 15-30 s scrape interval; a Prometheus that scrapes every second
    (the local world, fast tests) sees as many samples in ``[15s]``.
    """
    if not re.fullmatch(r"\d+(ms|s|m|h)", window):
        raise ValueError(f"rate window {window!r} is not a Prometheus duration like 15s or 2m")
    return {k: v.replace(f"[{DEFAULT_RATE_WINDOW}]", f"[{window}]") for k, v in templates.items()}
