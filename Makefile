# Ferry: `make demo` runs the whole cycle on embedded defaults; `make test` runs the tests.
# Needs only Python >= 3.11 and make: uv is installed into .tools/ when it is not on PATH.

PYTHON ?= python3
CC ?= cc
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
LINECHECK := transfer/format/_linecheck.so

.PHONY: install demo test lint format clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

install: $(UV) $(LINECHECK)
	$(UV) sync --frozen

# The native line checker of `ferry transfer verify` (transfer/format/native.py). Without a C
# compiler verify takes its Python path: slower, same verdicts.
$(LINECHECK): transfer/format/linecheck.c transfer/format/build_native.sh
	CC=$(CC) sh transfer/format/build_native.sh

demo: install
	$(UV) run ferry demo

test: install
	$(UV) run pytest

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format: install
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

clean:
	rm -rf var .pytest_cache .ruff_cache $(LINECHECK)
