# make demo  -- set up .venv and run jacprop on the shipped sample model
# make test  -- set up .venv and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench fuzz clean onnx-samples

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,dask,fast]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jacprop inspect sample_models/bishop_tanh.npz
	$(BIN)/jacprop jacobian sample_models/bishop_tanh.npz sample_models/bishop_tanh.csv --format table
	$(BIN)/jacprop jacobian sample_models/bishop_tanh.npz sample_models/bishop_tanh.csv --format csv

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check jacprop tests

fuzz: $(STAMP)
	$(BIN)/python tests/fuzz.py --examples 20000 --save

# bench: peers (torch, jax) come from a dev-only venv outside the repo, see benchmarks/README.md
# and TensorFlow (for the end-to-end comparison) from another one, TF_PYTHON
BENCH_VENV ?= /work/devenv-bench
TF_PYTHON ?= /work/devenv-tf/bin/python
bench: $(STAMP)
	PY=$(BIN)/python; [ -x $(BENCH_VENV)/bin/python ] && PY=$(BENCH_VENV)/bin/python; \
	TF=; [ -x $(TF_PYTHON) ] && TF="--tf-python $(TF_PYTHON)"; \
	$$PY benchmarks/bench.py $$TF

# the ONNX samples and their references (torch, onnx, onnxruntime, skl2onnx from the dev-only venv)
onnx-samples:
	$(BENCH_VENV)/bin/python sample_models/onnx/make_onnx_samples.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
