# The two set-up commands (see README): `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint format bench bench-peers services openapi clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/feature-service demo

services:
	@bash scripts/ensure-services.sh

test: $(STAMP) services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

BENCH_STAMP := $(VENV)/.installed-bench
PEERS_VENV ?= .venv-peers

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) services
	$(BIN)/python -m benchmarks

# The peers section again with nautilus_trader, in its own venv (it pins pandas<3).
bench-peers:
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet -e '.[bench-nautilus]'
	$(PEERS_VENV)/bin/python -m benchmarks --only peers

openapi: $(STAMP)
	$(BIN)/feature-service openapi --output specs/005-feature-service/contracts/openapi.json

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .ruff_cache
