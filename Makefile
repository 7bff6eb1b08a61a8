# msggate: `make run` starts the gateway on its embedded default; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The example plugin's tests get their own environment, so that the plugin never shows up as an
# extra channel in the `make run` environment above.
EXAMPLE_VENV  ?= .venv-example
EXAMPLE_STAMP := $(EXAMPLE_VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[fast,test]'
	touch $(STAMP)

$(EXAMPLE_STAMP): setup.cfg pyproject.toml examples/msggate-webhook/pyproject.toml
	$(PYTHON) -m venv $(EXAMPLE_VENV)
	$(EXAMPLE_VENV)/bin/pip install --quiet --upgrade pip
	$(EXAMPLE_VENV)/bin/pip install --quiet -e '.[fast,test]' -e 'examples/msggate-webhook[test]'
	touch $(EXAMPLE_STAMP)

install: $(STAMP)

run: install
	$(BIN)/msggate serve

test: install $(EXAMPLE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest
	$(EXAMPLE_VENV)/bin/pytest examples/msggate-webhook/tests

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/accept.py
	$(BIN)/python bench/deliver.py

clean:
	rm -rf $(VENV) $(EXAMPLE_VENV) build *.egg-info
