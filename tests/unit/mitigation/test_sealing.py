"""``status.snapshot`` keeps no secret value, and the revert is exact all the same: values are
restored each pass from objects that hold exactly the snapshot's template (the unchanged live
Deployment, the ReplicaSet recorded with the snapshot, the ReplicaSet rolled back to), never
guessed; a value no source holds stays sealed and no write carrying it is ever sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stanch.core.effects import Create, Patch
from stanch.core.machine.observations import World
from stanch.core.models import MitigationSpec
from stanch.core.plans import PlanError, plan, revert_effects, take_snapshot
from stanch.core.plans.sealing import SEALED, seal, sealed_in, sealed_paths, unseal

from .fixtures import deployment, replica_set

NOW = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
values = st.text(
    alphabet="abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=24
)
names = st.sampled_from(
    ["DB_PASSWORD", "API_TOKEN", "SESSION_SECRET", "aws_secret_access_key", "PRIVATE_KEY"]
)


def with_env(obj: dict[str, Any], env: list[dict[str, Any]], rs: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(obj))
    out["spec"]["template"]["spec"]["containers"][0]["env"] = env
    if rs:
        out["metadata"]["uid"] = f"uid-{out['metadata']['name']}"
        out["metadata"]["ownerReferences"] = [{"uid": obj_uid(), "controller": True}]
    return out


def obj_uid() -> str:
    return str(deployment()["metadata"]["uid"])


def world_with(current_env: list[dict[str, Any]], old_env: list[dict[str, Any]]) -> World:
    target = with_env(deployment("web:v3"), current_env)
    return World(
        target=target,
        replica_sets=[
            with_env(replica_set("2", "web:v2"), old_env, rs=True),
            with_env(replica_set("3", "web:v3"), current_env, rs=True),
        ],
    )


def spec(**action: Any) -> MitigationSpec:
    return MitigationSpec.model_validate({"target": {"name": "web"}, **action})


@settings(max_examples=30, deadline=None)
@given(
    keys=st.lists(names, min_size=1, max_size=3, unique=True),
    current=st.lists(values, min_size=3, max_size=3),
    old=st.lists(values, min_size=3, max_size=3),
)
def test_property_sealed_snapshot_holds_no_value_and_restores_exactly(
    keys: list[str], current: list[str], old: list[str]
) -> None:
    current_env = [{"name": k, "value": v} for k, v in zip(keys, current, strict=False)] + [
        {"name": "MODE", "value": "b"}
    ]
    old_env = [{"name": k, "value": v} for k, v in zip(keys, old, strict=False)]
    world = world_with(current_env, old_env)
    actions: tuple[dict[str, Any], ...] = ({"rollback": {}}, {"scale": {"replicas": 3}}, {"restart": {}})
    for action in actions:
        s = spec(**action)
        snap = take_snapshot(s, world, mitigation="m1", now=NOW)
        wire = snap.to_status()
        sealed = seal(wire)
        text = json.dumps(sealed)
        assert not [v for v in current + old if v in text], text
        assert '"MODE"' in text, "names stay"
        assert '"b"' in text, "harmless values stay"
        assert sealed_paths(sealed)
        assert sealed["target"]["templateReplicaSet"]["name"] == "web-h3"
        # Right after the lock (same generation): from the live Deployment.
        back = unseal(sealed, target=world.target, replica_sets=world.replica_sets)
        assert back.missing == ()
        assert back.snapshot == wire
        # After our change (generation moved): from the recorded ReplicaSets.
        moved = json.loads(json.dumps(world.target))
        moved["metadata"]["generation"] += 1
        back = unseal(sealed, target=moved, replica_sets=world.replica_sets)
        assert (back.missing, back.snapshot) == ((), wire)
        p = plan(s, back.snapshot, mitigation="m1", mitigation_uid="uid")
        assert p == plan(s, wire, mitigation="m1", mitigation_uid="uid"), "byte-identical effects"
        undo = revert_effects(p, back.snapshot, applied_generation=8, at=NOW)
        assert not any(sealed_in(e) for e in (*p.apply, *undo))


def test_a_value_no_source_holds_stays_sealed_and_its_write_is_flagged() -> None:
    env = [{"name": "DB_PASSWORD", "value": "current-pass-123"}]
    world = world_with(env, [{"name": "DB_PASSWORD", "value": "older-pass-456"}])
    s = spec(rollback={})
    sealed = seal(take_snapshot(s, world, mitigation="m1", now=NOW).to_status())
    moved = json.loads(json.dumps(world.target))
    moved["metadata"]["generation"] += 1
    # The pre-change ReplicaSet was garbage-collected (revisionHistoryLimit: 0).
    gone = [rs for rs in world.replica_sets if rs["metadata"]["name"] != "web-h3"]
    back = unseal(sealed, target=moved, replica_sets=gone)
    assert back.missing == ("target.spec.template.spec.containers[web].env[DB_PASSWORD]",)
    p = plan(s, back.snapshot, mitigation="m1", mitigation_uid="uid")
    undo = revert_effects(p, back.snapshot, applied_generation=8, at=NOW)
    assert [sealed_in(e) for e in undo] == [True], "the revert would carry the placeholder: never sent"
    assert not any(sealed_in(e) for e in p.apply), "the rollback itself restores from the chosen RS"


def test_a_source_whose_template_differs_is_not_used() -> None:
    env = [{"name": "DB_PASSWORD", "value": "current-pass-123"}]
    world = world_with(env, env)
    sealed = seal(take_snapshot(spec(scale={"replicas": 3}), world, mitigation="m1", now=NOW).to_status())
    edited = json.loads(json.dumps(world.target))
    edited["metadata"]["generation"] += 1
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "web:v4"
    other = [rs for rs in world.replica_sets if rs["metadata"]["name"] != "web-h3"]
    back = unseal(sealed, target=edited, replica_sets=other)
    assert back.missing
    assert SEALED in json.dumps(back.snapshot)


def test_canary_effects_carry_the_restored_values() -> None:
    env = [{"name": "API_TOKEN", "value": "tok-abcdef-123456"}]
    world = world_with(env, env)
    s = spec(canary={"image": "web:v4"})
    sealed = seal(take_snapshot(s, world, mitigation="m1", now=NOW).to_status())
    assert "tok-abcdef-123456" not in json.dumps(sealed)
    back = unseal(sealed, target=world.target, replica_sets=world.replica_sets)
    p = plan(s, back.snapshot, mitigation="m1", mitigation_uid="uid")
    create = p.apply[0]
    assert isinstance(create, Create)
    assert "tok-abcdef-123456" in json.dumps(create.manifest)
    unrestored = plan(s, sealed, mitigation="m1", mitigation_uid="uid")
    assert sealed_in(unrestored.apply[0])
    assert all(not sealed_in(e) for e in p.promote if isinstance(e, Patch))


def test_a_credential_like_config_key_is_not_toggled() -> None:
    cm = {"metadata": {"name": "app", "uid": "cm"}, "data": {"api_token": "x"}}
    world = World(target=deployment("web:v3"), config_map=cm)
    s = spec(configToggle={"configMap": "app", "key": "api_token", "value": "y"})
    with pytest.raises(PlanError, match="looks like a credential"):
        take_snapshot(s, world, mitigation="m1", now=NOW)


def test_last_applied_configuration_is_sealed_and_kept_as_kubectl_keeps_it() -> None:
    """kubectl's last-applied-configuration annotation is the whole manifest, env values included;
    a rollback keeps the Deployment's own (kubectl skips it), so it is restored from the live one."""
    env = [{"name": "DB_PASSWORD", "value": "current-pass-123"}]
    world = world_with(env, [{"name": "DB_PASSWORD", "value": "older-pass-456"}])
    target = json.loads(json.dumps(world.target))
    manifest = {"spec": {"template": {"spec": {"containers": [{"name": "web", "env": env}]}}}}
    target["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(
        manifest
    )
    world = World(target=target, replica_sets=world.replica_sets)
    s = spec(rollback={})
    wire = take_snapshot(s, world, mitigation="m1", now=NOW).to_status()
    sealed = seal(wire)
    assert "current-pass-123" not in json.dumps(sealed)
    back = unseal(sealed, target=target, replica_sets=world.replica_sets)
    assert (back.missing, back.snapshot) == ((), wire)
    p = plan(s, back.snapshot, mitigation="m1", mitigation_uid="uid")
    assert not any(sealed_in(e) for e in p.apply)


def test_a_config_value_holding_a_credential_is_not_toggled() -> None:
    cm = {"metadata": {"name": "app", "uid": "cm"}, "data": {"upstream": "https://svc:hunter2@api.example"}}
    world = World(target=deployment("web:v3"), config_map=cm)
    s = spec(configToggle={"configMap": "app", "key": "upstream", "value": "https://api.example"})
    with pytest.raises(PlanError, match="looks like it holds a credential"):
        take_snapshot(s, world, mitigation="m1", now=NOW)
