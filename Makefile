# The two commands a newcomer needs are `make demo` and `make test`; each does its own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICES := scripts/services

.DEFAULT_GOAL := help
.PHONY: help install services services-down services-status lint test test-unit test-deploy test-containers test-kube bench demo schema images kube-up kube-down kube-status clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "python3 (3.11+) not found: apt-get install python3 python3-venv"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "cannot create a venv: apt-get install python3-venv"; exit 1; }
	@echo "installing the edge, hub and dev extras into $(VENV)/ (first run only)..."
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet --progress-bar off -e ".[edge,hub,dev]"
	@touch $@

install: $(STAMP) ## create .venv/ with both installs and the dev tools

services: ## start Kafka, PostgreSQL, Redis and Mosquitto on loopback
	@$(SERVICES) start

services-down: ## stop the local services
	@$(SERVICES) stop

services-status: ## show the local services
	@$(SERVICES) status

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-unit: $(STAMP) ## only the fast tests that need no services
	$(BIN)/pytest -q tests/unit

test: lint ## lint, then every test (starts the services, Docker and the cluster it needs)
	$(BIN)/pytest -q -rs

test-deploy: $(STAMP) ## only the deployment checks (helm, compose, Dockerfile, extras)
	$(BIN)/pytest -q tests/deploy

test-containers: $(STAMP) ## only the container tests (starts Docker, builds the images)
	$(BIN)/pytest -q -rs tests/containers

test-kube: $(STAMP) ## only the Kubernetes tests (the Helm chart on scripts/kube; builds it once)
	$(BIN)/pytest -q -rs tests/kube

BENCH_RESULTS := .local/bench/results.jsonl

bench: $(STAMP) ## benchmarks (print figures, then a summary table; not part of the test run)
	@$(SERVICES) start kafka mosquitto postgres redis
	@mkdir -p $(dir $(BENCH_RESULTS)) && rm -f $(BENCH_RESULTS)
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.edge_pipeline
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.sparkplug
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.hub_ingest
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.web_live
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.end_to_end
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.rollup_query
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.notify_latency
	$(BIN)/python -m bench.summary $(BENCH_RESULTS)

schema: $(STAMP) ## regenerate the JSON Schemas in docs/ (devices, iot.telemetry values, connectors file)
	$(BIN)/python -m protocol.schema docs
	$(BIN)/python -m edge_gateway.connectors.schema docs/connectors.schema.json

demo: $(STAMP) ## local services, hub worker, dashboard, and the edge with five simulators
	@$(SERVICES) start
	@scripts/demo

images: ## start Docker, build the edge and hub images (and local service images if no registry answers)
	@scripts/docker start
	@scripts/images build

kube-up: ## single-node Kubernetes on this machine (scripts/kube; first run builds it, ~12 min)
	@scripts/kube start

kube-down: ## stop the Kubernetes cluster (its pods, processes, bridge and iptables rules)
	@scripts/kube stop

kube-status: ## show the Kubernetes cluster
	@scripts/kube status

clean: ## remove the venv and local state (stops the services and the cluster first)
	-@$(SERVICES) stop
	-@if [ -d .local/kube/run ]; then scripts/kube stop; fi
	rm -rf $(VENV) .local .mypy_cache .ruff_cache .pytest_cache
