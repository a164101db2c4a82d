# `make demo` and `make test` do all set-up on a fresh machine; set-up is skipped when
# nothing it depends on changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint demo serve bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip 23 skips lxml[html_clean], without which trafilatura cannot import
	$(BIN)/python -m pip install -q -U pip
	# the CPU build of torch from this machine's disk, before anything pulls in a CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/mlopsmortem demo

bench: setup
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/search.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
