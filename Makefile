# TinyForge: `make demo` and `make test` work on a fresh machine by themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= build/digits
DEMO_REQUEST ?= Recognize handwritten digits on an Arduino Nano 33 BLE Sense
# The build's last stage runs the firmware on an emulated Cortex-M with a real TFLM: the shared
# source kit when it is there (else the build says it has none and keeps the estimates).
TFLM_KIT ?= $(abspath $(wildcard ../shared/vendor/tflm-cortex-m))

.PHONY: setup system-deps demo test lint bench clean client client-setup client-check editor-test vsix

setup: $(STAMP) system-deps

# Python 3.11 venv with every pinned dependency (pyproject.toml). pip compiles the byte code at
# install (no --no-compile): where PYTHONDONTWRITEBYTECODE is set, as on this project's machines,
# nothing would be compiled later and every TensorFlow import would compile its sources anew.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests drive for real (host compiler for the generated C array).
system-deps:
	bash scripts/system-deps.sh

# The extension, ready to install: tinyforge-<version>.vsix (npm tools only when missing).
client:
	bash scripts/client-setup.sh
	npm run -s package

demo: setup client
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/tinyforge new "$(DEMO_REQUEST)" --out $(DEMO_DIR)
	TINYFORGE_TFLM_DIR=$(TFLM_KIT) $(VENV)/bin/tinyforge build $(DEMO_DIR)

# ruff, then mypy strict on server/tinyforge ([tool.mypy] in pyproject.toml). mypy's cache lives
# in the user's cache folder, as TFLM's objects do: a clean clone checks in seconds what it took
# a minute to check cold (mypy compares contents when a file's time differs).
CACHE_DIR ?= $(or $(TINYFORGE_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tinyforge)
lint: setup
	$(VENV)/bin/ruff check server tests bench
	$(VENV)/bin/mypy --cache-dir "$(CACHE_DIR)/mypy"

# The VS Code extension (client/): npm tools, code-server 4.100.3 and Debian chromium, each
# installed only when missing or when its package-lock.json changed (tests/editor/setup.sh).
client-setup: setup
	bash tests/editor/setup.sh

# Type-check, lint and unit tests of the client (plain Node, no editor); first, that the report
# types generated from the server's schema (client/src/generated/) are up to date.
client-check: client-setup
	npm run -s types:check
	npm run -s typecheck
	npm run -s lint
	npm run -s test:unit

# The extension, packaged as a .vsix and installed into a real VS Code (code-server), runs its
# integration tests there with the real Python server; screenshots go to artifacts/editor/.
editor-test: client-setup
	SKIP_SETUP=1 bash tests/editor/run.sh

# tinyforge-<version>.vsix (install: code --install-extension tinyforge-<version>.vsix).
vsix: client-setup
	npm run -s package

# Two workers, as this machine and CI have two cores: the suite takes 15 min instead of 20 here
# (tests often wait on a child process, an emulator or a Ray node). Whole files per worker, in
# collection order (--no-loadscope-reorder: xdist would sort them by their number of tests),
# which tests/conftest.py starts with the longest files.
PYTEST_WORKERS ?= 2

test: setup lint client-check editor-test
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: setup
	$(PY) bench/e2e.py
	$(PY) bench/onnx_convert.py
	$(PY) bench/fit.py

clean:
	rm -rf build .pytest_cache client/out tinyforge-*.vsix
