# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and install the project with every dependency.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nxsci-installed

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nxsci demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/recon_quality.py

clean:
	rm -rf $(VENV) build dist *.egg-info
