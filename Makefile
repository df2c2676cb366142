# Every target bootstraps what it needs (.venv, Python packages, npm parts) and is safe to re-run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LEDGER := $(VENV)/bin/ledger
NODE_DIR := hardhat-free-devnet
PYTEST_ARGS ?=

.PHONY: demo run test lint typecheck slither unit bench artifacts bootstrap clean geth

bootstrap: $(VENV)/.installed $(NODE_DIR)/node_modules/.installed geth

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

## go-ethereum 1.13.15 (the last geth that seals Clique blocks) into .tools/bin, for the multi-node network;
## skipped when that version is there.
geth:
	@bash scripts/install_geth.sh

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@cd $(NODE_DIR) && npm ci --silent --no-audit --no-fund
	@touch $@

## The main job on embedded defaults: devnet, contracts, organisations, the gateway and the story told through it
## (push, grant, read, refuse, revoke, feed); stops what it started.
demo: bootstrap
	@$(LEDGER) demo

## Devnet and gateway on embedded defaults, kept up until Ctrl-C.
run: bootstrap
	@$(LEDGER) run

## The whole suite: lint, types, static analysis of the contracts, tests (devnet and servers included).
test: bootstrap lint typecheck slither unit

lint: bootstrap
	@$(VENV)/bin/ruff check ledger_api adapters scripts tests
	@$(VENV)/bin/ruff format --check ledger_api adapters scripts tests

typecheck: bootstrap
	@$(VENV)/bin/mypy

slither: bootstrap
	@$(PY) scripts/slither_gate.py

unit: bootstrap
	@$(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: bootstrap
	@$(LEDGER) bench

## Recompile contracts/ into the committed artifacts (a test fails when they drift).
artifacts: bootstrap
	@$(LEDGER) compile

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .ledger .pytest_cache .mypy_cache .ruff_cache .tools
