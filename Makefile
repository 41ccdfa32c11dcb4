# One entry point for people and CI. `make test` installs everything it needs first.
# `make help` lists every target from the `## ` comment on its rule line (so it cannot drift).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help install test lint typecheck unit infra bench run clean mutate

help: ## list the targets
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-z_-]*:.*## / {printf "make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(VENV)/.installed node_modules/.installed ## create .venv and install the Python and npm dev dependencies

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: install ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy --strict on connector/
	$(BIN)/mypy

unit: install ## pytest (starts Azurite and the Azure DevOps fake itself)
	$(BIN)/pytest -q

# Bicep: checkov in its own venv (.ci/checkov.sh); the template's own tests run with `unit`.
infra: ## checkov on infra/ (in its own venv)
	bash .ci/checkov.sh

test: lint typecheck unit infra ## install everything, then lint, type-check, all tests, Bicep checks

bench: install node_modules/.installed ## print the benchmarks' figures (no thresholds)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/storm.py
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/sessions.py
	$(BIN)/python bench/ui.py --clusters 200

# Mutation testing of the pure core (modules and tests: [tool.mutmut] in pyproject.toml); not
# part of `test`. Fails below 95 % of the mutants not listed in tests/mutants-equivalent.txt.
mutate: $(VENV)/.installed ## mutation-test the pure core (installs mutmut; about 3 min)
	$(BIN)/python -m pip install --quiet -r requirements-mutate.txt
	rm -rf mutants
	@start=$$(date +%s); $(BIN)/mutmut run; echo; echo "wall time $$(( $$(date +%s) - start )) s"
	$(BIN)/mutmut results --all true | $(BIN)/python scripts/mutation_score.py tests/mutants-equivalent.txt
	$(BIN)/python scripts/constant_mutants.py

# local.settings.json first, so that it exists to edit even when the install or a check fails.
run: local.settings.json install ## run the app locally (checks prerequisites, Azurite, Service Bus, func start)
	./scripts/run-local.sh

local.settings.json:
	cp local.settings.sample.json $@

clean: ## remove .venv, node_modules, .tools and caches
	rm -rf $(VENV) .venv-checkov node_modules .tools .mypy_cache .ruff_cache .pytest_cache .hypothesis
