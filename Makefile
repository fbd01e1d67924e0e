# Two commands do all the set-up: `make demo` and `make test`.
# GPU users choose their torch build, e.g.
#   make demo TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
# The suite runs its test files on every core (pytest-xdist); PYTEST_ARGS= runs it in one process.
PYTEST_ARGS ?= -n auto --dist loadfile
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test lint ui bench clean

install: $(STAMP) $(DAGSTER_HOME)/dagster.yaml

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

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
