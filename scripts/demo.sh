#!/usr/bin/env bash
# `make demo`: the README's story on the local world (see e2e/demo.py). Installs nothing by itself
# beyond what `make test` would: the venv, Prometheus and the control-plane binaries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec .venv/bin/python -m e2e.demo "$@"
