"""No secret value anywhere Stanch writes: one rule (``stanch.core.redaction``) for env variables and
ConfigMap keys, applied to plans, drift diffs, rollout-history diffs, Events and logs.

Names stay, values do not: ``DB_PASSWORD changed (value not shown)``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stanch.core.investigation.diffs import template_diff
from stanch.core.machine.observations import World
from stanch.core.models import MitigationSpec, Plan
from stanch.core.plans import plan, take_snapshot
from stanch.core.plans.diff import unified_diff
from stanch.core.redaction import REDACTED, redact, redact_text, secret_changes, shown_value

from .fixtures import deployment, replica_set

NOW = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
SECRET_NAMES = ("DB_PASSWORD", "API_TOKEN", "STRIPE_SECRET_KEY", "aws_access_key", "Authorization")
# Values long and random enough never to occur by chance in other output.
values = st.text(
    alphabet="abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=24
)


def with_env(obj: dict[str, Any], env: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(obj))
    template = out["spec"]["template"] if "template" in out.get("spec", {}) else out
    template["spec"]["containers"][0]["env"] = env
    return out


def test_the_rule() -> None:
    assert shown_value("DB_PASSWORD", "hunter2") == REDACTED
    assert shown_value("LOG_LEVEL", "debug") == "debug"
    assert shown_value("DATABASE_URL", "postgres://app:hunter2@db/x") == f"postgres://{REDACTED}@db/x"
    pair = {"name": "API_TOKEN", "value": "abc", "extra": "x"}
    assert redact(pair) == {"name": "API_TOKEN", "value": REDACTED, "extra": "x"}
    assert redact({"name": "MODE", "value": "fast"}) == {"name": "MODE", "value": "fast"}
    assert "hunter2" not in redact_text(str([{"name": "DB_PASSWORD", "value": "hunter2"}]))
    assert "hunter2" not in redact_text(json.dumps([{"name": "DB_PASSWORD", "value": "hunter2"}]))


def test_rollout_history_names_a_changed_secret_without_its_values() -> None:
    old = {"spec": {"containers": [{"name": "app", "env": [{"name": "DB_PASSWORD", "value": "hunter2"}]}]}}
    new = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "env": [
                        {"name": "DB_PASSWORD", "value": "swordfish"},
                        {"name": "API_TOKEN", "value": "tok-123"},
                        {"name": "MODE", "value": "b"},
                    ],
                }
            ]
        }
    }
    lines = template_diff(old, new)
    assert "env app: DB_PASSWORD changed (value not shown)" in lines
    assert "env app: +API_TOKEN (value not shown)" in lines
    assert "env app: +MODE=b" in lines
    assert not any(v in " ".join(lines) for v in ("hunter2", "swordfish", "tok-123"))


def test_a_drift_diff_says_which_secret_changed() -> None:
    before = {"env": [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "MODE", "value": "a"}]}
    after = {"env": [{"name": "DB_PASSWORD", "value": "swordfish"}, {"name": "MODE", "value": "b"}]}
    diff = unified_diff(before, after, "spec")
    assert "~ env[DB_PASSWORD]: value changed (not shown)" in diff
    assert '"value": "b"' in diff
    assert "hunter2" not in diff
    assert "swordfish" not in diff
    assert secret_changes(before, before) == []


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(st.sampled_from(SECRET_NAMES), min_size=1, max_size=4, unique=True),
    old=st.lists(values, min_size=4, max_size=4),
    new=st.lists(values, min_size=4, max_size=4),
    image=st.sampled_from(["registry.example/web:v2", "registry.example/web:v3"]),
)
def test_property_no_secret_value_in_plans_diffs_or_events(
    names: list[str], old: list[str], new: list[str], image: str
) -> None:
    """Rollback, canary and drift over templates with secret-looking literal env: the plan as status
    records it (summary, changes, machine form), the drift diff and the history lines hold no value."""
    old_env = [{"name": n, "value": v} for n, v in zip(names, old, strict=False)]
    new_env = [{"name": n, "value": v} for n, v in zip(names, new, strict=False)]
    secrets = {e["value"] for e in old_env + new_env}
    current = with_env(deployment("registry.example/web:v3"), new_env)
    previous = with_env(replica_set("2", "registry.example/web:v2"), old_env)
    world = World(
        target=current,
        replica_sets=[previous, with_env(replica_set("3", "registry.example/web:v3"), new_env)],
    )
    outputs: list[str] = []
    actions: tuple[dict[str, Any], ...] = (
        {"rollback": {}},
        {"canary": {"image": image, "env": [{"name": names[0], "value": new[-1]}]}},
    )
    for action in actions:
        spec = MitigationSpec.model_validate({"target": {"name": "web"}, **action})
        snap = take_snapshot(spec, world, mitigation="m1", now=NOW)
        p = plan(spec, snap, mitigation="m1", mitigation_uid="uid")
        record = Plan(summary=p.summary, changes=list(p.changes), patch=p.patch_record())
        outputs.append(record.model_dump_json())
        outputs.append(" ".join(e.description for e in (*p.apply, *p.promote)))
    secrets.add(new[-1])
    outputs.append(unified_diff(current["spec"], with_env(current, old_env)["spec"], "spec"))
    outputs.append(" ".join(template_diff(previous["spec"]["template"], current["spec"]["template"])))
    text = "\n".join(outputs)
    leaked = [s for s in secrets if s in text]
    assert not leaked, text
