"""The E2E_CLUSTER=kind path skips exactly the real-cluster tests that need the local world (kwok's
pods, nodes and Stages, the simulator, processes on this host) and says what they need; the local
world skips nothing. Checked on the skip decision and on a collection of e2e/tests (collection only:
no cluster is started or contacted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e.conftest import LOCAL_WORLD_NEEDS, kind_skip_reason, local_world_needs

REPO = Path(__file__).resolve().parents[2]

# What runs on kind (docs/local-cluster.md, "Another cluster: kind", lists the same tests).
RUNS_ON_KIND = {
    "e2e/tests/test_adapters.py::test_prometheus_client_queries_and_types_failures",
    "e2e/tests/test_alertmanager.py::test_hostile_payloads_get_a_4xx_and_create_nothing",
    "e2e/tests/test_alertmanager.py::test_retries_and_concurrent_deliveries_converge_on_one_incident",
    "e2e/tests/test_crds.py::test_examples_pass_server_side_dry_run",
    "e2e/tests/test_crds.py::test_cel_rules_reject_on_the_server",
    "e2e/tests/test_crds.py::test_target_immutable_and_status_pruned_except_kopf",
    "e2e/tests/test_evidence_cache.py::test_a_watch_the_server_closes_resumes_without_listing_again",
    "e2e/tests/test_install.py::test_kustomize_base_passes_server_side_dry_run",
    "e2e/tests/test_install.py::test_chart_defaults_pass_server_side_dry_run",
    "e2e/tests/test_install.py::test_chart_with_every_option_passes_in_another_namespace",
    "e2e/tests/test_install.py::test_the_dry_run_refuses_what_the_server_refuses",
    "e2e/tests/test_install.py::test_dashboard_and_alert_queries_run_on_the_local_prometheus",
    "e2e/tests/test_mitigation_adapters.py::test_effects_apply_once_and_refuse_a_changed_target",
    "e2e/tests/test_mitigation_failsafe.py::test_no_policy_denies_a_real_change",
    "e2e/tests/test_mitigation_invalid.py::test_admission_rejects_a_scale_with_neither_replicas_nor_factor",
    "e2e/tests/test_mitigation_restart_pause.py::test_restart_of_a_paused_deployment_is_refused_like_kubectl",
    "e2e/tests/test_operator_process.py::test_operator_starts_and_handles_an_incident",
    "e2e/tests/test_policy.py::test_admission_rejects_a_malformed_policy",
    "e2e/tests/test_policy.py::test_valid_policy_is_reported_valid",
    "e2e/tests/test_policy.py::test_invalid_policy_is_reported_and_allows_nothing",
    "e2e/tests/test_signal_presets.py::test_every_preset_query_parses_on_prometheus",
    "e2e/tests/test_tenancy.py::test_a_tenant_asks_for_help_at_home_and_nowhere_else",
    "e2e/tests/test_tenancy.py::test_a_tenant_cannot_widen_a_policy_or_edit_what_was_decided",
    "e2e/tests/test_tenancy.py::test_no_one_reads_a_secret_through_stanch_rbac",
    "e2e/tests/test_tenancy_scope.py::test_a_tenant_cannot_name_another_namespace",
    "e2e/tests/test_tenancy_scope.py::test_without_the_admission_policy_the_operator_refuses_to_act_elsewhere",
    "e2e/tests/test_tenancy_scope.py::test_a_decided_spec_cannot_be_swapped",
    "e2e/tests/test_workloads.py::test_unschedulable_pods_stay_pending",
}

# Collects e2e/tests in a child pytest and prints, per test, the reasons of its skip marks.
PROBE = """
import json, sys
import pytest

class Probe:
    def pytest_collection_finish(self, session):
        self.items = {
            item.nodeid: [m.kwargs.get("reason", "") for m in item.iter_markers("skip")]
            + ["skipif" for _ in item.iter_markers("skipif")]
            for item in session.items
        }

probe = Probe()
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "e2e/tests"], plugins=[probe])
print("PROBE=" + json.dumps({"code": int(code), "items": probe.items}))
"""


def test_only_the_kind_path_skips_and_only_tests_that_name_a_need() -> None:
    for cluster in (None, "", "local", "Kind"):
        assert kind_skip_reason(["ready-pods"], cluster) is None
    assert kind_skip_reason([], "kind") is None


def test_the_reason_names_every_need() -> None:
    reason = kind_skip_reason(["ready-pods", "simulator"], "kind")
    assert reason is not None
    assert reason.startswith("E2E_CLUSTER=kind: needs the local world: ready-pods: ")
    assert LOCAL_WORLD_NEEDS["ready-pods"] in reason
    assert f"simulator: {LOCAL_WORLD_NEEDS['simulator']}" in reason


def test_needs_are_gathered_closest_first_without_repeats() -> None:
    # The arguments of each local_world mark, the test's own first, then its module's.
    marks = [("kwok-nodes",), ("ready-pods", "kwok-nodes")]
    assert local_world_needs(marks, "t") == ["kwok-nodes", "ready-pods"]
    assert local_world_needs([], "t") == []


@pytest.mark.parametrize("args", [(), ("kwok",), (None,)])
def test_a_mark_without_a_known_need_is_a_usage_error(args: tuple[object, ...]) -> None:
    with pytest.raises(pytest.UsageError, match="the-test-id"):
        local_world_needs([args], "the-test-id")


def _collect(cluster: str | None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "E2E_CLUSTER"}
    if cluster:
        env["E2E_CLUSTER"] = cluster
    return subprocess.Popen(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str]) -> dict[str, list[str]]:
    out, err = proc.communicate(timeout=120)
    line = next((ln for ln in out.splitlines() if ln.startswith("PROBE=")), None)
    assert line is not None, out + err
    probe = json.loads(line.removeprefix("PROBE="))
    assert probe["code"] == 0, out + err
    items: dict[str, list[str]] = probe["items"]
    return items


def test_collection_skips_nothing_locally_and_the_local_world_tests_on_kind() -> None:
    local, kind = _collect(None), _collect("kind")  # both at once: about a second
    local_items, kind_items = _result(local), _result(kind)
    assert local_items
    assert {t: r for t, r in local_items.items() if r} == {}, "the local world skips nothing"
    assert list(kind_items) == list(local_items), "the same tests, in the same order, none deselected"
    runs = {t for t, reasons in kind_items.items() if not reasons}
    assert runs == RUNS_ON_KIND
    for test, reasons in kind_items.items():
        if test not in runs:
            assert len(reasons) == 1, (test, reasons)
            assert reasons[0].startswith("E2E_CLUSTER=kind: needs the local world: "), (test, reasons)
