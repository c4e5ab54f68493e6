# make demo  -- set up .venv and run jacprop on the shipped sample model
# make test  -- set up .venv and run the whole test suite
# make lint  -- ruff and the import-linter contracts (the layers)
# make golden -- re-record the golden outputs of tests/golden (review the diff: it is a behaviour change)
# make mutate -- mutation testing (mutmut) of the core modules changed against main; ALL=1: the whole core
# make docs  -- redraw the README's pictures, docs/img/*.png, from the sample model
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint golden bench fuzz mutate docs onnx-samples clean

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

# lint: ruff, then the import contracts of pyproject.toml (the layers, no cycles; README, Development)
lint: $(STAMP)
	$(BIN)/ruff check jacprop tests
	$(BIN)/lint-imports

golden: $(STAMP)
	$(BIN)/python tests/golden/make_golden.py

fuzz: $(STAMP)
	$(BIN)/python tests/fuzz.py --examples 20000 --save

# bench: peers (torch, jax) come from a dev-only venv outside the repo, see benchmarks/README.md
# and TensorFlow (for the end-to-end comparison) from another one, TF_PYTHON
BENCH_VENV ?= /work/devenv-bench
TF_PYTHON ?= /work/devenv-tf/bin/python
bench: $(STAMP)
	PY=$(BIN)/python; [ -x $(BENCH_VENV)/bin/python ] && PY=$(BENCH_VENV)/bin/python; \
	TF=; [ -x $(TF_PYTHON) ] && TF="--tf-python $(TF_PYTHON)"; \
	$$PY benchmarks/bench.py $$TF && $$PY benchmarks/bench_hessian.py --out benchmarks/RESULTS.md
	$$PY benchmarks/bench_rnn.py && $$PY benchmarks/bench_rnn_hessian.py

# mutate: mutmut lives in a dev-only venv outside the repo (created here when missing, with jacprop's
# dev extras); each module runs in a scratch copy under MUTATE_WORKDIR with its test selection
# (tests/mutate.py, TESTS). Default: the core modules changed against main; ALL=1 the whole core.
MUTATE_VENV ?= /work/devenv-mutate
MUTATE_WORKDIR ?= /tmp/jacprop-mutate
MUTATE_CHILDREN ?= 2
MUTATE_BASE ?= main
MUTATE_MODULES ?= $(shell git diff --name-only $(MUTATE_BASE)... -- 'jacprop/*.py' 2>/dev/null)
$(MUTATE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(MUTATE_VENV)
	$(MUTATE_VENV)/bin/pip install --quiet --upgrade pip
	$(MUTATE_VENV)/bin/pip install --quiet -e '.[dev,fast,mutate]'
	touch $@
mutate: $(MUTATE_VENV)/.installed
	$(MUTATE_VENV)/bin/python tests/mutate.py --mutmut $(MUTATE_VENV)/bin/mutmut --workdir $(MUTATE_WORKDIR) \
		--max-children $(MUTATE_CHILDREN) $(if $(MUTATE_TESTS),--tests $(MUTATE_TESTS) --) $(if $(ALL),--all,$(MUTATE_MODULES))
# docs: the README's pictures (jacprop plot) from sample_models/bishop_tanh; the intermediate npz files
# go to a temporary directory. interactions.png needs a Hessian (jacprop hessian): skipped without one.
SAMPLE := sample_models/bishop_tanh
DX := --dx temperature=0.5 --dx pressure=0.3 --dx flow=0.4
PLOT := $(BIN)/jacprop plot --dpi 90
docs: $(STAMP)
	@mkdir -p docs/img
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && set -e && \
	$(BIN)/jacprop jacobian $(SAMPLE).npz $(SAMPLE).csv -o $$tmp/jac.npz && \
	$(BIN)/jacprop propagate $(SAMPLE).npz $(SAMPLE).csv $(DX) --method gum --method linear --check-linearity \
		--budget -q -o $$tmp/prop.npz && \
	$(PLOT) heatmap $$tmp/jac.npz -o docs/img/heatmap.png && \
	$(PLOT) ranking $$tmp/jac.npz -o docs/img/ranking.png && \
	$(PLOT) profile $$tmp/jac.npz --input temperature --outputs 'y[1]' -o docs/img/profile.png && \
	$(PLOT) budget $$tmp/prop.npz -o docs/img/budget.png && \
	$(PLOT) linearity $(SAMPLE).npz $(SAMPLE).csv $(DX) --row 2 -o docs/img/linearity.png && \
	if $(BIN)/jacprop hessian --help > /dev/null 2>&1; then \
		$(BIN)/jacprop hessian $(SAMPLE).npz $(SAMPLE).csv -o $$tmp/hess.npz && \
		$(PLOT) interactions $$tmp/hess.npz --outputs 'y[1]' -o docs/img/interactions.png; \
	else echo "make docs: skipped docs/img/interactions.png: this jacprop has no hessian command to write a Hessian npz"; fi
	@ls -l docs/img/*.png
# the ONNX samples and their references (torch, onnx, onnxruntime, skl2onnx from the dev-only venv)
onnx-samples:
	$(BENCH_VENV)/bin/python sample_models/onnx/make_onnx_samples.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
