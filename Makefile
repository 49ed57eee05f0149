# Each target bootstraps .venv on a fresh machine: torch first (the CPU wheel
# on this project's machines; override TORCH for another build), then the
# project with its test extras.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,lint]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check pytest_llmprec tests benchmarks examples conftest.py
	$(BIN)/ruff format --check pytest_llmprec tests benchmarks examples conftest.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) build *.egg-info pytest_llmprec/compare/*.so llmprec-report

# Regenerate the GE dump protobuf module. grpcio-tools 1.63.0 bundles protoc
# 26.1, whose output has no runtime version check and loads on protobuf >= 5.26;
# --no-deps keeps the installed protobuf runtime as it is.
.PHONY: proto
proto: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps "grpcio-tools==1.63.0"
	$(BIN)/python -m grpc_tools.protoc -I pytest_llmprec/formats --python_out=pytest_llmprec/formats \
		pytest_llmprec/formats/ge_dump.proto
