# Comanda — every developer task is a target here. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GEN_STAMP := comanda/.generated

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

# .venv keeps the Python that made it (which may be another than the system's); a missing or
# broken one is made anew with $(PYTHON). Whatever cannot work is said in one line.
$(STAMP): pyproject.toml constraints.txt
	@if $(PY) -c '' 2>/dev/null; then py=$(PY); \
	elif command -v $(PYTHON) >/dev/null; then py=$(PYTHON); \
	else echo "make: $(PYTHON) not found: install Python >= 3.11, or name one: make PYTHON=/path/to/python3"; exit 1; fi; \
	"$$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make: Python >= 3.11 is needed, " + sys.executable + " is " + sys.version.split()[0] + ": name another one (make PYTHON=/path/to/python3), and remove .venv if it was made with this one")' || exit 1; \
	if [ "$$py" != $(PY) ]; then \
	  rm -rf $(VENV); \
	  $(PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { rm -rf $(VENV); echo "make: $(PYTHON) -m venv failed: install the venv module (Debian, Ubuntu: apt-get install python3-venv), or name another Python: make PYTHON=/path/to/python3"; exit 1; }; \
	fi
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt --config-settings editable_mode=compat -e '.[dev]'
	@touch $@

.PHONY: install
install: $(STAMP) $(GEN_STAMP) ## Create .venv with the project, its tools and generated code

$(GEN_STAMP): $(STAMP) $(PROTOS) scripts/gen_protos.sh
	scripts/gen_protos.sh
	@touch $@

.PHONY: proto
proto: $(STAMP) ## Regenerate the Python code (and typed stubs) from protos/
	scripts/gen_protos.sh
	@touch $(GEN_STAMP)

.PHONY: run
run: install ## Start PostgreSQL and NATS (embedded unless URLs are given), migrate, start orders, payment and gateway
	$(PY) -m devstack run

# COVERAGE=1 (or `make coverage`) runs the suite under coverage.py: every process it starts is
# measured, and the report fails below the floor (fail_under in pyproject.toml).
.PHONY: test
test: install ## Run every test (starts throwaway PostgreSQL and NATS unless URLs are given); COVERAGE=1 measures it
ifeq ($(COVERAGE),1)
	rm -rf .coverage .coverage.* htmlcov
	COVERAGE_FILE="$(CURDIR)/.coverage" $(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage html --quiet
	$(BIN)/coverage report
	@echo "HTML report: htmlcov/index.html"
else
	$(PY) -m pytest $(PYTEST_ARGS)
endif

.PHONY: coverage
coverage: ## make test with line and branch coverage of every process; total, htmlcov/, fails below the floor
	@$(MAKE) --no-print-directory test COVERAGE=1

.PHONY: screenshots
screenshots: install ## Retake the README's screenshots (docs/screens/) with the browser tests (needs Chromium)
	COMANDA_SCREENSHOTS=docs/screens $(PY) -m pytest tests/browser -k "kiosk_and_the_monitor" $(PYTEST_ARGS)

.PHONY: bench
bench: install ## Benchmarks (docs/performance.md): reads, checkout, GetOrder, fan-out, open-loop saga, CPU per saga, memory; BENCH_QUICK=1 for a short run
	$(PY) -m benchmarks

.PHONY: chaos
chaos: install ## 2,000 orders under SIGKILLs and NATS/PostgreSQL restarts, two replicas each; prints losses, doubles, deadlocks, deliveries (CHAOS_ARGS='--orders 5000')
	$(PY) -m tests.support.chaos $(CHAOS_ARGS)

.PHONY: token
token: install ## Print a development staff token: make token ROLE=kitchen [SUB=ana] (ROLE=kitchen,manager for both)
	@$(PY) -m chassis.tokens $(or $(ROLE),$(error give ROLE=kitchen or ROLE=manager)) $(if $(SUB),--sub $(SUB))

.PHONY: lint
lint: install ## ruff, mypy and buf lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint
	@$(MAKE) --no-print-directory breaking

.PHONY: breaking
breaking: $(STAMP) ## buf breaking: the wire and JSON contract against the previous commit (BASE=<git ref> to choose)
	@base=$${BASE:-HEAD~1}; \
	if git rev-parse --verify --quiet "$$base" >/dev/null; then \
	  echo "buf breaking against $$base"; $(BIN)/buf breaking --against ".git#ref=$$base"; \
	else echo "buf breaking: skipped, no git ref $$base in this clone"; fi

.PHONY: fmt
fmt: install ## Format the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: migrate
migrate: install ## Apply the database migrations of both services (uses the configured URLs)
	$(PY) -m orders migrate
	$(PY) -m payment migrate

.PHONY: dead-letters
dead-letters: install ## List the dead-letter stream (reason, original subject, deliveries); uses NATS_URL
	$(PY) -m chassis.messaging.deadletter list

.PHONY: replay-dead-letters
replay-dead-letters: install ## Republish dead letters to their original subjects (CONSUMER=name to pick one consumer)
	$(PY) -m chassis.messaging.deadletter replay $(if $(CONSUMER),--consumer $(CONSUMER))

.PHONY: image
image: install ## Build comanda:<version> with no network: base images pulled (or made from Debian), host-fetched wheels
	scripts/build_image.sh

.PHONY: base-images
base-images: install ## Python, PostgreSQL and NATS base images: pulled, or made from Debian where no registry answers
	scripts/base_images.sh

.PHONY: compose-test
compose-test: install ## Docker (installed, started if needed), the image, the compose stack, tested in its containers
	scripts/compose_test.sh

.PHONY: clean
clean: ## Remove generated code, caches and coverage data (keeps .venv and .data)
	rm -rf comanda .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

.PHONY: clean-data
clean-data: ## Remove the embedded PostgreSQL and NATS data of `make run` (as root, PostgreSQL's is under /var/lib/comanda-dev)
	@$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m devstack clean-data
