# Two commands do all set-up on a fresh machine (python3.11 and make only):
#   make demo   - create .venv, install pinned deps, run `reconcile demo`
#   make test   - same set-up plus the test/airflow extras, then pytest
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
CONSTRAINTS := requirements/constraints.txt
DEMO_OUT ?= demo-out

.PHONY: demo test install install-dev system-deps audit bench lock clean clean-kernels

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(UV): $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$$(sed -n 's/^uv==//p' requirements/tools.txt)"

$(VENV)/.core-installed: $(UV) pyproject.toml $(CONSTRAINTS)
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -c $(CONSTRAINTS) -e .
	$(BIN)/python -m compileall -q reconcile
	$(BIN)/python -c "from reconcile.engine import load_kernels; load_kernels()"
	@touch $@

$(VENV)/.dev-installed: $(UV) pyproject.toml $(CONSTRAINTS)
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -c $(CONSTRAINTS) -e ".[airflow,test]"
	$(BIN)/python -m compileall -q reconcile
	$(BIN)/python -c "from reconcile.engine import load_kernels; load_kernels()"
	@touch $@ $(VENV)/.core-installed

install: $(VENV)/.core-installed
install-dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/reconcile demo --out $(DEMO_OUT)

test: install-dev system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# LibreOffice proves a real spreadsheet program opens report.xlsx. Installed from Debian's
# packages when absent and we are root (CI); otherwise that one test skips and says why.
system-deps:
	@command -v soffice >/dev/null 2>&1 || command -v libreoffice >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing libreoffice-calc-nogui (workbook conversion test)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      libreoffice-calc-nogui) >/dev/null 2>&1 || echo "could not install LibreOffice: its test will skip"; \
	  else echo "LibreOffice absent: the workbook conversion test will skip"; fi

bench: install
	$(BIN)/python benchmarks/engine.py

audit: $(UV)
	$(UV) pip install --quiet --python $(BIN)/python "pip-audit==$$(sed -n 's/^pip-audit==//p' requirements/tools.txt)"
	$(BIN)/pip-audit --requirement $(CONSTRAINTS) --no-deps --disable-pip

lock: $(UV)
	$(UV) pip compile pyproject.toml --extra airflow --extra test --python-version 3.11 \
	    --python-platform x86_64-unknown-linux-gnu -o $(CONSTRAINTS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

# numba checks a cached kernel against its own file only: after editing a helper module that kernels
# inline (reconcile/engine/words.py, hashing.fnv1a), drop every cached kernel and compile them again
clean-kernels:
	find reconcile -name '*.nbi' -delete -o -name '*.nbc' -delete
	$(BIN)/python -c "from reconcile.engine import load_kernels; load_kernels()"
