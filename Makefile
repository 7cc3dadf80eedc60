# Two commands matter: `make demo` and `make test`. Everything else is what they call.
# Set-up is incremental: a step re-runs only when the files it depends on change.

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The CDK CLI and jsii must not phone home or prompt during tests and demos.
export CDK_DISABLE_VERSION_CHECK := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

.PHONY: setup models demo test lint typecheck unit clean bench bench-record pricing soak serve fuzz

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.txt requirements-dev.txt tools/node_shims.py
	@test -x $(PY) || { echo "creating $(VENV) with $$(tools/find_python.sh)"; "$$(tools/find_python.sh)" -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) tools/node_shims.py
	@touch $@

$(NODE_STAMP): package.json package-lock.json $(STAMP)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Reference model versions are committed; this verifies their checksums and trains
# only a version that is missing.
models: $(STAMP)
	$(PY) -m training.reference

demo: setup models
	@$(PY) -m tools.demo

# The real handler behind a local Function URL-shaped server on http://127.0.0.1:8080/.
# Options: make serve SERVE_ARGS="--version v1 --port 9000"
serve: setup models
	$(PY) -m tools.serve $(SERVE_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

unit: setup models
	$(PY) -m pytest

test: lint typecheck unit

# Benchmarks print figures; they are not part of `make test` (timings are not assertions).
# `make bench` writes build/bench/ only; `make bench-record` keeps that run in
# benchmarks/results/ and docs/performance.md. Options: BENCH_ARGS="--cpu 0 --rounds 7".
bench: setup models
	$(PY) -m benchmarks.run $(BENCH_ARGS)

bench-record: $(STAMP)
	$(PY) -m benchmarks.record

# Monthly cost of each environment as cdk.json configures it (prices: benchmarks/pricing.py).
pricing: $(STAMP)
	$(PY) -m benchmarks.pricing

soak: setup models
	$(PY) -m benchmarks.soak

# The property tests with many more random inputs than `make test` runs (hypothesis
# profile "long"), plus the fault and reload tests; prints how many inputs were tried.
fuzz: setup models
	HYPOTHESIS_PROFILE=long $(PY) -m pytest tests/reliability -p no:cacheprovider

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .mypy_cache .ruff_cache
