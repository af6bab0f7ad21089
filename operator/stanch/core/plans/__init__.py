"""Per-action planning: the change, the "is it applied?" check, the revert and drift detection."""
