# Two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# Databases the storage suite also runs on; unreachable ones are skipped with a reason
# (CI sets CARUSO_REQUIRE_DATABASES=1 so there they must be up).
export CARUSO_TEST_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
export CARUSO_TEST_MARIADB_URL  ?= mysql+asyncmy://root@127.0.0.1:3306/test

.PHONY: run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	@mkdir -p var
	$(BIN)/caruso run

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/caruso bench storage --json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
