# Two commands are the contract: `make demo` and `make test`.
# The interpreter: PYTHON when given, else the first of Python 3.12 and 3.13 that runs,
# found on PATH or among pyenv's versions (pyenv's shims answer `command -v` for
# versions that are not active, so each candidate is run, not just looked up).
SUPPORTED := 3.12 3.13
PYTHON ?= $(shell for v in $(SUPPORTED); do \
	for c in python$$v $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V | tail -n 1); do \
	$$c -c "import sys" >/dev/null 2>&1 && { echo $$c; exit 0; }; done; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENV_OK := $(BIN)/python -c "import sys; sys.exit(not (3, 12) <= sys.version_info[:2] <= (3, 13))"

.PHONY: demo test install clean

# A .venv made by an older checkout (Python 3.11) is remade with a supported Python; this
# runs as the Makefile is read, before make looks at the files below.
ifneq ($(wildcard $(BIN)/python),)
ifneq ($(shell $(VENV_OK) >/dev/null 2>&1 && echo ok),ok)
$(info make: $(VENV) does not run Python 3.12 or 3.13, which bayesmix needs; remaking it)
$(shell rm -rf $(VENV))
endif
endif

$(BIN)/python:
	@[ -n "$(PYTHON)" ] || { echo "make: no Python 3.12 or 3.13 found (on PATH or among pyenv's versions); install one, or run 'make PYTHON=/path/to/python3.12 ...'" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	@$(VENV_OK) || { echo "make: $(PYTHON) is not Python 3.12 or 3.13" >&2; rm -rf $(VENV); exit 2; }
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the package metadata changes; re-running is then instant.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,parquet]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bayesmix demo

# PYTEST_ARGS narrows a run, e.g. make test PYTEST_ARGS='-m "not slow"'.
# TEST_WORKERS pytest-xdist processes share the tests, a file per worker (module fixtures,
# such as a fit that several tests read, are made once). Two by default: compiling a model
# takes one core, sampling takes every core, and two workers overlap the one with the
# other (13.3 min serial, 8.3 min with two on 2 cores); more would only contend.
# TEST_WORKERS=0 runs in this process.
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
