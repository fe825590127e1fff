# TinyForge: `make demo` and `make test` work on a fresh machine by themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= build/digits
DEMO_REQUEST ?= Recognize handwritten digits on an Arduino Nano 33 BLE Sense

.PHONY: setup system-deps demo test lint bench clean

setup: $(STAMP) system-deps

# Python 3.11 venv with every pinned dependency (pyproject.toml).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests drive for real (host compiler for the generated C array).
system-deps:
	bash scripts/system-deps.sh

demo: setup
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/tinyforge new "$(DEMO_REQUEST)" --out $(DEMO_DIR)
	$(VENV)/bin/tinyforge build $(DEMO_DIR)

lint: setup
	$(VENV)/bin/ruff check server tests bench

test: setup lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: setup
	$(PY) bench/e2e.py

clean:
	rm -rf build .pytest_cache
