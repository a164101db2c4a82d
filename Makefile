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
	# data/ and plugins/ map into the package, so setuptools installs it through an import
	# finder and prints an information-only notice about it (not a warning about this project)
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install -q -e '.[test]'
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
	$(BIN)/python -m bench.real
	$(BIN)/python -m bench.incidents
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.extract
	$(BIN)/python -m bench.tagging
	$(BIN)/python -m bench.crawl
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.install --keep build/bench-install
	$(BIN)/python -m bench.cli --serving-python build/bench-install/serving/bin/python
	$(BIN)/python -m bench.serve

clean:
	rm -rf $(VENV) build dist src/*.egg-info
