"""The adapter ring: all Kubernetes and Prometheus I/O, and nothing that decides."""
