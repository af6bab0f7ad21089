"""The operator runs as `stanch run` against the real cluster and accepts our resources."""

from __future__ import annotations

import yaml

from e2e.kube import Kube
from e2e.operator_process import OperatorProcess

INCIDENT = """
apiVersion: stanch.dev/v1alpha1
kind: Incident
metadata: {name: checkout-5xx}
spec:
  target: {kind: Deployment, name: checkout}
  severity: SEV2
  summary: checkout returns 5xx
"""


def test_operator_starts_and_handles_an_incident(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.apply(yaml.safe_load(INCIDENT), namespace=namespace)

    def observed() -> bool:
        inc = kube.get("incident", "checkout-5xx", namespace)
        return bool(inc.get("status", {}).get("observedGeneration") == inc["metadata"]["generation"])

    kube.wait_for(observed, 30, "the operator to observe the Incident")
    records = operator.log_records()
    assert records, "the operator logs JSON"
    assert any(r.get("name") == "checkout-5xx" for r in records), "log lines are bound to the object"
    # A crash and a restart resume without losing the object's state.
    operator.restart()
    kube.wait_for(observed, 30, "the Incident still observed after a restart")
