#!/usr/bin/env bash
# `make demo`: the story of the README, end to end, on the local world. Not assembled yet; this
# script says what is missing instead of pretending, and fails so nobody mistakes it for a demo.
set -euo pipefail

cat >&2 <<'MSG'
make demo: not available yet. It needs, in order:
  1. the local world (make cluster-deps cluster-binaries cluster-up)      - issue 3
  2. the investigation of an Incident (evidence, timeline, hypotheses)    - issue 4
  3. guarded mitigations (baseline, act, bake, keep or revert)            - later issues
What works today: `make test`, `stanch run`, `stanch crds`, and the accept handlers
(an Incident or Mitigation gets observedGeneration and an Accepted condition).
MSG
exit 1
