# modstream developer entry points. Every target installs what it needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck up down clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/modstream demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check schemas classifiers pipeline replay tests
	$(BIN)/mypy schemas classifiers pipeline replay

up: $(STAMP)
	$(BIN)/modstream up

down: $(STAMP)
	$(BIN)/modstream down

clean: down
	rm -rf .modstream
