# StableSemantics — build, test and book.
#
#   make book        execute every notebook in _toc.yml (params/default.yaml) and build the book
#   make test        lint (ruff, import layers) + unit tests + a smoke run of every notebook (params/smoke.yaml)
#   make lint        ruff (lint and format check) and the import-linter contracts only
#   make notebook NB=01_generate PARAMS=smoke   execute one notebook into _build/notebooks/
#   make model       train MicroSD (two stages), then the reference segmenter (`stablesemantics train ...`; hours on a CPU)
#   make benchmarks  run every benchmarks/*.py
#   make clean       remove build outputs (_build/); `make distclean` also removes .venv
#
# The first target that needs Python creates .venv and installs everything into it.
# Overridable: PYTHON (interpreter that creates the venv), TORCH_VERSION, TORCH_INDEX
# (e.g. `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu` on a machine where
# the default package index has no CPU build of torch), PARAMS, NB.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
PARAMS ?= default
NB ?= 01_generate

# Figures render off-screen (lib/stablesemantics/book/runner.py lets the notebook kernels use the inline
# backend, which is off-screen too, so figures reach the book); the kernel spec installed
# in .venv wins over one in $HOME.
export MPLBACKEND := Agg
export JUPYTER_PREFER_ENV_PATH := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help install lint test book notebook model benchmarks clean distclean

help:
	@sed -n '3,10p' Makefile | sed 's/^# \{0,1\}//'

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -U pip
	@# Keep an installed torch (a CUDA build, say); otherwise install the CPU pin.
	$(PY) -c "import torch" 2>/dev/null || \
	  $(PY) -m pip install "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -e ".[book,dev]"
	@# open-clip-torch only ships the CLIP BPE vocabulary we need; its dependencies
	@# would pull a torchvision that does not match this torch.
	$(PY) -m pip install --no-deps open-clip-torch daam
	test -e $(VENV)/share/jupyter/kernels/python3/kernel.json || \
	  $(PY) -m ipykernel install --sys-prefix --name python3
	touch $@

test: lint
	$(PY) -m pytest -q

# ruff lints and checks the formatting of lib, tests, benchmarks and notebooks (one config in
# pyproject.toml); import-linter checks that imports flow one way (book/architecture.md).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

book: $(STAMP)
	$(PY) -m stablesemantics book run --params $(PARAMS) --out _build/notebooks
	$(PY) -m stablesemantics book stage --executed _build/notebooks --dest _build/src
	$(VENV)/bin/jupyter-book build _build/src --path-output .
	@echo "book: open _build/html/index.html"

notebook: $(STAMP)
	$(PY) -m stablesemantics book run --params $(PARAMS) --out _build/notebooks $(NB)

# MicroSD is trained in two stages: the first recipe (every default) into a cache folder, then
# continued from those weights with the v2 levers (EMA of the weights, min-SNR-5 loss weights,
# twice the cached scenes) into data/models/microsd; data/models/microsd/README.md has the times.
MICROSD_CACHE ?= $(HOME)/.cache/stablesemantics
MICROSD_CONTINUE := --unet-steps 4000 --lr 0.0002 --warmup 100 --ema-decay 0.999 --snr-gamma 5.0 --dataset-scenes 32768 --eval-every 500 --keep-last

model: $(STAMP)
	$(PY) -m stablesemantics train microsd --out $(MICROSD_CACHE)/microsd-v1 --ckpt-dir $(MICROSD_CACHE)/microsd-v1-ckpt
	$(PY) -m stablesemantics train microsd --init-from $(MICROSD_CACHE)/microsd-v1 --ckpt-dir $(MICROSD_CACHE)/microsd-v2-ckpt $(MICROSD_CONTINUE)
	$(PY) -m stablesemantics train segmenter

benchmarks: $(STAMP)
	@shopt -s nullglob; files=(benchmarks/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "no benchmarks/*.py"; exit 1; fi; \
	for f in "$${files[@]}"; do echo "+ $(PY) $$f"; $(PY) "$$f"; done

clean:
	rm -rf _build .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
