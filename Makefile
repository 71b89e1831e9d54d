# Everything installs into .venv; every target is safe to re-run and fast the second time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TEST_WORKERS ?= 2

.PHONY: install run worker migrate test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: install ## Serve the API with the worker in-process (embedded PostgreSQL if DATABASE_URL is unset)
	$(BIN)/billing serve

worker: install ## Run the billing worker alone
	$(BIN)/billing worker

migrate: install
	$(BIN)/billing migrate

test: install ## The whole suite (embedded PostgreSQL if TEST_DATABASE_URL is unset)
	$(BIN)/pytest -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install ## Benchmarks print their figures; they are not tests
	$(BIN)/python -m bench.api_load

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
