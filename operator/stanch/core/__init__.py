"""The core ring: pure decisions. No I/O, no Kopf, no clients; time comes from an injected clock."""
