# The two Quickstart commands: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/ordergraph: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# The example third-party plugin the tests install through its entry point.
$(VENV)/.example-plugin: tests/plugin_pkg/pyproject.toml $(BIN)/ordergraph
	$(BIN)/pip install --quiet -e tests/plugin_pkg
	touch $@

.PHONY: install demo test lint
install: $(BIN)/ordergraph

demo: install
	$(BIN)/ordergraph serve --demo

test: install $(VENV)/.example-plugin
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
