# modstream developer entry points. Every target installs what it needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv browser demo test lint up down clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[all]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's Chromium for the review UI's browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/modstream demo

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check schemas classifiers pipeline replay devtools modstream tests
	$(BIN)/mypy schemas classifiers pipeline replay devtools modstream

up: $(STAMP)
	$(BIN)/modstream up

down: $(STAMP)
	$(BIN)/modstream down

clean: down
	rm -rf .modstream
