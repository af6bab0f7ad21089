"""The local Kubernetes world for Stanch's real-cluster tests and demo."""

from e2e.cluster.world import LocalWorld, WorldError, WorldInfo

__all__ = ["LocalWorld", "WorldError", "WorldInfo"]
