# The two commands a new user needs: `make demo` and `make test` (plus `make dev`, `make bench`).
# Each sets up .venv on its own, so they work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install install-dev demo dev test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/python -m crm_assets.launcher demo

dev: install
	$(BIN)/python -m crm_assets.launcher dev

# One worker per core, a whole test module per worker (its sandbox and warehouse are module fixtures).
TEST_WORKERS ?= 2

test: install-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: install-dev
	$(BIN)/python benchmarks/harvest_backfill.py
	$(BIN)/python benchmarks/salesforce_push.py
	$(BIN)/python benchmarks/zoho_push.py
	$(BIN)/python benchmarks/instance_bookkeeping.py
	$(BIN)/python benchmarks/definitions_load.py

clean:
	rm -rf $(VENV) .venv-thirdparty data/crm.duckdb* data/dagster data/harvest_oauth.json*
