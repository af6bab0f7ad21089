"""``kubectl stanch get incidents|mitigations``: the CRDs' printer columns (and a few more with
``-o wide``), read from the objects as the API server returns them, so an object this version
cannot fully parse still gets a row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from stanch.core.console.text import NONE, age, one_line, table


def _at(obj: Mapping[str, Any], *path: str) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _s(value: Any) -> str:
    return NONE if value in (None, "") else one_line(value)


def _created(obj: Mapping[str, Any]) -> datetime | None:
    text = _at(obj, "metadata", "creationTimestamp")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def incident_rows(
    objs: Sequence[Mapping[str, Any]], now: datetime, *, wide: bool
) -> tuple[list[str], list[list[str]]]:
    header = ["NAME", "PHASE", "SEVERITY", "TARGET", "TOP HYPOTHESIS", "TREND", "AGE"]
    if wide:
        header += ["MODE", "ONSET", "MITIGATIONS"]
    rows = []
    for o in objs:
        top = _at(o, "status", "topHypothesis")
        row = [
            _s(_at(o, "metadata", "name")),
            _s(_at(o, "status", "phase") or "Pending"),
            _s(_at(o, "spec", "severity")),
            _s(_at(o, "spec", "target", "name")),
            _s(one_line(top, 60) if top else None),
            _s(_at(o, "status", "scope", "trend")),
            age(_created(o), now),
        ]
        if wide:
            mitigations = _at(o, "status", "mitigations") or []
            row += [
                _s(_at(o, "spec", "mitigation", "mode") or "Suggest"),
                _s(_at(o, "status", "scope", "onset")),
                ",".join(str(m.get("name")) for m in mitigations if isinstance(m, Mapping)) or NONE,
            ]
        rows.append(row)
    return header, rows


def mitigation_rows(
    objs: Sequence[Mapping[str, Any]], now: datetime, *, wide: bool
) -> tuple[list[str], list[list[str]]]:
    header = ["NAME", "PHASE", "ACTION", "TARGET", "VERDICT", "DRY-RUN", "INCIDENT", "AGE"]
    if wide:
        header += ["REQUESTED BY", "APPROVED BY", "POLICY"]
    rows = []
    for o in objs:
        row = [
            _s(_at(o, "metadata", "name")),
            _s(_at(o, "status", "phase") or "Pending"),
            _s(_at(o, "status", "action")),
            _s(_at(o, "spec", "target", "name")),
            _s(_at(o, "status", "verdict", "result")),
            "true" if _at(o, "spec", "dryRun") else "false",
            _s(_at(o, "spec", "incidentRef", "name")),
            age(_created(o), now),
        ]
        if wide:
            policy = _at(o, "status", "policy") or {}
            decided = "/".join(str(policy[k]) for k in ("policy", "rule") if policy.get(k)) if policy else ""
            approver = _at(o, "status", "approval", "approver", "username")
            row += [
                _s(_at(o, "status", "requestedBy") or _at(o, "spec", "requester", "username")),
                _s(approver),
                _s(f"{policy.get('decision')} {decided}".strip() if policy else None),
            ]
        rows.append(row)
    return header, rows


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], namespaces: Sequence[str] | None = None
) -> str:
    """``namespaces`` (one per row) adds kubectl's NAMESPACE column, as ``-A`` does."""
    if namespaces is not None:
        header = ["NAMESPACE", *header]
        rows = [[ns, *row] for ns, row in zip(namespaces, rows, strict=True)]
    return "\n".join(table(header, rows)) + "\n"
