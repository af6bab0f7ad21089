# Stanch developer entry points. `make test` is exactly what CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STANCH := $(VENV)/bin/stanch
LINT_PATHS := operator tests e2e
# Pure tests: ours, plus the simulator's own model tests (no cluster needed).
UNIT_PATHS := tests/unit $(wildcard e2e/simulator/tests) $(wildcard e2e/scenario/tests)
RUN_ARGS ?= --all-namespaces

.PHONY: help dev lint unit e2e test crds chart run cluster-deps cluster-binaries cluster-up cluster-down demo bench scenarios scenarios-test

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

dev: ## create .venv and install stanch (editable) with the dev tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'

lint: ## ruff, formatting, mypy --strict, import contracts, CRD drift
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy $(LINT_PATHS)
	$(VENV)/bin/lint-imports
	$(STANCH) crds --check

unit: ## fast tests, no cluster
	$(PY) -m pytest --durations=10 $(UNIT_PATHS)

# Parallel workers for the real-cluster suite; empty: twice the cores, at least 2 (e2e/run.py).
E2E_WORKERS ?=
export E2E_WORKERS

e2e: ## the real-cluster suite: parallel workers, then the serial tests alone (E2E_WORKERS=N)
	$(PY) -m e2e.run

test: $(VENV)/.installed cluster-deps cluster-binaries ## everything CI checks: lint, unit, e2e (installs what it needs)
	$(MAKE) lint unit
	$(MAKE) e2e

# `make test` on a fresh clone creates the venv itself; re-installs when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(MAKE) dev
	touch $@

crds: ## regenerate crds/ from the models
	$(STANCH) crds

# The pinned helm that `make cluster-binaries` builds (e2e/cluster/versions.env).
HELM := $(shell . e2e/cluster/versions.env && echo "$${STANCH_CACHE:-$$HOME/.cache/stanch}/bin/helm-$$HELM_VERSION/helm")
HELM_ARGS ?=
chart: ## lint the Helm chart and render it with its defaults (HELM_ARGS='--set k=v ...')
	@[ -x "$(HELM)" ] || bash e2e/cluster/build-binaries.sh helm
	"$(HELM)" lint --strict charts/stanch
	"$(HELM)" template stanch charts/stanch -n stanch-system $(HELM_ARGS)

run: ## run the operator against KUBECONFIG (or the local world if it is up)
	@if [ -z "$${KUBECONFIG:-}" ] && $(PY) -m e2e.cluster status >/dev/null 2>&1; then \
		eval "$$($(PY) -m e2e.cluster env)"; fi; \
	exec $(STANCH) run $(RUN_ARGS)

cluster-deps: ## Debian packages the local world needs (Prometheus; Alertmanager for the receiver's tests)
	@command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; }
	@command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager; }

cluster-binaries: ## build kube-apiserver, etcd, kwok... from Go modules (cached; cold build takes long)
	bash e2e/cluster/build-binaries.sh

cluster-up: ## start the local world (control plane, kwok nodes, Prometheus, simulator)
	$(PY) -m e2e.cluster up

cluster-down: ## stop the local world
	$(PY) -m e2e.cluster down

scenarios-test: ## only the public scenarios, as make test runs them (docs/scenarios.md)
	$(PY) -m e2e.run -m scenarios e2e/tests/test_scenarios.py

SCENARIOS ?= e2e/scenarios
VARIANTS ?= 0
scenarios: ## run the incident scenarios (SCENARIOS=DIR, VARIANTS=N jittered reruns, SEED=S) and print the scorecard
	$(PY) -m e2e.scenario $(SCENARIOS) --out out/scenarios --variants $(VARIANTS) $(if $(SEED),--seed $(SEED))

demo: $(VENV)/.installed cluster-deps cluster-binaries ## a bad deploy diagnosed and rolled back, a harmful scale-down reverted (local world)
	bash scripts/demo.sh

bench: ## investigation benchmark on the local world (10/100/1,000 pods, recording rules and raw); the simulator tick (docs/benchmarks.md)
	$(PY) -m bench.investigation --recorded
	$(PY) -m bench.investigation --sizes 1000
	$(PY) -m bench.simulator
