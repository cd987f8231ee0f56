# The two Quickstart commands: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
GRAPHIQL := ordergraph/web/graphiql
CONFORMANCE := tests/conformance
TEST_PLUGINS := build/test-plugins
CHROMIUM := /usr/bin/chromium
PDFTOTEXT := /usr/bin/pdftotext

$(BIN)/ordergraph: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# GraphiQL's browser files (React, GraphiQL), the npm packages its package-lock.json pins;
# the service serves them itself at /graphiql/.
$(GRAPHIQL)/node_modules/.package-lock.json: $(GRAPHIQL)/package.json $(GRAPHIQL)/package-lock.json
	@command -v npm >/dev/null || { echo "GraphiQL's files are installed with npm: install Node.js and npm, then run make again" >&2; exit 1; }
	cd $(GRAPHIQL) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The community's conformance checks the tests run with Node against the app: graphql-http's
# GraphQL over HTTP audit and graphql-ws's client, the versions its package-lock.json pins.
$(CONFORMANCE)/node_modules/.package-lock.json: $(CONFORMANCE)/package.json $(CONFORMANCE)/package-lock.json
	@command -v npm >/dev/null || { echo "the conformance tests run with Node.js: install Node.js and npm, then run make again" >&2; exit 1; }
	cd $(CONFORMANCE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The example third-party plugin the tests find through its entry point. It goes into
# build/test-plugins, which only the tests put on their path, so that `ordergraph plugins`
# does not list it.
$(TEST_PLUGINS)/.installed: tests/plugin_pkg/pyproject.toml $(wildcard tests/plugin_pkg/ordergraph_example_plugin/*.py) $(BIN)/ordergraph
	rm -rf $(TEST_PLUGINS)
	$(BIN)/pip install --quiet --no-deps --target $(TEST_PLUGINS) tests/plugin_pkg
	touch $@

# tests/test_graphiql.py drives Debian's chromium; CI runs as root and installs it.
$(CHROMIUM):
	@[ "$$(id -u)" = 0 ] || { echo "the browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install --yes --quiet chromium

# The statement tests read the text of the PDFs they get with poppler's pdftotext.
$(PDFTOTEXT):
	@[ "$$(id -u)" = 0 ] || { echo "the statement tests need Debian's poppler-utils: sudo apt-get install poppler-utils" >&2; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install --yes --quiet poppler-utils

.PHONY: install demo test lint schema
# Earlier versions installed the example plugin into .venv (marked by .example-plugin).
install: $(BIN)/ordergraph $(GRAPHIQL)/node_modules/.package-lock.json
	@if [ -e $(VENV)/.example-plugin ]; then \
	  $(BIN)/pip uninstall --quiet --yes ordergraph-example-plugin && rm $(VENV)/.example-plugin; fi

demo: install
	$(BIN)/ordergraph serve --demo --host $(HOST) --port $(PORT)

test: install $(TEST_PLUGINS)/.installed $(CONFORMANCE)/node_modules/.package-lock.json $(CHROMIUM) $(PDFTOTEXT)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Writes docs/schema.graphql again after a change of the schema (docs/graphql.md); it
# refuses while a breaking change is missing from docs/changelog.md.
schema: install
	UPDATE_SCHEMA_SNAPSHOT=1 $(BIN)/pytest tests/test_schema.py -q
