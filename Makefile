# One entry point for people and CI. `make test` installs everything it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help install test lint typecheck unit infra bench run clean mutate

help:
	@echo "make run    - run the function app locally (Azurite + Core Tools)"
	@echo "make test   - install everything, then lint, type-check and run all tests"
	@echo "make bench  - print the benchmarks' figures"
	@echo "make mutate - mutation-test the pure core (installs mutmut; about a minute)"

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

# Bicep: checkov in its own venv (.ci/checkov.sh); the template's own tests run with `unit`.
infra:
	bash .ci/checkov.sh

test: lint typecheck unit infra

bench: install node_modules/.installed
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/storm.py

# Mutation testing of the pure core (modules and tests: [tool.mutmut] in pyproject.toml); not
# part of `test`. Fails below 95 % of the mutants not listed in tests/mutants-equivalent.txt.
mutate: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -r requirements-mutate.txt
	rm -rf mutants
	@start=$$(date +%s); $(BIN)/mutmut run; echo; echo "wall time $$(( $$(date +%s) - start )) s"
	$(BIN)/mutmut results --all true | $(BIN)/python scripts/mutation_score.py tests/mutants-equivalent.txt
	$(BIN)/python scripts/constant_mutants.py

run: install
	./scripts/run-local.sh

clean:
	rm -rf $(VENV) .venv-checkov node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
