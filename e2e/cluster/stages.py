"""The kwok Stages of the local world: kwok's own defaults, amended, plus Stanch's behaviours.

kwok drops every default stage as soon as one Stage is supplied in its config, so the harness runs
kwok with ``--enable-crds=Stage`` and creates all Stages as API objects instead: the defaults are read
from the kwok module in the Go module cache (never copied into this repository) and amended so that
pods and nodes with a scripted behaviour are left to the behaviour stages in ``stages/``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

BEHAVIOURS = Path(__file__).resolve().parent / "stages" / "behaviours.yaml"

# kwok's built-in stages that a production-like world needs: nodes initialise and heartbeat, pods
# become Ready, deleted pods go away, Job pods complete, and nodes can be made NotReady.
DEFAULT_STAGE_FILES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat/node-heartbeat.yaml",
    "node/chaos/node-not-ready.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-delete.yaml",
    "pod/fast/pod-complete.yaml",
)

LIFECYCLE_ANNOTATION = "sim.stanch.dev/lifecycle"
SCRIPTED_LIFECYCLES = ["crashloop", "oom", "imagepull", "notready"]
NODE_NOT_READY_LABEL = "node-not-ready.stage.kwok.x-k8s.io"


def _expressions(stage: dict[str, Any]) -> list[dict[str, Any]]:
    selector = stage["spec"].setdefault("selector", {})
    exprs: list[dict[str, Any]] = selector.setdefault("matchExpressions", [])
    return exprs


def amend_default(stage: dict[str, Any]) -> dict[str, Any]:
    """Make a default stage step aside for scripted behaviours."""
    stage = copy.deepcopy(stage)
    name = stage["metadata"]["name"]
    if name == "pod-ready":
        _expressions(stage).append(
            {
                "key": f'.metadata.annotations["{LIFECYCLE_ANNOTATION}"]',
                "operator": "NotIn",
                "values": SCRIPTED_LIFECYCLES,
            }
        )
    if name in ("node-initialize", "node-heartbeat"):
        # A node labelled NotReady must stay NotReady: neither re-initialise nor heartbeat it.
        _expressions(stage).append(
            {"key": f'.metadata.labels["{NODE_NOT_READY_LABEL}"]', "operator": "NotIn", "values": ["true"]}
        )
    if name == "node-heartbeat":
        # Faster heartbeats so a node returning to service is Ready within seconds in tests.
        stage["spec"]["delay"] = {"durationMilliseconds": 10000, "jitterDurationMilliseconds": 5000}
    if name == "pod-delete":
        # Graceful deletion still takes a moment, as with a real kubelet; no instant vanishing.
        stage["spec"]["delay"] = {"durationMilliseconds": 1000}
    return stage


def load_defaults(kwok_dir: Path) -> list[dict[str, Any]]:
    base = kwok_dir / "kustomize" / "stage"
    stages = []
    for rel in DEFAULT_STAGE_FILES:
        doc = yaml.safe_load((base / rel).read_text())
        stages.append(amend_default(doc))
    return stages


def load_behaviours() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(BEHAVIOURS.read_text()) if d]


def all_stages(kwok_dir: Path) -> list[dict[str, Any]]:
    return [*load_defaults(kwok_dir), *load_behaviours()]
