# Two commands for a fresh machine (see README.md):
#   make train   set everything up, then train the default model on the offline data
#   make test    set everything up, then run the whole test suite
#   make notebooks  open the lecture notes as notebooks (examples/notebooks/) in JupyterLab
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# On x86_64 Linux with Python 3.11 pip takes these two from this machine's disk (no download).
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: train test setup system lint bench notebooks clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH) || $(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed system

system:
	@bash scripts/setup-system.sh

train: setup
	$(VENV)/bin/cnnlab train --time 2m

test: setup lint
	$(PY) -m pytest -q -p no:cacheprovider

# ruff (style) and import-linter (layering; contracts in pyproject.toml); `make test` runs it first
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples/notebooks
	$(VENV)/bin/lint-imports

bench: setup
	$(VENV)/bin/cnnlab bench

$(VENV)/.notebooks: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,notebooks]'
	touch $@

notebooks: setup $(VENV)/.notebooks
	$(VENV)/bin/jupyter lab examples/notebooks

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
