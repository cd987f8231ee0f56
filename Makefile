# The two Quickstart commands: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/ordergraph: pyproject.toml tests/plugin_pkg/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet -e tests/plugin_pkg
	touch $@

.PHONY: install demo test lint
install: $(BIN)/ordergraph

demo: install
	$(BIN)/ordergraph serve --demo

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
