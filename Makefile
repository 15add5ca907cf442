# The two commands README.md shows: `make run` and `make test` (which runs `make lint` first: ruff, mypy, the layers).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint install bench

$(VENV)/.installed: requirements-dev.lock pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/bedel db upgrade
	$(BIN)/bedel students import demo/students.csv
	$(BIN)/bedel kb add demo/knowledge
	$(BIN)/bedel serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src tests bench
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest --cov

# The loop while working: no real processes, browser, load or deploy tools, SQLite only (no PostgreSQL, no Redis).
.PHONY: test-fast
test-fast: install
	$(BIN)/pytest -m "not slow and not postgres and not redis"

bench: install
	$(BIN)/python bench/chat_overhead.py
