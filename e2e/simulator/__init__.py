"""A workload simulator: Prometheus metrics and pod logs that follow what the cluster runs.

See docs/simulator.md for the knobs and world controls.
"""
