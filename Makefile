# clipforge: the two README commands. Both create or reuse .venv idempotently: the install is stamped with a
# hash of constraints.txt + pyproject.toml, so a second run (same pins) installs nothing.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PINS_HASH := $(shell cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(PINS_HASH)
SYS_STAMP := $(VENV)/.sysdeps-$(shell sha256sum scripts/sysdeps.sh | cut -c1-16)
export NO_ALBUMENTATIONS_UPDATE := 1
export RAY_USAGE_STATS_ENABLED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install sysdeps demo test test-fast lint bench clean

help:
	@echo "make demo   - run the main job end to end on the embedded default (local Ray, synthetic web)"
	@echo "make test   - run the test suite"
	@echo "make bench  - run the benchmarks (results: benchmarks/RESULTS.md)"

install: $(STAMP) $(SYS_STAMP)

$(STAMP): constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q "pip==26.3"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	@# Compile the pHash kernels once (Numba's on-disk cache) and check them against the installed Pillow.
	$(BIN)/python -c "from curation import lanczos as l; ok = l.exact() and l.gray_exact(); \
	  print('clipforge: pHash kernels', 'match Pillow' if ok else 'DO NOT match Pillow: pHash uses Pillow itself')"
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "clipforge: installed into $(VENV) (pins $(PINS_HASH))"

# System packages (Debian) the project needs at run time; installs only what is missing.
$(SYS_STAMP): scripts/sysdeps.sh | $(STAMP)
	bash scripts/sysdeps.sh
	@rm -f $(VENV)/.sysdeps-*
	@touch $@

sysdeps: $(SYS_STAMP)

demo: install
	$(BIN)/clipforge demo

test: install
	$(BIN)/python -m pytest -q --durations=25 tests

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/bench_localweb.py

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache
