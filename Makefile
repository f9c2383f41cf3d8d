# tdsync: every target builds into .venv first (the Cython codec included).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TESTDATA ?= $(abspath ../shared/testdata/tdengine-3.3.7)
PYTEST_FLAGS ?= -q

.PHONY: all build demo test test-long bench lint clean

all: build

$(STAMP): pyproject.toml setup.py $(wildcard ext/*.pyx ext/*.pxd) engine/_codec.pxd
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

build: $(STAMP)

demo: build
	$(PY) -m engine.demo

test: build lint
	$(PY) -m pytest $(PYTEST_FLAGS)

test-long: build
	$(PY) -m pytest $(PYTEST_FLAGS) -m long

bench: build
	$(PY) -m pytest bench -o addopts="" -o testpaths=bench --benchmark-columns=min,median,ops --benchmark-group-by=group $(PYTEST_FLAGS)
	$(PY) -m bench.codec_report
	$(PY) -m bench.sandbox_bench
	$(PY) -m bench.replication_bench
	$(PY) -m bench.failover_bench

lint: build
	$(VENV)/bin/ruff check engine tests bench setup.py

clean:
	rm -rf $(VENV) build *.egg-info engine/*.so ext/*.c .pytest_cache .benchmarks .hypothesis
