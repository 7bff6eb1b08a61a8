# msggate: `make run` starts the gateway on its embedded default; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[fast,test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/msggate serve

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest
	$(BIN)/pip install --quiet -e examples/msggate-webhook
	$(BIN)/pytest examples/msggate-webhook/tests

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/accept.py
	$(BIN)/python bench/deliver.py

clean:
	rm -rf $(VENV) build *.egg-info
