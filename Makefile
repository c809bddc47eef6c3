# tessera: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE := $(BIN)/snakemake
# Rules call `tessera`, `torchrun` and friends by name: the venv's bin must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test lint dag report clean install

# The stamp is rebuilt when pyproject.toml changes, so a pull that adds a dependency reinstalls.
# llama-cpp-python (the `llama` extra, for the GGUF parity tests) compiles llama.cpp: a few minutes. Not
# -march=native: a CPU that reports AMX inside a container that forbids it dies with SIGILL on q8_0.
# Then llama.cpp's GGUF converter is unpacked from the pinned llama-cpp-python sdist into the user cache.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	CMAKE_ARGS="$${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
	  -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}" \
	  $(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m tessera.release.gguf --fetch
	@touch $@

install: $(VENV)/.installed

## Run the demo workflow end to end on this machine (CPU, a few minutes).
run: install
	$(SNAKEMAKE) --cores $(CORES) --configfile config.yaml

## Run the test suite.
test: install
	$(BIN)/python -m pytest -q tests

lint: install
	$(BIN)/ruff check src tests bench
	$(SNAKEMAKE) --lint

## Render the rule graph to dag.png (DAG=path to choose; needs graphviz's `dot`).
DAG ?= dag.png
dag: install
	@command -v dot > /dev/null || { echo "make dag: graphviz's dot is missing (apt-get install graphviz)" >&2; exit 1; }
	@# pipefail: a Snakemake error must not leave an empty image behind.
	set -o pipefail; $(SNAKEMAKE) --rulegraph --configfile config.yaml | dot -Tpng -o $(DAG)

## One self-contained HTML page with every report of the demo run.
report: install
	$(SNAKEMAKE) --report report.html --configfile config.yaml

clean:
	rm -rf results .snakemake report.html dag.png
