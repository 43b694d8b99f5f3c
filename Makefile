# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv when missing (CPU torch pinned by constraints.txt) and are no-ops for the
# install step when the venv is up to date.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := -c constraints.txt
DEMO_ARGS ?=

.PHONY: demo test install install-test install-slurm clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed first with the exact pin so nothing later can pull a CUDA build.
$(VENV)/.installed: $(PY) setup.py constraints.txt
	$(PIP) install $(CONSTRAINTS) torch==2.13.0
	$(PIP) install $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install $(CONSTRAINTS) -e ".[test,megatron]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# The local SLURM of the tests marked `slurm` (Debian packages; needs root, idempotent).
install-slurm:
	bash .ci/install_slurm.sh

# The demo's folder is fixed: a second `make demo` resumes (and re-evaluates) the finished run;
# `rm -rf outputs/demo` first for a fresh one.
DEMO_DIR ?= outputs/demo

demo: install
	$(VENV)/bin/megathink train experiment=toy_demo hydra.run.dir=$(DEMO_DIR) $(DEMO_ARGS)

test: install-test
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)
