# Quick start: `make demo` (whole pipeline on a simulated backlash, PNGs under dashboards/)
# and `make test` (lint, type-check, tests). Both create .venv on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,scale]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/backlash demo

# pytest exits with 5 when it collects no tests: CI counts that as a pass, not a failure
test: $(STAMP)
	$(PY) -m ruff check monitor tests benchmarks
	$(PY) -m mypy monitor
	$(PY) -m pytest || test $$? -eq 5

bench: $(STAMP)
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) data dashboards/*/ .pytest_cache .mypy_cache .ruff_cache
