# The two commands of the README. Both create .venv (python3 -m venv) on first use.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	command -v cc >/dev/null 2>&1 || $(PY) -m pip install --quiet ziglang   # a C compiler for sasmodels' kernels (tests)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/trxrd demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)   # every figure side by side: benchmarks/results.json and a table (< 10 min)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
