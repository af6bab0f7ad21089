"""The wiring ring: Kopf handlers, the operator process and the CLI. Thin by design."""
