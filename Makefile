# ScanQueue developer entry points. `make help` lists them.
#
# Everything runs from .venv; Redis (and Postgres for tests) come from scripts/services.py, which
# uses the configured servers when they answer and otherwise starts private ones under
# instance/services/ (installing them with apt-get when root on Debian).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 5000
PYTEST_ARGS ?=
PIP_INSTALL_ARGS ?=
export PORT

VENV := .venv
VENV_PY := $(VENV)/bin/python
# Touched after a successful install; older than pyproject.toml means dependencies changed.
STAMP := $(VENV)/.installed
EXTRAS := web,worker,dev
# Prefer an explicit 3.11; any python3 >= 3.11 will do (checked in the recipe).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
SERVICES := $(VENV_PY) scripts/services.py
LINT_PATHS := $(wildcard core webapp workers tasks models pipelines scheduler lab scripts benchmarks tests deploy)

.PHONY: help venv install run test test-tools chromium nginx promtool lint format migrate bench bench-faults services-stop clean distclean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

# The sentinel is bin/pip, not bin/python: a venv made without ensurepip (Debian without
# python3-venv) has bin/python but no pip and must be rebuilt.
$(VENV)/bin/pip:
	@set -euo pipefail; \
	py="$(PYTHON)"; \
	if [ -z "$$py" ]; then \
		echo "error: no python3 found; install Python 3.11 (apt-get install python3)" >&2; exit 1; \
	fi; \
	if ! "$$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		echo "error: $$py is $$("$$py" -V 2>&1); ScanQueue needs Python >= 3.11" >&2; exit 1; \
	fi; \
	if ! "$$py" -m venv "$(VENV)"; then \
		rm -rf "$(VENV)"; \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			ver="$$("$$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
			echo "python venv support missing; installing python3-venv with apt-get" >&2; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update; \
			apt-get install -y --no-install-recommends "python$$ver-venv" python3-venv \
				|| apt-get install -y --no-install-recommends python3-venv; \
			"$$py" -m venv "$(VENV)"; \
		else \
			echo "error: '$$py -m venv' failed; install python3-venv (sudo apt-get install python3-venv)" >&2; \
			exit 1; \
		fi; \
	fi

venv: $(VENV)/bin/pip ## Create .venv

# bin/pip is order-only: pip upgrading itself must not force a reinstall.
$(STAMP): pyproject.toml | $(VENV)/bin/pip
	$(VENV_PY) -m pip install $(PIP_INSTALL_ARGS) -e '.[$(EXTRAS)]'
	@touch $@

install: $(STAMP) ## Create .venv and install the project with web, worker and dev extras

run: $(STAMP) ## Run web, worker, beat and Flower locally (Ctrl-C stops all)
	$(SERVICES) --redis -- $(VENV_PY) scripts/run_dev.py

test: $(STAMP) test-tools ## Run the test suite against Redis and Postgres (PYTEST_ARGS=... to narrow)
	$(SERVICES) --redis --postgres -- $(VENV_PY) -m pytest $(PYTEST_ARGS)

# Debian packages the tests drive as real processes: Chromium for the browser test (Playwright's
# own browser download is not used), nginx for the reverse-proxy test and promtool for the alert
# rules (it comes in the prometheus package; on a host run by systemd that also enables a
# Prometheus server on :9090, `systemctl disable --now prometheus` if unwanted). path:package
# pairs; `make chromium`, `make nginx` and `make promtool` are the same target.
TEST_TOOLS := /usr/bin/chromium:chromium /usr/sbin/nginx:nginx-light /usr/bin/promtool:prometheus
test-tools: ## Install Debian's Chromium, nginx and promtool for the tests, if missing
	@missing=""; \
	for tool in $(TEST_TOOLS); do [ -x "$${tool%%:*}" ] || missing="$$missing $${tool#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's$$missing for the tests" >&2; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update && apt-get install -y --no-install-recommends $$missing; \
		else \
			echo "error: missing$$missing; install it: sudo apt-get install$$missing" >&2; \
			exit 1; \
		fi; \
	fi

chromium nginx promtool: test-tools

lint: $(STAMP) ## ruff check + format check
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

migrate: $(STAMP) ## Apply database migrations (DATABASE_URL, default SQLite in instance/)
	$(VENV)/bin/flask --app webapp db upgrade

# The status polls and dynamic batching and scale-out tables run on Postgres (as production does); the
# batching comparison takes 5-8 minutes more (real workers).
bench: $(STAMP) ## Run the benchmarks
	$(SERVICES) --redis --postgres -- $(VENV_PY) -m benchmarks
	$(VENV_PY) -m benchmarks.head_versions
	$(SERVICES) --redis --postgres -- $(VENV_PY) -m benchmarks.batching

# Real worker, gunicorn and nginx processes on Postgres and Redis: a few minutes, mostly the
# default liveness timeouts (a killed worker's job comes back after 60-90 s).
bench-faults: $(STAMP) test-tools ## Recovery from worker faults, database outages, hostile uploads (minutes)
	$(SERVICES) --redis --postgres -- $(VENV_PY) -m benchmarks.worker_faults
	$(SERVICES) --redis -- $(VENV_PY) -m benchmarks.hostile_uploads
	$(SERVICES) --redis --postgres -- $(VENV_PY) -m benchmarks.database_outage --outage 60 --outage 45

services-stop: ## Stop the private Redis/Postgres started by scripts/services.py
	$(if $(wildcard $(VENV_PY)),$(VENV_PY),python3) scripts/services.py stop

clean: ## Stop private servers, delete their data and caches (keeps .venv and the dev DB)
	-$(if $(wildcard $(VENV_PY)),$(VENV_PY),python3) scripts/services.py stop --purge
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info test-output
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean ## clean, and delete .venv too
	rm -rf $(VENV)
