"""`make demo`: the README's story on the local world, narrated.

A deploy breaks checkout; an on-call engineer files an Incident; Stanch investigates and suggests
rolling back; the engineer runs the suggestion as a guarded Mitigation; Stanch baselines, rolls
back, bakes and keeps it; `stanch report` writes the post-incident document. Then a bad idea — a
scale-down under load — is tried under the same guard and reverts by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from e2e.cluster import LocalWorld
from e2e.kube import Kube
from e2e.scenario.format import load
from e2e.scenario.runner import ScenarioRun

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "demo"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def show(kube: Kube, ns: str, *args: str) -> None:
    print(kube.run(*args, "-n", ns), flush=True)


class DemoRun(ScenarioRun):
    """A scenario run that narrates each step and shows what Stanch wrote."""

    def run_steps(self) -> None:
        for step in self.sc.steps:
            delay = self.t0 + _seconds(step.at) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            say(f"t+{step.at}: {step.kind} {json.dumps(_brief(step.model_dump(exclude_none=True)))}")
            self._step(step)
            if step.incident:
                self._show_incident(step.incident.name)

    def _show_incident(self, name: str) -> None:
        self.kube.wait_for(lambda: self._incident(name).get("status", {}).get("hypotheses"), 60, "hypotheses")
        show(self.kube, self.ns, "get", "incident", name)
        status = self._incident(name)["status"]
        print(yaml.safe_dump({k: status.get(k) for k in ("scope", "hypotheses")}, sort_keys=False)[:4000])


def _seconds(text: str) -> float:
    from e2e.scenario.format import seconds

    return seconds(text)


def _brief(step: dict[str, Any]) -> dict[str, Any]:
    step.pop("at", None)
    return step


def main() -> int:
    world = LocalWorld()
    say("bringing up the local world (control plane, kwok nodes, Prometheus, workload simulator)")
    info = world.up()
    kube = Kube(info.kubectl, info.kubeconfig)
    kube.run("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "crds"))
    OUT.mkdir(parents=True, exist_ok=True)
    ok = True
    for name in ("01-bad-image-5xx.yaml", "11-bad-scale-down.yaml"):
        sc = load(REPO / "e2e" / "scenarios" / name)
        say(sc.title)
        run = DemoRun(sc, info, kube, OUT / sc.name)
        run.set_up()
        try:
            run.run_steps()
            run.observe_until_settled()
            show(kube, run.ns, "get", "incidents,mitigations")
            if run.outcome.mitigation:
                mit = kube.get("mitigation", run.outcome.mitigation, run.ns)
                st = mit.get("status", {})
                print(
                    yaml.safe_dump({k: st.get(k) for k in ("phase", "verdict", "audit")}, sort_keys=False)[
                        :5000
                    ]
                )
            incident = next((s.incident.name for s in sc.steps if s.incident), None)
            if incident:
                report = OUT / f"{sc.name}.md"
                subprocess.run(
                    [sys.executable, "-m", "stanch", "report", f"{run.ns}/{incident}", "--out", str(report),
                     "--chart", str(OUT / f"{sc.name}.png")],
                    check=True, env={"KUBECONFIG": info.kubeconfig, "PATH": "/usr/bin:/bin"},
                )  # fmt: skip
                say(f"post-incident report: {report}")
                print(report.read_text()[:3000])
            expected = sc.expect.outcome
            ok &= expected is None or run.outcome.mitigation_phase == str(expected)
        finally:
            run.tear_down()
    say("done" if ok else "the demo did not go as expected (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
