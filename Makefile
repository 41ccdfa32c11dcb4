# One entry point for people and CI. `make test` installs everything it needs first.
# `make help` lists every target from the `## ` comment on its rule line (so it cannot drift).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help install lock package test lint typecheck unit integration e2e coverage coverage-erase infra bench run clean mutate

help: ## list the targets
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-z0-9_-]*:.*## / {printf "make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(VENV)/.installed node_modules/.installed ## create .venv and install the Python and npm dev dependencies

# Exactly the lock: every package pinned and checked against its hash (pip refuses anything else).
$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/python -m pip check
	touch $@

# The locks (exact versions and hashes) from the declared ranges, for CPython 3.11 on Linux
# x86_64, which Flex Consumption runs (and CI): requirements.in -> requirements.txt (deployed),
# requirements-dev.in -> requirements-dev.txt (with the same runtime pins), requirements-checkov.in
# -> requirements-checkov.txt. Pins already in a lock are kept; move one package with
# `make lock UPGRADE="--upgrade-package NAME"`, all with `make lock UPGRADE=--upgrade`.
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(UPGRADE)

lock: $(VENV)/.installed ## resolve requirements*.in into the hashed locks requirements*.txt
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in -c requirements.txt -o requirements-dev.txt
	$(LOCK) requirements-checkov.in -o requirements-checkov.txt

# The zip that Flex Consumption deploys: the app and, from requirements.txt, its dependencies in
# .python_packages/lib/site-packages; same inputs, same bytes (scripts/package.py).
package: $(VENV)/.installed ## build dist/flux-azdo-connector-<version>.zip (no remote build) and print its size
	$(BIN)/python scripts/package.py

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: install ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy: --strict on connector/, checked defs on tests/, bench/, scripts/
	$(BIN)/mypy

# The tests in three tiers, fastest first; each runs alone too (`make unit`), or one file:
# `.venv/bin/pytest -q tests/unit/test_core_gates.py`. Each tier appends its lines and branches
# of connector/ to .coverage ([tool.coverage] in pyproject.toml); `make test` starts it empty
# and prints one report at the end.
PYTEST := $(BIN)/pytest -q --cov --cov-append --cov-report=

unit: install ## tests/unit: the core and everything without Azurite (about a minute)
	$(PYTEST) tests/unit

integration: install ## tests/integration: on Azurite and the loopback Azure DevOps (they start themselves)
	$(PYTEST) tests/integration

e2e: install ## tests/e2e: processes (serve, make run), the browser, the release checks
	$(PYTEST) tests/e2e

coverage-erase: install ## forget the coverage measured so far (`make test` does it first)
	$(BIN)/coverage erase

coverage: install ## print the branch coverage of connector/ the tiers measured since `make test` began
	$(BIN)/coverage report
	$(BIN)/python scripts/coverage_total.py

# Bicep: checkov in its own venv (.ci/checkov.sh); the template's own tests run with `unit`.
infra: ## checkov on infra/ (in its own venv)
	bash .ci/checkov.sh

test: lint typecheck coverage-erase unit integration e2e infra coverage ## install everything, then lint, type-check, the three tiers, Bicep checks, coverage

bench: install node_modules/.installed ## print the benchmarks' figures (no thresholds)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/cluster_keys.py
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

# No prerequisites here: the script checks the machine first, then runs `make install` itself.
run: ## run the app locally (checks prerequisites, installs; Core Tools, else the embedded host)
	./scripts/run-local.sh

clean: ## remove .venv, node_modules, .tools, caches and coverage data
	rm -rf $(VENV) .venv-checkov node_modules .tools .mypy_cache .ruff_cache .pytest_cache .hypothesis \
		.coverage .coverage.*
