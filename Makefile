# Two commands do all the set-up: `make demo` and `make test`.
# GPU users choose their torch build, e.g.
#   make demo TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
# The suite runs its test files on every core (pytest-xdist), longest module fixtures first (tests/conftest.py),
# and names its slowest steps, since CI must stay well inside 15 minutes; PYTEST_ARGS= runs it in one process.
PYTEST_ARGS ?= -n auto --dist loadfile --no-loadscope-reorder --durations=15
STAMP := $(VENV)/.installed
# Every install takes the versions in LOCK, so two installs on two days are the same project; `make lock`
# refreshes it on purpose. torch stays out of it: TORCH_SPEC / TORCH_INDEX_URL choose the CPU or a CUDA build.
LOCK := requirements.lock
LOCK_FLAGS := --extra dev --extra deploy --generate-hashes --strip-extras --no-emit-index-url \
	--no-emit-find-links --unsafe-package torch --unsafe-package manga-distill-assets
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install lock demo test lint ui bench clean

install: $(STAMP) $(DAGSTER_HOME)/dagster.yaml

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) "$(TORCH_SPEC)"
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Re-resolves every dependency within pyproject.toml's ranges: `git diff requirements.lock` shows what moved.
# `make lock LOCK_UPGRADE="--upgrade-package transformers"` moves one package; LOCK_UPGRADE=--upgrade, all.
lock: install
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile -q $(LOCK_FLAGS) $(LOCK_UPGRADE) --constraint <(echo "$(TORCH_SPEC)") \
		--output-file $(LOCK) pyproject.toml

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install
	$(BIN)/python -m manga_distill_assets.demo $(DEMO_ARGS)

test: install
	$(BIN)/ruff check manga_distill_assets tests benchmarks deploy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check manga_distill_assets tests benchmarks deploy
	$(BIN)/ruff format --check manga_distill_assets tests benchmarks deploy

ui: install
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) .artifacts
