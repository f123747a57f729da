# iqa_bench — every target creates .venv on first use (`pip install -c constraints.txt -e .[dev]`: the exact
# torch/torchvision of constraints.txt; pyproject.toml itself only states version ranges).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install train test test-slow test-wheel test-gpu gpu-check mutate bench lint format clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv with pinned deps and the package (editable)

train: $(STAMP)  ## pretrain ARNIQA on the built-in images, then probe-evaluate (pretrained vs random init)
	$(PY) -m iqa_bench.train method=arniqa $(ARGS)

test: $(STAMP)  ## fast CPU test suite
	$(PY) -m pytest -m "not slow and not gpu and not data" -q $(PYTEST_ARGS)

test-slow: $(STAMP)  ## slow tests (real short trainings)
	$(PY) -m pytest -m "slow and not gpu" -q $(PYTEST_ARGS)

test-wheel: $(STAMP)  ## build the wheel, install it in a fresh venv, smoke-train with iqa-train from /tmp
	PY=$(PY) .ci/wheel_smoke.sh

test-gpu: $(STAMP)  ## GPU tests (bank CPU/CUDA agreement, bf16 step per method, DDP over NCCL with 2 GPUs)
	$(PY) -m pytest -m gpu -q tests/gpu $(PYTEST_ARGS)

gpu-check: $(STAMP)  ## first check on a GPU (<= 8 min): agreement, bank speed, paper-setting steps; runs/gpu_check/
	$(PY) benchmarks/gpu_check.py --out runs/gpu_check

MUTANTS ?=
mutate: $(STAMP)  ## mutation testing of the core with mutmut (hours on 2 cores; MUTANTS='iqa_bench.losses.*' narrows it)
	$(VENV)/bin/mutmut run $(MUTANTS); status=$$?; $(VENV)/bin/mutmut results; exit $$status

BENCH_DEVICE ?= cpu
bench: $(STAMP)  ## benchmarks on BENCH_DEVICE (cpu|cuda); JSON in runs/bench/, figures go to docs/benchmarks.md
	$(PY) benchmarks/bench_distortions.py --device $(BENCH_DEVICE) --batch 64 --json runs/bench/distortions_$(BENCH_DEVICE).json
	$(PY) benchmarks/bench_loader.py --json runs/bench/loader.json
	$(PY) benchmarks/bench_evaluator.py --n 10000 --d 4096 --json runs/bench/evaluator.json
	for m in arniqa rankiqa mlf reiqa; do \
	  $(PY) benchmarks/bench_train_step.py --method $$m --device $(BENCH_DEVICE) --json runs/bench/train_step_$${m}_$(BENCH_DEVICE).json || exit 1; \
	done

lint: $(STAMP)  ## ruff (check + format check)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

format: $(STAMP)
	$(PY) -m ruff format src tests benchmarks

clean:  ## remove caches, run dirs and generated data (keeps .venv)
	rm -rf runs outputs multirun data/cache data/builtin dist build .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
