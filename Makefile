# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and install the project with every dependency.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nxsci-installed

.PHONY: demo test install system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium for the dashboard's headless-browser test (installed when missing and we are root).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } || \
	  echo "chromium is not installed (apt-get install chromium): the dashboard test skips (fails under CI=true)"

demo: $(STAMP)
	$(VENV)/bin/nxsci demo

test: $(STAMP) system-deps
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/recon_quality.py

clean:
	rm -rf $(VENV) build dist *.egg-info
