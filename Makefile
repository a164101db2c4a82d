# `make demo` and `make test` do all set-up on a fresh machine; set-up is skipped when
# nothing it depends on changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser test lint demo serve bench clean

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

# The browser test drives Debian's Chromium; install it where we can (root with apt-get),
# elsewhere that one test skips and says how to enable it.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

test: lint browser
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/mlopsmortem demo --db demo.db --open

bench: setup
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/tagging.py
	$(BIN)/python bench/crawl.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
