# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and install into it from the lock, constraints.txt (every
# dependency pinned exactly, the CPU torch build included); they skip the install step when
# .venv is up to date with the lock and setup.py. `make lock` regenerates the lock.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
LOCK := constraints.txt
CONSTRAINTS := -c $(LOCK)
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test test-fast install install-test install-slurm lock clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed first with the exact pin so nothing later can pull a CUDA build.
$(VENV)/.installed: $(PY) setup.py $(LOCK)
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

# Regenerate constraints.txt and constraints-cluster.txt from constraints.in and setup.py in a
# clean temporary venv; then `make clean-venv test` and commit the lock with the change.
lock:
	PYTHON=$(PYTHON) bash .ci/make_lock.sh

# The demo's folder is fixed: a second `make demo` resumes (and re-evaluates) the finished run;
# `rm -rf outputs/demo` first for a fresh one.
DEMO_DIR ?= outputs/demo

demo: install
	$(VENV)/bin/megathink train experiment=toy_demo hydra.run.dir=$(DEMO_DIR) $(DEMO_ARGS)

# The whole suite, as CI runs it (`.ci/run`); prints the 15 slowest tests.
test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

# The edit loop: no multi-process (megatron/torchrun), SLURM or slow tests.
test-fast: install-test
	$(PY) -m pytest -m "not slow and not megatron and not slurm" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
